"""Routes: /health for probes, /orders/{id} proxied to the orders API."""

from __future__ import annotations

import os

import httpx
from common import health_report
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import __version__


async def health(request: Request) -> JSONResponse:
    return JSONResponse(health_report("gateway", __version__).as_dict())


async def get_order(request: Request) -> JSONResponse:
    base = os.environ.get("ORDERS_URL", "http://127.0.0.1:8001")
    order_id = request.path_params["order_id"]
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:
            upstream = await client.get(f"/orders/{order_id}")
    except httpx.HTTPError as exc:
        return JSONResponse({"error": f"orders API unreachable: {exc}"}, status_code=502)
    return JSONResponse(upstream.json(), status_code=upstream.status_code)


def create_app() -> Starlette:
    return Starlette(routes=[
        Route("/health", health),
        Route("/orders/{order_id}", get_order),
    ])


app = create_app()
