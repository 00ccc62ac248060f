"""Expiry is correct before the sweeper runs, and the sweeper releases each hold exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

from helpers import raises_inventory_error, run_together

import pyinv
from pyinv import Inventory


def make_overdue(db, order_ref: str) -> None:
    """Moves an order's holds into the past instead of sleeping."""
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second' where order_ref = %s",
               (order_ref,))


def test_an_overdue_hold_never_blocks_someone_else(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 10, "SO-OLD", expires_in=timedelta(minutes=5))
    with raises_inventory_error(db, pyinv.InsufficientStock):
        catalogue.reserve_stock("A1", 1, "SO-NEW")
    make_overdue(db, "SO-OLD")
    assert catalogue.validate_stock("A1", 10).can_fulfill
    [row] = catalogue.stock_levels("A1")
    assert (row.reserved, row.available, row.expired_unreleased) == (10, 10, 10)
    hold = catalogue.reserve_stock("A1", 4, "SO-NEW")
    assert hold.status == "ACTIVE"
    [old] = catalogue.reservations(order_ref="SO-OLD")
    assert old.status == "EXPIRED"
    assert [m.movement_type for m in catalogue.movements(sku="A1")][-2:] == ["EXPIRE", "RESERVE"]


def test_an_overdue_hold_never_blocks_an_order(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 10, "SO-OLD")
    make_overdue(db, "SO-OLD")
    holds = catalogue.reserve_order("SO-NEW", [{"sku": "A1", "quantity": 10}, {"sku": "B2", "quantity": 1}])
    assert len(holds) == 2


def test_an_overdue_hold_cannot_be_fulfilled(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 3, "SO-1")
    make_overdue(db, "SO-1")
    with raises_inventory_error(db, pyinv.ReservationExpired) as caught:
        catalogue.fulfill_order("SO-1")
    assert len(caught.value.detail["expired_reservation_ids"]) == 1
    with raises_inventory_error(db, pyinv.ReservationExpired):
        catalogue.fulfill_order("SO-1", sku="A1", quantity=1)


def test_partial_shipment_is_served_from_live_holds_only(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    make_overdue(db, "SO-1")
    catalogue.reserve_stock("A1", 3, "SO-1")
    [change] = catalogue.fulfill_order("SO-1", sku="A1", quantity=3)
    assert change.quantity == 3
    with raises_inventory_error(db, pyinv.ReservationExpired):
        catalogue.fulfill_order("SO-1", sku="A1", quantity=1)


def test_cancelling_an_overdue_hold_records_it_as_expired(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 3, "SO-1")
    make_overdue(db, "SO-1")
    [change] = catalogue.cancel_reservation("SO-1")
    assert (change.movement_type, change.status) == ("EXPIRE", "EXPIRED")


def test_sweeper_releases_overdue_holds_in_batches(catalogue: Inventory, db) -> None:
    for n in range(5):
        catalogue.reserve_stock("A1", 1, f"SO-{n}")
    catalogue.reserve_stock("B2", 1, "SO-LIVE")
    for n in range(5):
        make_overdue(db, f"SO-{n}")
    assert catalogue.expire_reservations(batch_size=3) == 3
    assert catalogue.expire_reservations(batch_size=3) == 2
    assert catalogue.expire_reservations(batch_size=3) == 0
    assert catalogue.stock_levels("A1")[0].reserved == 0
    assert catalogue.stock_levels("B2")[0].reserved == 1
    expire_rows = [m for m in catalogue.movements(sku="A1") if m.movement_type == "EXPIRE"]
    assert sum(-m.reserved_delta for m in expire_rows) == 5
    assert sorted(rid for m in expire_rows for rid in m.metadata["reservation_ids"]) == sorted(
        r.reservation_id for r in catalogue.reservations(status="EXPIRED"))


def test_a_hold_is_never_released_before_it_expires(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 1, "SO-1", expires_in=timedelta(seconds=30))
    assert catalogue.expire_reservations() == 0
    assert catalogue.reservations(order_ref="SO-1")[0].status == "ACTIVE"


def test_concurrent_sweepers_release_each_hold_exactly_once(catalogue: Inventory, db, dsn: str) -> None:
    catalogue.receive_stock("A1", 990)
    db.execute("""
        select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-' || n)
          from generate_series(1, 600) n""")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second'")
    def sweep(n: int) -> int:
        with Inventory.connect(dsn) as client:
            total = 0
            while (expired := client.expire_reservations(batch_size=50)) > 0:
                total += expired
            return total

    counts = run_together(4, sweep)
    assert sum(counts) == 600
    expired_in_ledger = db.execute(
        "select coalesce(sum(jsonb_array_length(metadata -> 'reservation_ids')), 0), -sum(reserved_delta)"
        " from inventory.ledger where movement_type = 'EXPIRE'").fetchone()
    assert expired_in_ledger == (600, 600)
    assert catalogue.stock_levels("A1")[0].reserved == 0


def overdue_holds(db, catalogue: Inventory, holds: dict[str, list[int]]) -> dict[str, list[int]]:
    """One 1-unit hold per entry, overdue by the given seconds; returns reservation ids per SKU."""
    ids: dict[str, list[int]] = {}
    for sku, ages in holds.items():
        for age in ages:
            hold = catalogue.reserve_stock(sku, 1, f"SO-{sku}-{age}")
            db.execute("update inventory.reservations set expires_at = now() - make_interval(secs => %s)"
                       " where reservation_id = %s", (age, hold.reservation_id))
            ids.setdefault(sku, []).append(hold.reservation_id)
    return ids


def expired_ids(db) -> set[int]:
    return {row[0] for row in db.execute("select reservation_id from inventory.reservations where status = 'EXPIRED'")}


def test_a_sweep_batch_takes_whole_levels_in_order_of_their_oldest_hold(catalogue: Inventory, db) -> None:
    ids = overdue_holds(db, catalogue, {"A1": [10, 8, 6], "B2": [9, 7]})
    assert catalogue.expire_reservations(batch_size=3) == 3
    # Not the three oldest holds (A1, B2, A1): all of A1's, whose hold is the oldest, in one movement.
    assert expired_ids(db) == set(ids["A1"])
    [movement] = [m for m in catalogue.movements(sku="A1") if m.movement_type == "EXPIRE"]
    assert sorted(movement.metadata["reservation_ids"]) == sorted(ids["A1"])
    assert catalogue.expire_reservations(batch_size=3) == 2
    assert expired_ids(db) == set(ids["A1"]) | set(ids["B2"])


def test_a_second_sweeper_skips_a_claimed_level_instead_of_waiting(catalogue: Inventory, db, connect) -> None:
    ids = overdue_holds(db, catalogue, {"A1": [10, 8, 6, 4], "B2": [9, 7]})
    first = connect(autocommit=False)
    assert first.execute("select inventory_api.expire_reservations(batch_size => 3)").fetchone() == (3,)
    second = connect(autocommit=True)
    second.execute("set lock_timeout = '2s'")  # waiting for A1 would fail with 55P03
    assert second.execute("select inventory_api.expire_reservations(batch_size => 3)").fetchone() == (2,)
    first.commit()
    assert expired_ids(db) == set(ids["A1"][:3]) | set(ids["B2"])
    assert catalogue.expire_reservations(batch_size=3) == 1


def test_a_sweeper_waits_for_a_busy_level_rather_than_report_nothing_overdue(catalogue: Inventory, db,
                                                                            connect) -> None:
    ids = overdue_holds(db, catalogue, {"A1": [10, 8]})
    reserving = connect(autocommit=False)
    reserving.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-BUSY')")
    sweeping = connect(autocommit=True)
    pid = sweeping.info.backend_pid
    results: list[tuple] = []
    sweeper = threading.Thread(target=lambda: results.append(
        sweeping.execute("select inventory_api.expire_reservations(batch_size => 10)").fetchone()))
    sweeper.start()
    waiting = False
    for _ in range(200):  # until the sweeper is queued behind the reservation's lock on A1
        row = db.execute("select wait_event_type from pg_stat_activity where pid = %s", (pid,)).fetchone()
        if waiting := (row is not None and row[0] == "Lock"):
            break
        sweeper.join(0.05)
    reserving.commit()
    sweeper.join()
    assert waiting, results
    assert results == [(2,)]
    assert expired_ids(db) == set(ids["A1"])
