"""The client methods of issue 11's API: item update / soft delete / restore with optimistic
locking, reservation reference types and notes, policy versions, the audit log, users' roles,
returns, counts, the error catalogue and the schema version, each returning its typed row."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from helpers import MIGRATIONS

import pyinv
from pyinv import Inventory
from pyinv.errors import CATALOGUE
from pyinv.models import AuditEntry, ErrorCode, Item, ReturnRow, StockCount, UserRole, UserRoleRow
from pyinv.resources import schema_files


def test_an_item_is_updated_only_at_the_version_read(catalogue: Inventory) -> None:
    [before] = [item for item in catalogue.items() if item.sku == "A1"]
    updated = catalogue.update_item("A1", name="Widget v2", expected_version=before.version)
    assert isinstance(updated, Item)
    assert (updated.name, updated.unit_of_measure, updated.version) == ("Widget v2", before.unit_of_measure,
                                                                       before.version + 1)
    with pytest.raises(pyinv.VersionConflict) as conflict:
        catalogue.update_item("A1", name="Lost update", expected_version=before.version)
    assert conflict.value.actual_sqlstate == "PT409" and conflict.value.hint == "VERSION_CONFLICT"
    assert [item.name for item in catalogue.items() if item.sku == "A1"] == ["Widget v2"]
    assert catalogue.update_item("A1", unit_cost="2.50").unit_cost == 2.5  # no version: last writer wins


def test_an_item_is_soft_deleted_and_restored(catalogue: Inventory) -> None:
    with pytest.raises(pyinv.InvalidState):
        catalogue.delete_item("A1")  # stock on hand
    spare = catalogue.create_item("SPARE", "Spare part")
    deleted = catalogue.delete_item("SPARE", expected_version=spare.version)
    assert deleted.deleted_at is not None and deleted.deleted_by
    assert [item.sku for item in catalogue.items()] == ["A1", "B2"]
    assert [item.sku for item in catalogue.items(include_deleted=True)] == ["A1", "B2", "SPARE"]
    restored = catalogue.restore_item("SPARE")
    assert (restored.deleted_at, restored.deleted_by) == (None, None)
    assert [item.sku for item in catalogue.items()] == ["A1", "B2", "SPARE"]


def test_reservations_carry_a_reference_type_and_notes(catalogue: Inventory) -> None:
    plain = catalogue.reserve_stock("A1", 1, "SO-1")
    assert (plain.reference_type, plain.notes) == ("order", None)
    hold = catalogue.reserve_stock("A1", 2, "WO-7", reference_type="work_order", notes="line 3")
    assert (hold.reference_type, hold.notes) == ("work_order", "line 3")
    [line] = catalogue.reserve_order("TR-1", [{"sku": "B2", "quantity": 1}], reference_type="transfer",
                                     notes="to east")
    assert (line.reference_type, line.notes) == ("transfer", "to east")
    rows = {row.order_ref: (row.reference_type, row.notes) for row in catalogue.reservations()}
    assert rows == {"SO-1": ("order", None), "WO-7": ("work_order", "line 3"), "TR-1": ("transfer", "to east")}
    with pytest.raises(pyinv.InvalidArgument):
        catalogue.reserve_stock("A1", 1, "X-1", reference_type="gift")


def test_a_policy_is_changed_only_at_the_version_read(catalogue: Inventory) -> None:
    policy = catalogue.set_stock_policy("A1", "main", 3, 1)
    again = catalogue.set_stock_policy("A1", "main", 4, 1, expected_version=policy.version)
    assert again.version == policy.version + 1 and again.reorder_point == 4
    with pytest.raises(pyinv.VersionConflict):
        catalogue.set_stock_policy("A1", "main", 9, 1, expected_version=policy.version)
    assert [p.version for p in catalogue.stock_policies(sku="A1")] == [again.version]


def test_the_audit_log_is_read_with_filters(catalogue: Inventory) -> None:
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    catalogue.create_item("AUD-1", "Audited")
    catalogue.set_item_status("AUD-1", "on_hold")
    rows = catalogue.audit_log(table="items", since=started)
    assert rows and all(isinstance(row, AuditEntry) and row.table_name == "items" for row in rows)
    assert [row.operation for row in rows][-2:] == ["INSERT", "UPDATE"]
    last = rows[-1]
    assert last.new_row is not None and last.new_row["status"] == "on_hold"
    assert last.old_row is not None and last.old_row["status"] == "active"
    assert catalogue.audit_log(table="items", since=started, limit=1) == [last]
    assert catalogue.audit_log(table="items", until=started, since=started - timedelta(days=1)) == [
        row for row in catalogue.audit_log(table="items") if row.created_at < started]
    assert catalogue.audit_log(actor="nobody-at-all") == []


def test_users_roles_are_granted_listed_and_revoked(catalogue: Inventory) -> None:
    granted = catalogue.grant_user_role("u-42", "operator", "main")
    assert isinstance(granted, UserRole) and (granted.user_id, granted.role, granted.location) == (
        "u-42", "operator", "main")
    [row] = catalogue.user_roles(user_id="u-42")
    assert isinstance(row, UserRoleRow) and row.user_role_id > 0 and row.granted_by
    assert catalogue.revoke_user_role("u-42", "operator", "main") == 1
    assert catalogue.user_roles(user_id="u-42") == []


def test_returns_and_counts_are_listed(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 3, "SO-R")
    catalogue.fulfill_order("SO-R")
    catalogue.process_return("SO-R", "A1", 1, "damaged", restock=False)
    [returned] = catalogue.returns(order_ref="SO-R")
    assert isinstance(returned, ReturnRow) and (returned.quantity, returned.restocked) == (1, False)
    assert returned.created_by
    count = catalogue.record_count("B2", 5)
    assert catalogue.cycle_counts(sku="B2") == [count] and isinstance(count, StockCount)


def test_the_error_catalogue_is_readable_and_matches_the_exceptions(catalogue: Inventory) -> None:
    codes = catalogue.error_codes()
    assert all(isinstance(code, ErrorCode) for code in codes)
    assert {code.code: code.sqlstate for code in codes} == {code: cls.sqlstate for code, cls in CATALOGUE.items()}
    assert catalogue.error_codes(limit=2, offset=1) == codes[1:3]


@pytest.mark.skipif(not any("function inventory_api.schema_version(" in path.read_text() for path in schema_files()),
                    reason="inventory_api.schema_version() comes with the install work (sql/34_schema_version.sql)")
def test_the_schema_version_names_the_newest_migration(catalogue: Inventory) -> None:
    installed = catalogue.schema_version()
    assert installed.migration == MIGRATIONS[-1] and re.fullmatch(r"\d+\.\d+\.\d+", installed.version)
