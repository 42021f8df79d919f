"""`acme-worker`: drain the event queue, once or in a loop."""

from __future__ import annotations

import json
import logging
import time

import click
from common import health_report, load_settings
from events import FileQueue, OrderPlaced

from worker import __version__

log = logging.getLogger("worker")


def fulfil(event: OrderPlaced) -> dict[str, object]:
    """Pretend to ship an order; returns the fulfilment record."""
    return {"order_id": event.order_id, "sku": event.sku, "shipped": event.quantity}


def drain_once(queue: FileQueue) -> list[dict[str, object]]:
    records = [fulfil(event) for event in queue.drain()]
    for record in records:
        log.info("fulfilled %s", record["order_id"])
    return records


@click.command()
@click.option("--once", is_flag=True, help="Drain the queue once and exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
def main(once: bool, interval: float) -> None:
    """Drain OrderPlaced events and fulfil them."""
    load_settings("worker", default_port=0)
    queue = FileQueue()
    if once:
        records = drain_once(queue)
        report = health_report("worker", __version__).as_dict()
        click.echo(json.dumps({"health": report, "fulfilled": len(records)}))
        return
    while True:  # pragma: no cover - the long-running mode
        drain_once(queue)
        time.sleep(interval)
