"""Lots and expiry (issue 12) from the CLI and the Python clients: receipts into lots, `pyinv lots`
[expiring | allocations], `lot status` (QC and quarantine), `trace`, `expire-lots`, --lot on the stock
commands, --min-shelf-life, and the typed rows the client methods return."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import Run
from helpers import raises_inventory_error

from pyinv import AsyncInventory, InsufficientStock, InvalidArgument, Inventory, LotNotFound, PermissionDenied
from pyinv.cli.output import (
    EXPIRING_LOT_COLUMNS,
    LOT_ALLOCATION_COLUMNS,
    LOT_COLUMNS,
    LOT_STATUS_COLUMNS,
    TRACE_COLUMNS,
)
from pyinv.models import (
    Adjustment,
    ExpiringLot,
    Item,
    Lot,
    LotAllocation,
    LotExpiry,
    LotStatusChange,
    LotTrace,
    StockCount,
    StockRow,
)


def run_json(run: Run, *args: str, exit_code: int = 0, dsn_: str | None = None) -> Any:
    return json.loads(run("--json", *args, exit_code=exit_code, dsn_=dsn_).stdout)


def json_error(run: Run, *args: str, exit_code: int = 3, dsn_: str | None = None) -> dict[str, Any]:
    result = run("--json", *args, exit_code=exit_code, dsn_=dsn_)
    assert result.stdout == ""
    return json.loads(result.stderr)["error"]


def header(stdout: str) -> list[str]:
    return stdout.splitlines()[0].split()


def first_cells(stdout: str, count: int) -> list[list[str]]:
    """The first `count` cells of each data row of a table (cells holding no spaces)."""
    return [line.split()[:count] for line in stdout.splitlines()[2:] if line.strip()]


@pytest.fixture
def today(db: psycopg.Connection[Any]) -> date:
    """The database's "today" for expiry: the UTC date."""
    return db.execute("select (now() at time zone 'UTC')::date").fetchone()[0]


@pytest.fixture
def serum(catalogue: Inventory, today: date) -> Inventory:
    """The catalogue plus SERUM, a lot-tracked item at main: lot L1 (10 units, expires in 60 days,
    supplier lot S-1) and L2 (4 units, expires in 10 days)."""
    catalogue.create_item("SERUM", "Serum 10 ml", track_lots=True)
    catalogue.receive_stock("SERUM", 10, lot_number="L1", expires_on=today + timedelta(days=60), supplier_lot="S-1")
    catalogue.receive_stock("SERUM", 4, lot_number="L2", expires_on=today + timedelta(days=10))
    return catalogue


def expire_lot(db: psycopg.Connection[Any], sku: str, lot_number: str, expires_on: date) -> None:
    """Move a lot's expiry day into the past, as the DBA would (time passing, in a test)."""
    db.execute("""
        update inventory.lots set expires_on = %s
         where lot_number = %s and item_id = (select item_id from inventory.items where sku = %s)""",
               (expires_on, lot_number, sku))


def allocations(run: Run, order_ref: str) -> dict[str, tuple[str, str, str]]:
    """lot_number -> (quantity, fulfilled, released) of an order's lot allocations."""
    return {row["lot_number"]: (row["quantity"], row["fulfilled"], row["released"])
            for row in run_json(run, "lots", "allocations", "--order", order_ref)}


# -- receiving into lots, and `pyinv lots` ---------------------------------------------------------------------


def test_receive_into_lots_and_list_them(catalogue: Inventory, run: Run, today: date) -> None:
    run("item", "add", "SERUM", "Serum 10 ml", "--track-lots")
    late, soon = today + timedelta(days=60), today + timedelta(days=10)
    level = run_json(run, "receive", "SERUM", "10", "--lot", "L1", "--expires", late.isoformat(),
                     "--supplier-lot", "S-1", "--reference", "PO-7")
    assert (level["sku"], level["on_hand"], level["available"]) == ("SERUM", "10", "10")
    run("receive", "SERUM", "4", "--lot", "L2", "--expires", soon.isoformat())
    run("receive", "SERUM", "1", "--lot", "L1")  # more of an existing lot: its expiry stays

    table = run("lots")
    assert header(table.stdout) == list(LOT_COLUMNS)
    assert first_cells(table.stdout, 7) == [  # first expiring first
        ["SERUM", "L2", "main", "4", "0", "4", soon.isoformat()],
        ["SERUM", "L1", "main", "11", "0", "11", late.isoformat()],
    ]
    listed = run_json(run, "lots", "--sku", "SERUM")
    assert [set(row) for row in listed] == [set(Lot.__dataclass_fields__)] * 2
    first = listed[1]
    assert (first["lot_number"], first["supplier_lot"], first["expires_on"], first["qc_status"], first["quarantined"],
            first["sellable"], first["blocked_reason"]) == ("L1", "S-1", late.isoformat(), "PASSED", False, True, None)
    assert [row["lot_number"] for row in run_json(run, "lots", "--lot", "L2")] == ["L2"]
    assert run_json(run, "lots", "--location", "east") == []
    assert run("lots", "--sku", "A1").stdout.strip() == "no lots"
    assert [row["lot_number"] for row in run_json(run, "lots", "--limit", "1")] == ["L2"]

    stock = run_json(run, "stock", "--sku", "SERUM")[0]
    assert (stock["on_hand"], stock["available"], stock["blocked"]) == ("15", "15", "0")
    receipt = run_json(run, "movements", "--sku", "SERUM", "--limit", "1")[0]
    assert [(lot["lot_number"], Decimal(str(lot["on_hand_delta"])), Decimal(str(lot["reserved_delta"])))
            for lot in receipt["lots"]] == [("L1", 1, 0)]
    assert run_json(run, "movements", "--sku", "A1", "--limit", "1")[0]["lots"] is None


def test_lot_arguments_are_checked(serum: Inventory, run: Run, today: date) -> None:
    error = json_error(run, "receive", "SERUM", "1")  # a lot-tracked item needs --lot
    assert (error["code"], error["sqlstate"], error["detail"]["argument"]) == ("INVALID_ARGUMENT", "22023",
                                                                            "lot_number")
    error = json_error(run, "receive", "A1", "1", "--lot", "L1")  # an item without lots takes none
    assert (error["code"], error["sqlstate"]) == ("INVALID_ARGUMENT", "22023")
    error = json_error(run, "receive", "SERUM", "1", "--lot", "L1", "--expires",
                       (today + timedelta(days=61)).isoformat())  # L1 has another expiry
    assert (error["code"], error["sqlstate"]) == ("ALREADY_EXISTS", "PT409")
    assert "is not a day like" in run("receive", "SERUM", "1", "--lot", "L1", "--expires", "31/07", exit_code=2).stderr
    error = json_error(run, "item", "add", "QC-ONLY", "No lots", "--requires-qc")  # QC needs lots
    assert (error["code"], error["sqlstate"]) == ("INVALID_ARGUMENT", "22023")
    error = json_error(run, "adjust", "SERUM", "-1", "--type", "damage", "--reason", "damaged")
    assert (error["code"], error["detail"]["argument"]) == ("INVALID_ARGUMENT", "lot_number")
    error = json_error(run, "count", "SERUM", "3")
    assert (error["code"], error["detail"]["argument"]) == ("INVALID_ARGUMENT", "lot_number")
    assert run_json(run, "stock", "--sku", "SERUM")[0]["on_hand"] == "14"  # nothing moved


# -- expiring lots -----------------------------------------------------------------------------------------------


def test_lots_expiring_lists_what_expires_within_30_days(serum: Inventory, run: Run, today: date) -> None:
    serum.receive_stock("SERUM", 2, lot_number="L3", expires_on=today + timedelta(days=3))
    serum.receive_stock("SERUM", 5, location="east", lot_number="L4", expires_on=today + timedelta(days=30))
    table = run("lots", "expiring")
    assert header(table.stdout) == list(EXPIRING_LOT_COLUMNS)
    assert first_cells(table.stdout, 8) == [
        ["SERUM", "L3", "main", "2", "0", (today + timedelta(days=3)).isoformat(), "3", "EXPIRING_SOON"],
        ["SERUM", "L2", "main", "4", "0", (today + timedelta(days=10)).isoformat(), "10", "EXPIRING"],
        ["SERUM", "L4", "east", "5", "0", (today + timedelta(days=30)).isoformat(), "30", "EXPIRING"],
    ]  # L1 (60 days) is not listed
    listed = run_json(run, "lots", "expiring")
    assert [set(row) for row in listed] == [set(ExpiringLot.__dataclass_fields__)] * 3
    assert [row["lot_number"] for row in run_json(run, "lots", "expiring", "--within-days", "5")] == ["L3"]
    assert [row["lot_number"] for row in run_json(run, "lots", "expiring", "--status", "expiring")] == ["L2", "L4"]
    assert [row["lot_number"] for row in run_json(run, "lots", "expiring", "--location", "east")] == ["L4"]
    assert run("lots", "expiring", "--sku", "A1").stdout.strip() == "no expiring lots"


# -- QC status and quarantine -------------------------------------------------------------------------------------


def test_lot_status_quarantines_and_releases_a_lot(serum: Inventory, run: Run) -> None:
    hold = run_json(run, "reserve", "SO-1", "SERUM", "3")
    assert (hold["quantity"], hold["status"]) == ("3", "ACTIVE")
    assert allocations(run, "SO-1") == {"L2": ("3", "0", "0")}  # first expiring first

    table = run("lot", "status", "SERUM", "L2", "--quarantine", "--note", "supplier recall")
    assert header(table.stdout) == list(LOT_STATUS_COLUMNS)
    assert first_cells(table.stdout, 8) == [["SERUM", "L2", "PASSED", "yes", "no", "1", "0", "0"]]
    moved = {lot: quantities for lot, quantities in allocations(run, "SO-1").items() if quantities[0] != quantities[2]}
    assert moved == {"L1": ("3", "0", "0")}  # the hold now takes its units from L1
    quarantined = run_json(run, "lots", "--lot", "L2")[0]
    assert (quarantined["on_hand"], quarantined["reserved"], quarantined["available"], quarantined["sellable"],
            quarantined["blocked_reason"]) == ("4", "0", "0", False, "quarantined")
    stock = run_json(run, "stock", "--sku", "SERUM")[0]
    assert (stock["on_hand"], stock["reserved"], stock["available"], stock["blocked"]) == ("14", "3", "7", "4")

    released = run_json(run, "lot", "status", "SERUM", "L2", "--release")
    assert released == {"sku": "SERUM", "lot_number": "L2", "qc_status": "PASSED", "quarantined": False,
                        "sellable": True, "holds_reallocated": 0, "holds_released": 0, "units_released": "0"}
    assert run_json(run, "stock", "--sku", "SERUM")[0]["available"] == "11"
    assert run_json(run, "reservations", "--order", "SO-1")[0]["status"] == "ACTIVE"


def test_a_lot_that_cannot_move_its_hold_releases_it(serum: Inventory, run: Run) -> None:
    run("reserve", "SO-1", "SERUM", "12")  # 4 from L2, 8 from L1: only 2 left in L1
    changed = run_json(run, "lot", "status", "SERUM", "L1", "--quarantine")
    # L1's 8 held units fit nowhere else: the hold is released whole (a hold moves wholly or not at all).
    assert (changed["sellable"], changed["holds_reallocated"], changed["holds_released"],
            changed["units_released"]) == (False, 0, 1, "12")
    hold = run_json(run, "reservations", "--order", "SO-1")[0]
    assert hold["status"] == "CANCELLED"
    assert run_json(run, "stock", "--sku", "SERUM")[0]["reserved"] == "0"


def test_an_item_that_requires_qc_sells_a_lot_only_once_it_passed(catalogue: Inventory, run: Run,
                                                                   login_dsn: Callable[[str], str]) -> None:
    item = run_json(run, "item", "add", "VAX", "Vaccine", "--track-lots", "--requires-qc")
    assert (item["track_lots"], item["requires_qc"]) == (True, True)
    run("receive", "VAX", "6", "--lot", "V1")
    lot = run_json(run, "lots", "--sku", "VAX")[0]
    assert (lot["qc_status"], lot["sellable"], lot["available"], lot["blocked_reason"]) == (
        "PENDING", False, "0", "qc_pending")
    assert [row["lot_number"] for row in run_json(run, "lots", "--qc", "pending")] == ["V1"]
    error = json_error(run, "reserve", "SO-1", "VAX", "1")
    assert (error["code"], error["sqlstate"]) == ("INSUFFICIENT_STOCK", "PT409")
    assert error["detail"]["blocked"] == {"qc_pending": "6"}

    assert json_error(run, "lot", "status", "VAX", "V1", "--qc", "PASSED", exit_code=4,
                      dsn_=login_dsn("pyinv_clerk"))["code"] == "PERMISSION_DENIED"  # admins only
    assert "give --qc STATUS, --quarantine or --release" in run("lot", "status", "VAX", "V1", exit_code=2).stderr
    error = json_error(run, "lot", "status", "VAX", "NOPE", "--qc", "PASSED")
    assert (error["code"], error["sqlstate"], error["exit_code"]) == ("LOT_NOT_FOUND", "PT404", 3)

    passed = run_json(run, "lot", "status", "VAX", "V1", "--qc", "passed")
    assert (passed["qc_status"], passed["sellable"]) == ("PASSED", True)
    assert run_json(run, "reserve", "SO-1", "VAX", "1")["status"] == "ACTIVE"
    failed = run_json(run, "lot", "status", "VAX", "V1", "--qc", "FAILED")
    assert (failed["sellable"], failed["holds_released"], failed["units_released"]) == (False, 1, "1")
    assert run_json(run, "lots", "--sku", "VAX")[0]["blocked_reason"] == "qc_failed"


# -- trace, returns, transfers, adjustments and counts by lot ----------------------------------------------------


def test_trace_lists_every_order_that_took_units_of_a_lot(serum: Inventory, run: Run) -> None:
    assert run("trace", "SERUM", "L1").stdout.strip() == "no holds took units of this lot"
    run("reserve", "SO-1", "SERUM", "3")  # from L2
    run("fulfill", "SO-1")
    run("return", "SO-1", "SERUM", "1", "--reason", "damaged box", "--lot", "L2")
    run("reserve", "SO-2", "SERUM", "1")  # L2 again: it has the returned unit and one more
    run("cancel", "SO-2")

    table = run("trace", "SERUM", "L2")
    assert header(table.stdout) == list(TRACE_COLUMNS)
    traced = run_json(run, "trace", "SERUM", "L2")
    assert [set(row) for row in traced] == [set(LotTrace.__dataclass_fields__)] * 2
    assert [(row["order_ref"], row["location"], row["allocated"], row["fulfilled"], row["returned"], row["released"],
             row["hold_status"]) for row in traced] == [
        ("SO-1", "main", "3", "3", "1", "0", "FULFILLED"),
        ("SO-2", "main", "1", "0", "0", "1", "CANCELLED"),
    ]
    assert traced[0]["closed_at"] is not None
    lot = run_json(run, "lots", "--lot", "L2")[0]
    assert (lot["on_hand"], lot["reserved"]) == ("2", "0")  # 4 received, 3 shipped, 1 back
    error = json_error(run, "trace", "SERUM", "NOPE")
    assert (error["code"], error["sqlstate"]) == ("LOT_NOT_FOUND", "PT404")


def test_transfer_adjust_and_count_name_the_lot(serum: Inventory, run: Run) -> None:
    moved = run_json(run, "transfer", "SERUM", "2", "--from", "main", "--to", "east", "--lot", "L1")
    assert (moved["from_on_hand"], moved["to_on_hand"]) == ("12", "2")
    east = run_json(run, "lots", "--location", "east")
    assert [(row["lot_number"], row["on_hand"], row["expires_on"]) for row in east] == [
        ("L1", "2", run_json(run, "lots", "--lot", "L1", "--location", "main")[0]["expires_on"])]

    adjustment = run_json(run, "adjust", "SERUM", "-1", "--type", "damage", "--reason", "damaged", "--lot", "L1")
    assert (adjustment["status"], adjustment["lot_number"]) == ("APPLIED", "L1")
    assert run_json(run, "adjustments", "--sku", "SERUM")[-1]["lot_number"] == "L1"
    counted = run_json(run, "count", "SERUM", "6", "--lot", "L1")  # 10 - 2 - 1 = 7 on hand in L1 at main
    assert (counted["lot_number"], counted["on_hand_at_count"], counted["difference"]) == ("L1", "7", "-1")
    assert run_json(run, "counts", "--sku", "SERUM")[-1]["lot_number"] == "L1"
    assert run_json(run, "lots", "--lot", "L1", "--location", "main")[0]["on_hand"] == "6"


def test_min_shelf_life_leaves_out_lots_that_expire_too_soon(serum: Inventory, run: Run) -> None:
    run("reserve", "SO-1", "SERUM", "2", "--min-shelf-life", "30 days")
    assert allocations(run, "SO-1") == {"L1": ("2", "0", "0")}  # L2 expires in 10 days
    run("reserve", "SO-2", "--line", "SERUM:1", "--min-shelf-life", "30d")
    assert allocations(run, "SO-2") == {"L1": ("1", "0", "0")}
    error = json_error(run, "reserve", "SO-3", "SERUM", "8", "--min-shelf-life", "30 days")
    assert (error["code"], error["detail"]["available"]) == ("INSUFFICIENT_STOCK", "7")
    assert error["detail"]["blocked"] == {"short_shelf_life": "4"}
    assert "is not a duration" in run("reserve", "SO-4", "SERUM", "1", "--min-shelf-life", "a month",
                                      exit_code=2).stderr
    assert allocations(run, "SO-5") == {}
    run("reserve", "SO-5", "SERUM", "8")  # without it, L2 goes first
    assert allocations(run, "SO-5") == {"L2": ("4", "0", "0"), "L1": ("4", "0", "0")}


# -- the expiry sweep ----------------------------------------------------------------------------------------------


def test_expire_lots_writes_off_expired_stock_and_moves_its_holds(serum: Inventory, run: Run,
                                                                   db: psycopg.Connection[Any], today: date,
                                                                   login_dsn: Callable[[str], str]) -> None:
    run("reserve", "SO-1", "SERUM", "3")  # from L2
    expire_lot(db, "SERUM", "L2", today - timedelta(days=1))
    error = json_error(run, "expire-lots", exit_code=4, dsn_=login_dsn("pyinv_clerk"))  # schedulers and admins
    assert (error["code"], error["sqlstate"]) == ("PERMISSION_DENIED", "42501")
    lot = run_json(run, "lots", "--lot", "L2")[0]
    assert (lot["available"], lot["sellable"], lot["blocked_reason"]) == ("0", False, "expired")
    assert run_json(run, "lots", "expiring", "--status", "EXPIRED")[0]["days_left"] == -1

    assert run("expire-lots").stdout.strip() == (
        "expired 1 lot, 4 units written off; 1 hold re-allocated, 0 released (0 units)")
    assert allocations(run, "SO-1").get("L1") == ("3", "0", "0")
    stock = run_json(run, "stock", "--sku", "SERUM")[0]
    assert (stock["on_hand"], stock["reserved"], stock["available"], stock["blocked"]) == ("10", "3", "7", "0")
    assert run_json(run, "expire-lots") == {"lots_expired": 0, "units_written_off": "0", "holds_reallocated": 0,
                                            "holds_released": 0, "units_released": "0"}
    assert run_json(run, "lots", "expiring", "--status", "EXPIRED") == []  # nothing left on hand in it


# -- the Python clients ----------------------------------------------------------------------------------------


def test_the_client_returns_typed_lot_rows(serum: Inventory, db: psycopg.Connection[Any], today: date) -> None:
    inv = serum
    item = inv.create_item("VAX", "Vaccine", track_lots=True, requires_qc=True)
    assert isinstance(item, Item) and (item.track_lots, item.requires_qc) == (True, True)
    assert [i.requires_qc for i in inv.items() if i.sku in ("A1", "SERUM", "VAX")] == [False, False, True]
    inv.receive_stock("VAX", 5, lot_number="V1", expires_on=today + timedelta(days=20))

    lots = inv.lots(sku="SERUM")
    assert all(isinstance(lot, Lot) for lot in lots)
    assert [(lot.lot_number, lot.on_hand, lot.expires_on, lot.supplier_lot) for lot in lots] == [
        ("L2", 4, today + timedelta(days=10), None), ("L1", 10, today + timedelta(days=60), "S-1")]
    assert isinstance(lots[0].expires_on, date) and isinstance(lots[0].on_hand, Decimal)
    assert [lot.lot_number for lot in inv.lots(qc_status="PENDING")] == ["V1"]
    assert [lot.lot_number for lot in inv.lots(sku="SERUM", limit=1, offset=1)] == ["L1"]

    expiring = inv.expiring_lots()
    assert all(isinstance(row, ExpiringLot) for row in expiring)
    assert [(row.lot_number, row.days_left, row.expiry_status) for row in expiring] == [
        ("L2", 10, "EXPIRING"), ("V1", 20, "EXPIRING")]
    assert [row.lot_number for row in inv.expiring_lots(within_days=15)] == ["L2"]

    change = inv.set_lot_status("VAX", "V1", qc_status="PASSED", note="lab report 7")
    assert isinstance(change, LotStatusChange) and (change.qc_status, change.sellable) == ("PASSED", True)
    hold = inv.reserve_stock("SERUM", 2, "SO-1", min_shelf_life=timedelta(days=30))
    inv.reserve_order("SO-2", [{"sku": "SERUM", "quantity": 1}, {"sku": "VAX", "quantity": 1}])
    assert hold.quantity == 2
    taken = inv.lot_allocations(order_ref="SO-1")
    assert all(isinstance(row, LotAllocation) for row in taken)
    assert [(row.lot_number, row.quantity, row.hold_status) for row in taken] == [("L1", 2, "ACTIVE")]
    assert [(row.sku, row.lot_number) for row in inv.lot_allocations(order_ref="SO-2")] == [
        ("SERUM", "L2"), ("VAX", "V1")]
    assert [row.order_ref for row in inv.lot_allocations(sku="SERUM", limit=1)] == ["SO-2"]  # the newest

    inv.fulfill_order("SO-1")
    traced = inv.trace_lot("SERUM", "L1")
    assert all(isinstance(row, LotTrace) for row in traced)
    assert [(row.order_ref, row.allocated, row.fulfilled, row.hold_status) for row in traced] == [
        ("SO-1", 2, 2, "FULFILLED")]

    level = inv.stock_levels(sku="SERUM")[0]
    assert isinstance(level, StockRow) and (level.on_hand, level.reserved, level.blocked) == (12, 1, 0)
    assert inv.movements(sku="SERUM")[-1].lots is not None
    adjustment = inv.create_adjustment("SERUM", -1, "damage", "damaged", lot_number="L1")
    assert isinstance(adjustment, Adjustment) and adjustment.lot_number == "L1"
    assert inv.adjustments(sku="SERUM")[-1].lot_number == "L1"
    count = inv.record_count("SERUM", 7, lot_number="L1")
    assert isinstance(count, StockCount) and (count.lot_number, count.difference) == ("L1", 0)
    assert inv.cycle_counts(sku="SERUM")[-1].lot_number == "L1"
    transfer = inv.transfer_stock("SERUM", 1, "main", "east", lot_number="L1")
    assert transfer.to_on_hand == 1
    returned = inv.process_return("SO-1", "SERUM", 1, "unopened", lot_number="L1")
    assert returned.restocked

    expired = inv.expire_inventory_lots()
    assert isinstance(expired, LotExpiry) and expired.lots_expired == 0

    with raises_inventory_error(db, LotNotFound):
        inv.trace_lot("SERUM", "NOPE")
    with raises_inventory_error(db, LotNotFound):
        inv.set_lot_status("SERUM", "NOPE", quarantined=True)
    with raises_inventory_error(db, InvalidArgument) as caught:
        inv.receive_stock("SERUM", 1)
    assert caught.value.detail["argument"] == "lot_number"
    with raises_inventory_error(db, InsufficientStock) as caught:
        inv.reserve_stock("SERUM", 1, "SO-3", min_shelf_life=timedelta(days=365))
    assert caught.value.detail["blocked"]["short_shelf_life"] > 0


def test_set_lot_status_needs_an_admin(serum: Inventory, clerk: Inventory, db: psycopg.Connection[Any]) -> None:
    with raises_inventory_error(db, PermissionDenied):
        clerk.set_lot_status("SERUM", "L1", quarantined=True)
    assert [lot.lot_number for lot in clerk.lots(sku="SERUM")] == ["L2", "L1"]  # viewers and operators read them


def test_the_async_client_has_the_lot_methods(dsn: str, serum: Inventory, today: date) -> None:
    async def scenario() -> tuple[list[Lot], list[LotTrace], LotStatusChange, list[ExpiringLot]]:
        async with await AsyncInventory.connect(dsn) as client:
            await client.receive_stock("SERUM", 3, lot_number="L9", expires_on=today + timedelta(days=5),
                                       idempotency_key="PO-9/SERUM")
            await client.reserve_stock("SERUM", 2, "SO-A")  # from L9, the first to expire
            return (await client.lots(sku="SERUM"), await client.trace_lot("SERUM", "L9"),
                    await client.set_lot_status("SERUM", "L9", quarantined=True),
                    await client.expiring_lots(sku="SERUM"))

    lots, traced, change, expiring = asyncio.run(scenario())
    assert all(isinstance(lot, Lot) for lot in lots)
    assert [(lot.lot_number, lot.on_hand, lot.reserved) for lot in lots] == [("L9", 3, 2), ("L2", 4, 0),
                                                                             ("L1", 10, 0)]
    assert all(isinstance(row, LotTrace) for row in traced)
    assert [(row.order_ref, row.allocated, row.hold_status) for row in traced] == [("SO-A", 2, "ACTIVE")]
    assert isinstance(change, LotStatusChange) and change.quarantined and not change.sellable
    assert (change.holds_reallocated, change.holds_released) == (1, 0)  # moved to L2
    assert [(row.lot_number, row.days_left) for row in expiring] == [("L9", 5), ("L2", 10)]
    assert [(lot.lot_number, lot.reserved) for lot in serum.lots(sku="SERUM")] == [("L9", 0), ("L2", 2), ("L1", 0)]


def test_the_lot_lists_page_and_show_every_column(serum: Inventory, run: Run) -> None:
    run("reserve", "SO-1", "SERUM", "1")
    run("reserve", "SO-2", "SERUM", "1")
    assert header(run("lots", "allocations").stdout) == list(LOT_ALLOCATION_COLUMNS)
    newest = run("--json", "lots", "allocations", "--limit", "1")
    assert [row["order_ref"] for row in json.loads(newest.stdout)] == ["SO-2"]
    assert "more rows: use --offset 1" in newest.stderr
    assert header(run("lots", "--wide").stdout) == list(Lot.__dataclass_fields__)
    assert header(run("lots", "allocations", "--wide").stdout) == list(LotAllocation.__dataclass_fields__)
    assert run("lots", "allocations", "--order", "SO-404").stdout.strip() == "no lot allocations"


def test_the_lots_of_a_movement_come_back_exact(catalogue: Inventory) -> None:
    catalogue.create_item("BULK", "Bulk powder", unit_of_measure="kg", track_lots=True)
    catalogue.receive_stock("BULK", Decimal("987654321098.7654"), lot_number="B-1")
    [movement] = catalogue.movements("BULK")
    assert movement.lots == [{"lot_number": "B-1", "on_hand_delta": Decimal("987654321098.7654"),
                              "reserved_delta": Decimal(0)}]
    assert isinstance(movement.lots[0]["on_hand_delta"], Decimal)
