"""Create and fetch orders; each new order is published as an OrderPlaced event."""

from __future__ import annotations

import uuid

from common import health_report
from events import FileQueue, OrderPlaced
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from orders import __version__


class NewOrder(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class Order(NewOrder):
    id: str


def create_app(queue: FileQueue | None = None) -> FastAPI:
    app = FastAPI(title="orders", version=__version__)
    store: dict[str, Order] = {}
    events = queue or FileQueue()

    @app.get("/health")
    def health() -> dict[str, object]:
        return health_report("orders", __version__).as_dict()

    @app.post("/orders", status_code=201)
    def create(order: NewOrder) -> Order:
        saved = Order(id=f"o-{uuid.uuid4().hex[:8]}", **order.model_dump())
        store[saved.id] = saved
        events.publish(OrderPlaced(saved.id, saved.sku, saved.quantity))
        return saved

    @app.get("/orders/{order_id}")
    def fetch(order_id: str) -> Order:
        if order_id not in store:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        return store[order_id]

    return app


app = create_app()
