import json
from pathlib import Path

from click.testing import CliRunner
from events import FileQueue, OrderPlaced

from worker.main import drain_once, main


def test_drain_once_fulfils_every_event(tmp_path: Path) -> None:
    queue = FileQueue(tmp_path)
    queue.publish(OrderPlaced("o-1", "sku", 1))
    queue.publish(OrderPlaced("o-2", "sku", 5))
    assert [r["order_id"] for r in drain_once(queue)] == ["o-1", "o-2"]


def test_cli_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ACME_QUEUE_DIR", str(tmp_path))
    FileQueue(tmp_path).publish(OrderPlaced("o-9", "sku", 2))
    result = CliRunner().invoke(main, ["--once"])
    assert result.exit_code == 0
    assert json.loads(result.output)["fulfilled"] == 1
