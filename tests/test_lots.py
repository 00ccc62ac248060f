"""Lot tracking (issue 12), through the SQL API exactly as psql or PostgREST call it.

Every test arranges lot-tracked items with create_item(..., track_lots => true), receives them into
lots with expiry dates relative to today (UTC, the database's idea of it) and checks the real numbers
of inventory_api.lots, inventory_api.lot_allocations, inventory_api.stock_levels and the ledger after
each step. `in_step` checks the central invariant of the issue after every step: per lot and location
the quantities add up to the item's level, and the open allocations of the active holds add up to
each lot's reserved quantity. The `inv` fixture then checks verify_inventory() is empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from helpers import raises_db_error, run_together, snapshot
from psycopg import IsolationLevel
from psycopg.rows import dict_row

from pyinv import Inventory

INVALID_ARGUMENT = ("22023", "INVALID_ARGUMENT")
INSUFFICIENT_STOCK = ("PT409", "INSUFFICIENT_STOCK")
ALREADY_EXISTS = ("PT409", "ALREADY_EXISTS")
LOT_NOT_FOUND = ("PT404", "LOT_NOT_FOUND")
PRODUCT_NOT_FOUND = ("PT404", "PRODUCT_NOT_FOUND")
PERMISSION_DENIED = ("42501", "PERMISSION_DENIED")
BUSY = ("55P03", "BUSY")
IDEMPOTENCY_CONFLICT = ("PT409", "IDEMPOTENCY_CONFLICT")

INJECTIONS = ("'; drop table x; --", "L1'); delete from inventory.items; --")

# SQL type of each argument (everything else is text), so the test, not psycopg, picks the types.
TYPES = {
    "quantity": "numeric",
    "quantity_delta": "numeric",
    "counted_quantity": "numeric",
    "unit_cost": "numeric",
    "expires_in": "interval",
    "min_shelf_life": "interval",
    "lines": "jsonb",
    "batch_size": "integer",
    "restock": "boolean",
    "track_lots": "boolean",
    "requires_qc": "boolean",
    "quarantined": "boolean",
    "expires_on": "date",
    "adjustment_id": "bigint",
}

Row = dict[str, Any]
Db = psycopg.Connection[Any]


# -- calling the API -----------------------------------------------------------------------------------


def call_sql(fn: str, arguments: dict[str, Any]) -> str:
    named = ", ".join(f"{name} => %({name})s::{TYPES.get(name, 'text')}" for name in arguments)
    return f"select * from inventory_api.{fn}({named})"


def call(db: Db, fn: str, **arguments: Any) -> list[Row]:
    """inventory_api.fn(name => value::type, ...) with named arguments; rows as dicts."""
    with db.cursor(row_factory=dict_row) as cursor:
        cursor.execute(call_sql(fn, arguments), arguments)
        return cursor.fetchall()


def call_one(db: Db, fn: str, **arguments: Any) -> Row:
    [row] = call(db, fn, **arguments)
    return row


def rows(db: Db, query: str, params: Any = None) -> list[Row]:
    with db.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def today(db: Db) -> date:
    return db.execute("select (now() at time zone 'UTC')::date").fetchone()[0]


def day(db: Db, offset: int) -> date:
    """today (UTC) + offset days."""
    return today(db) + timedelta(days=offset)


def lot_item(db: Db, sku: str, requires_qc: bool = False) -> Row:
    return call_one(db, "create_item", sku=sku, name=f"Lot item {sku}", track_lots=True, requires_qc=requires_qc)


def receive(db: Db, sku: str, quantity: Any, lot_number: str, expires_on: date | None = None,
            location: str = "main", **extra: Any) -> Row:
    return call_one(db, "receive_stock", sku=sku, quantity=quantity, location=location, lot_number=lot_number,
                    expires_on=expires_on, **extra)


def reserve(db: Db, sku: str, quantity: Any, order_ref: str, **extra: Any) -> Row:
    return call_one(db, "reserve_stock", sku=sku, quantity=quantity, order_ref=order_ref, **extra)


def make_overdue(db: Db, order_ref: str) -> None:
    """Moves an order's holds into the past instead of sleeping (as tests/test_expiry.py does)."""
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second' where order_ref = %s",
               (order_ref,))


# -- reading the books ---------------------------------------------------------------------------------


def lots(db: Db, sku: str) -> dict[tuple[str, str], Row]:
    """inventory_api.lots of one item by (lot_number, location)."""
    return {(r["lot_number"], r["location"]): r
            for r in rows(db, "select * from inventory_api.lots where sku = %s", (sku,))}


def lot_qty(db: Db, sku: str) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    """(on_hand, reserved, available) per (lot_number, location)."""
    return {key: (r["on_hand"], r["reserved"], r["available"]) for key, r in lots(db, sku).items()}


def level(db: Db, sku: str, location: str = "main") -> tuple[Decimal, Decimal, Decimal]:
    """(on_hand, reserved, available) of inventory_api.stock_levels."""
    [row] = rows(db, "select * from inventory_api.stock_levels where sku = %s and location = %s", (sku, location))
    return row["on_hand"], row["reserved"], row["available"]


def blocked(db: Db, sku: str, location: str = "main") -> Decimal:
    [row] = rows(db, "select * from inventory_api.stock_levels where sku = %s and location = %s", (sku, location))
    return row["blocked"]


def allocations(db: Db, order_ref: str) -> list[Row]:
    return rows(db, "select * from inventory_api.lot_allocations where order_ref = %s order by lot_number, location,"
                    " reservation_id", (order_ref,))


def allocated(db: Db, order_ref: str) -> dict[str, Decimal]:
    """Units of each lot ever allocated to the order (sum of allocation quantities)."""
    result: dict[str, Decimal] = {}
    for row in allocations(db, order_ref):
        result[row["lot_number"]] = result.get(row["lot_number"], 0) + row["quantity"]
    return result


def open_allocations(db: Db, order_ref: str) -> dict[str, Decimal]:
    """Units of each lot an order's active holds still hold (allocated - fulfilled - released)."""
    result: dict[str, Decimal] = {}
    for row in allocations(db, order_ref):
        if row["hold_status"] == "ACTIVE":
            held = row["quantity"] - row["fulfilled"] - row["released"]
            if held:
                result[row["lot_number"]] = result.get(row["lot_number"], 0) + held
    return result


def movement_lots(db: Db, sku: str, movement_type: str | None = None) -> list[list[tuple[str, Any, Any]]]:
    """The `lots` column of the item's ledger rows (of one movement type), in order, each sorted by lot."""
    found = rows(db, "select movement_type, lots from inventory_api.stock_movements where sku = %s"
                     " order by movement_id", (sku,))
    return [sorted((x["lot_number"], x["on_hand_delta"], x["reserved_delta"]) for x in (r["lots"] or []))
            for r in found if movement_type is None or r["movement_type"] == movement_type]


def ledger_count(db: Db) -> int:
    return db.execute("select count(*) from inventory.ledger").fetchone()[0]


def in_step(db: Db, sku: str) -> None:
    """Per location, the lots add up to the item's level; per lot, open allocations add up to reserved;
    no lot is over-allocated."""
    levels = {r["location"]: r for r in rows(db, "select * from inventory_api.stock_levels where sku = %s", (sku,))}
    by_location: dict[str, list[Row]] = {}
    for row in lots(db, sku).values():
        by_location.setdefault(row["location"], []).append(row)
        assert 0 <= row["reserved"] <= row["on_hand"], row
    for location, level_row in levels.items():
        lot_rows = by_location.get(location, [])
        assert sum(r["on_hand"] for r in lot_rows) == level_row["on_hand"], (location, lot_rows, level_row)
        assert sum(r["reserved"] for r in lot_rows) == level_row["reserved"], (location, lot_rows, level_row)
        assert sum(r["available"] for r in lot_rows) == level_row["available"], (location, lot_rows, level_row)
    open_by_lot: dict[tuple[str, str], Decimal] = {}
    for row in rows(db, "select * from inventory_api.lot_allocations where sku = %s and hold_status = 'ACTIVE'",
                    (sku,)):
        key = (row["lot_number"], row["location"])
        open_by_lot[key] = open_by_lot.get(key, 0) + row["quantity"] - row["fulfilled"] - row["released"]
    for key, row in lots(db, sku).items():
        assert open_by_lot.get(key, 0) == row["reserved"], (key, open_by_lot, row)


def violations(db: Db) -> list[Row]:
    return call(db, "verify_inventory")


@contextmanager
def unchanged(db: Db, expected: tuple[str, str]) -> Iterator[pytest.ExceptionInfo[psycopg.Error]]:
    """The call fails with this SQLSTATE and HINT (JSON DETAIL) and changes nothing: not the ledger
    (rows counted), not a level, hold or key (helpers.snapshot), not a lot or an allocation."""
    before = (ledger_count(db), rows(db, "select * from inventory_api.lots order by sku, lot_number, location"),
              rows(db, "select * from inventory_api.lot_allocations order by reservation_id, lot_number"))
    with raises_db_error(db, *expected) as caught:
        yield caught
    after = (ledger_count(db), rows(db, "select * from inventory_api.lots order by sku, lot_number, location"),
             rows(db, "select * from inventory_api.lot_allocations order by reservation_id, lot_number"))
    assert after == before


def detail(caught: pytest.ExceptionInfo[psycopg.Error]) -> dict[str, Any]:
    return json.loads(caught.value.diag.message_detail)


@pytest.fixture
def three_lots(inv: Inventory, db: Db) -> str:
    """Item FEFO with three sellable lots of 5 at main, received latest-expiring first:
    L-LATE (today+60), L-SOON (today+10), L-MID (today+30)."""
    lot_item(db, "FEFO")
    receive(db, "FEFO", 5, "L-LATE", day(db, 60))
    receive(db, "FEFO", 5, "L-SOON", day(db, 10))
    receive(db, "FEFO", 5, "L-MID", day(db, 30))
    return "FEFO"


@pytest.fixture
def two_lots(inv: Inventory, db: Db) -> str:
    """Item TWO with L1 (4 units, today+10) and L2 (6 units, today+20) at main; a second location, east."""
    call(db, "create_location", code="east", name="East store")
    lot_item(db, "TWO")
    receive(db, "TWO", 4, "L1", day(db, 10))
    receive(db, "TWO", 6, "L2", day(db, 20))
    return "TWO"


# -- receiving into lots ---------------------------------------------------------------------------------


def test_a_lot_tracked_item_and_its_first_receipt(inv: Inventory, db: Db) -> None:
    item = lot_item(db, "LOTS")
    assert (item["sku"], item["track_lots"], item["requires_qc"]) == ("LOTS", True, False)
    result = receive(db, "LOTS", 5, "L1", day(db, 40), supplier_lot="SUP-77", unit_cost=Decimal("2.5"))
    assert (result["on_hand"], result["reserved"], result["available"]) == (5, 0, 5)
    [lot] = lots(db, "LOTS").values()
    assert (lot["lot_number"], lot["supplier_lot"], lot["location"], lot["on_hand"], lot["reserved"],
            lot["available"], lot["expires_on"], lot["unit_cost"], lot["qc_status"], lot["quarantined"],
            lot["sellable"], lot["blocked_reason"]) == (
        "L1", "SUP-77", "main", 5, 0, 5, day(db, 40), Decimal("2.5"), "PASSED", False, True, None)
    assert lot["received_at"] is not None
    assert movement_lots(db, "LOTS", "RECEIVE") == [[("L1", 5, 0)]]
    assert level(db, "LOTS") == (5, 0, 5)
    assert blocked(db, "LOTS") == 0
    in_step(db, "LOTS")


def test_receiving_into_an_existing_lot_adds_to_it(inv: Inventory, db: Db) -> None:
    lot_item(db, "LOTS")
    receive(db, "LOTS", 5, "L1", day(db, 40))
    receive(db, "LOTS", 3, "L1", day(db, 40))
    receive(db, "LOTS", 2, "L1")  # no expires_on: the lot's stays
    receive(db, "LOTS", 4, "L2", day(db, 50))
    assert lot_qty(db, "LOTS") == {("L1", "main"): (10, 0, 10), ("L2", "main"): (4, 0, 4)}
    assert lots(db, "LOTS")[("L1", "main")]["expires_on"] == day(db, 40)
    assert level(db, "LOTS") == (14, 0, 14)
    assert movement_lots(db, "LOTS", "RECEIVE") == [[("L1", 5, 0)], [("L1", 3, 0)], [("L1", 2, 0)], [("L2", 4, 0)]]
    with unchanged(db, ALREADY_EXISTS):
        receive(db, "LOTS", 1, "L1", day(db, 41))
    in_step(db, "LOTS")


def test_receiving_a_lot_tracked_item_needs_a_lot_number(inv: Inventory, db: Db) -> None:
    lot_item(db, "LOTS")
    receive(db, "LOTS", 1, "L1")
    with unchanged(db, INVALID_ARGUMENT) as caught:
        call(db, "receive_stock", sku="LOTS", quantity=1)
    assert detail(caught)["argument"] == "lot_number"
    with unchanged(db, INVALID_ARGUMENT) as caught:
        call(db, "receive_stock", sku="LOTS", quantity=1, expires_on=day(db, 5))
    assert detail(caught)["argument"] == "lot_number"


@pytest.mark.parametrize("argument", [{"lot_number": "L1"}, {"expires_on": "2030-01-01"},
                                      {"supplier_lot": "SUP-1"}])
def test_items_without_lots_refuse_lot_arguments(catalogue: Inventory, db: Db, argument: dict[str, Any]) -> None:
    with unchanged(db, INVALID_ARGUMENT):
        call(db, "receive_stock", sku="A1", quantity=1, **argument)
    assert movement_lots(db, "A1") == [[]]  # lots is null on the ledger rows of items without lots


def test_a_replayed_receipt_adds_to_its_lot_once(inv: Inventory, db: Db) -> None:
    lot_item(db, "LOTS")
    first = receive(db, "LOTS", 5, "L1", day(db, 40), idempotency_key="PO-1")
    assert receive(db, "LOTS", 5, "L1", day(db, 40), idempotency_key="PO-1") == first
    assert lot_qty(db, "LOTS") == {("L1", "main"): (5, 0, 5)}
    with unchanged(db, IDEMPOTENCY_CONFLICT):
        receive(db, "LOTS", 5, "L2", day(db, 40), idempotency_key="PO-1")
    in_step(db, "LOTS")


def test_requires_qc_needs_track_lots(inv: Inventory, db: Db) -> None:
    with unchanged(db, INVALID_ARGUMENT):
        call(db, "create_item", sku="QC", name="QC item", track_lots=False, requires_qc=True)


# -- FEFO --------------------------------------------------------------------------------------------------


def test_fefo_takes_the_first_expiring_lot(three_lots: str, db: Db) -> None:
    hold = reserve(db, "FEFO", 3, "SO-1")
    assert (hold["quantity"], hold["status"]) == (3, "ACTIVE")
    [allocation] = allocations(db, "SO-1")
    assert (allocation["reservation_id"], allocation["sku"], allocation["location"], allocation["lot_number"],
            allocation["quantity"], allocation["fulfilled"], allocation["released"], allocation["returned"],
            allocation["hold_status"]) == (hold["reservation_id"], "FEFO", "main", "L-SOON", 3, 0, 0, 0, "ACTIVE")
    assert lot_qty(db, "FEFO") == {("L-SOON", "main"): (5, 3, 2), ("L-MID", "main"): (5, 0, 5),
                                   ("L-LATE", "main"): (5, 0, 5)}
    assert level(db, "FEFO") == (15, 3, 12)
    assert movement_lots(db, "FEFO", "RESERVE") == [[("L-SOON", 0, 3)]]
    in_step(db, "FEFO")


def test_fefo_splits_a_hold_across_lots_when_one_is_too_small(three_lots: str, db: Db) -> None:
    reserve(db, "FEFO", 8, "SO-1")
    assert allocated(db, "SO-1") == {"L-SOON": 5, "L-MID": 3}
    # reserve_order allocates FEFO too, continuing where the first hold stopped.
    holds = call(db, "reserve_order", order_ref="SO-2", lines=json.dumps([{"sku": "FEFO", "quantity": 4}]))
    assert [(h["sku"], h["quantity"]) for h in holds] == [("FEFO", 4)]
    assert allocated(db, "SO-2") == {"L-MID": 2, "L-LATE": 2}
    assert lot_qty(db, "FEFO") == {("L-SOON", "main"): (5, 5, 0), ("L-MID", "main"): (5, 5, 0),
                                   ("L-LATE", "main"): (5, 2, 3)}
    assert level(db, "FEFO") == (15, 12, 3)
    assert movement_lots(db, "FEFO", "RESERVE") == [[("L-MID", 0, 3), ("L-SOON", 0, 5)],
                                                   [("L-LATE", 0, 2), ("L-MID", 0, 2)]]
    in_step(db, "FEFO")


def test_fefo_tie_on_expiry_takes_the_earliest_received(inv: Inventory, db: Db) -> None:
    lot_item(db, "TIE")
    receive(db, "TIE", 2, "L-Z-FIRST", day(db, 20))  # received first; sorts last by lot number
    receive(db, "TIE", 2, "L-A-SECOND", day(db, 20))
    receive(db, "TIE", 2, "L-0-LATER", day(db, 25))
    first, second = (lots(db, "TIE")[(n, "main")]["received_at"] for n in ("L-Z-FIRST", "L-A-SECOND"))
    assert first < second
    reserve(db, "TIE", 3, "SO-1")
    assert allocated(db, "SO-1") == {"L-Z-FIRST": 2, "L-A-SECOND": 1}
    in_step(db, "TIE")


def test_a_lot_that_never_expires_is_allocated_last(inv: Inventory, db: Db) -> None:
    lot_item(db, "NOEXP")
    receive(db, "NOEXP", 3, "L-FOREVER")
    receive(db, "NOEXP", 2, "L-YEAR", day(db, 365))
    reserve(db, "NOEXP", 4, "SO-1")
    assert allocated(db, "SO-1") == {"L-YEAR": 2, "L-FOREVER": 2}
    in_step(db, "NOEXP")


def test_fefo_never_takes_a_lot_at_another_location(inv: Inventory, db: Db) -> None:
    call(db, "create_location", code="east", name="East store")
    lot_item(db, "LOC")
    receive(db, "LOC", 5, "L-SOON", day(db, 5), location="east")
    receive(db, "LOC", 5, "L-LATE", day(db, 50))
    reserve(db, "LOC", 3, "SO-1")
    assert allocated(db, "SO-1") == {"L-LATE": 3}
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "LOC", 6, "SO-2", location="east")
    assert (detail(caught)["location"], detail(caught)["available"]) == ("east", 5)
    in_step(db, "LOC")


def test_reserve_order_merges_lines_and_allocates_lots_next_to_plain_items(catalogue: Inventory, db: Db) -> None:
    lot_item(db, "FEFO2")
    receive(db, "FEFO2", 2, "L-SOON", day(db, 10))
    receive(db, "FEFO2", 5, "L-LATE", day(db, 40))
    holds = call(db, "reserve_order", order_ref="SO-1", lines=json.dumps([
        {"sku": "FEFO2", "quantity": 2}, {"sku": "A1", "quantity": 1}, {"sku": "FEFO2", "quantity": 1}]))
    assert sorted((h["sku"], h["quantity"]) for h in holds) == [("A1", 1), ("FEFO2", 3)]
    assert allocated(db, "SO-1") == {"L-SOON": 2, "L-LATE": 1}
    assert level(db, "A1") == (10, 1, 9)
    assert blocked(db, "A1") == 0
    assert movement_lots(db, "A1", "RESERVE") == [[]]
    in_step(db, "FEFO2")


def test_a_replayed_reservation_allocates_once(two_lots: str, db: Db) -> None:
    first = reserve(db, "TWO", 5, "SO-1", idempotency_key="K-1")
    again = reserve(db, "TWO", 5, "SO-1", idempotency_key="K-1")
    assert again["reservation_id"] == first["reservation_id"]
    assert allocated(db, "SO-1") == {"L1": 4, "L2": 1}
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 4, 0), ("L2", "main"): (6, 1, 5)}
    in_step(db, "TWO")


def test_fractional_quantities_split_exactly_across_lots(inv: Inventory, db: Db) -> None:
    call_one(db, "create_item", sku="ROPE", name="Rope", unit_of_measure="m", track_lots=True)
    receive(db, "ROPE", Decimal("1.25"), "R1", day(db, 10))
    receive(db, "ROPE", Decimal("10.5"), "R2", day(db, 20))
    reserve(db, "ROPE", Decimal("1.2501"), "SO-1")
    assert allocated(db, "SO-1") == {"R1": Decimal("1.25"), "R2": Decimal("0.0001")}
    call(db, "fulfill_order", order_ref="SO-1")
    assert lot_qty(db, "ROPE") == {("R1", "main"): (0, 0, 0), ("R2", "main"): (Decimal("10.4999"), 0,
                                                                               Decimal("10.4999"))}
    in_step(db, "ROPE")


# -- lots that may not be sold ---------------------------------------------------------------------------


@pytest.fixture
def mixed_lots(inv: Inventory, db: Db) -> str:
    """Item MIX (requires QC) at main: L-EXP 1 (expired yesterday, passed QC), L-PEND 2 (QC pending),
    L-FAIL 3 (failed QC), L-QUAR 4 (passed, quarantined), L-SHORT 5 (passed, expires in 5 days),
    L-OK 6 (passed, expires in 100 days): 21 on hand, 11 sellable, 6 with 30 days of shelf life."""
    lot_item(db, "MIX", requires_qc=True)
    for lot, quantity, expires in (("L-EXP", 1, -1), ("L-PEND", 2, 50), ("L-FAIL", 3, 50), ("L-QUAR", 4, 50),
                                   ("L-SHORT", 5, 5), ("L-OK", 6, 100)):
        receive(db, "MIX", quantity, lot, day(db, expires))
    assert {lot["qc_status"] for lot in lots(db, "MIX").values()} == {"PENDING"}
    for lot, status, quarantined in (("L-EXP", "PASSED", None), ("L-FAIL", "FAILED", None),
                                     ("L-QUAR", "PASSED", True), ("L-SHORT", "PASSED", None),
                                     ("L-OK", "PASSED", None)):
        call(db, "set_lot_status", sku="MIX", lot_number=lot, qc_status=status, quarantined=quarantined)
    return "MIX"


def test_unsellable_lots_are_on_hand_but_not_available(mixed_lots: str, db: Db) -> None:
    state = {lot: (row["on_hand"], row["available"], row["sellable"], row["blocked_reason"], row["qc_status"],
                   row["quarantined"]) for (lot, _), row in lots(db, "MIX").items()}
    assert state == {
        "L-EXP": (1, 0, False, "expired", "PASSED", False),
        "L-PEND": (2, 0, False, "qc_pending", "PENDING", False),
        "L-FAIL": (3, 0, False, "qc_failed", "FAILED", False),
        "L-QUAR": (4, 0, False, "quarantined", "PASSED", True),
        "L-SHORT": (5, 5, True, None, "PASSED", False),
        "L-OK": (6, 6, True, None, "PASSED", False),
    }
    assert level(db, "MIX") == (21, 0, 11)
    assert blocked(db, "MIX") == 10
    check = call_one(db, "validate_stock", sku="MIX", quantity=12)
    assert (check["can_fulfill"], check["available"], check["error_code"]) == (False, 11, "INSUFFICIENT_STOCK")
    assert call_one(db, "validate_stock", sku="MIX", quantity=11)["can_fulfill"] is True
    in_step(db, "MIX")


def test_unsellable_and_short_lived_lots_are_never_allocated(mixed_lots: str, db: Db) -> None:
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "MIX", 7, "SO-1", min_shelf_life="30 days")
    # Of 21 on hand: 6 could be allocated with 30 days of shelf life; every other unit is blocked.
    assert detail(caught) == {"sku": "MIX", "location": "main", "requested": 7, "available": 6, "on_hand": 21,
                              "reserved": 0, "blocked": {"expired": 1, "qc_pending": 2, "qc_failed": 3,
                                                         "quarantined": 4, "short_shelf_life": 5}}
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        call(db, "reserve_order", order_ref="SO-1", lines=json.dumps([{"sku": "MIX", "quantity": 7}]),
             min_shelf_life="30 days")
    [line] = detail(caught)["short_lines"]
    assert (line["requested"], line["available"], line["blocked"]) == (
        7, 6, {"expired": 1, "qc_pending": 2, "qc_failed": 3, "quarantined": 4, "short_shelf_life": 5})

    reserve(db, "MIX", 6, "SO-1", min_shelf_life="30 days")
    assert allocated(db, "SO-1") == {"L-OK": 6}  # L-SHORT expires first but is too short-lived
    reserve(db, "MIX", 5, "SO-2")
    assert allocated(db, "SO-2") == {"L-SHORT": 5}
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "MIX", 1, "SO-3")
    assert detail(caught) == {"sku": "MIX", "location": "main", "requested": 1, "available": 0, "on_hand": 21,
                              "reserved": 11, "blocked": {"expired": 1, "qc_pending": 2, "qc_failed": 3,
                                                          "quarantined": 4}}
    assert level(db, "MIX") == (21, 11, 0)
    assert blocked(db, "MIX") == 10
    in_step(db, "MIX")


def test_insufficient_stock_of_sellable_lots_has_an_empty_blocked(two_lots: str, db: Db) -> None:
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "TWO", 11, "SO-1")
    assert detail(caught) == {"sku": "TWO", "location": "main", "requested": 11, "available": 10, "on_hand": 10,
                              "reserved": 0, "blocked": {}}


def test_a_lot_expiring_today_is_still_sellable_and_one_expired_yesterday_is_not(inv: Inventory, db: Db) -> None:
    lot_item(db, "EDGE")
    receive(db, "EDGE", 2, "L-TODAY", day(db, 0))
    receive(db, "EDGE", 3, "L-YESTERDAY", day(db, -1))
    assert lot_qty(db, "EDGE") == {("L-TODAY", "main"): (2, 0, 2), ("L-YESTERDAY", "main"): (3, 0, 0)}
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "EDGE", 3, "SO-1")
    assert (detail(caught)["available"], detail(caught)["blocked"]) == (2, {"expired": 3})
    reserve(db, "EDGE", 2, "SO-1")
    assert allocated(db, "SO-1") == {"L-TODAY": 2}
    in_step(db, "EDGE")


# -- the order lifecycle keeps lots and levels in step ------------------------------------------------------


def test_full_and_partial_fulfilment_ship_the_allocated_lots(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 7, "SO-1")
    assert allocated(db, "SO-1") == {"L1": 4, "L2": 3}
    [change] = call(db, "fulfill_order", order_ref="SO-1", sku="TWO", quantity=5)
    assert (change["movement_type"], change["quantity"], change["quantity_open"], change["status"]) == (
        "SHIP", 5, 2, "ACTIVE")
    # First expiring first: all of L1, one of L2.
    assert lot_qty(db, "TWO") == {("L1", "main"): (0, 0, 0), ("L2", "main"): (5, 2, 3)}
    assert level(db, "TWO") == (5, 2, 3)
    assert open_allocations(db, "SO-1") == {"L2": 2}
    in_step(db, "TWO")
    [change] = call(db, "fulfill_order", order_ref="SO-1")
    assert (change["quantity"], change["status"]) == (2, "FULFILLED")
    assert lot_qty(db, "TWO") == {("L1", "main"): (0, 0, 0), ("L2", "main"): (3, 0, 3)}
    assert level(db, "TWO") == (3, 0, 3)
    assert [(a["lot_number"], a["quantity"], a["fulfilled"], a["hold_status"]) for a in allocations(db, "SO-1")] == [
        ("L1", 4, 4, "FULFILLED"), ("L2", 3, 3, "FULFILLED")]
    assert movement_lots(db, "TWO", "SHIP") == [[("L1", -4, -4), ("L2", -1, -1)], [("L2", -2, -2)]]
    in_step(db, "TWO")


def test_fulfilling_a_whole_order_ships_every_lot_of_every_hold(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 2, "SO-1")
    reserve(db, "TWO", 5, "SO-1")
    assert allocated(db, "SO-1") == {"L1": 4, "L2": 3}
    changes = call(db, "fulfill_order", order_ref="SO-1")
    assert sorted((c["quantity"], c["status"]) for c in changes) == [(2, "FULFILLED"), (5, "FULFILLED")]
    assert lot_qty(db, "TWO") == {("L1", "main"): (0, 0, 0), ("L2", "main"): (3, 0, 3)}
    shipped = movement_lots(db, "TWO", "SHIP")
    assert sum(delta for movement in shipped for (lot, delta, _) in movement if lot == "L1") == -4
    assert sum(delta for movement in shipped for (lot, delta, _) in movement if lot == "L2") == -3
    assert level(db, "TWO") == (3, 0, 3)
    in_step(db, "TWO")


def test_cancellation_releases_the_allocated_lots(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 7, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1", sku="TWO", quantity=1)
    [change] = call(db, "cancel_reservation", order_ref="SO-1")
    assert (change["movement_type"], change["quantity"], change["status"]) == ("RELEASE", 6, "CANCELLED")
    assert lot_qty(db, "TWO") == {("L1", "main"): (3, 0, 3), ("L2", "main"): (6, 0, 6)}
    assert level(db, "TWO") == (9, 0, 9)
    assert [(a["lot_number"], a["quantity"], a["fulfilled"], a["released"], a["hold_status"])
            for a in allocations(db, "SO-1")] == [("L1", 4, 1, 3, "CANCELLED"), ("L2", 3, 0, 3, "CANCELLED")]
    assert movement_lots(db, "TWO", "RELEASE") == [[("L1", 0, -3), ("L2", 0, -3)]]
    in_step(db, "TWO")


def test_reservation_expiry_releases_the_allocated_lots(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 5, "SO-OLD", expires_in="5 minutes")
    assert allocated(db, "SO-OLD") == {"L1": 4, "L2": 1}
    make_overdue(db, "SO-OLD")
    # Overdue but not swept: counts as released already.
    assert level(db, "TWO")[2] == 10
    assert call_one(db, "validate_stock", sku="TWO", quantity=10)["can_fulfill"] is True
    assert call_one(db, "expire_reservations")["expire_reservations"] == 1
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 0, 4), ("L2", "main"): (6, 0, 6)}
    assert level(db, "TWO") == (10, 0, 10)
    assert [(a["lot_number"], a["quantity"], a["released"], a["hold_status"]) for a in allocations(db, "SO-OLD")] == [
        ("L1", 4, 4, "EXPIRED"), ("L2", 1, 1, "EXPIRED")]
    assert movement_lots(db, "TWO", "EXPIRE") == [[("L1", 0, -4), ("L2", 0, -1)]]
    in_step(db, "TWO")


def test_an_overdue_lot_hold_never_blocks_a_new_one(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 10, "SO-OLD", expires_in="5 minutes")
    make_overdue(db, "SO-OLD")
    reserve(db, "TWO", 10, "SO-NEW")
    assert allocated(db, "SO-NEW") == {"L1": 4, "L2": 6}
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 4, 0), ("L2", "main"): (6, 6, 0)}
    assert level(db, "TWO") == (10, 10, 0)
    assert call_one(db, "expire_reservations")["expire_reservations"] == 0
    in_step(db, "TWO")


# -- returns -------------------------------------------------------------------------------------------------


def test_returns_go_back_into_the_lot_shipped_or_the_lot_named(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 3, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1")
    reserve(db, "TWO", 4, "SO-2")
    call(db, "fulfill_order", order_ref="SO-2")
    assert (allocated(db, "SO-1"), allocated(db, "SO-2")) == ({"L1": 3}, {"L1": 1, "L2": 3})
    assert lot_qty(db, "TWO") == {("L1", "main"): (0, 0, 0), ("L2", "main"): (3, 0, 3)}

    returned = call_one(db, "process_return", order_ref="SO-1", sku="TWO", quantity=2, reason="wrong size")
    assert (returned["quantity"], returned["restocked"], returned["location"]) == (2, True, "main")
    assert lot_qty(db, "TWO")[("L1", "main")] == (2, 0, 2)  # into the lot SO-1 was shipped
    assert movement_lots(db, "TWO", "RETURN") == [[("L1", 2, 0)]]
    [allocation] = allocations(db, "SO-1")
    assert allocation["returned"] == 2

    call(db, "process_return", order_ref="SO-2", sku="TWO", quantity=1, reason="damaged box", lot_number="L2")
    assert lot_qty(db, "TWO")[("L2", "main")] == (4, 0, 4)  # into the lot named
    assert movement_lots(db, "TWO", "RETURN")[-1] == [("L2", 1, 0)]

    # Back at another location: the same lot, at that location.
    call(db, "process_return", order_ref="SO-1", sku="TWO", quantity=1, reason="wrong colour", location="east")
    assert lot_qty(db, "TWO")[("L1", "east")] == (1, 0, 1)
    assert level(db, "TWO", "east") == (1, 0, 1)
    assert lots(db, "TWO")[("L1", "east")]["expires_on"] == day(db, 10)

    with unchanged(db, LOT_NOT_FOUND):
        call(db, "process_return", order_ref="SO-2", sku="TWO", quantity=1, reason="x", lot_number="L-NOPE")
    assert level(db, "TWO") == (6, 0, 6)
    in_step(db, "TWO")


def test_a_return_without_a_lot_never_puts_back_more_of_a_lot_than_it_shipped(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 6, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1")
    assert allocated(db, "SO-1") == {"L1": 4, "L2": 2}
    call(db, "process_return", order_ref="SO-1", sku="TWO", quantity=6, reason="refused delivery")
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 0, 4), ("L2", "main"): (6, 0, 6)}
    assert [(a["lot_number"], a["fulfilled"], a["returned"]) for a in allocations(db, "SO-1")] == [
        ("L1", 4, 4), ("L2", 2, 2)]
    assert movement_lots(db, "TWO", "RETURN") == [[("L1", 4, 0), ("L2", 2, 0)]]
    in_step(db, "TWO")


def test_a_return_into_a_quarantined_lot_stays_blocked(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 2, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1")
    call(db, "set_lot_status", sku="TWO", lot_number="L1", quarantined=True)
    call(db, "process_return", order_ref="SO-1", sku="TWO", quantity=2, reason="recall")
    assert lot_qty(db, "TWO")[("L1", "main")] == (4, 0, 0)
    assert level(db, "TWO") == (10, 0, 6)
    assert blocked(db, "TWO") == 4
    in_step(db, "TWO")


def test_a_return_not_restocked_touches_no_lot(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 2, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1")
    before = lot_qty(db, "TWO")
    returned = call_one(db, "process_return", order_ref="SO-1", sku="TWO", quantity=1, reason="broken",
                        restock=False)
    assert (returned["restocked"], returned["movement_id"]) == (False, None)
    assert lot_qty(db, "TWO") == before
    in_step(db, "TWO")


# -- recall -------------------------------------------------------------------------------------------------------


def test_trace_lot_after_partial_shipments_cancellations_and_returns(inv: Inventory, db: Db) -> None:
    lot_item(db, "RC")
    receive(db, "RC", 5, "L1", day(db, 10))
    receive(db, "RC", 10, "L2", day(db, 20))
    reserve(db, "RC", 3, "SO-A")                                   # L1 3
    call(db, "fulfill_order", order_ref="SO-A", sku="RC", quantity=2)
    reserve(db, "RC", 4, "SO-B")                                   # L1 2, L2 2
    call(db, "fulfill_order", order_ref="SO-B")
    reserve(db, "RC", 1, "SO-C")                                   # L2 1, cancelled
    call(db, "cancel_reservation", order_ref="SO-C")
    reserve(db, "RC", 1, "SO-D")                                   # L2 1, still held
    call(db, "process_return", order_ref="SO-B", sku="RC", quantity=1, reason="recall", lot_number="L2")
    call(db, "process_return", order_ref="SO-A", sku="RC", quantity=1, reason="recall")  # into L1, as shipped
    assert (allocated(db, "SO-A"), allocated(db, "SO-B")) == ({"L1": 3}, {"L1": 2, "L2": 2})

    def trace(lot: str) -> dict[str, tuple[Any, ...]]:
        found = call(db, "trace_lot", sku="RC", lot_number=lot)
        assert all(r["reserved_at"] is not None for r in found)
        return {r["order_ref"]: (r["location"], r["allocated"], r["fulfilled"], r["returned"], r["released"],
                                 r["hold_status"], r["closed_at"] is not None) for r in found}

    assert trace("L1") == {
        "SO-A": ("main", 3, 2, 1, 0, "ACTIVE", False),
        "SO-B": ("main", 2, 2, 0, 0, "FULFILLED", True),
    }
    assert trace("L2") == {
        "SO-B": ("main", 2, 2, 1, 0, "FULFILLED", True),
        "SO-C": ("main", 1, 0, 0, 1, "CANCELLED", True),
        "SO-D": ("main", 1, 0, 0, 0, "ACTIVE", False),
    }
    [row] = [r for r in call(db, "trace_lot", sku="RC", lot_number="L1") if r["order_ref"] == "SO-A"]
    [hold] = rows(db, "select * from inventory_api.reservations where order_ref = 'SO-A'")
    assert (row["reservation_id"], row["reserved_at"]) == (hold["reservation_id"], hold["created_at"])
    assert lot_qty(db, "RC") == {("L1", "main"): (2, 1, 1), ("L2", "main"): (9, 1, 8)}
    with unchanged(db, LOT_NOT_FOUND):
        call(db, "trace_lot", sku="RC", lot_number="L9")
    with unchanged(db, PRODUCT_NOT_FOUND):
        call(db, "trace_lot", sku="NOPE", lot_number="L1")
    in_step(db, "RC")


# -- set_lot_status ----------------------------------------------------------------------------------------------


def test_quarantine_blocks_units_at_once_and_lifting_it_frees_them_at_once(two_lots: str, db: Db) -> None:
    result = call_one(db, "set_lot_status", sku="TWO", lot_number="L2", quarantined=True, note="smells odd")
    assert result == {"sku": "TWO", "lot_number": "L2", "qc_status": "PASSED", "quarantined": True, "sellable": False,
                      "holds_reallocated": 0, "holds_released": 0, "units_released": 0}
    assert level(db, "TWO") == (10, 0, 4)
    assert blocked(db, "TWO") == 6
    check = call_one(db, "validate_stock", sku="TWO", quantity=5)
    assert (check["can_fulfill"], check["available"], check["error_code"]) == (False, 4, "INSUFFICIENT_STOCK")
    assert lots(db, "TWO")[("L2", "main")]["blocked_reason"] == "quarantined"
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "TWO", 5, "SO-1")
    assert detail(caught)["blocked"] == {"quarantined": 6}

    result = call_one(db, "set_lot_status", sku="TWO", lot_number="L2", quarantined=False)
    assert (result["quarantined"], result["sellable"]) == (False, True)
    assert level(db, "TWO") == (10, 0, 10)
    assert blocked(db, "TWO") == 0
    assert call_one(db, "validate_stock", sku="TWO", quantity=10)["can_fulfill"] is True
    reserve(db, "TWO", 10, "SO-1")
    assert allocated(db, "SO-1") == {"L1": 4, "L2": 6}
    in_step(db, "TWO")


def test_passing_qc_makes_a_pending_lot_available_at_once(inv: Inventory, db: Db) -> None:
    lot_item(db, "QC", requires_qc=True)
    receive(db, "QC", 5, "L-Q", day(db, 90))
    assert (lots(db, "QC")[("L-Q", "main")]["qc_status"], lots(db, "QC")[("L-Q", "main")]["blocked_reason"]) == (
        "PENDING", "qc_pending")
    assert level(db, "QC") == (5, 0, 0)
    assert blocked(db, "QC") == 5
    check = call_one(db, "validate_stock", sku="QC", quantity=1)
    assert (check["can_fulfill"], check["available"], check["error_code"]) == (False, 0, "INSUFFICIENT_STOCK")
    with unchanged(db, INSUFFICIENT_STOCK) as caught:
        reserve(db, "QC", 1, "SO-1")
    assert detail(caught)["blocked"] == {"qc_pending": 5}

    result = call_one(db, "set_lot_status", sku="QC", lot_number="L-Q", qc_status="PASSED")
    assert (result["qc_status"], result["sellable"]) == ("PASSED", True)
    assert level(db, "QC") == (5, 0, 5)
    assert call_one(db, "validate_stock", sku="QC", quantity=5)["can_fulfill"] is True
    reserve(db, "QC", 5, "SO-1")
    assert allocated(db, "SO-1") == {"L-Q": 5}
    in_step(db, "QC")


def test_set_lot_status_is_audited(two_lots: str, db: Db) -> None:
    before = db.execute("select count(*) from inventory.audit_log").fetchone()[0]
    call(db, "set_lot_status", sku="TWO", lot_number="L1", quarantined=True, note="supplier recall")
    after = db.execute("select count(*) from inventory.audit_log").fetchone()[0]
    assert after > before
    changed = rows(db, "select * from inventory_api.audit_log order by audit_id desc limit %s", (after - before,))
    assert any("lot" in r["table_name"] and (r["new_row"] or {}).get("quarantined") is True for r in changed), changed


def test_quarantining_a_lot_with_holds_reallocates_them_fefo(inv: Inventory, db: Db) -> None:
    lot_item(db, "RE")
    receive(db, "RE", 4, "L1", day(db, 10))
    receive(db, "RE", 10, "L2", day(db, 20))
    receive(db, "RE", 10, "L3", day(db, 30))
    reserve(db, "RE", 3, "SO-1")
    reserve(db, "RE", 1, "SO-2")
    assert (allocated(db, "SO-1"), allocated(db, "SO-2")) == ({"L1": 3}, {"L1": 1})
    result = call_one(db, "set_lot_status", sku="RE", lot_number="L1", quarantined=True)
    assert (result["sellable"], result["holds_reallocated"], result["holds_released"], result["units_released"]) == (
        False, 2, 0, 0)
    # Moved to the next lot to expire, not the last.
    assert (open_allocations(db, "SO-1"), open_allocations(db, "SO-2")) == ({"L2": 3}, {"L2": 1})
    assert lot_qty(db, "RE") == {("L1", "main"): (4, 0, 0), ("L2", "main"): (10, 4, 6),
                                 ("L3", "main"): (10, 0, 10)}
    assert level(db, "RE") == (24, 4, 16)
    assert [r["status"] for r in rows(db, "select * from inventory_api.reservations order by reservation_id")] == [
        "ACTIVE", "ACTIVE"]
    in_step(db, "RE")


def test_quarantining_a_lot_releases_holds_no_other_lot_can_take(inv: Inventory, db: Db) -> None:
    lot_item(db, "RL")
    receive(db, "RL", 4, "L1", day(db, 10))
    receive(db, "RL", 5, "L2", day(db, 20))
    reserve(db, "RL", 4, "SO-1")   # L1 4
    reserve(db, "RL", 5, "SO-2")   # L2 5
    quarantine = call_one(db, "set_lot_status", sku="RL", lot_number="L1", quarantined=True)
    assert (quarantine["holds_reallocated"], quarantine["holds_released"], quarantine["units_released"]) == (0, 1, 4)
    statuses = {r["order_ref"]: r["status"] for r in rows(db, "select * from inventory_api.reservations")}
    assert statuses == {"SO-1": "CANCELLED", "SO-2": "ACTIVE"}
    assert lot_qty(db, "RL") == {("L1", "main"): (4, 0, 0), ("L2", "main"): (5, 5, 0)}
    assert level(db, "RL") == (9, 5, 0)
    assert blocked(db, "RL") == 4
    in_step(db, "RL")
    failed = call_one(db, "set_lot_status", sku="RL", lot_number="L2", qc_status="FAILED")
    assert (failed["qc_status"], failed["sellable"], failed["holds_reallocated"], failed["holds_released"],
            failed["units_released"]) == ("FAILED", False, 0, 1, 5)
    assert level(db, "RL") == (9, 0, 0)
    assert blocked(db, "RL") == 9
    assert lots(db, "RL")[("L2", "main")]["blocked_reason"] == "qc_failed"
    assert {r["status"] for r in rows(db, "select * from inventory_api.reservations")} == {"CANCELLED"}
    in_step(db, "RL")


def test_a_reallocated_hold_ships_and_cancels_from_its_new_lot(inv: Inventory, db: Db) -> None:
    lot_item(db, "MV")
    receive(db, "MV", 5, "L1", day(db, 10))
    receive(db, "MV", 10, "L2", day(db, 20))
    reserve(db, "MV", 5, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1", sku="MV", quantity=2)   # L1 2 shipped, 3 still held on L1
    reserve(db, "MV", 1, "SO-2")                                         # L2 1
    result = call_one(db, "set_lot_status", sku="MV", lot_number="L1", quarantined=True, note="recall")
    assert (result["holds_reallocated"], result["holds_released"], result["units_released"]) == (1, 0, 0)
    assert open_allocations(db, "SO-1") == {"L2": 3}
    assert lot_qty(db, "MV") == {("L1", "main"): (3, 0, 0), ("L2", "main"): (10, 4, 6)}
    in_step(db, "MV")
    [change] = call(db, "fulfill_order", order_ref="SO-1", sku="MV", quantity=2)
    assert (change["quantity"], change["quantity_open"]) == (2, 1)
    assert lot_qty(db, "MV") == {("L1", "main"): (3, 0, 0), ("L2", "main"): (8, 2, 6)}
    call(db, "cancel_reservation", order_ref="SO-1")
    assert lot_qty(db, "MV") == {("L1", "main"): (3, 0, 0), ("L2", "main"): (8, 1, 7)}
    shipped = {r["order_ref"]: (r["allocated"], r["fulfilled"]) for r in call(db, "trace_lot", sku="MV",
                                                                               lot_number="L1")}
    assert shipped == {"SO-1": (5, 2)}  # 3 of the 5 allocated were moved off the lot, never shipped from it
    assert {r["order_ref"]: (r["fulfilled"], r["released"]) for r in call(db, "trace_lot", sku="MV",
                                                                          lot_number="L2")} == {
        "SO-1": (2, 1), "SO-2": (0, 0)}
    assert level(db, "MV") == (11, 1, 7)
    in_step(db, "MV")


def test_quarantine_reallocates_holds_within_their_location_only(inv: Inventory, db: Db) -> None:
    call(db, "create_location", code="east", name="East store")
    lot_item(db, "LOC")
    receive(db, "LOC", 3, "L1", day(db, 10), location="east")
    receive(db, "LOC", 3, "L1", day(db, 10))
    receive(db, "LOC", 9, "L2", day(db, 20))       # main only
    reserve(db, "LOC", 2, "SO-EAST", location="east")
    reserve(db, "LOC", 2, "SO-MAIN")
    result = call_one(db, "set_lot_status", sku="LOC", lot_number="L1", quarantined=True)
    assert (result["holds_reallocated"], result["holds_released"], result["units_released"]) == (1, 1, 2)
    statuses = {r["order_ref"]: r["status"] for r in rows(db, "select * from inventory_api.reservations")}
    assert statuses == {"SO-EAST": "CANCELLED", "SO-MAIN": "ACTIVE"}
    assert open_allocations(db, "SO-MAIN") == {"L2": 2}
    assert level(db, "LOC", "east") == (3, 0, 0)
    assert level(db, "LOC") == (12, 2, 7)
    in_step(db, "LOC")


# -- expire_inventory_lots ---------------------------------------------------------------------------------------


def backdate_lot(db: Db, sku: str, lot_number: str, days_ago: int) -> None:
    """Lets time pass for one lot: its expires_on moves into the past (the DBA's hand, as the clock)."""
    db.execute("update inventory.lots set expires_on = (now() at time zone 'UTC')::date - %s"
               " where lot_number = %s and item_id = (select item_id from inventory.items where sku = %s)",
               (days_ago, lot_number, sku))


def test_expire_inventory_lots_writes_off_reallocates_and_releases_exactly_once(inv: Inventory, db: Db) -> None:
    lot_item(db, "EX")
    receive(db, "EX", 5, "L-A", day(db, 1))     # will expire while held
    receive(db, "EX", 2, "L-B", day(db, 20))
    receive(db, "EX", 2, "L-C", day(db, -3))    # expired on arrival
    receive(db, "EX", 4, "L-D", day(db, 3))     # still good
    reserve(db, "EX", 2, "SO-1")                # L-A 2
    reserve(db, "EX", 3, "SO-2")                # L-A 3
    assert (allocated(db, "SO-1"), allocated(db, "SO-2")) == ({"L-A": 2}, {"L-A": 3})
    backdate_lot(db, "EX", "L-A", 1)
    # Expired: not available any more, before the job runs.
    assert lot_qty(db, "EX")[("L-A", "main")] == (5, 5, 0)
    reserve(db, "EX", 4, "SO-3")                # L-D 4 (L-A is no longer sellable)
    assert allocated(db, "SO-3") == {"L-D": 4}
    ledger_before = ledger_count(db)

    result = call_one(db, "expire_inventory_lots")
    # SO-1 (2) fits into L-B (2); SO-2 (3) fits nowhere, whatever the order they are taken in.
    assert result == {"lots_expired": 2, "units_written_off": 7, "holds_reallocated": 1, "holds_released": 1,
                      "units_released": 3}
    assert open_allocations(db, "SO-1") == {"L-B": 2}
    statuses = {r["order_ref"]: r["status"] for r in rows(db, "select * from inventory_api.reservations")}
    assert statuses == {"SO-1": "ACTIVE", "SO-2": "CANCELLED", "SO-3": "ACTIVE"}
    assert lot_qty(db, "EX") == {("L-A", "main"): (0, 0, 0), ("L-B", "main"): (2, 2, 0),
                                 ("L-C", "main"): (0, 0, 0), ("L-D", "main"): (4, 4, 0)}
    assert level(db, "EX") == (6, 6, 0)
    written_off = rows(db, "select * from inventory_api.stock_movements where sku = 'EX' and reason = 'expired'"
                           " order by movement_id")
    assert sum(m["on_hand_delta"] for m in written_off) == -7
    assert sorted((x["lot_number"], x["on_hand_delta"]) for m in written_off for x in m["lots"]) == [
        ("L-A", -5), ("L-C", -2)]
    assert ledger_count(db) > ledger_before
    expired_view = {(r["lot_number"], r["expiry_status"]) for r in
                    rows(db, "select * from inventory_api.expiring_lots where sku = 'EX'")}
    assert expired_view == {("L-D", "EXPIRING_SOON"), ("L-B", "EXPIRING")}  # nothing expired left on hand
    in_step(db, "EX")

    ledger_after = ledger_count(db)
    again = call_one(db, "expire_inventory_lots")
    assert again == {"lots_expired": 0, "units_written_off": 0, "holds_reallocated": 0, "holds_released": 0,
                     "units_released": 0}
    assert ledger_count(db) == ledger_after
    in_step(db, "EX")


def test_expiry_of_a_partly_shipped_hold_moves_only_its_open_units(inv: Inventory, db: Db) -> None:
    lot_item(db, "PX")
    receive(db, "PX", 5, "L-A", day(db, 1))
    receive(db, "PX", 5, "L-B", day(db, 30))
    reserve(db, "PX", 5, "SO-1")
    call(db, "fulfill_order", order_ref="SO-1", sku="PX", quantity=2)
    backdate_lot(db, "PX", "L-A", 1)
    result = call_one(db, "expire_inventory_lots")
    # L-A's 3 units left on hand are all held by SO-1: they move to L-B, and the lot is written off empty.
    assert result == {"lots_expired": 1, "units_written_off": 3, "holds_reallocated": 1, "holds_released": 0,
                      "units_released": 0}
    assert open_allocations(db, "SO-1") == {"L-B": 3}
    assert lot_qty(db, "PX") == {("L-A", "main"): (0, 0, 0), ("L-B", "main"): (5, 3, 2)}
    call(db, "fulfill_order", order_ref="SO-1")
    assert movement_lots(db, "PX", "SHIP") == [[("L-A", -2, -2)], [("L-B", -3, -3)]]
    assert {r["order_ref"]: (r["allocated"], r["fulfilled"], r["released"]) for r in
            call(db, "trace_lot", sku="PX", lot_number="L-A")} == {"SO-1": (5, 2, 3)}
    in_step(db, "PX")


def test_expiry_writes_off_a_lot_at_every_location(inv: Inventory, db: Db) -> None:
    call(db, "create_location", code="east", name="East store")
    lot_item(db, "TWOLOC")
    receive(db, "TWOLOC", 3, "L-OLD", day(db, -1))
    receive(db, "TWOLOC", 2, "L-OLD", location="east")
    receive(db, "TWOLOC", 1, "L-NEW", day(db, 9), location="east")
    result = call_one(db, "expire_inventory_lots")
    assert (result["units_written_off"], result["holds_reallocated"], result["holds_released"]) == (5, 0, 0)
    assert lot_qty(db, "TWOLOC") == {("L-OLD", "main"): (0, 0, 0), ("L-OLD", "east"): (0, 0, 0),
                                     ("L-NEW", "east"): (1, 0, 1)}
    assert (level(db, "TWOLOC"), level(db, "TWOLOC", "east")) == ((0, 0, 0), (1, 0, 1))
    assert call_one(db, "expire_inventory_lots")["units_written_off"] == 0
    in_step(db, "TWOLOC")


def test_units_returned_into_an_expired_lot_are_written_off_by_the_next_run(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 3, "SO-1")                       # L1 3
    call(db, "fulfill_order", order_ref="SO-1")
    backdate_lot(db, "TWO", "L1", 1)
    assert call_one(db, "expire_inventory_lots")["units_written_off"] == 1
    call(db, "process_return", order_ref="SO-1", sku="TWO", quantity=2, reason="unopened")
    assert lot_qty(db, "TWO")[("L1", "main")] == (2, 0, 0)  # back in its lot, which may not be sold
    assert blocked(db, "TWO") == 2
    assert call_one(db, "expire_inventory_lots")["units_written_off"] == 2
    assert call_one(db, "expire_inventory_lots")["units_written_off"] == 0
    written_off = rows(db, "select * from inventory_api.stock_movements where sku = 'TWO' and reason = 'expired'"
                           " order by movement_id")
    assert [m["on_hand_delta"] for m in written_off] == [-1, -2]
    assert level(db, "TWO") == (6, 0, 6)
    in_step(db, "TWO")


def test_expire_inventory_lots_is_self_locking(two_lots: str, db: Db, connect: Any) -> None:
    receive(db, "TWO", 1, "L-OLD", day(db, -2))
    first = connect(autocommit=False)
    assert first.execute("select lots_expired from inventory_api.expire_inventory_lots()").fetchone() == (1,)
    second = connect(autocommit=True)
    second.execute("set lock_timeout = '2s'")
    with pytest.raises(psycopg.Error) as caught:
        second.execute("select * from inventory_api.expire_inventory_lots()")
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == BUSY
    first.commit()
    written_off = rows(db, "select * from inventory_api.stock_movements where sku = 'TWO' and reason = 'expired'")
    assert [sorted((x["lot_number"], x["on_hand_delta"]) for x in m["lots"]) for m in written_off] == [[("L-OLD", -1)]]
    assert call_one(db, "expire_inventory_lots")["lots_expired"] == 0
    assert lot_qty(db, "TWO")[("L-OLD", "main")] == (0, 0, 0)
    in_step(db, "TWO")


def test_expiring_lots_view(inv: Inventory, db: Db) -> None:
    lot_item(db, "SHELF")
    for lot, offset in (("L-M2", -2), ("L-0", 0), ("L-3", 3), ("L-7", 7), ("L-8", 8), ("L-30", 30), ("L-31", 31)):
        receive(db, "SHELF", 1, lot, day(db, offset))
    receive(db, "SHELF", 1, "L-NONE")
    receive(db, "SHELF", 1, "L-GONE", day(db, 4))
    reserve(db, "SHELF", 1, "SO-1")  # FEFO: L-0 (expires today, still sellable)
    assert allocated(db, "SO-1") == {"L-0": 1}
    call(db, "create_adjustment", sku="SHELF", quantity_delta=-1, adjustment_type="correction",
         reason_code="correction", lot_number="L-GONE")
    found = {r["lot_number"]: (r["on_hand"], r["reserved"], r["expires_on"], r["days_left"], r["expiry_status"])
             for r in rows(db, "select * from inventory_api.expiring_lots where sku = 'SHELF'")}
    assert found == {
        "L-M2": (1, 0, day(db, -2), -2, "EXPIRED"),
        "L-0": (1, 1, day(db, 0), 0, "EXPIRING_SOON"),
        "L-3": (1, 0, day(db, 3), 3, "EXPIRING_SOON"),
        "L-7": (1, 0, day(db, 7), 7, "EXPIRING_SOON"),
        "L-8": (1, 0, day(db, 8), 8, "EXPIRING"),
        "L-30": (1, 0, day(db, 30), 30, "EXPIRING"),
    }
    in_step(db, "SHELF")


# -- transfers, adjustments, counts ---------------------------------------------------------------------------


def test_transfers_move_a_named_lot_or_the_first_expiring(two_lots: str, db: Db) -> None:
    moved = call_one(db, "transfer_stock", sku="TWO", quantity=3, from_location="main", to_location="east",
                     lot_number="L2")
    assert (moved["from_on_hand"], moved["to_on_hand"]) == (7, 3)
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 0, 4), ("L2", "main"): (3, 0, 3), ("L2", "east"): (3, 0, 3)}
    assert lots(db, "TWO")[("L2", "east")]["expires_on"] == day(db, 20)
    assert movement_lots(db, "TWO", "TRANSFER_OUT") == [[("L2", -3, 0)]]
    assert movement_lots(db, "TWO", "TRANSFER_IN") == [[("L2", 3, 0)]]

    call(db, "transfer_stock", sku="TWO", quantity=2, from_location="main", to_location="east")  # FEFO: L1
    assert lot_qty(db, "TWO") == {("L1", "main"): (2, 0, 2), ("L2", "main"): (3, 0, 3), ("L2", "east"): (3, 0, 3),
                                  ("L1", "east"): (2, 0, 2)}
    assert movement_lots(db, "TWO", "TRANSFER_OUT")[-1] == [("L1", -2, 0)]
    assert level(db, "TWO") == (5, 0, 5)
    assert level(db, "TWO", "east") == (5, 0, 5)

    reserve(db, "TWO", 2, "SO-1", location="east")  # FEFO at east: L1
    assert allocated(db, "SO-1") == {"L1": 2}
    with unchanged(db, INSUFFICIENT_STOCK):  # L2 at main has 3
        call(db, "transfer_stock", sku="TWO", quantity=4, from_location="main", to_location="east", lot_number="L2")
    with unchanged(db, INSUFFICIENT_STOCK):  # L1 at east is all held
        call(db, "transfer_stock", sku="TWO", quantity=1, from_location="east", to_location="main", lot_number="L1")
    with unchanged(db, LOT_NOT_FOUND):
        call(db, "transfer_stock", sku="TWO", quantity=1, from_location="main", to_location="east", lot_number="L9")
    in_step(db, "TWO")


def test_a_transfer_without_a_lot_splits_fefo(two_lots: str, db: Db) -> None:
    call(db, "transfer_stock", sku="TWO", quantity=6, from_location="main", to_location="east")
    assert lot_qty(db, "TWO") == {("L1", "main"): (0, 0, 0), ("L2", "main"): (4, 0, 4), ("L1", "east"): (4, 0, 4),
                                  ("L2", "east"): (2, 0, 2)}
    assert movement_lots(db, "TWO", "TRANSFER_OUT") == [[("L1", -4, 0), ("L2", -2, 0)]]
    assert movement_lots(db, "TWO", "TRANSFER_IN") == [[("L1", 4, 0), ("L2", 2, 0)]]
    in_step(db, "TWO")


def test_transfers_without_a_lot_skip_unsellable_lots(two_lots: str, db: Db) -> None:
    call(db, "set_lot_status", sku="TWO", lot_number="L1", quarantined=True)
    call(db, "transfer_stock", sku="TWO", quantity=2, from_location="main", to_location="east")
    assert lot_qty(db, "TWO")[("L2", "east")] == (2, 0, 2)
    assert lot_qty(db, "TWO")[("L1", "main")] == (4, 0, 0)
    in_step(db, "TWO")


def test_adjustments_of_lot_tracked_items_name_the_lot(two_lots: str, db: Db) -> None:
    with unchanged(db, INVALID_ARGUMENT) as caught:
        call(db, "create_adjustment", sku="TWO", quantity_delta=-1, adjustment_type="damage", reason_code="damaged")
    assert detail(caught)["argument"] == "lot_number"
    adjustment = call_one(db, "create_adjustment", sku="TWO", quantity_delta=-1, adjustment_type="damage",
                          reason_code="damaged", lot_number="L2")
    assert (adjustment["status"], adjustment["quantity_delta"], adjustment["lot_number"]) == ("APPLIED", -1, "L2")
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 0, 4), ("L2", "main"): (5, 0, 5)}
    assert movement_lots(db, "TWO", "ADJUST") == [[("L2", -1, 0)]]
    found = call_one(db, "create_adjustment", sku="TWO", quantity_delta=2, adjustment_type="found",
                     reason_code="found", lot_number="L1")
    assert (found["status"], found["lot_number"]) == ("APPLIED", "L1")
    assert lot_qty(db, "TWO") == {("L1", "main"): (6, 0, 6), ("L2", "main"): (5, 0, 5)}
    assert level(db, "TWO") == (11, 0, 11)
    with unchanged(db, LOT_NOT_FOUND):
        call(db, "create_adjustment", sku="TWO", quantity_delta=-1, adjustment_type="damage", reason_code="damaged",
             lot_number="L9")
    # Removing units of a lot that are held is refused like any removal below reserved.
    reserve(db, "TWO", 6, "SO-1")
    assert allocated(db, "SO-1") == {"L1": 6}
    with unchanged(db, INSUFFICIENT_STOCK):
        call(db, "create_adjustment", sku="TWO", quantity_delta=-1, adjustment_type="damage", reason_code="damaged",
             lot_number="L1")
    in_step(db, "TWO")


def test_an_approved_lot_adjustment_changes_its_lot(catalogue: Inventory, clerk: Inventory, db: Db) -> None:
    lot_item(db, "ADJ")
    receive(db, "ADJ", 8, "L1", day(db, 10))
    receive(db, "ADJ", 2, "L2", day(db, 20))
    pending = call_one(clerk.connection, "create_adjustment", sku="ADJ", quantity_delta=-6, adjustment_type="damage",
                       reason_code="damaged", lot_number="L1")
    assert (pending["status"], pending["lot_number"]) == ("PENDING", "L1")
    assert lot_qty(db, "ADJ") == {("L1", "main"): (8, 0, 8), ("L2", "main"): (2, 0, 2)}
    reserve(db, "ADJ", 2, "SO-1")  # L1: 2 of its 8 held; removing 6 still leaves them
    approved = call_one(db, "approve_adjustment", adjustment_id=pending["adjustment_id"], decision="approved")
    assert (approved["status"], approved["lot_number"]) == ("APPROVED", "L1")
    assert lot_qty(db, "ADJ") == {("L1", "main"): (2, 2, 0), ("L2", "main"): (2, 0, 2)}
    assert movement_lots(db, "ADJ", "ADJUST") == [[("L1", -6, 0)]]
    assert level(db, "ADJ") == (4, 2, 2)
    in_step(db, "ADJ")


def test_an_approval_that_would_take_held_units_of_the_lot_is_refused(catalogue: Inventory, clerk: Inventory,
                                                                      db: Db) -> None:
    lot_item(db, "ADJ")
    receive(db, "ADJ", 8, "L1", day(db, 10))
    receive(db, "ADJ", 20, "L2", day(db, 20))
    pending = call_one(clerk.connection, "create_adjustment", sku="ADJ", quantity_delta=-6, adjustment_type="damage",
                       reason_code="damaged", lot_number="L1")
    reserve(db, "ADJ", 4, "SO-1")  # L1 4 held: 4 free in L1, though the item has 24 free
    with unchanged(db, INSUFFICIENT_STOCK):
        call(db, "approve_adjustment", adjustment_id=pending["adjustment_id"], decision="approved")
    in_step(db, "ADJ")


def test_counts_of_lot_tracked_items_count_one_lot(two_lots: str, db: Db) -> None:
    with unchanged(db, INVALID_ARGUMENT) as caught:
        call(db, "record_count", sku="TWO", counted_quantity=10)
    assert detail(caught)["argument"] == "lot_number"
    count = call_one(db, "record_count", sku="TWO", counted_quantity=5, lot_number="L2")
    assert (count["on_hand_at_count"], count["difference"], count["adjustment_status"], count["lot_number"]) == (
        6, -1, "APPLIED", "L2")
    assert lot_qty(db, "TWO") == {("L1", "main"): (4, 0, 4), ("L2", "main"): (5, 0, 5)}
    assert level(db, "TWO") == (9, 0, 9)
    same = call_one(db, "record_count", sku="TWO", counted_quantity=4, lot_number="L1")
    assert (same["difference"], same["adjustment_id"]) == (0, None)
    in_step(db, "TWO")


# -- bad input changes nothing -----------------------------------------------------------------------------------

BAD_LOT_NUMBERS = [("empty", ""), ("leading_space", " L1"), ("trailing_space", "L1 "), ("newline", "L\n1"),
                   ("tab", "L\t1"), ("too_long", "L" * 65), ("trailing_nbsp", "L1\u00a0"),
                   ("zero_width", "L\u200b1"), ("not_nfc", "Cafe\u0301")]

BAD_CASES: list[Any] = []


def bad(_fn: str, _case: str, _expected: tuple[str, str], /, **arguments: Any) -> None:
    """Register a case: call `_fn` with these arguments, expecting `_expected` and no change."""
    BAD_CASES.append(pytest.param(_fn, arguments, _expected, id=f"{_fn}-{_case}"))


_RETURN = {"order_ref": "SO-SHIPPED", "sku": "TWO", "quantity": 1, "reason": "damaged"}
_TRANSFER = {"sku": "TWO", "quantity": 1, "from_location": "main", "to_location": "east"}
_ADJUST = {"sku": "TWO", "quantity_delta": -1, "adjustment_type": "damage", "reason_code": "damaged"}
for _name, _text in BAD_LOT_NUMBERS:
    bad("receive_stock", f"lot_number_{_name}", INVALID_ARGUMENT, sku="TWO", quantity=1, lot_number=_text)
    bad("process_return", f"lot_number_{_name}", INVALID_ARGUMENT, **_RETURN, lot_number=_text)
    bad("transfer_stock", f"lot_number_{_name}", INVALID_ARGUMENT, **_TRANSFER, lot_number=_text)
    bad("set_lot_status", f"lot_number_{_name}", INVALID_ARGUMENT, sku="TWO", lot_number=_text, quarantined=True)
    bad("create_adjustment", f"lot_number_{_name}", INVALID_ARGUMENT, **_ADJUST, lot_number=_text)
bad("receive_stock", "lot_number_null", INVALID_ARGUMENT, sku="TWO", quantity=1, lot_number=None)
bad("set_lot_status", "lot_number_null", INVALID_ARGUMENT, sku="TWO", lot_number=None, quarantined=True)
bad("record_count", "lot_number_null", INVALID_ARGUMENT, sku="TWO", counted_quantity=3)
for _i, _inj in enumerate(INJECTIONS):
    bad("process_return", f"lot_number_injection{_i}", LOT_NOT_FOUND, **_RETURN, lot_number=_inj)
    bad("transfer_stock", f"lot_number_injection{_i}", LOT_NOT_FOUND, **_TRANSFER, lot_number=_inj)
    bad("set_lot_status", f"lot_number_injection{_i}", LOT_NOT_FOUND, sku="TWO", lot_number=_inj, quarantined=True)
    bad("trace_lot", f"lot_number_injection{_i}", LOT_NOT_FOUND, sku="TWO", lot_number=_inj)
    bad("create_adjustment", f"lot_number_injection{_i}", LOT_NOT_FOUND, **_ADJUST, lot_number=_inj)
    bad("set_lot_status", f"sku_injection{_i}", PRODUCT_NOT_FOUND, sku=_inj, lot_number="L1", quarantined=True)
for _fn, _arguments in (("process_return", _RETURN), ("transfer_stock", _TRANSFER), ("create_adjustment", _ADJUST),
                        ("set_lot_status", {"sku": "TWO", "quarantined": True}), ("trace_lot", {"sku": "TWO"}),
                        ("record_count", {"sku": "TWO", "counted_quantity": 1})):
    bad(_fn, "lot_of_another_item", LOT_NOT_FOUND, **_arguments, lot_number="L-OTH")
bad("set_lot_status", "sku_unknown", PRODUCT_NOT_FOUND, sku="NOPE", lot_number="L1", quarantined=True)
bad("set_lot_status", "sku_null", INVALID_ARGUMENT, sku=None, lot_number="L1", quarantined=True)
bad("set_lot_status", "lot_unknown", LOT_NOT_FOUND, sku="TWO", lot_number="L9", quarantined=True)
for _name, _status in (("unknown", "OK"), ("empty", ""), ("padded", " PASSED"), ("injection", "PASSED'; --")):
    bad("set_lot_status", f"qc_status_{_name}", INVALID_ARGUMENT, sku="TWO", lot_number="L1", qc_status=_status)
for _name, _interval in (("negative", "-1 day"), ("negative_seconds", "-1 second"), ("minus_infinity", "-infinity")):
    bad("reserve_stock", f"min_shelf_life_{_name}", INVALID_ARGUMENT, sku="TWO", quantity=1, order_ref="SO-NEW",
        min_shelf_life=_interval)
    bad("reserve_order", f"min_shelf_life_{_name}", INVALID_ARGUMENT, order_ref="SO-NEW",
        lines=json.dumps([{"sku": "TWO", "quantity": 1}]), min_shelf_life=_interval)
bad("receive_stock", "expires_on_conflict", ALREADY_EXISTS, sku="TWO", quantity=1, lot_number="L1",
    expires_on="2099-01-01")
bad("receive_stock", "expires_on_without_lot", INVALID_ARGUMENT, sku="TWO", quantity=1, expires_on="2099-01-01")
bad("receive_stock", "lot_for_item_without_lots", INVALID_ARGUMENT, sku="A1", quantity=1, lot_number="L1")
bad("receive_stock", "supplier_lot_for_item_without_lots", INVALID_ARGUMENT, sku="A1", quantity=1,
    supplier_lot="S-1")
bad("create_item", "requires_qc_without_lots", INVALID_ARGUMENT, sku="NEW-QC", name="New", requires_qc=True)
bad("create_adjustment", "lot_number_missing", INVALID_ARGUMENT, **_ADJUST)
bad("transfer_stock", "lot_too_small", INSUFFICIENT_STOCK, **{**_TRANSFER, "quantity": 5}, lot_number="L1")


@pytest.mark.parametrize(("fn", "arguments", "expected"), BAD_CASES)
def test_bad_lot_input_changes_nothing(two_lots: str, db: Db, fn: str, arguments: dict[str, Any],
                                       expected: tuple[str, str]) -> None:
    call(db, "create_item", sku="A1", name="Widget")
    call(db, "receive_stock", sku="A1", quantity=3)
    reserve(db, "TWO", 2, "SO-SHIPPED")
    call(db, "fulfill_order", order_ref="SO-SHIPPED")
    if arguments.get("min_shelf_life") == "-infinity" and db.info.server_version < 170000:
        pytest.skip("intervals have no infinity before PostgreSQL 17: the server itself refuses the input")
    db.execute("create table public.x (id integer)")
    db.execute("insert into public.x values (1)")
    lot_item(db, "OTH")
    receive(db, "OTH", 2, "L-OTH", day(db, 5))
    rows_before = ledger_count(db)
    with unchanged(db, expected):
        call(db, fn, **arguments)
    assert ledger_count(db) == rows_before
    assert db.execute("select count(*) from public.x").fetchone()[0] == 1
    assert db.execute("select count(*) from inventory.items").fetchone()[0] == 3
    in_step(db, "TWO")


@pytest.mark.parametrize("lot_number", INJECTIONS)
def test_injected_lot_numbers_are_stored_verbatim_and_harm_nothing(inv: Inventory, db: Db, lot_number: str) -> None:
    db.execute("create table public.x (id integer)")
    lot_item(db, "INJ")
    receive(db, "INJ", 2, lot_number, day(db, 10))
    assert lot_qty(db, "INJ") == {(lot_number, "main"): (2, 0, 2)}
    reserve(db, "INJ", 1, "SO-1")
    assert allocated(db, "SO-1") == {lot_number: 1}
    [trace] = call(db, "trace_lot", sku="INJ", lot_number=lot_number)
    assert (trace["order_ref"], trace["allocated"]) == ("SO-1", 1)
    assert db.execute("select count(*) from public.x").fetchone()[0] == 0
    assert db.execute("select count(*) from inventory.items").fetchone()[0] == 1
    in_step(db, "INJ")


# -- concurrency -------------------------------------------------------------------------------------------------


def test_16_connections_never_over_allocate_a_lot(three_lots: str, db: Db, connect: Any) -> None:
    clients = [connect() for _ in range(16)]

    def buy_until_sold_out(n: int) -> int:
        client = clients[n]
        held, attempt = 0, 0
        quantity = 1 + n % 3
        while True:
            attempt += 1
            try:
                reserve(client, "FEFO", quantity, f"SO-{n}-{attempt}")
                held += quantity
            except psycopg.Error as error:
                if (error.sqlstate, error.diag.message_hint) != INSUFFICIENT_STOCK:
                    raise
                if quantity == 1:
                    return held
                quantity = 1

    outcomes = run_together(16, buy_until_sold_out)
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    assert sum(outcomes) == 15  # oversold 0, undersold 0
    assert lot_qty(db, "FEFO") == {("L-SOON", "main"): (5, 5, 0), ("L-MID", "main"): (5, 5, 0),
                                   ("L-LATE", "main"): (5, 5, 0)}
    holds = rows(db, "select order_ref, quantity from inventory_api.reservations where status = 'ACTIVE'")
    assert sum(h["quantity"] for h in holds) == 15
    for hold in holds:  # every hold is allocated exactly
        assert sum(open_allocations(db, hold["order_ref"]).values()) == hold["quantity"]
    assert level(db, "FEFO") == (15, 15, 0)
    in_step(db, "FEFO")
    assert violations(db) == []


def test_16_connections_reserving_cancelling_and_shipping_keep_lots_exact(three_lots: str, db: Db,
                                                                          connect: Any) -> None:
    clients = [connect() for _ in range(16)]

    def churn(n: int) -> int:
        client = clients[n]
        shipped = 0
        for attempt in range(15):
            order = f"SO-{n}-{attempt}"
            try:
                reserve(client, "FEFO", 1 + (n + attempt) % 3, order)
            except psycopg.Error as error:
                if (error.sqlstate, error.diag.message_hint) != INSUFFICIENT_STOCK:
                    raise
                continue
            if attempt % 3 == 2 and n % 4 == 0:
                shipped += sum(c["quantity"] for c in call(client, "fulfill_order", order_ref=order))
            else:
                call(client, "cancel_reservation", order_ref=order)
        return shipped

    outcomes = run_together(16, churn)
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    shipped = sum(outcomes)
    assert level(db, "FEFO") == (15 - shipped, 0, 15 - shipped)
    assert sum(on_hand for on_hand, _, _ in lot_qty(db, "FEFO").values()) == 15 - shipped
    assert all(reserved == 0 for _, reserved, _ in lot_qty(db, "FEFO").values())
    in_step(db, "FEFO")
    assert violations(db) == []


def test_quarantine_racing_reservations_never_leaves_a_hold_on_the_lot(three_lots: str, db: Db,
                                                                       connect: Any) -> None:
    clients = [connect() for _ in range(12)]

    def work(n: int) -> Any:
        client = clients[n]
        if n == 0:
            return call_one(client, "set_lot_status", sku="FEFO", lot_number="L-SOON", quarantined=True)
        held = 0
        for attempt in range(6):
            try:
                held += reserve(client, "FEFO", 1, f"SO-{n}-{attempt}")["quantity"]
            except psycopg.Error as error:
                if (error.sqlstate, error.diag.message_hint) != INSUFFICIENT_STOCK:
                    raise
        return held

    outcomes = run_together(12, work)
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    quarantine, held = outcomes[0], sum(outcomes[1:])
    assert lot_qty(db, "FEFO")[("L-SOON", "main")] == (5, 0, 0)
    active = sum(r["quantity"] for r in rows(db, "select quantity from inventory_api.reservations"
                                                 " where status = 'ACTIVE'"))
    assert active == held - quarantine["units_released"]
    assert active <= 10
    assert level(db, "FEFO") == (15, active, 10 - active)
    in_step(db, "FEFO")
    assert violations(db) == []


def test_expiry_job_racing_reservations_and_itself_writes_off_once(inv: Inventory, db: Db, connect: Any) -> None:
    lot_item(db, "RACE")
    receive(db, "RACE", 6, "L-A", day(db, 1))
    receive(db, "RACE", 50, "L-B", day(db, 30))
    for n in range(3):
        reserve(db, "RACE", 2, f"SO-OLD-{n}")  # all of L-A
    backdate_lot(db, "RACE", "L-A", 1)
    clients = [connect() for _ in range(10)]

    def work(n: int) -> Any:
        client = clients[n]
        if n < 2:
            try:
                return call_one(client, "expire_inventory_lots")
            except psycopg.Error as error:
                if (error.sqlstate, error.diag.message_hint) != BUSY:
                    raise
                return "busy"
        for attempt in range(4):
            reserve(client, "RACE", 1, f"SO-{n}-{attempt}")
        return 4

    outcomes = run_together(10, work)
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    runs = [outcome for outcome in outcomes[:2] if outcome != "busy"]
    assert sum(r["units_written_off"] for r in runs) == 6
    assert sum(r["holds_reallocated"] for r in runs) == 3
    written_off = rows(db, "select * from inventory_api.stock_movements where sku = 'RACE' and reason = 'expired'")
    assert sum(m["on_hand_delta"] for m in written_off) == -6
    # The three old holds moved to L-B; the 32 new ones came from L-B (L-A was expired all along).
    assert lot_qty(db, "RACE") == {("L-A", "main"): (0, 0, 0), ("L-B", "main"): (50, 38, 12)}
    assert level(db, "RACE") == (50, 38, 12)
    in_step(db, "RACE")
    assert violations(db) == []


def test_status_changes_racing_holds_never_deadlock(inv: Inventory, db: Db, connect: Any) -> None:
    """Two admins toggle the quarantine of two lots while six clerks hold, ship and cancel units of the
    same item: no deadlock (40P01), whatever the interleaving."""
    lot_item(db, "HOT")
    receive(db, "HOT", 500, "H-1", day(db, 10))
    receive(db, "HOT", 500, "H-2", day(db, 20))
    clients = [connect() for _ in range(8)]

    def work(n: int) -> int:
        client = clients[n]
        for attempt in range(25):
            if n < 2:
                call(client, "set_lot_status", sku="HOT", lot_number=f"H-{n + 1}", quarantined=attempt % 4 < 2)
                continue
            order = f"SO-{n}-{attempt}"
            try:
                reserve(client, "HOT", 1, order)
            except psycopg.Error as error:
                if (error.sqlstate, error.diag.message_hint) != INSUFFICIENT_STOCK:
                    raise
                continue
            try:
                call(client, "fulfill_order" if attempt % 2 else "cancel_reservation", order_ref=order)
            except psycopg.Error as error:
                # Quarantining both lots at once releases the holds no lot can take: that is the rule.
                if (error.sqlstate, error.diag.message_hint) != ("PT404", "NO_RESERVATION"):
                    raise
        return 25

    outcomes = run_together(8, work)
    assert outcomes == [25] * 8, [o for o in outcomes if o != 25]
    in_step(db, "HOT")
    assert violations(db) == []


def test_everything_at_once_never_deadlocks_and_keeps_lots_exact(inv: Inventory, db: Db, connect: Any) -> None:
    """Orders over two lot-tracked items in opposite line orders, fulfilment, cancellation, returns,
    quarantines toggled, transfers, the reservation sweeper and the expiry job, on 12 connections."""
    call(db, "create_location", code="east", name="East store")
    for sku in ("X", "Y"):
        lot_item(db, sku)
        receive(db, sku, 2, f"{sku}-OLD", day(db, 1))
        receive(db, sku, 200, f"{sku}-1", day(db, 10))
        receive(db, sku, 200, f"{sku}-2", day(db, 20))
        reserve(db, sku, 2, f"SO-OLD-{sku}")
        backdate_lot(db, sku, f"{sku}-OLD", 1)
    clients = [connect() for _ in range(12)]
    tolerated = {INSUFFICIENT_STOCK, BUSY, ("PT404", "NO_RESERVATION"), ("PT409", "RESERVATION_EXPIRED")}

    def tolerant(client: Db, fn: str, **arguments: Any) -> list[Row] | None:
        try:
            return call(client, fn, **arguments)
        except psycopg.Error as error:
            if (error.sqlstate, error.diag.message_hint) not in tolerated:
                raise
            return None

    def work(n: int) -> str:
        client = clients[n]
        for attempt in range(12):
            role = n % 4
            if role == 0:
                sku = "XY"[attempt % 2]
                call(client, "set_lot_status", sku=sku, lot_number=f"{sku}-1", quarantined=attempt % 4 < 2)
            elif role in (1, 2):
                order = f"SO-{n}-{attempt}"
                lines = [{"sku": "X", "quantity": 1 + attempt % 2}, {"sku": "Y", "quantity": 1}]
                held = tolerant(client, "reserve_order", order_ref=order,
                                lines=json.dumps(lines[:: 1 if n % 2 else -1]),
                                expires_in="1 second" if attempt % 5 == 4 else None)
                if held is None:
                    continue
                if attempt % 3 == 0:
                    tolerant(client, "cancel_reservation", order_ref=order)
                elif tolerant(client, "fulfill_order", order_ref=order) and attempt % 3 == 1:
                    call(client, "process_return", order_ref=order, sku="X", quantity=1, reason="unwanted")
            else:
                tolerant(client, "expire_inventory_lots")
                call(client, "expire_reservations", batch_size=5)
                tolerant(client, "transfer_stock", sku="XY"[n % 2], quantity=1, from_location="main",
                         to_location="east")
        return "done"

    outcomes = run_together(12, work)
    assert outcomes == ["done"] * 12, [o for o in outcomes if o != "done"]
    for sku in ("X", "Y"):
        in_step(db, sku)
    assert violations(db) == []


LEVELS = [IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE]


def interleave(connect: Any, level: IsolationLevel, first: Any, second: Any) -> list[Any]:
    """As tests/test_isolation.py: two transactions at `level` take their snapshot; the first runs
    first(connection) and commits, then the second runs second(connection); a 40001 loser is retried
    once in a new transaction, as a client following the README would. Returns both outcomes."""
    connections = [connect(autocommit=False), connect(autocommit=False)]
    for connection in connections:
        connection.isolation_level = level
        connection.execute("select 1")  # the snapshot of REPEATABLE READ / SERIALIZABLE
    outcomes: list[Any] = []
    for connection, work in zip(connections, (first, second), strict=True):
        for attempt in (1, 2):
            try:
                outcomes.append(work(connection))
                connection.commit()
                break
            except psycopg.Error as error:
                connection.rollback()
                if error.sqlstate != "40001" or attempt == 2:
                    outcomes.append(error)
                    break
    return outcomes


@pytest.mark.parametrize("isolation", LEVELS, ids=lambda level: level.name.lower())
def test_two_holds_for_the_last_units_of_a_lot_hold_them_once(inv: Inventory, db: Db, connect: Any,
                                                               isolation: IsolationLevel) -> None:
    lot_item(db, "LAST")
    receive(db, "LAST", 5, "L1", day(db, 10))
    outcomes = interleave(connect, isolation, lambda c: reserve(c, "LAST", 4, "SO-1"),
                          lambda c: reserve(c, "LAST", 4, "SO-2"))
    assert outcomes[0]["quantity"] == 4
    assert (outcomes[1].sqlstate, outcomes[1].diag.message_hint) == INSUFFICIENT_STOCK
    assert lot_qty(db, "LAST") == {("L1", "main"): (5, 4, 1)}
    in_step(db, "LAST")


@pytest.mark.parametrize("isolation", LEVELS, ids=lambda level: level.name.lower())
def test_a_hold_from_a_snapshot_before_a_quarantine_never_takes_the_lot(three_lots: str, db: Db, connect: Any,
                                                                         isolation: IsolationLevel) -> None:
    outcomes = interleave(
        connect, isolation,
        lambda c: call_one(c, "set_lot_status", sku="FEFO", lot_number="L-SOON", quarantined=True),
        lambda c: reserve(c, "FEFO", 2, "SO-1"))
    assert outcomes[0]["sellable"] is False
    assert outcomes[1]["quantity"] == 2, outcomes
    assert allocated(db, "SO-1") == {"L-MID": 2}
    assert lot_qty(db, "FEFO")[("L-SOON", "main")] == (5, 0, 0)
    in_step(db, "FEFO")


@pytest.mark.parametrize("isolation", LEVELS, ids=lambda level: level.name.lower())
def test_a_quarantine_after_a_hold_from_the_same_snapshot_moves_it(three_lots: str, db: Db, connect: Any,
                                                                    isolation: IsolationLevel) -> None:
    outcomes = interleave(
        connect, isolation,
        lambda c: reserve(c, "FEFO", 2, "SO-1"),
        lambda c: call_one(c, "set_lot_status", sku="FEFO", lot_number="L-SOON", quarantined=True))
    assert outcomes[0]["quantity"] == 2
    assert outcomes[1]["holds_reallocated"] == 1, outcomes
    assert open_allocations(db, "SO-1") == {"L-MID": 2}
    assert lot_qty(db, "FEFO")[("L-SOON", "main")] == (5, 0, 0)
    in_step(db, "FEFO")


# -- verify_inventory ----------------------------------------------------------------------------------------


@pytest.mark.breaks_invariants
def test_verify_inventory_reports_a_lot_sum_that_does_not_match_the_level(two_lots: str, db: Db) -> None:
    assert violations(db) == []
    # The DBA's hand, as psql allows it: one lot level off by one unit, the stock level untouched.
    db.execute("update inventory.lot_levels set on_hand = on_hand + 1"
               " where lot_id = (select lot_id from inventory.lots where lot_number = 'L1')")
    found = violations(db)
    assert found, "a lot sum off by one went unnoticed"
    assert {(v["sku"], v["location"]) for v in found} == {("TWO", "main")}
    assert all("lot" in v["invariant"] for v in found), found


@pytest.mark.breaks_invariants
def test_verify_inventory_reports_a_lot_reserved_sum_that_does_not_match(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 2, "SO-1")
    db.execute("update inventory.lot_levels set reserved = reserved - 1"
               " where lot_id = (select lot_id from inventory.lots where lot_number = 'L1')")
    found = violations(db)
    assert found, "a lot reserved sum off by one went unnoticed"
    assert {v["sku"] for v in found} == {"TWO"}


@pytest.mark.breaks_invariants
def test_verify_inventory_reports_allocations_that_do_not_match_their_hold(two_lots: str, db: Db) -> None:
    reserve(db, "TWO", 2, "SO-1")
    db.execute("update inventory.lot_allocations set quantity = quantity + 1")
    found = violations(db)
    assert found, "an allocation off by one went unnoticed"
    assert {v["sku"] for v in found} == {"TWO"}


# -- who may do what -----------------------------------------------------------------------------------------


def test_viewers_read_lots_and_only_admins_change_them(gateway: Any, db: Db) -> None:
    lot_item(db, "GW")
    receive(db, "GW", 3, "L1", day(db, 5))
    receive(db, "GW", 2, "L1", day(db, 5), location="east")
    reader, clerk, admin = (gateway("authenticated", u) for u in ("u-reader", "u-clerk-main", "u-admin"))
    east_clerk = gateway("authenticated", "u-clerk-east")
    assert sorted((r[0], r[1], r[3], r[4]) for r in reader.query(
        "select sku, lot_number, supplier_lot, location, on_hand from inventory_api.lots where sku = 'GW'")) == [
        ("GW", "L1", "east", 2), ("GW", "L1", "main", 3)]
    # Row security by location: the east clerk sees east only.
    assert [r[0] for r in east_clerk.query("select location from inventory_api.lots where sku = 'GW'")] == ["east"]
    assert len(reader.query("select * from inventory_api.expiring_lots where sku = 'GW'")) == 2
    assert [r[2] for r in east_clerk.query("select * from inventory_api.expiring_lots where sku = 'GW'")] == ["east"]
    assert len(reader.rpc("trace_lot", read_only=True, sku="GW", lot_number="L1")) == 0
    reserve(db, "GW", 1, "SO-MAIN")
    reserve(db, "GW", 1, "SO-EAST", location="east")
    assert sorted(r[0] for r in reader.rpc("trace_lot", read_only=True, sku="GW", lot_number="L1")) == [
        "SO-EAST", "SO-MAIN"]
    assert [r[0] for r in east_clerk.rpc("trace_lot", read_only=True, sku="GW", lot_number="L1")] == ["SO-EAST"]
    assert sorted(r[0] for r in east_clerk.query("select order_ref from inventory_api.lot_allocations"
                                                 " where sku = 'GW'")) == ["SO-EAST"]
    call(db, "cancel_reservation", order_ref="SO-MAIN")
    call(db, "cancel_reservation", order_ref="SO-EAST")

    before = snapshot(db)
    for denied_client in (reader, clerk):
        with pytest.raises(psycopg.Error) as caught:
            denied_client.rpc("set_lot_status", sku="GW", lot_number="L1", quarantined=True)
        assert (caught.value.sqlstate, caught.value.diag.message_hint) == PERMISSION_DENIED
    # Maintenance, as expire_reservations: the scheduler and admin database roles, never PostgREST's users.
    for user in (reader, clerk, admin):
        with pytest.raises(psycopg.Error) as caught:
            user.rpc("expire_inventory_lots")
        assert caught.value.sqlstate == "42501"
    assert snapshot(db) == before
    assert lots(db, "GW")[("L1", "main")]["quarantined"] is False

    [changed] = admin.rpc("set_lot_status", sku="GW", lot_number="L1", quarantined=True)
    assert changed == ("GW", "L1", "PASSED", True, False, 0, 0, 0)
    assert lots(db, "GW")[("L1", "main")]["quarantined"] is True
    assert lots(db, "GW")[("L1", "east")]["quarantined"] is True
    assert reader.query("select available, blocked_reason from inventory_api.lots where sku = 'GW'") == [
        (0, "quarantined"), (0, "quarantined")]
    # service_role is a member of inventory_admin and inventory_scheduler.
    [expired] = gateway("service_role").rpc("expire_inventory_lots")
    assert expired == (0, 0, 0, 0, 0)
