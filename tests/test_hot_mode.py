"""Hot mode (issue 14, item 1): a level's free units spread over buckets taken with SKIP LOCKED.

What must hold: a hold is refused only when the level as a whole is short at that moment (no false
out-of-stock), buckets never go negative and always add up to the level, every other operation keeps
its meaning (stock_levels, the ledger and its chains, verify_inventory, expiry, returns, adjustments,
transfers, counts, stock_as_of), and levels with buckets never deadlock against multi-level work.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import IsolationLevel

from pyinv import InsufficientStock, Inventory
from tests.helpers import raises_db_error, run_together, snapshot


def level_books(db: psycopg.Connection[Any], sku: str = "A1", location: str = "main") -> dict[str, Any]:
    """One snapshot of a level: its row, its buckets, its holds and what the API view shows."""
    with db.transaction():
        db.execute("set transaction isolation level repeatable read")
        row = db.execute(
            """select s.on_hand, s.reserved, s.hot_buckets,
                      coalesce((select sum(r.quantity - r.quantity_fulfilled) from inventory.reservations r
                                 where (r.item_id, r.location_id) = (s.item_id, s.location_id)
                                   and r.status = 'ACTIVE' and r.bucket is null), 0) as level_holds,
                      coalesce((select sum(r.quantity - r.quantity_fulfilled) from inventory.reservations r
                                 where (r.item_id, r.location_id) = (s.item_id, s.location_id)
                                   and r.status = 'ACTIVE'), 0) as all_holds,
                      (select json_agg(json_build_object('bucket', b.bucket, 'parked', b.parked, 'held', b.held,
                                                         'free', b.free) order by b.bucket)
                         from inventory.hot_buckets b
                        where (b.item_id, b.location_id) = (s.item_id, s.location_id)) as buckets,
                      v.reserved as view_reserved, v.available as view_available, v.expired_unreleased
                 from inventory.stock_levels s
                 join inventory.items i using (item_id) join inventory.locations l using (location_id)
                 join inventory_api.stock_levels v on v.sku = i.sku and v.location = l.code
                where i.sku = %s and l.code = %s""", (sku, location)).fetchone()
    on_hand, reserved, hot, level_holds, all_holds, buckets, view_reserved, view_available, overdue = row
    return {"on_hand": on_hand, "reserved": reserved, "hot": hot, "level_holds": level_holds,
            "all_holds": all_holds, "buckets": buckets or [], "view_reserved": view_reserved,
            "view_available": view_available, "overdue": overdue}


def assert_books_add_up(books: dict[str, Any]) -> None:
    """Buckets never negative; the level row's reserved = its own holds + units parked in buckets;
    and what the view shows is the level as a whole (overdue holds, not swept yet, count as released)."""
    buckets = books["buckets"]
    for bucket in buckets:
        assert Decimal(str(bucket["held"])) >= 0 and Decimal(str(bucket["free"])) >= 0, buckets
    parked = sum((Decimal(str(b["parked"])) for b in buckets), Decimal(0))
    free = sum((Decimal(str(b["free"])) for b in buckets), Decimal(0))
    assert books["reserved"] == books["level_holds"] + parked, books
    assert books["view_reserved"] == books["all_holds"], books
    assert books["view_available"] == books["on_hand"] - books["reserved"] + free + books["overdue"], books
    assert books["view_available"] == books["on_hand"] - books["all_holds"] + books["overdue"], books


def test_set_hot_mode_spreads_the_free_units_and_turning_it_off_gathers_them(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 3, "O-BEFORE")  # a hold made before hot mode stays on the level row
    hot = catalogue.set_hot_mode("A1", buckets=4)
    assert (hot.buckets, hot.on_hand, hot.reserved, hot.available) == (4, 10, 3, 7)
    assert len(hot.bucket_free) == 4 and sum(hot.bucket_free) == 7 and min(hot.bucket_free) >= 1
    books = level_books(db)
    assert books["hot"] == 4 and books["reserved"] == 10  # the row counts the parked units
    assert_books_add_up(books)
    [row] = catalogue.stock_levels("A1", "main")
    assert (row.on_hand, row.reserved, row.available, row.hot_buckets) == (10, 3, 7, 4)
    kinds = db.execute("select movement_type::text, bucket is null from inventory.ledger"
                       " where movement_type = 'REBALANCE' order by movement_id").fetchall()
    assert ("REBALANCE", True) in kinds and ("REBALANCE", False) in kinds

    off = catalogue.set_hot_mode("A1", buckets=1)
    assert (off.buckets, off.reserved, off.available, off.bucket_free) == (1, 3, 7, [])
    books = level_books(db)
    assert books["reserved"] == 3 and all(b["parked"] == 0 for b in books["buckets"])
    assert_books_add_up(books)
    # Off, holds go to the level row again
    assert db.execute("select bucket from inventory.reservations where reservation_id = %s",
                      (catalogue.reserve_stock("A1", 1, "O-COLD").reservation_id,)).fetchone() == (None,)


def test_every_operation_keeps_its_meaning_on_a_hot_level(catalogue: Inventory, db) -> None:
    catalogue.set_hot_mode("A1", buckets=3)
    started = datetime.now(UTC)
    held = [catalogue.reserve_stock("A1", 2, f"O-{n}") for n in range(4)]
    buckets = db.execute("select bucket from inventory.reservations where reservation_id = any(%s)",
                         ([h.reservation_id for h in held],)).fetchall()
    assert all(b is not None for (b,) in buckets)
    reserve_rows = db.execute("select bucket, reserved_delta, reservation_id from inventory.ledger"
                              " where movement_type = 'RESERVE' order by movement_id").fetchall()
    assert [(d, r) for _, d, r in reserve_rows] == [(2, h.reservation_id) for h in held]
    assert all(b is not None for b, _, _ in reserve_rows)
    assert_books_add_up(level_books(db))
    [row] = catalogue.stock_levels("A1", "main")
    assert (row.on_hand, row.reserved, row.available) == (10, 8, 2)
    assert catalogue.validate_stock("A1", 2).available == 2

    # Ship one, cancel one: the level's own SHIP and RELEASE, after the hold moved out of its bucket
    catalogue.fulfill_order("O-0")
    catalogue.cancel_reservation("O-1")
    moves = db.execute("select movement_type::text, bucket is null, on_hand_delta, reserved_delta from inventory.ledger"
                       " where reservation_id in (%s, %s) or metadata->'reservation_ids' @> to_jsonb(array[%s])"
                       " order by movement_id", (held[0].reservation_id, held[1].reservation_id,
                                                 held[0].reservation_id)).fetchall()
    assert ("SHIP", True, -2, -2) in moves and ("RELEASE", True, 0, -2) in moves
    assert ("REBALANCE", False, -2, -2) in moves  # out of the bucket: parked and held both shrink
    [row] = catalogue.stock_levels("A1", "main")
    assert (row.on_hand, row.reserved, row.available) == (8, 4, 4)
    assert_books_add_up(level_books(db))

    # Expiry (lazy and swept), a return, an adjustment down, a transfer and a count
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second'"
               " where order_ref = 'O-2'")
    assert catalogue.expire_reservations() == 1
    catalogue.process_return("O-0", "A1", 1, "damaged box")
    catalogue.create_adjustment("A1", -2, "correction", "correction")
    catalogue.transfer_stock("A1", 1, "main", "east")
    catalogue.record_count("A1", 6)
    [row] = catalogue.stock_levels("A1", "main")
    assert (row.on_hand, row.reserved, row.available, row.hot_buckets) == (6, 2, 4, 3)
    assert_books_add_up(level_books(db))
    # ... and holds keep coming from buckets afterwards
    catalogue.reserve_stock("A1", 4, "O-LAST")
    with pytest.raises(InsufficientStock) as short:
        catalogue.reserve_stock("A1", 1, "O-NONE")
    assert (short.value.detail["available"], short.value.detail["reserved"]) == (0, 6)
    assert_books_add_up(level_books(db))

    # The past from the ledger: the true figures, not the parked ones
    at = catalogue.stock_as_of("A1", datetime.now(UTC))
    assert (at.on_hand, at.reserved, at.available) == (6, 6, 0)
    before = catalogue.stock_as_of("A1", started)
    assert (before.on_hand, before.reserved) == (10, 0)
    # Reports count real movements only
    summary = db.execute("select received, shipped, net_change from inventory_api.movement_summary"
                         " where sku = 'A1' and location = 'main'").fetchone()
    assert summary == (10, 2, 6)


def test_a_hot_level_never_refuses_while_units_are_free(catalogue: Inventory, dsn: str, db) -> None:
    """24 connections take one unit each, again and again, until refused: exactly the 40 units are held,
    whichever buckets they sat in, and a refusal came only once none was free."""
    catalogue.receive_stock("A1", 30)
    catalogue.set_hot_mode("A1", buckets=8)
    refusals: list[Decimal] = []

    def work(n: int) -> int:
        held = 0
        with Inventory.connect(dsn) as client:
            while True:
                try:
                    client.reserve_stock("A1", 1, f"RACE-{n}-{held}")
                    held += 1
                except InsufficientStock as error:
                    refusals.append(Decimal(str(error.detail["available"])))
                    return held

    counts = run_together(24, work)
    assert all(isinstance(c, int) for c in counts), counts
    assert sum(counts) == 40
    assert set(refusals) == {Decimal(0)}
    books = level_books(db)
    assert books["view_available"] == 0 and books["all_holds"] == 40
    assert_books_add_up(books)


@pytest.mark.parametrize("level", [IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE])
def test_no_false_out_of_stock_under_each_isolation_level(catalogue: Inventory, dsn: str, db,
                                                          level: IsolationLevel) -> None:
    """Clients choosing REPEATABLE READ or SERIALIZABLE: a conflict is a serialization failure (nothing
    happened, the client retries), never a wrong refusal or an oversell."""
    catalogue.set_hot_mode("A1", buckets=4)

    def work(n: int) -> int:
        held = 0
        with Inventory.connect(dsn) as client:
            client.connection.isolation_level = level
            while True:
                try:
                    client.reserve_stock("A1", 1, f"ISO-{n}-{held}")
                    held += 1
                except InsufficientStock:
                    return held
                except psycopg.errors.SerializationFailure:
                    continue
                except Exception as error:  # the client's own retries gave up on 40001
                    if getattr(error, "actual_sqlstate", None) != "40001":
                        raise

    counts = run_together(8, work)
    assert all(isinstance(c, int) for c in counts), counts
    assert sum(counts) == 10
    assert_books_add_up(level_books(db))


def test_buckets_add_up_at_every_moment_under_mixed_load(catalogue: Inventory, dsn: str, db) -> None:
    """Holds, shipments, cancellations, expiry sweeps, receipts, reserve_many, changes of the bucket
    count and multi-level orders in opposite orders on two hot levels; a reader checks the books in
    one snapshot all along. No deadlock, no negative bucket, and the books balance at every sample."""
    catalogue.receive_stock("A1", 90)
    catalogue.receive_stock("B2", 95)
    catalogue.set_hot_mode("A1", buckets=6)
    catalogue.set_hot_mode("B2", buckets=3)
    stop = threading.Event()
    samples: list[dict[str, Any]] = []

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as reader:
            while not stop.is_set():
                samples.extend([level_books(reader, "A1"), level_books(reader, "B2")])
                time.sleep(0.01)

    reader = threading.Thread(target=sample)
    reader.start()

    def work(n: int) -> list[str]:
        rng = random.Random(n)
        errors: list[str] = []
        with Inventory.connect(dsn) as client:
            for step in range(40):
                order = f"MIX-{n}-{step}"
                choice = rng.random()
                try:
                    if choice < 0.45:
                        client.reserve_stock(rng.choice(["A1", "B2"]), rng.choice([1, 2]), order,
                                             expires_in=timedelta(seconds=rng.choice([1, 60])))
                    elif choice < 0.75:
                        lines = [{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 1}]
                        client.reserve_order(order, lines if n % 2 else lines[::-1])
                    elif choice < 0.8:
                        client.expire_reservations(50)
                    elif choice < 0.85:
                        client.reserve_many([{"order_ref": f"{order}-{k}", "sku": sku, "quantity": 1}
                                             for k, sku in enumerate(["B2", "A1", "A1"])])
                    elif choice < 0.88:
                        client.receive_stock(rng.choice(["A1", "B2"]), 2)
                    elif choice < 0.9:
                        client.set_hot_mode(rng.choice(["A1", "B2"]), buckets=rng.choice([2, 4, 6]))
                    else:
                        earlier = f"MIX-{n}-{rng.randrange(step)}" if step else order
                        if rng.random() < 0.5:
                            client.fulfill_order(earlier)
                        else:
                            client.cancel_reservation(earlier)
                except InsufficientStock:
                    pass
                except Exception as error:
                    if type(error).__name__ not in ("NoReservation", "ReservationExpired"):
                        errors.append(f"{type(error).__name__}: {error}")
        return errors

    try:
        outcomes = run_together(6, work)
    finally:
        stop.set()
        reader.join()
    assert outcomes == [[]] * 6, outcomes
    assert len(samples) > 10
    for books in samples:
        assert_books_add_up(books)


def test_reserve_many_on_a_hot_level_takes_its_holds_from_the_level_row(catalogue: Inventory, db) -> None:
    catalogue.set_hot_mode("A1", buckets=4)
    results = catalogue.reserve_many([{"order_ref": f"M-{n}", "sku": "A1", "quantity": 3} for n in range(4)])
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].error_code == "INSUFFICIENT_STOCK"
    assert db.execute("select count(*) from inventory.reservations where bucket is not null").fetchone() == (0,)
    assert_books_add_up(level_books(db))
    catalogue.cancel_reservation("M-0")
    catalogue.reserve_stock("A1", 2, "AFTER")  # the buckets are dealt the free units again
    assert db.execute("select bucket is not null from inventory.reservations where order_ref = 'AFTER'"
                      ).fetchone() == (True,)
    assert_books_add_up(level_books(db))


def test_set_hot_mode_refuses_bad_input_and_changes_nothing(catalogue: Inventory, clerk: Inventory, db) -> None:
    db.execute("select inventory_api.create_item('LOT-1', 'Lot-tracked', track_lots => true)")
    for buckets in (0, -1, 65, 100000, None):
        with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
            db.execute("select inventory_api.set_hot_mode('A1', 'main', %s)", (buckets,))
        assert json.loads(caught.value.diag.message_detail)["argument"] == "buckets"
    with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
        db.execute("select inventory_api.set_hot_mode('LOT-1', 'main', 4)")
    assert json.loads(caught.value.diag.message_detail)["problem"] == "lot-tracked"
    with raises_db_error(db, "PT404", "PRODUCT_NOT_FOUND"):
        db.execute("select inventory_api.set_hot_mode('NOPE''; drop table inventory.ledger; --', 'main', 4)")
    with raises_db_error(db, "PT404", "LOCATION_NOT_FOUND"):
        db.execute("select inventory_api.set_hot_mode('A1', 'nowhere', 4)")
    before = snapshot(db)
    with pytest.raises(Exception) as caught:
        clerk.set_hot_mode("A1", buckets=4)  # operators may reserve, not reshape a level
    assert getattr(caught.value, "code", None) == "PERMISSION_DENIED"
    assert snapshot(db) == before


def test_buckets_change_only_through_pyinv(catalogue: Inventory, db) -> None:
    catalogue.set_hot_mode("A1", buckets=2)
    with raises_db_error(db, "22023", "INVALID_ARGUMENT"):
        db.execute("update inventory.hot_buckets set parked = parked + 5 where bucket = 1")
    with raises_db_error(db, "42501", "APPEND_ONLY"):
        db.execute("delete from inventory.hot_buckets")
    with raises_db_error(db, "42501", "APPEND_ONLY"):
        db.execute("update inventory.ledger set reserved_delta = 0 where bucket is not null")


@pytest.mark.breaks_invariants
def test_verify_inventory_catches_a_bucket_changed_behind_the_ledger(catalogue: Inventory, db) -> None:
    catalogue.set_hot_mode("A1", buckets=2)
    catalogue.reserve_stock("A1", 1, "O-1")
    assert catalogue.verify_inventory() == []
    db.execute("alter table inventory.hot_buckets disable trigger hot_buckets_record_change")
    db.execute("update inventory.hot_buckets set held = held + 1 where held > 0")
    db.execute("alter table inventory.hot_buckets enable always trigger hot_buckets_record_change")
    found = {v.invariant for v in catalogue.verify_inventory()}
    assert {"bucket_equals_ledger", "bucket_held_equals_holds"} <= found


def test_hot_mode_holds_for_postgrest_clients(gateway, db) -> None:
    admin = gateway("authenticated", "u-admin")
    [hot] = admin.rpc("set_hot_mode", sku="A1", buckets=4)
    assert hot[2] == 4  # (sku, location, buckets, ...)
    clerk = gateway("authenticated", "u-clerk-main")
    [held] = clerk.rpc("reserve_stock", sku="A1", quantity=2, order_ref="REST-1")
    assert db.execute("select bucket is not null, created_by from inventory.reservations where reservation_id = %s",
                      (held[0],)).fetchone() == (True, "u-clerk-main")
    east = gateway("authenticated", "u-clerk-east")
    with pytest.raises(psycopg.Error) as caught:
        east.rpc("set_hot_mode", sku="A1", buckets=2)
    assert caught.value.sqlstate == "42501"
    assert_books_add_up(level_books(db))




def test_cli_turns_hot_mode_on_and_off(catalogue: Inventory, run, db) -> None:
    on = json.loads(run("--json", "hot-mode", "A1", "--buckets", "4").stdout)
    assert (on["buckets"], Decimal(str(on["available"])), len(on["bucket_free"])) == (4, 10, 4)
    table = run("hot-mode", "A1", "--off").stdout
    assert "A1" in table and "bucket_free" in table
    assert db.execute("select hot_buckets from inventory.stock_levels s join inventory.items i using (item_id)"
                      " where i.sku = 'A1'").fetchone() == (1,)
    refused = run("hot-mode", "A1", "--buckets", "1", exit_code=2)
    assert "--buckets" in refused.stderr
