"""Races between real connections: the last units, orders locking the same rows in opposite orders,
fulfilment racing cancellation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from helpers import run_together

import pyinv
from pyinv import Inventory


def race(dsn: str, workers: int, work: Callable[[Inventory, int], Any]) -> list[Any]:
    """Runs work(client, n) on `workers` connections released together; returns results or exceptions."""
    clients = [Inventory.connect(dsn) for _ in range(workers)]
    try:
        return run_together(workers, lambda n: work(clients[n], n))
    finally:
        for client in clients:
            client.close()


def kinds(outcomes: list[Any]) -> Counter[str]:
    return Counter(type(outcome).__name__ for outcome in outcomes)


def test_last_unit_race_32_connections_for_10_units(catalogue: Inventory, dsn: str) -> None:
    outcomes = race(dsn, 32, lambda client, n: client.reserve_stock("A1", 1, f"SO-{n}"))
    assert kinds(outcomes) == {"Reservation": 10, "InsufficientStock": 22}
    assert all(outcome.actual_sqlstate == "PT409" for outcome in outcomes if isinstance(outcome, Exception))
    [row] = catalogue.stock_levels("A1")
    assert (row.on_hand, row.reserved, row.available) == (10, 10, 0)
    assert catalogue.verify_inventory() == []


def test_flash_sale_sells_out_exactly(catalogue: Inventory, dsn: str) -> None:
    catalogue.create_item("HOT", "Limited sneaker")
    catalogue.receive_stock("HOT", 50)

    def buy_until_sold_out(client: Inventory, n: int) -> int:
        held = 0
        quantity = 1 + n % 3
        while True:
            try:
                client.reserve_stock("HOT", quantity, f"SO-{n}-{held}")
                held += quantity
            except pyinv.InsufficientStock:
                if quantity == 1:
                    return held
                quantity = 1

    outcomes = race(dsn, 16, buy_until_sold_out)
    assert sum(outcomes) == 50  # oversold 0, undersold 0
    assert catalogue.stock_levels("HOT")[0].available == 0


def test_opposite_line_orders_never_deadlock(catalogue: Inventory, dsn: str) -> None:
    catalogue.receive_stock("A1", 100_000)
    catalogue.receive_stock("B2", 100_000)

    def order_repeatedly(client: Inventory, n: int) -> int:
        lines = [{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 1}]
        if n % 2:
            lines.reverse()
        for attempt in range(25):
            client.reserve_order(f"SO-{n}-{attempt}", lines)
        return 25

    outcomes = race(dsn, 16, order_repeatedly)
    assert outcomes == [25] * 16  # any deadlock (40P01) would be an exception here
    assert catalogue.stock_levels("A1")[0].reserved == 400
    assert catalogue.stock_levels("B2")[0].reserved == 400


def test_orders_sweeps_and_cancels_together_never_deadlock(catalogue: Inventory, dsn: str, db) -> None:
    catalogue.receive_stock("A1", 10_000)
    catalogue.receive_stock("B2", 10_000)
    db.execute("""select inventory_api.reserve_order(order_ref => 'OLD-' || n,
                    lines => '[{"sku": "B2", "quantity": 1}, {"sku": "A1", "quantity": 1}]')
                    from generate_series(1, 200) n""")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second'")

    def mixed(client: Inventory, n: int) -> str:
        if n % 4 == 0:
            while client.expire_reservations(batch_size=10):
                pass
            return "swept"
        for attempt in range(20):
            lines = [{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 2}]
            client.reserve_order(f"SO-{n}-{attempt}", lines[:: 1 if n % 2 else -1])
            if attempt % 2:
                client.cancel_reservation(f"SO-{n}-{attempt}")
            else:
                client.fulfill_order(f"SO-{n}-{attempt}")
        return "ordered"

    outcomes = race(dsn, 12, mixed)
    assert kinds(outcomes) == {"str": 12}
    assert catalogue.reservations(status="ACTIVE") == []


def test_fulfil_and_cancel_of_one_order_resolve_it_once(catalogue: Inventory, dsn: str) -> None:
    catalogue.receive_stock("B2", 10)
    for round_ in range(10):
        catalogue.reserve_stock("B2", 1, f"SO-{round_}")
        outcomes = race(dsn, 2, lambda client, n, r=round_: (
            client.fulfill_order(f"SO-{r}") if n == 0 else client.cancel_reservation(f"SO-{r}")))
        assert sorted(kinds(outcomes)) == ["NoReservation", "list"]
    assert catalogue.stock_levels("B2")[0].reserved == 0
