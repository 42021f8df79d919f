"""Entry point: `gateway` serves the app with uvicorn."""

from __future__ import annotations

import uvicorn
from common import load_settings


def run() -> None:
    settings = load_settings("gateway", default_port=8000)
    uvicorn.run("gateway.app:app", host=settings.host, port=settings.port,
                log_level=settings.log_level)


if __name__ == "__main__":
    run()
