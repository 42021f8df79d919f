"""A uniform health document for every service."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass

_STARTED = time.monotonic()


@dataclass(frozen=True)
class HealthReport:
    service: str
    status: str
    version: str
    python: str
    uptime_seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def health_report(service: str, version: str) -> HealthReport:
    return HealthReport(
        service=service,
        status="ok",
        version=version,
        python=platform.python_version(),
        uptime_seconds=round(time.monotonic() - _STARTED, 3),
    )
