from starlette.testclient import TestClient

from gateway.app import create_app


def test_health() -> None:
    client = TestClient(create_app())
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["service"] == "gateway"
    assert response.json()["status"] == "ok"


def test_orders_unreachable_is_502(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ORDERS_URL", "http://127.0.0.1:9")
    client = TestClient(create_app())
    assert client.get("/orders/o-1").status_code == 502
