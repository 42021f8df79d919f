from pathlib import Path

from events import FileQueue
from fastapi.testclient import TestClient

from orders.app import create_app


def test_create_then_fetch_publishes_event(tmp_path: Path) -> None:
    queue = FileQueue(tmp_path)
    client = TestClient(create_app(queue))
    created = client.post("/orders", json={"sku": "sku-1", "quantity": 3})
    assert created.status_code == 201
    order_id = created.json()["id"]
    assert client.get(f"/orders/{order_id}").json()["quantity"] == 3
    assert [e.order_id for e in queue.drain()] == [order_id]


def test_rejects_bad_quantity(tmp_path: Path) -> None:
    client = TestClient(create_app(FileQueue(tmp_path)))
    assert client.post("/orders", json={"sku": "x", "quantity": 0}).status_code == 422


def test_health(tmp_path: Path) -> None:
    client = TestClient(create_app(FileQueue(tmp_path)))
    assert client.get("/health").json()["status"] == "ok"
