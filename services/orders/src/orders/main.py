"""Entry point: `orders` serves the API with uvicorn."""

from __future__ import annotations

import uvicorn
from common import load_settings


def run() -> None:
    settings = load_settings("orders", default_port=8001)
    uvicorn.run("orders.app:app", host=settings.host, port=settings.port,
                log_level=settings.log_level)


if __name__ == "__main__":
    run()
