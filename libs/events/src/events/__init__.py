"""Order events and a durable, file-backed queue."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    sku: str
    quantity: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OrderPlaced:
        data = json.loads(text)
        return cls(order_id=data["order_id"], sku=data["sku"], quantity=int(data["quantity"]))


class FileQueue:
    """One JSON file per event in a directory; consumers claim by rename."""

    def __init__(self, directory: str | Path | None = None) -> None:
        default = os.environ.get("ACME_QUEUE_DIR", str(Path(tempfile.gettempdir()) / "acme-q"))
        self.directory = Path(directory or default)
        self.directory.mkdir(parents=True, exist_ok=True)

    def publish(self, event: OrderPlaced) -> Path:
        tmp = self.directory / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(event.to_json(), encoding="utf-8")
        final = self.directory / f"{event.order_id}.json"
        tmp.replace(final)
        return final

    def drain(self) -> list[OrderPlaced]:
        events = []
        for path in sorted(self.directory.glob("*.json")):
            claimed = path.with_suffix(".claimed")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            events.append(OrderPlaced.from_json(claimed.read_text(encoding="utf-8")))
            claimed.unlink()
        return events


__all__ = ["FileQueue", "OrderPlaced"]
