"""Service settings read from the environment, with typed defaults."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    service: str
    host: str
    port: int
    log_level: str


def load_settings(service: str, default_port: int) -> Settings:
    """Read HOST, PORT and LOG_LEVEL from the environment."""
    settings = Settings(
        service=service,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", str(default_port))),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {service} %(levelname)s %(message)s",
    )
    return settings
