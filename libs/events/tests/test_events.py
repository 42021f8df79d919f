from pathlib import Path

from events import FileQueue, OrderPlaced


def test_publish_then_drain(tmp_path: Path) -> None:
    queue = FileQueue(tmp_path)
    queue.publish(OrderPlaced("o-1", "sku-1", 2))
    assert queue.drain() == [OrderPlaced("o-1", "sku-1", 2)]
    assert queue.drain() == []
