"""The commands added for issue 11: validate, user grant|revoke|list, audit log, returns, counts,
item update|delete|restore, reserve --reference-type/--notes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import Run

from pyinv import Inventory


def run_json(run: Run, *args: str, exit_code: int = 0, dsn_: str | None = None) -> Any:
    return json.loads(run("--json", *args, exit_code=exit_code, dsn_=dsn_).stdout)


def first_column(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[2:] if line.strip() and not line.startswith(" ")]


def test_validate_says_whether_a_quantity_fits_without_reserving(catalogue: Inventory, run: Run) -> None:
    fits = run("validate", "A1", "10")
    assert fits.stdout.splitlines()[0].split() == ["sku", "location", "quantity", "can_fulfill", "available",
                                                   "error_code"]
    assert fits.stdout.splitlines()[2].split() == ["A1", "main", "10", "yes", "10"]
    short = run_json(run, "validate", "A1", "11", exit_code=1)
    assert short == {"sku": "A1", "location": "main", "quantity": "11", "can_fulfill": False, "available": "10",
                     "error_code": "INSUFFICIENT_STOCK"}
    assert run_json(run, "validate", "A1", "1", "--location", "nowhere", exit_code=1)["error_code"] == (
        "LOCATION_NOT_FOUND")
    assert run_json(run, "validate", "NOPE", "1", exit_code=1)["error_code"] == "PRODUCT_NOT_FOUND"
    assert run_json(run, "stock", "--sku", "A1")[0]["reserved"] == "0"  # nothing was held


def test_user_grant_list_and_revoke(catalogue: Inventory, run: Run, login_dsn: Callable[[str], str]) -> None:
    granted = run_json(run, "user", "grant", "store_app", "operator", "--location", "east")
    assert (granted["user_id"], granted["role"], granted["location"]) == ("store_app", "operator", "east")
    run("user", "grant", "store_app", "viewer")
    run("user", "grant", "auditor", "admin")
    listed = run_json(run, "user", "list", "--user", "store_app")
    assert [(row["role"], row["location"]) for row in listed] == [("operator", "east"), ("viewer", None)]
    assert first_column(run("user", "list").stdout) == ["auditor", "store_app", "store_app"]
    assert [row["user_id"] for row in run_json(run, "user", "list", "--role", "admin")] == ["auditor"]

    assert run("user", "revoke", "store_app", "operator", "--location", "east").stdout.strip() == "revoked 1 grant"
    assert run_json(run, "user", "revoke", "store_app", "operator", "--location", "east") == {"revoked": 0}
    assert [row["role"] for row in run_json(run, "user", "list", "--user", "store_app")] == ["viewer"]
    clerk = login_dsn("pyinv_clerk")  # an operator, not an admin
    assert json.loads(run("--json", "user", "grant", "x", "admin", exit_code=4, dsn_=clerk).stderr)["error"][
        "code"] == "PERMISSION_DENIED"
    assert "'owner' is not one of" in run("user", "grant", "x", "owner", exit_code=2).stderr


def test_returns_and_counts_list(catalogue: Inventory, run: Run) -> None:
    run("reserve", "SO-1", "--line", "A1:3", "--line", "B2:1")
    run("fulfill", "SO-1")
    run("return", "SO-1", "A1", "2", "--reason", "wrong size")
    run("return", "SO-1", "B2", "1", "--reason", "damaged", "--no-restock")
    listed = run_json(run, "returns")
    assert [(r["sku"], r["quantity"], r["reason"], r["restocked"]) for r in listed] == [
        ("A1", "2", "wrong size", True), ("B2", "1", "damaged", False)]
    assert all(r["created_by"] for r in listed)
    assert [r["sku"] for r in run_json(run, "returns", "--sku", "B2")] == ["B2"]
    assert run("returns", "--order", "SO-404").stdout.strip() == "no returns"
    assert run("returns").stdout.splitlines()[0].split()[:3] == ["return_id", "order_ref", "sku"]

    assert run("counts").stdout.strip() == "no counts"
    run("count", "A1", "7")  # 9 on hand after the sale and the return: a difference of -2
    run("count", "B2", "4")
    counted = run_json(run, "counts")
    assert [(c["sku"], c["counted_quantity"], c["on_hand_at_count"], c["difference"]) for c in counted] == [
        ("A1", "7", "9", "-2"), ("B2", "4", "4", "0")]
    assert [c["sku"] for c in run_json(run, "counts", "--sku", "A1")] == ["A1"]
    assert len(run_json(run, "counts", "--limit", "1")) == 1


def test_item_update_delete_and_restore(catalogue: Inventory, run: Run) -> None:
    [a1] = [item for item in run_json(run, "item", "list") if item["sku"] == "A1"]
    version = a1["version"]
    updated = run_json(run, "item", "update", "A1", "--name", "Widget, blue", "--unit-cost", "3.5",
                       "--expected-version", str(version))
    assert (updated["name"], updated["unit_cost"], updated["unit_of_measure"]) == ("Widget, blue", "3.5",
                                                                                 a1["unit_of_measure"])
    assert updated["version"] > version
    stale = json.loads(run("--json", "item", "update", "A1", "--name", "Other", "--expected-version", str(version),
                           exit_code=3).stderr)["error"]
    assert (stale["code"], stale["sqlstate"]) == ("VERSION_CONFLICT", "PT409")
    assert "at least one of" in run("item", "update", "A1", exit_code=2).stderr

    # Soft delete: refused while stock is on hand, fine for an item without stock.
    assert json.loads(run("--json", "item", "delete", "A1", exit_code=3).stderr)["error"]["code"] == "INVALID_STATE"
    run("item", "add", "OLD-1", "Discontinued thing")
    deleted = run_json(run, "item", "delete", "OLD-1")
    assert deleted["deleted_at"] is not None and deleted["deleted_by"]
    assert "OLD-1" not in [item["sku"] for item in run_json(run, "item", "list")]
    assert "OLD-1" in [item["sku"] for item in run_json(run, "item", "list", "--include-deleted")]
    assert "PRODUCT_NOT_FOUND" in run("receive", "OLD-1", "1", exit_code=3).stderr
    restored = run_json(run, "item", "restore", "OLD-1")
    assert restored["deleted_at"] is None
    assert "OLD-1" in [item["sku"] for item in run_json(run, "item", "list")]


def test_audit_log_with_filters(catalogue: Inventory, run: Run, login_dsn: Callable[[str], str]) -> None:
    run("item", "add", "AUD-1", "Audited")
    rows = run_json(run, "audit", "log", "--table", "items")
    assert rows and {row["table_name"] for row in rows} == {"items"}
    mine = [row for row in rows if (row["new_row"] or {}).get("sku") == "AUD-1"]
    assert [row["operation"] for row in mine] == ["INSERT"]
    actor = mine[0]["actor"]
    assert all(row["actor"] == actor for row in run_json(run, "audit", "log", "--actor", actor))
    assert run_json(run, "audit", "log", "--actor", "nobody-at-all") == []
    assert len(run_json(run, "audit", "log", "--since", "1h")) >= len(rows)
    assert run_json(run, "audit", "log", "--until", "2000-01-01") == []
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert run_json(run, "audit", "log", "--since", future) == []
    assert "neither a time" in run("audit", "log", "--since", "yesterday", exit_code=2).stderr
    assert len(run_json(run, "audit", "log", "--limit", "2")) == 2
    table = run("audit", "log", "--table", "items").stdout.splitlines()[0].split()
    assert table == ["audit_id", "created_at", "table_name", "operation", "actor", "login", "sealed", "chain_seq"]
    # Admins only: an operator sees no rows.
    assert run("audit", "log", dsn_=login_dsn("pyinv_clerk")).stdout.strip() == "no audit rows"


def test_reserve_with_reference_type_and_notes(catalogue: Inventory, run: Run) -> None:
    hold = run_json(run, "reserve", "WO-7", "A1", "2", "--reference-type", "work_order", "--notes", "line 3 rework")
    assert (hold["reference_type"], hold["notes"]) == ("work_order", "line 3 rework")
    holds = run_json(run, "reserve", "TR-1", "--line", "A1:1", "--line", "B2:1", "--reference-type", "transfer")
    assert {h["reference_type"] for h in holds} == {"transfer"}
    plain = run_json(run, "reserve", "SO-9", "B2", "1")
    assert plain["reference_type"] == "order"
    assert "'loan' is not one of" in run("reserve", "X", "A1", "1", "--reference-type", "loan", exit_code=2).stderr
