"""The `pyinv` command, run in-process with click's CliRunner against the per-test database."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Run
from helpers import MIGRATIONS, VERSIONS
from psycopg.conninfo import make_conninfo

from pyinv import Inventory
from pyinv.cli import DURATION, cli, format_decimal, table
from pyinv.demo import CATALOGUE, format_report, run_demo


def run_json(run: Run, *args: str, exit_code: int = 0, dsn_: str | None = None) -> Any:
    return json.loads(run("--json", *args, exit_code=exit_code, dsn_=dsn_).stdout)


def rows(stdout: str) -> list[list[str]]:
    """Data rows of a table: split on runs of 2+ spaces (cells may contain single spaces)."""
    lines = stdout.rstrip("\n").splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}, stdout  # the rule under the header
    return [[cell for cell in line.split("  ") if cell.strip()] for line in lines[2:]]


def cells(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in row] for row in rows(stdout)]


# -- formatting helpers -----------------------------------------------------------------------------------


def test_decimals_print_without_trailing_zeros() -> None:
    assert format_decimal(Decimal("10.0000")) == "10"
    assert format_decimal(Decimal("2.5000")) == "2.5"
    assert format_decimal(Decimal("1E+2")) == "100"
    assert format_decimal(Decimal("-0.0000")) == "0"
    assert format_decimal(Decimal("0.0001")) == "0.0001"


def test_table_aligns_numbers_right_and_text_left() -> None:
    out = table([{"sku": "A1", "qty": Decimal("10.0000")}, {"sku": "LONG-SKU", "qty": Decimal("2.5")}],
                ("sku", "qty"))
    assert out.splitlines() == [
        "sku       qty",
        "--------- ---",
        "A1         10",
        "LONG-SKU  2.5",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("90", timedelta(seconds=90)), ("45s", timedelta(seconds=45)), ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)), ("1.5h", timedelta(minutes=90)),
])
def test_expires_in_durations(text: str, expected: timedelta) -> None:
    assert DURATION.convert(text, None, None) == expected


# -- catalogue ------------------------------------------------------------------------------------------------


def test_item_add_status_and_list(run: Run) -> None:
    added = run("item", "add", "TEE-M", "T-shirt, M", "--unit-cost", "12.50")
    assert cells(added.stdout) == [["TEE-M", "T-shirt, M", "each", "12.5", "active", "no", "1"]]
    mug = run_json(run, "item", "add", "MUG", "Mug", "--uom", "box", "--track-lots")
    assert (mug["sku"], mug["unit_of_measure"], mug["unit_cost"], mug["track_lots"]) == ("MUG", "box", None, True)
    datetime.fromisoformat(mug["created_at"])  # ISO 8601

    on_hold = run_json(run, "item", "status", "MUG", "on_hold")
    assert on_hold["status"] == "on_hold"
    listed = run_json(run, "item", "list")
    assert [(i["sku"], i["status"], i["unit_cost"]) for i in listed] == [("MUG", "on_hold", None),
                                                                       ("TEE-M", "active", "12.5")]
    assert [row[0] for row in cells(run("item", "list").stdout)] == ["MUG", "TEE-M"]
    run("item", "status", "MUG", "sold_out", exit_code=2)  # not a status: click refuses it


def test_location_add_and_list(run: Run) -> None:
    run("location", "add", "store-1", "Store 1")
    assert [row[:2] for row in cells(run("location", "list").stdout)][-1] == ["store-1", "Store 1"]
    listed = run_json(run, "location", "list")
    assert [location["code"] for location in listed] == ["main", "store-1"]
    assert run_json(run, "location", "add", "store-1", "Store 1")["name"] == "Store 1"  # idempotent


def test_receive_replays_with_its_key(run: Run) -> None:
    run("item", "add", "A1", "Widget")
    received = run("receive", "A1", "10", "--reference", "PO-1", "--unit-cost", "2.5", "--key", "po-1")
    assert cells(received.stdout) == [["A1", "main", "10", "0", "10"]]
    assert "10.0000" not in received.stdout
    again = run_json(run, "receive", "A1", "10", "--reference", "PO-1", "--unit-cost", "2.5", "--key", "po-1")
    assert (again["on_hand"], again["available"]) == ("10", "10")
    [level] = run_json(run, "stock")
    assert level["on_hand"] == "10"
    [movement] = run_json(run, "movements", "--sku", "A1")
    assert (movement["movement_type"], movement["reference"], movement["idempotency_key"]) == ("RECEIVE", "PO-1",
                                                                                                "po-1")
    assert run_json(run, "item", "list")[0]["unit_cost"] == "2.5"


# -- the order lifecycle --------------------------------------------------------------------------------------


def test_reserve_one_line_and_many(catalogue: Inventory, run: Run) -> None:
    before = datetime.now(timezone.utc)
    hold = run_json(run, "reserve", "SO-1", "A1", "3", "--expires-in", "15m", "--key", "checkout-1")
    assert (hold["order_ref"], hold["sku"], hold["location"], hold["quantity"], hold["status"]) == (
        "SO-1", "A1", "main", "3", "ACTIVE")
    expires_at = datetime.fromisoformat(hold["expires_at"])
    assert before + timedelta(minutes=14) < expires_at < before + timedelta(minutes=16)
    # The same key again replays the same hold.
    assert run_json(run, "reserve", "SO-1", "A1", "3", "--expires-in", "15m", "--key", "checkout-1") == hold

    lines = run("reserve", "SO-2", "--line", "A1:1", "--line", "A1:2", "--line", "B2:1:main")
    assert [(r[2], r[3], r[4], r[7]) for r in cells(lines.stdout)] == [("A1", "main", "3", "ACTIVE"),
                                                                     ("B2", "main", "1", "ACTIVE")]
    levels = {level["sku"]: level for level in run_json(run, "stock")}
    assert (levels["A1"]["reserved"], levels["A1"]["available"]) == ("6", "4")
    assert (levels["B2"]["reserved"], levels["B2"]["available"]) == ("1", "4")

    both = run("reserve", "SO-3", "A1", "1", "--line", "B2:1", exit_code=2)
    assert "not both" in both.stderr
    assert "is not SKU:QTY" in run("reserve", "SO-3", "--line", "A1", exit_code=2).stderr
    assert "SKU and QTY" in run("reserve", "SO-3", "A1", exit_code=2).stderr


def test_fulfill_cancel_and_return(catalogue: Inventory, run: Run) -> None:
    run("reserve", "SO-1", "--line", "A1:4", "--line", "B2:2")
    partial = run_json(run, "fulfill", "SO-1", "--sku", "A1", "--quantity", "1")
    assert [(c["sku"], c["movement_type"], c["quantity"], c["quantity_open"], c["status"]) for c in partial] == [
        ("A1", "SHIP", "1", "3", "ACTIVE")]
    rest = run("fulfill", "SO-1")
    assert [(r[2], r[4], r[5], r[8]) for r in cells(rest.stdout)] == [("A1", "SHIP", "3", "FULFILLED"),
                                                                    ("B2", "SHIP", "2", "FULFILLED")]

    run("reserve", "SO-2", "A1", "2")
    [cancelled] = run_json(run, "cancel", "SO-2", "--key", "cancel-2")
    assert (cancelled["movement_type"], cancelled["quantity"], cancelled["status"]) == ("RELEASE", "2", "CANCELLED")
    assert "NO_RESERVATION" in run("cancel", "SO-2", exit_code=3).stderr  # nothing left to release
    assert run_json(run, "cancel", "SO-2", "--key", "cancel-2") == [cancelled]  # the keyed call replays

    restocked = run_json(run, "return", "SO-1", "A1", "2", "--reason", "wrong size")
    assert (restocked["quantity"], restocked["reason"], restocked["restocked"]) == ("2", "wrong size", True)
    damaged = run("return", "SO-1", "B2", "1", "--reason", "damaged", "--no-restock")
    assert [(r[2], r[4], r[5], r[6]) for r in cells(damaged.stdout)] == [("B2", "1", "damaged", "no")]

    levels = {level["sku"]: level for level in run_json(run, "stock")}
    assert (levels["A1"]["on_hand"], levels["A1"]["reserved"]) == ("8", "0")  # 10 - 4 shipped + 2 back
    assert (levels["B2"]["on_hand"], levels["B2"]["reserved"]) == ("3", "0")  # not restocked
    too_many = run("return", "SO-1", "A1", "3", "--reason", "all of it", exit_code=3)
    assert "QUANTITY_MISMATCH (PT409)" in too_many.stderr


def test_cancel_without_holds_is_an_error(catalogue: Inventory, run: Run) -> None:
    result = run("cancel", "SO-404", exit_code=3)
    assert "NO_RESERVATION (PT404)" in result.stderr
    assert "what to do:" in result.stderr


# -- readers ----------------------------------------------------------------------------------------------------


def test_stock_table_and_json(catalogue: Inventory, run: Run) -> None:
    catalogue.reserve_stock("A1", 3, "SO-1")
    catalogue.receive_stock("B2", 2, location="east")
    out = run("stock").stdout
    header = out.splitlines()[0]
    assert header.split() == ["sku", "location", "on_hand", "reserved", "available", "status"]
    assert cells(out) == [["A1", "main", "10", "3", "7", "active"], ["B2", "east", "2", "0", "2", "active"],
                          ["B2", "main", "5", "0", "5", "active"]]
    # Numbers are right-aligned under their headers.
    for column in ("on_hand", "reserved", "available"):
        end = header.index(column) + len(column)
        for line in out.splitlines()[2:]:
            assert line[end - 1] != " " and line[end] == " ", (column, line)

    levels = run_json(run, "stock")
    assert [(lv["sku"], lv["location"], lv["on_hand"], lv["reserved"], lv["available"]) for lv in levels] == [
        ("A1", "main", "10", "3", "7"), ("B2", "east", "2", "0", "2"), ("B2", "main", "5", "0", "5")]
    assert all(isinstance(lv["version"], int) for lv in levels)
    assert [lv["location"] for lv in run_json(run, "stock", "--sku", "B2")] == ["east", "main"]
    assert run_json(run, "stock", "--sku", "B2", "--location", "east")[0]["on_hand"] == "2"
    assert run("stock", "--sku", "NOPE").stdout.strip() == "no stock levels"
    # --json works before or after the command name
    assert json.loads(run("stock", "--json").stdout) == levels


def test_reservations_and_movements(catalogue: Inventory, run: Run) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    catalogue.reserve_order("SO-2", [{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 1}])
    catalogue.fulfill_order("SO-1")

    one = run_json(run, "reservations", "--order", "SO-1")
    assert [(r["sku"], r["quantity"], r["quantity_fulfilled"], r["status"]) for r in one] == [
        ("A1", "2", "2", "FULFILLED")]
    active = run_json(run, "reservations", "--status", "active")
    assert sorted((r["order_ref"], r["sku"]) for r in active) == [("SO-2", "A1"), ("SO-2", "B2")]
    table_rows = cells(run("reservations").stdout)
    assert [(r[1], r[2], r[7]) for r in table_rows] == [("SO-1", "A1", "FULFILLED"), ("SO-2", "A1", "ACTIVE"),
                                                      ("SO-2", "B2", "ACTIVE")]

    moves = run_json(run, "movements", "--sku", "A1")
    assert [(m["movement_type"], m["on_hand_delta"], m["reserved_delta"]) for m in moves] == [
        ("RECEIVE", "10", "0"), ("RESERVE", "0", "2"), ("RESERVE", "0", "1"), ("SHIP", "-2", "-2")]
    assert [m["movement_type"] for m in run_json(run, "movements", "--reference", "SO-1")] == ["RESERVE", "SHIP"]
    assert len(run_json(run, "movements", "--limit", "2")) == 2
    text = cells(run("movements", "--sku", "A1").stdout)
    assert [(r[1], r[4], r[6]) for r in text][-1] == ("SHIP", "-2", "8")


# -- checks and maintenance ---------------------------------------------------------------------------------------


@pytest.mark.breaks_invariants
def test_verify_passes_then_reports_tampering(catalogue: Inventory, run: Run, db) -> None:
    assert run("verify").stdout.strip() == "books balance"
    assert run_json(run, "verify") == {"balanced": True, "violations": []}
    db.execute("alter table inventory.stock_levels disable trigger stock_levels_record_change")
    db.execute("update inventory.stock_levels set on_hand = on_hand + 5"
               " where item_id = (select item_id from inventory.items where sku = 'A1')")
    db.execute("alter table inventory.stock_levels enable always trigger stock_levels_record_change")
    broken = run("verify", exit_code=1)
    assert [row[:5] for row in cells(broken.stdout.rsplit("\n", 2)[0])] == [
        ["on_hand_equals_ledger", "A1", "main", "10", "15"]]
    assert "1 violation: the books do not balance" in broken.stdout
    report = run_json(run, "verify", exit_code=1)
    assert report["balanced"] is False
    assert [(v["invariant"], v["expected"], v["actual"]) for v in report["violations"]] == [
        ("on_hand_equals_ledger", "10", "15")]


def test_expire_releases_overdue_holds_in_batches(catalogue: Inventory, run: Run) -> None:
    for order in ("SO-1", "SO-2", "SO-3"):
        run("reserve", order, "A1", "1", "--expires-in", "1")
    run("reserve", "SO-4", "A1", "2")  # 24 hours: stays
    time.sleep(1.2)
    result = run("expire", "--batch-size", "2")
    assert result.stdout.strip() == "expired 3 reservations"
    assert "expired 3 so far (2 batches)" in result.stderr  # the running count
    [level] = run_json(run, "stock", "--sku", "A1")
    assert (level["reserved"], level["available"]) == ("2", "8")
    assert sorted(r["order_ref"] for r in run_json(run, "reservations", "--status", "EXPIRED")) == [
        "SO-1", "SO-2", "SO-3"]
    assert run_json(run, "expire") == {"expired": 0, "batches": 1}


# -- errors ------------------------------------------------------------------------------------------------------------


def test_business_errors_go_to_stderr_with_advice(catalogue: Inventory, run: Run) -> None:
    result = run("reserve", "SO-1", "A1", "11", exit_code=3)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: insufficient stock for A1 at main"
    assert lines[1] == "  code: INSUFFICIENT_STOCK (PT409), exit code 3"
    assert lines[2].startswith("  detail: ") and "requested=11" in lines[2] and "available=10" in lines[2]
    assert lines[3].startswith("  what to do: ") and "receive more stock" in lines[3]

    as_json = run("--json", "reserve", "SO-1", "A1", "11", exit_code=3)
    assert as_json.stdout == ""
    error = json.loads(as_json.stderr)["error"]
    assert (error["code"], error["sqlstate"], error["exit_code"]) == ("INSUFFICIENT_STOCK", "PT409", 3)
    assert (error["detail"]["requested"], error["detail"]["available"]) == ("11", "10")
    assert "receive more stock" in error["advice"]

    unknown = run("receive", "NOPE", "1", exit_code=3)
    assert "PRODUCT_NOT_FOUND (PT404)" in unknown.stderr and "pyinv item add" in unknown.stderr
    invalid = run("receive", "A1", "0", exit_code=3)
    assert "INVALID_QUANTITY (22023)" in invalid.stderr
    assert "is not a number" in run("receive", "A1", "ten", exit_code=2).stderr


def test_a_database_without_the_schema_asks_for_migrate(empty_database: Callable[[], str], run: Run) -> None:
    dsn = empty_database()
    for args in (("stock",), ("item", "add", "A1", "Widget"), ("verify",)):
        result = run(*args, exit_code=6, dsn_=dsn)
        assert "run `pyinv migrate` first" in result.stderr, result.stderr
    assert run("migrate", dsn_=dsn).stdout.strip() == "applied " + ", ".join(MIGRATIONS)
    assert run("stock", dsn_=dsn).stdout.strip() == "no stock levels"
    assert run("migrate", dsn_=dsn).stdout.strip() == "up to date"


def test_an_unreachable_database_is_reported_without_traceback(run: Run) -> None:
    result = run("stock", exit_code=5, dsn_="postgresql://pyinv@127.0.0.1:1/nothing?connect_timeout=3")
    assert result.stderr.startswith("error: cannot connect to the database")
    assert "CONNECTION_FAILED" in result.stderr
    assert "--dsn" in result.stderr and "pyinv db start" in result.stderr
    bad = run("stock", exit_code=2, dsn_="nonsense=1")
    assert "INVALID_DSN" in bad.stderr


# -- migrations, SQL bundle, embedded server ---------------------------------------------------------------


def test_migrate_status_and_rollback(run: Run) -> None:
    latest = MIGRATIONS[-1]
    applied = [[name, version, "yes", "migrate"] for name, version in zip(MIGRATIONS, VERSIONS, strict=True)]
    assert cells(run("migrate", "--status").stdout) == applied
    assert run_json(run, "migrate", "--status") == [
        {"id": name, "applied": True, "version": version, "recorded_by": "migrate"}
        for name, version in zip(MIGRATIONS, VERSIONS, strict=True)]
    assert run("migrate").stdout.strip() == "up to date"
    declined = run("migrate", "--rollback", input="n\n", exit_code=1)
    assert f"Roll back migration {latest}" in declined.stderr
    assert cells(run("migrate", "--status").stdout) == applied
    for name in MIGRATIONS[::-1]:
        assert run_json(run, "migrate", "--rollback", "--yes") == {"rolled_back": [name]}
    assert run_json(run, "migrate", "--status") == [
        {"id": name, "applied": False, "version": version, "recorded_by": None}
        for name, version in zip(MIGRATIONS, VERSIONS, strict=True)]
    assert "run `pyinv migrate` first" in run("stock", exit_code=6).stderr
    assert run_json(run, "migrate") == {"applied": MIGRATIONS}
    assert run("verify").stdout.strip() == "books balance"


def test_sql_bundle_is_one_transaction() -> None:
    result = CliRunner().invoke(cli, ["sql", "bundle"])
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("-- pyinv ")
    statements = [line for line in out.splitlines() if line and not line.startswith("--")]
    assert statements[0] == "begin;"
    assert statements[-1] == "commit;"
    assert "create schema inventory " in out and "create schema inventory_api " in out
    assert out.index("-- 00_roles_schemas.sql") < out.index("-- 72_api_stock.sql") < out.index("-- 99_finish.sql")


def test_db_status_of_an_unused_data_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYINV_DATA_DIR", str(tmp_path / "pgdata"))
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code == 0, result.stderr
    assert f"data dir:    {tmp_path / 'pgdata'}" in result.stdout
    assert "running:     no" in result.stdout and "pid:         -" in result.stdout
    status = json.loads(CliRunner().invoke(cli, ["--json", "db", "status"]).stdout)
    assert status == {"data_dir": str(tmp_path / "pgdata"), "initialised": False, "running": False, "pid": None,
                      "url": None}
    assert CliRunner().invoke(cli, ["db", "stop"]).stdout.strip() == "not running"


# -- the demo --------------------------------------------------------------------------------------------------


@pytest.fixture
def demo_database(dsn: str, db) -> Iterator[str]:
    """A demo database name unique to this test run (dropped afterwards)."""
    name = f"pyinv_demo_test_{os.getpid()}"
    yield name
    db.execute(f'drop database if exists "{name}" with (force)')


def test_demo_races_for_scarce_stock_and_oversells_nothing(run: Run, dsn: str, demo_database: str) -> None:
    report = run_json(run, "demo", "--workers", "4", "--orders", "60", "--seed", "7", "--database", demo_database)
    assert report["ok"] is True and report["books_balance"] is True
    assert report["database"] == demo_database
    assert report["violations"] == []
    assert (report["oversold_units"], report["oversold_levels"], report["overshipped_units"]) == (0, 0, 0)
    assert report["ledger_agrees"] is True and report["replay_mismatches"] == 0
    assert report["orders"] == 60 and report["workers"] == 4
    assert report["orders_reserved"] + report["orders_rejected"] == 60
    assert report["orders_rejected"] > 0 and report["rejections"].get("INSUFFICIENT_STOCK", 0) > 0
    assert report["units_shipped"] > 0 and report["units_held"] >= report["units_shipped"]
    assert report["idempotent_replays"] > 0
    assert report["items"] == len(CATALOGUE) == 12

    # The user's database is untouched: the demo ran in a database of its own.
    assert run_json(run, "stock") == []
    assert [location["code"] for location in run_json(run, "location", "list")] == ["main"]
    demo_dsn = make_conninfo(dsn, dbname=demo_database)
    levels = [lv for lv in run_json(run, "stock", "--limit", "1000", dsn_=demo_dsn)
              if lv["sku"].startswith(report["run_id"] + "-")]
    assert len(levels) >= 20 and {lv["location"] for lv in levels} == {"main", "store-1"}
    assert all(Decimal(lv["reserved"]) <= Decimal(lv["on_hand"]) for lv in levels)
    assert run("verify", dsn_=demo_dsn).stdout.strip() == "books balance"

    # The next demo replaces the demo database; the text summary says where the shop is.
    again = run("demo", "--workers", "2", "--orders", "20", "--seed", "7", "--database", demo_database)
    assert "verify       books balance" in again.stdout and "oversold     0 units" in again.stdout
    assert f"stays in the database {demo_database}" in again.stdout
    assert report["run_id"] not in run("stock", "--limit", "1000", dsn_=demo_dsn).stdout
    # Never the user's own database, and only names that say they are the demo's.
    mine = run("demo", "--database", demo_database, dsn_=demo_dsn, exit_code=2)
    assert "the demo needs one of its own" in mine.stderr
    assert "must start with pyinv_demo" in run("demo", "--database", "shop", exit_code=2).stderr


def test_run_demo_runs_again_on_the_same_database(dsn: str) -> None:
    first = run_demo(dsn, workers=2, orders=20, seed=7, progress=False)
    again = run_demo(dsn, workers=2, orders=20, seed=7, progress=False)
    assert again.run_id != first.run_id and again.ok and again.migrations_applied == []
    summary = format_report(again)
    assert "verify       books balance" in summary
    assert "oversold     0 units" in summary
