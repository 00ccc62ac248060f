"""Stock control (issue 5): reason codes, adjustments with approval, cycle counts, transfers, stock
policies, real-time reorder alerts, role checks through PostgREST, the CLI and bulk import."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import raises_db_error, raises_inventory_error, run_together

from pyinv import Inventory
from pyinv.errors import (
    AdjustmentNotFound,
    AlertNotFound,
    IdempotencyConflict,
    InsufficientStock,
    InvalidArgument,
    InvalidQuantity,
    InvalidState,
    LocationNotFound,
    PermissionDenied,
    ProductNotFound,
    SelfApprovalForbidden,
)


def level(inv: Inventory, sku: str = "A1", location: str = "main") -> tuple[Decimal, Decimal]:
    [row] = inv.stock_levels(sku, location)
    return row.on_hand, row.reserved


def last_movement(db) -> tuple[Any, ...]:
    return db.execute("select movement_type, on_hand_delta, reason, reference, related_movement_id, movement_id"
                      " from inventory.ledger order by movement_id desc limit 1").fetchone()


# -- reason codes --------------------------------------------------------------------------------------------


def test_reason_codes_are_seeded_with_their_approval_rule(inv: Inventory, db) -> None:
    rows = dict((code, (approval, threshold)) for code, approval, threshold in db.execute(
        "select reason_code, requires_approval, approval_threshold from inventory_api.reason_codes"))
    assert set(rows) == {"received", "correction", "cycle_count", "damaged", "shrinkage", "theft", "expired",
                         "promotion", "restock", "found", "quality_control", "other"}
    assert rows["theft"] == (True, 0)
    assert rows["restock"][0] is False


@pytest.mark.parametrize("reason", ["received", "restock", "found"])
def test_a_reason_that_only_adds_cannot_remove_stock(catalogue: Inventory, clerk: Inventory, db, reason: str) -> None:
    with raises_inventory_error(db, InvalidArgument) as caught:
        clerk.create_adjustment("A1", -8, "correction", reason)
    assert caught.value.detail["problem"] == "wrong direction for the reason"


@pytest.mark.parametrize("reason", ["damaged", "theft", "shrinkage", "expired"])
def test_a_reason_that_only_removes_cannot_add_stock(catalogue: Inventory, clerk: Inventory, db, reason: str) -> None:
    with raises_inventory_error(db, InvalidArgument) as caught:
        clerk.create_adjustment("A1", 3, "correction", reason)
    assert caught.value.detail["problem"] == "wrong direction for the reason"


def test_a_large_removal_needs_approval_whatever_the_reason(catalogue: Inventory, clerk: Inventory, db) -> None:
    changed = catalogue.set_reason_code("correction", requires_approval=False, approval_threshold=2)
    assert (changed.requires_approval, changed.approval_threshold, changed.direction) == (False, 2, "both")
    assert clerk.create_adjustment("A1", -5, "correction", "correction").status == "PENDING"
    assert clerk.create_adjustment("A1", 5, "correction", "correction").status == "APPLIED"  # additions need none
    assert clerk.create_adjustment("A1", -2, "correction", "correction").status == "APPLIED"  # at the threshold
    assert level(catalogue) == (13, 0)


def test_admins_set_reason_codes_and_every_change_is_audited(catalogue: Inventory, clerk: Inventory, db) -> None:
    [[before]] = db.execute("select max(audit_id) from inventory.audit_log").fetchall()
    damaged = catalogue.set_reason_code("damaged", requires_approval=True, approval_threshold=1)
    assert (damaged.approval_threshold, damaged.updated_by) == (1, db.info.user)
    assert clerk.create_adjustment("A1", -2, "damage", "damaged").status == "PENDING"
    [audit] = db.execute("select operation, old_row, new_row ->> 'approval_threshold' from inventory.audit_log"
                         " where table_name = 'reason_codes' and audit_id > %s", (before,)).fetchall()
    assert (audit[0], audit[1]["approval_threshold"], audit[2]) == ("UPDATE", 5, "1.0000")
    spillage = catalogue.set_reason_code("spillage", True, 0, direction="remove", description="Spilled")
    assert (spillage.reason_code, spillage.direction) == ("spillage", "remove")
    assert clerk.create_adjustment("A1", -1, "write_off", "spillage").status == "PENDING"
    with raises_inventory_error(db, InvalidArgument):
        catalogue.set_reason_code("leak", True, 0)  # a new code needs a direction and a description
    with raises_inventory_error(db, InvalidArgument):
        catalogue.set_reason_code("leak", True, 0, direction="sideways", description="Leaked")
    with raises_inventory_error(db, InvalidQuantity):
        catalogue.set_reason_code("damaged", True, -1)
    with raises_inventory_error(db, PermissionDenied):
        clerk.set_reason_code("damaged", False, 1000)


# -- adjustments ---------------------------------------------------------------------------------------------


def test_an_adjustment_below_its_threshold_applies_at_once(catalogue: Inventory, db) -> None:
    adjustment = catalogue.create_adjustment("A1", -2, "damage", "damaged", description="dropped")
    assert (adjustment.status, adjustment.requires_approval, adjustment.on_hand_at_apply) == ("APPLIED", False, 10)
    assert level(catalogue) == (8, 0)
    assert last_movement(db)[:4] == ("ADJUST", -2, "damaged", f"adjustment:{adjustment.adjustment_id}")
    assert adjustment.movement_id == last_movement(db)[5]


def test_a_large_adjustment_waits_for_another_admin(catalogue: Inventory, clerk: Inventory, db) -> None:
    pending = clerk.create_adjustment("A1", -6, "damage", "damaged")
    assert (pending.status, pending.requires_approval, pending.requested_by) == ("PENDING", True, "pyinv_clerk")
    assert level(catalogue) == (10, 0)
    with raises_inventory_error(db, PermissionDenied):  # operators do not approve
        clerk.approve_adjustment(pending.adjustment_id)
    approved = catalogue.approve_adjustment(pending.adjustment_id, note="seen it")
    assert (approved.status, approved.decided_by, approved.decision_note) == ("APPROVED", db.info.user, "seen it")
    assert (approved.on_hand_at_apply, level(catalogue)) == (10, (4, 0))
    assert last_movement(db)[:3] == ("ADJUST", -6, "damaged")
    # Double approval, and a rejection after the decision, are refused and change nothing.
    with raises_inventory_error(db, InvalidState) as caught:
        catalogue.approve_adjustment(pending.adjustment_id)
    assert caught.value.detail["status"] == "APPROVED"
    with raises_inventory_error(db, InvalidState):
        catalogue.approve_adjustment(pending.adjustment_id, "rejected")
    [row] = catalogue.adjustments(sku="A1", status="APPROVED")
    assert row.adjustment_id == pending.adjustment_id


def test_self_approval_is_refused(catalogue: Inventory, db) -> None:
    pending = catalogue.create_adjustment("A1", -1, "write_off", "theft")  # theft always needs approval
    assert pending.status == "PENDING"
    with raises_inventory_error(db, SelfApprovalForbidden) as caught:
        catalogue.approve_adjustment(pending.adjustment_id)
    assert caught.value.actual_sqlstate == "PT409"
    with raises_db_error(db, "PT409", "SELF_APPROVAL_FORBIDDEN"):
        db.execute("select inventory_api.approve_adjustment(adjustment_id => %s, decision => 'approved')",
                   (pending.adjustment_id,))
    # The requester may withdraw it (reject); nothing moves.
    rejected = catalogue.approve_adjustment(pending.adjustment_id, "rejected", note="typo")
    assert (rejected.status, rejected.movement_id) == ("REJECTED", None)
    assert level(catalogue) == (10, 0)


def test_approval_that_would_leave_less_on_hand_than_reserved_is_refused(catalogue: Inventory, clerk: Inventory,
                                                                          db) -> None:
    pending = clerk.create_adjustment("A1", -8, "write_off", "shrinkage")
    catalogue.reserve_stock("A1", 5, "SO-1")
    with raises_inventory_error(db, InsufficientStock) as caught:
        catalogue.approve_adjustment(pending.adjustment_id)
    assert (caught.value.detail["on_hand"], caught.value.detail["reserved"]) == (10, 5)
    assert catalogue.adjustments(status="PENDING")[0].adjustment_id == pending.adjustment_id
    catalogue.cancel_reservation("SO-1")
    assert catalogue.approve_adjustment(pending.adjustment_id).status == "APPROVED"
    assert level(catalogue) == (2, 0)


def test_an_immediate_adjustment_cannot_break_reserved(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 9, "SO-1")
    with raises_inventory_error(db, InsufficientStock):
        catalogue.create_adjustment("A1", -2, "correction", "correction")
    assert catalogue.create_adjustment("A1", -1, "correction", "correction").status == "APPLIED"


def test_found_stock_creates_the_level(catalogue: Inventory) -> None:
    adjustment = catalogue.create_adjustment("B2", 3, "found", "restock", location="east")
    assert adjustment.status == "APPLIED"
    assert level(catalogue, "B2", "east") == (3, 0)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"quantity_delta": 0}, InvalidQuantity),
    ({"quantity_delta": Decimal("0.00001")}, InvalidQuantity),
    ({"quantity_delta": Decimal("NaN")}, InvalidQuantity),
    ({"adjustment_type": "magic"}, InvalidArgument),
    ({"adjustment_type": "damage", "quantity_delta": 1}, InvalidArgument),
    ({"adjustment_type": "found", "quantity_delta": -1}, InvalidArgument),
    ({"reason_code": "nope"}, InvalidArgument),
    ({"sku": "NOPE"}, ProductNotFound),
    ({"location": "nowhere"}, LocationNotFound),
    ({"description": " padded "}, InvalidArgument),
])
def test_bad_adjustments_are_refused(catalogue: Inventory, db, arguments: dict[str, Any],
                                     error: type[Exception]) -> None:
    call = {"sku": "A1", "quantity_delta": -1, "adjustment_type": "correction", "reason_code": "correction"} | arguments
    with raises_inventory_error(db, error):
        catalogue.create_adjustment(**call)


def test_bad_decisions_are_refused(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, AdjustmentNotFound):
        catalogue.approve_adjustment(999999)
    pending = catalogue.create_adjustment("A1", -1, "write_off", "theft")
    with raises_inventory_error(db, InvalidArgument):
        catalogue.approve_adjustment(pending.adjustment_id, "maybe")


def test_adjustments_are_idempotent(catalogue: Inventory, db, ledger_rows) -> None:
    first = catalogue.create_adjustment("A1", -1, "correction", "correction", idempotency_key="adj-1")
    rows = ledger_rows()
    again = catalogue.create_adjustment("A1", -1, "correction", "correction", idempotency_key="adj-1")
    assert again.adjustment_id == first.adjustment_id and ledger_rows() == rows
    with raises_inventory_error(db, IdempotencyConflict):
        catalogue.create_adjustment("A1", -2, "correction", "correction", idempotency_key="adj-1")


def test_adjustments_are_audited(catalogue: Inventory, db) -> None:
    pending = catalogue.create_adjustment("A1", -1, "write_off", "theft")
    rows = db.execute("select operation::text, new_row ->> 'status' from inventory.audit_log"
                      " where table_name = 'adjustments' and new_row ->> 'adjustment_id' = %s",
                      (str(pending.adjustment_id),)).fetchall()
    assert rows == [("INSERT", "PENDING")]


# -- cycle counts --------------------------------------------------------------------------------------------


def test_a_matching_count_records_who_counted_and_adjusts_nothing(catalogue: Inventory, db, ledger_rows) -> None:
    rows = ledger_rows()
    counted = catalogue.record_count("A1", 10)
    assert (counted.difference, counted.adjustment_id) == (0, None)
    assert ledger_rows() == rows
    assert db.execute("select last_counted_by, last_counted_at is not null from inventory.stock_levels s"
                      " join inventory.items i using (item_id) where i.sku = 'A1'").fetchone() == (db.info.user, True)


def test_a_small_difference_is_applied_at_once(catalogue: Inventory, db) -> None:
    counted = catalogue.record_count("A1", 8)
    assert (counted.on_hand_at_count, counted.difference, counted.adjustment_status) == (10, -2, "APPLIED")
    assert level(catalogue) == (8, 0)
    assert last_movement(db)[:3] == ("ADJUST", -2, "cycle_count")


def test_a_pending_count_applies_its_delta_to_the_stock_at_approval(catalogue: Inventory, clerk: Inventory,
                                                                    db) -> None:
    counted = clerk.record_count("A1", 30)  # +20 is above the cycle_count threshold
    assert (counted.difference, counted.adjustment_status) == (20, "PENDING")
    assert level(catalogue) == (10, 0)
    # Stock keeps moving between the count and the approval: a receipt and a hold.
    catalogue.receive_stock("A1", 5)
    catalogue.reserve_stock("A1", 3, "SO-1")
    approved = catalogue.approve_adjustment(counted.adjustment_id)
    assert (approved.quantity_delta, approved.on_hand_at_request, approved.on_hand_at_apply) == (20, 10, 15)
    assert level(catalogue) == (35, 3)


def test_a_newer_count_supersedes_a_pending_one(catalogue: Inventory, clerk: Inventory) -> None:
    first = clerk.record_count("A1", 30)
    second = clerk.record_count("A1", 25)
    assert second.difference == 15
    statuses = {a.adjustment_id: a.status for a in catalogue.adjustments(sku="A1")}
    assert statuses == {first.adjustment_id: "SUPERSEDED", second.adjustment_id: "PENDING"}
    with pytest.raises(InvalidState):
        catalogue.approve_adjustment(first.adjustment_id)
    catalogue.approve_adjustment(second.adjustment_id)
    assert level(catalogue) == (25, 0)


def test_a_count_below_reserved_waits_for_an_admin(catalogue: Inventory, clerk: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 9, "SO-1")
    counted = clerk.record_count("A1", 8)  # small difference, but fewer units than are held
    assert counted.adjustment_status == "PENDING"
    with raises_inventory_error(db, InsufficientStock):
        catalogue.approve_adjustment(counted.adjustment_id)
    catalogue.cancel_reservation("SO-1")
    catalogue.approve_adjustment(counted.adjustment_id)
    assert level(catalogue) == (8, 0)


def test_bad_counts_are_refused(catalogue: Inventory, db) -> None:
    for quantity in (-1, Decimal("1.00001"), None):
        with raises_inventory_error(db, InvalidQuantity):
            catalogue.record_count("A1", quantity)  # type: ignore[arg-type]
    assert catalogue.record_count("A1", 0).adjustment_status == "APPLIED"  # -10: at the threshold, not above


# -- transfers ----------------------------------------------------------------------------------------------


def test_a_transfer_writes_linked_movements(catalogue: Inventory, db) -> None:
    moved = catalogue.transfer_stock("A1", 4, "main", "east", reference="TO-1")
    assert (moved.from_on_hand, moved.to_on_hand) == (6, 4)
    rows = db.execute("select movement_id, movement_type::text, on_hand_delta, related_movement_id, reference"
                      " from inventory.ledger where reference = 'TO-1' order by movement_id").fetchall()
    assert rows == [(moved.out_movement_id, "TRANSFER_OUT", -4, None, "TO-1"),
                    (moved.in_movement_id, "TRANSFER_IN", 4, moved.out_movement_id, "TO-1")]
    assert level(catalogue, "A1", "east") == (4, 0)


def test_a_transfer_never_moves_more_than_available(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 7, "SO-1")
    with raises_inventory_error(db, InsufficientStock) as caught:
        catalogue.transfer_stock("A1", 4, "main", "east")
    assert caught.value.detail["available"] == 3
    with raises_inventory_error(db, InsufficientStock):
        catalogue.transfer_stock("B2", 1, "east", "main")  # no level at east at all
    with raises_inventory_error(db, InvalidArgument):
        catalogue.transfer_stock("A1", 1, "main", "main")
    with raises_inventory_error(db, InvalidQuantity):
        catalogue.transfer_stock("A1", 0, "main", "east")
    catalogue.transfer_stock("A1", 3, "main", "east")


def test_a_transfer_is_idempotent(catalogue: Inventory, ledger_rows) -> None:
    first = catalogue.transfer_stock("A1", 2, "main", "east", idempotency_key="t-1")
    rows = ledger_rows()
    assert catalogue.transfer_stock("A1", 2, "main", "east", idempotency_key="t-1") == first
    assert ledger_rows() == rows


def test_opposite_transfers_at_once_never_deadlock(catalogue: Inventory, dsn: str) -> None:
    catalogue.receive_stock("A1", 100, location="east")
    catalogue.receive_stock("A1", 90)
    rounds = 25

    def work(n: int) -> int:
        source, target = ("main", "east") if n % 2 == 0 else ("east", "main")
        with Inventory.connect(dsn) as client:
            for _ in range(rounds):
                client.transfer_stock("A1", 1, source, target)
        return rounds

    outcomes = run_together(8, work)
    assert outcomes == [rounds] * 8, outcomes  # an exception (a deadlock) would show here
    assert (level(catalogue, "A1", "main"), level(catalogue, "A1", "east")) == ((100, 0), (100, 0))


# -- stock policies and reorder alerts ------------------------------------------------------------------------


def open_alerts(inv: Inventory, sku: str = "A1") -> list[tuple[str, str]]:
    return [(a.severity, a.status) for a in inv.reorder_alerts(sku=sku) if a.status in ("OPEN", "ACKNOWLEDGED")]


def test_alerts_open_rise_and_resolve_with_ordinary_stock_movement(catalogue: Inventory, connect) -> None:
    listener = connect()
    listener.execute("listen inventory_alerts")
    policy = catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2, reorder_quantity=20)
    assert (policy.reorder_point, policy.safety_stock) == (5, 2)
    assert catalogue.reorder_alerts() == []
    catalogue.reserve_stock("A1", 4, "SO-1")  # available 6: fine
    assert open_alerts(catalogue) == []
    catalogue.reserve_stock("A1", 1, "SO-2")  # available 5: at the reorder point
    assert open_alerts(catalogue) == [("REORDER", "OPEN")]
    notices = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=1)]
    [opened] = catalogue.reorder_alerts()
    assert notices == [{"event": "opened", "alert_id": opened.alert_id}]  # ids only: re-read under RLS
    catalogue.reserve_stock("A1", 2, "SO-3")  # available 3: still one REORDER alert
    assert open_alerts(catalogue) == [("REORDER", "OPEN")]
    catalogue.fulfill_order("SO-1")  # on_hand 6, reserved 3: available unchanged, no new alert
    catalogue.reserve_stock("A1", 1, "SO-4")  # available 2: at safety stock
    assert open_alerts(catalogue) == [("CRITICAL", "OPEN")]
    [alert] = catalogue.reorder_alerts()
    assert (alert.available_at_open, alert.available, alert.escalated_at is not None) == (5, 2, True)
    catalogue.receive_stock("A1", 10)  # available 12: recovered
    assert open_alerts(catalogue) == []
    [alert] = catalogue.reorder_alerts()
    assert (alert.status, alert.note) == ("RESOLVED", "stock recovered")
    catalogue.cancel_reservation("SO-2")
    catalogue.reserve_stock("A1", 8, "SO-5")  # available 5 again: a new alert
    assert open_alerts(catalogue) == [("REORDER", "OPEN")]
    assert len(catalogue.reorder_alerts()) == 2


def test_a_policy_on_low_stock_opens_an_alert_at_once(catalogue: Inventory) -> None:
    catalogue.set_stock_policy("B2", "main", reorder_point=5, safety_stock=1)
    assert open_alerts(catalogue, "B2") == [("REORDER", "OPEN")]
    catalogue.set_stock_policy("A1", "east", reorder_point=3, safety_stock=0)  # no level there yet
    assert [(a.location, a.severity) for a in catalogue.reorder_alerts(sku="A1")] == [("east", "CRITICAL")]


def test_alerts_are_acknowledged_dismissed_and_not_reopened_until_recovery(catalogue: Inventory, db) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2)
    catalogue.reserve_stock("A1", 5, "SO-1")
    [alert] = catalogue.reorder_alerts()
    acknowledged = catalogue.update_reorder_alert(alert.alert_id, "ACKNOWLEDGED", note="PO-77 placed")
    assert (acknowledged.status, acknowledged.acknowledged_by, acknowledged.note) == (
        "ACKNOWLEDGED", db.info.user, "PO-77 placed")
    catalogue.reserve_stock("A1", 3, "SO-2")  # worse: the acknowledged alert is raised
    assert open_alerts(catalogue) == [("CRITICAL", "ACKNOWLEDGED")]
    assert catalogue.update_reorder_alert(alert.alert_id, "DISMISSED").status == "DISMISSED"
    catalogue.reserve_stock("A1", 1, "SO-3")
    assert open_alerts(catalogue) == []  # dismissed for this episode
    with pytest.raises(InvalidState):
        catalogue.update_reorder_alert(alert.alert_id, "RESOLVED")
    with pytest.raises(AlertNotFound):
        catalogue.update_reorder_alert(999999, "RESOLVED")
    with pytest.raises(InvalidArgument):
        catalogue.update_reorder_alert(alert.alert_id, "OPEN")
    catalogue.cancel_reservation("SO-1")  # available 6: recovered, the episode ends
    catalogue.reserve_stock("A1", 2, "SO-4")  # available 4: a new alert
    assert open_alerts(catalogue) == [("REORDER", "OPEN")]


def test_at_most_one_open_alert_per_level(catalogue: Inventory, db) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2)
    catalogue.reserve_stock("A1", 6, "SO-1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open,"
                   " reorder_point, safety_stock) select item_id, location_id, 'REORDER', 0, 5, 2"
                   " from inventory.reorder_alerts")


def test_check_reorder_points_repairs_everything_in_one_pass(catalogue: Inventory, db) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2)
    catalogue.set_stock_policy("B2", "main", reorder_point=6, safety_stock=5)  # B2: 5 on hand -> CRITICAL
    catalogue.reserve_stock("A1", 6, "SO-1")
    assert db.execute("select count(*) from inventory.reorder_alerts").fetchone() == (2,)
    assert catalogue.check_reorder_points().to_dict() == {"levels_checked": 2, "opened": 0, "escalated": 0,
                                                          "resolved": 0}
    # A DBA deletes A1's alert and lowers B2's thresholds by hand, not through set_stock_policy (which
    # re-evaluates the level): both alerts are now wrong. (Every change of a level re-evaluates its
    # alert in the ledger trigger, which runs in replica mode too, so stock changes cannot leave one.)
    db.execute("delete from inventory.reorder_alerts where item_id = (select item_id from inventory.items"
               " where sku = 'A1')")
    db.execute("update inventory.stock_policies set reorder_point = 0, safety_stock = 0 where item_id ="
               " (select item_id from inventory.items where sku = 'B2')")
    assert catalogue.check_reorder_points().to_dict() == {"levels_checked": 2, "opened": 1, "escalated": 0,
                                                          "resolved": 1}
    assert open_alerts(catalogue, "A1") == [("REORDER", "OPEN")] and open_alerts(catalogue, "B2") == []


def test_reorder_recommendations(catalogue: Inventory) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2, reorder_quantity=12)
    catalogue.set_stock_policy("B2", "main", reorder_point=6, safety_stock=5, max_stock_level=30, lead_time_days=4)
    catalogue.set_stock_policy("A1", "east", reorder_point=0, safety_stock=0)
    rows = {(r.sku, r.location): (r.status, r.suggested_order_quantity) for r in catalogue.reorder_recommendations()}
    assert rows == {("A1", "main"): ("NORMAL", 0), ("B2", "main"): ("CRITICAL", 25), ("A1", "east"): ("CRITICAL", None)}
    catalogue.reserve_stock("A1", 5, "SO-1")
    assert catalogue.reorder_recommendations(sku="A1", location="main")[0].status == "REORDER"
    assert catalogue.reorder_recommendations(sku="A1", location="main")[0].suggested_order_quantity == 12


@pytest.mark.parametrize(("arguments", "error"), [
    ({"reorder_point": -1}, InvalidQuantity),
    ({"safety_stock": 6}, InvalidArgument),
    ({"max_stock_level": 4}, InvalidArgument),
    ({"reorder_quantity": 0}, InvalidQuantity),
    ({"lead_time_days": -1}, InvalidArgument),
    ({"sku": "NOPE"}, ProductNotFound),
])
def test_bad_policies_are_refused(catalogue: Inventory, db, arguments: dict[str, Any], error: type[Exception]) -> None:
    call = {"sku": "A1", "location": "main", "reorder_point": 5, "safety_stock": 2} | arguments
    with raises_inventory_error(db, error):
        catalogue.set_stock_policy(**call)


def test_the_reserve_path_of_items_without_a_policy_never_evaluates_alerts(catalogue: Inventory) -> None:
    catalogue.set_stock_policy("B2", "main", reorder_point=1, safety_stock=0)
    connection = catalogue.connection
    connection.execute("set track_functions = 'all'")
    try:
        with connection.transaction(force_rollback=True):
            catalogue.reserve_stock("A1", 1, "SO-1")
            calls = connection.execute("select coalesce(sum(calls), 0) from pg_stat_xact_user_functions"
                                       " where funcname = 'evaluate_reorder_alert'").fetchone()[0]
            assert calls == 0
            catalogue.reserve_stock("B2", 1, "SO-2")
            calls = connection.execute("select coalesce(sum(calls), 0) from pg_stat_xact_user_functions"
                                       " where funcname = 'evaluate_reorder_alert'").fetchone()[0]
            assert calls == 1
    finally:
        connection.execute("reset track_functions")


# -- roles through PostgREST -----------------------------------------------------------------------------------

def denied(db, call: Callable[[], Any], sqlstate: str = "42501", hint: str = "PERMISSION_DENIED") -> None:
    with raises_db_error(db, sqlstate, hint):
        call()


def test_roles_through_postgrest(gateway, catalogue: Inventory, db) -> None:
    clerk_main, clerk_east = gateway("authenticated", "u-clerk-main"), gateway("authenticated", "u-clerk-east")
    admin, admin_2 = gateway("authenticated", "u-admin"), gateway("authenticated", "u-admin-2")
    admin_east, reader = gateway("authenticated", "u-admin-east"), gateway("authenticated", "u-reader")
    adjust = {"sku": "A1", "quantity_delta": -6, "adjustment_type": "damage", "reason_code": "damaged"}

    [pending] = clerk_main.rpc("create_adjustment", **adjust)
    adjustment_id, status = pending[0], pending[7]
    assert status == "PENDING"
    # Scoped operators cannot adjust other locations; readers cannot adjust at all.
    denied(db, lambda: clerk_main.rpc("create_adjustment", **adjust, location="east"))
    denied(db, lambda: reader.rpc("create_adjustment", **adjust))
    [east] = clerk_east.rpc("create_adjustment", **adjust, location="east")
    assert (east[2], east[7]) == ("east", "PENDING")
    # Operators cannot approve; an admin scoped to east cannot approve at main; the requester cannot either.
    denied(db, lambda: clerk_main.rpc("approve_adjustment", adjustment_id=adjustment_id, decision="approved"))
    denied(db, lambda: admin_east.rpc("approve_adjustment", adjustment_id=adjustment_id, decision="approved"))
    [[admin_adjustment_id, *_]] = admin.rpc("create_adjustment", **adjust | {"quantity_delta": -1,
                                                                            "reason_code": "theft"})
    denied(db, lambda: admin.rpc("approve_adjustment", adjustment_id=admin_adjustment_id, decision="approved"),
           "PT409", "SELF_APPROVAL_FORBIDDEN")
    [approved] = admin.rpc("approve_adjustment", adjustment_id=adjustment_id, decision="approved")
    assert (approved[7], approved[13]) == ("APPROVED", "u-admin")
    admin_2.rpc("approve_adjustment", adjustment_id=admin_adjustment_id, decision="approved")
    assert level(catalogue) == (3, 0)
    denied(db, lambda: admin.rpc("approve_adjustment", adjustment_id=adjustment_id, decision="approved"),
           "PT409", "INVALID_STATE")
    # Counts and transfers: operators of every location involved.
    denied(db, lambda: clerk_main.rpc("record_count", sku="A1", counted_quantity=1, location="east"))
    clerk_main.rpc("record_count", sku="A1", counted_quantity=3)
    denied(db, lambda: clerk_main.rpc("transfer_stock", sku="A1", quantity=1, from_location="main",
                                      to_location="east"))
    admin.rpc("transfer_stock", sku="A1", quantity=1, from_location="main", to_location="east")
    # Policies: admins (scoped to their locations); alerts: operators of the location.
    denied(db, lambda: clerk_main.rpc("set_stock_policy", sku="A1", location="main", reorder_point=5, safety_stock=1))
    denied(db, lambda: admin_east.rpc("set_stock_policy", sku="A1", location="main", reorder_point=5, safety_stock=1))
    admin.rpc("set_stock_policy", sku="A1", location="main", reorder_point=5, safety_stock=1)
    [[alert_id]] = db.execute("select alert_id from inventory.reorder_alerts").fetchall()
    denied(db, lambda: clerk_east.rpc("update_reorder_alert", alert_id=alert_id, status="ACKNOWLEDGED"))
    clerk_main.rpc("update_reorder_alert", alert_id=alert_id, status="ACKNOWLEDGED")
    # The one-pass check is maintenance: for the scheduler, not for PostgREST's users.
    for user in (clerk_main, admin):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.rpc("check_reorder_points")
    denied(db, lambda: clerk_main.rpc("import_items", rows=json.dumps([{"sku": "X1", "name": "X"}])))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        gateway("anon").rpc("create_adjustment", **adjust)


def test_a_clerk_login_adjusts_but_cannot_approve_or_set_policies(clerk: Inventory, db) -> None:
    pending = clerk.create_adjustment("A1", -1, "write_off", "theft")
    with raises_inventory_error(db, PermissionDenied):
        clerk.approve_adjustment(pending.adjustment_id)
    with raises_inventory_error(db, PermissionDenied):
        clerk.set_stock_policy("A1", "main", 5, 1)
    assert [a.adjustment_id for a in clerk.adjustments()] == [pending.adjustment_id]


# -- catalog: RLS, audit, comments ---------------------------------------------------------------------------


def test_new_tables_have_rls_audit_and_comments(db) -> None:
    tables = ["reason_codes", "adjustments", "cycle_counts", "stock_policies", "reorder_alerts"]
    for table in tables:
        rls, = db.execute("select relrowsecurity from pg_class where oid = %s::regclass", (f"inventory.{table}",)
                          ).fetchone()
        assert rls, table
        triggers = db.execute("select tgname, tgenabled from pg_trigger where tgrelid = %s::regclass"
                              " and tgname like '%%audit%%' order by tgname", (f"inventory.{table}",)).fetchall()
        assert triggers == [(f"{table}_audit_{op}", "A") for op in ("delete", "insert", "update")], table
    uncommented = db.execute("""
        select c.oid::regclass::text from pg_class c
         where c.relnamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
           and c.relkind in ('r', 'v') and obj_description(c.oid, 'pg_class') is null
        union all
        select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
           and obj_description(p.oid, 'pg_proc') is null""").fetchall()
    assert uncommented == []
    # 24 + maintenance_leader, events, event_consumers (issue 13), hot_buckets (issue 14)
    assert db.execute("select count(*) from pg_class where relnamespace = 'inventory'::regnamespace"
                      " and relkind = 'r'").fetchone() == (28,)


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_stock_control(run, catalogue: Inventory, login_dsn) -> None:
    clerk = login_dsn("pyinv_clerk")
    adjusted = json.loads(run("--json", "adjust", "A1", "-6", "--type", "damage", "--reason", "damaged",
                              dsn_=clerk).stdout)
    assert adjusted["status"] == "PENDING"
    failed = run("approve", str(adjusted["adjustment_id"]), dsn_=clerk, exit_code=4)
    assert "PERMISSION_DENIED" in failed.stderr
    assert "APPROVED" in run("approve", str(adjusted["adjustment_id"])).stdout
    assert "INVALID_STATE (PT409)" in run("approve", str(adjusted["adjustment_id"]), exit_code=3).stderr
    assert "APPROVED" in run("adjustments").stdout
    counted = json.loads(run("--json", "count", "A1", "3").stdout)
    assert (counted["difference"], counted["adjustment_status"]) == ("-1", "APPLIED")
    moved = json.loads(run("--json", "transfer", "A1", "1", "--from", "main", "--to", "east").stdout)
    assert moved["to_on_hand"] == "1"
    assert "reorder_point" in run("policy", "set", "A1", "--reorder-point", "5", "--safety-stock", "2").stdout
    listing = run("alerts").stdout
    assert "CRITICAL" in listing and "A1" in listing
    [alert] = json.loads(run("--json", "alerts").stdout)
    assert json.loads(run("--json", "alerts", "ack", str(alert["alert_id"]), "--note", "PO-1").stdout)["status"] == (
        "ACKNOWLEDGED")
    assert "DISMISSED" in run("alerts", "dismiss", str(alert["alert_id"])).stdout
    assert run("alerts").stdout.strip() == "no open alerts"
    assert "INVALID_STATE" in run("alerts", "resolve", str(alert["alert_id"]), exit_code=3).stderr
    assert "levels_checked" in run("alerts", "check").stdout
    assert "A1" in run("alerts", "recommendations").stdout


# -- bulk import -------------------------------------------------------------------------------------------------


def write_items_csv(path: Path, rows: int, bad: dict[int, str] | None = None) -> Path:
    lines = ["sku,name,unit_of_measure,unit_cost"]
    for n in range(rows):
        lines.append((bad or {}).get(n, f"IMP-{n:06d},Imported item {n},each,{n % 100}.25"))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_ten_thousand_items_reports_rejected_rows(catalogue: Inventory, tmp_path: Path, db) -> None:
    bad = {5: ",no sku,each,1", 17: "IMP-BAD,bad cost,each,abc", 99: "IMP-000098,duplicate of row 98,each,1",
           4000: "bad sku!,x,each,1", 9999: "A1,Other name,each,"}
    path = write_items_csv(tmp_path / "items.csv", 10000, bad)
    started = time.perf_counter()
    report = catalogue.import_csv(path, batch_size=2500)
    elapsed = time.perf_counter() - started
    assert (report.kind, report.received, report.batches) == ("items", 10000, 4)
    assert report.applied == 9995
    reasons = {r["row"]: (r["code"], r["reason"]) for r in report.rejected}
    assert set(reasons) == {7, 19, 101, 4002, 10001}  # CSV line numbers (header is line 1)
    assert reasons[7] == ("INVALID_ARGUMENT", "sku is required")
    assert reasons[101][1] == "duplicate sku in the batch"
    assert reasons[10001][0] == "ALREADY_EXISTS"
    assert db.execute("select count(*) from inventory.items where sku like 'IMP-%'").fetchone() == (9995,)
    assert elapsed < 30
    again = catalogue.import_csv(path, batch_size=5000)
    assert (again.applied, again.unchanged, len(again.rejected)) == (0, 9995, 5)


def test_an_import_batch_is_all_or_nothing(catalogue: Inventory, db) -> None:
    before = db.execute("select count(*) from inventory.items").fetchone()
    with pytest.raises(InvalidArgument):
        catalogue.import_batch("items", [])
    with pytest.raises(InvalidArgument):
        catalogue.import_batch("items", [{"sku": f"Z{n}", "name": "z"} for n in range(10001)])
    assert db.execute("select count(*) from inventory.items").fetchone() == before
    result = catalogue.import_batch("items", ["not an object", {"sku": "OK-1", "name": "Fine", "track_lots": "yes"}])
    assert result["inserted"] == 1 and result["rejected"][0]["reason"] == "row is not an object"


@pytest.mark.parametrize("name", ["Widget\u202e", "Wid\u00adget", "Wid\u2060get", "Widget\U000e0041", "\u3164",
                                  "Cafe\u0301", "Widget\u00a0", "Wid\x07get"])
def test_imports_refuse_the_names_create_item_refuses(catalogue: Inventory, db, name: str) -> None:
    with raises_inventory_error(db, InvalidArgument):
        catalogue.create_item("IMP-N", name)
    result = catalogue.import_batch("items", [{"sku": "IMP-N", "name": name}, {"sku": "IMP-OK", "name": "Fine"}])
    assert result["inserted"] == 1
    [rejected] = result["rejected"]
    assert (rejected["key"], rejected["code"]) == ("IMP-N", "INVALID_ARGUMENT")


@pytest.mark.parametrize("row", [1e30, -1, 2.5, "12", True, [1]])
def test_an_unusable_row_number_rejects_that_row_not_the_batch(catalogue: Inventory, row: Any) -> None:
    items = catalogue.import_batch("items", [{"sku": "ROW-1", "name": "Bad row", "row": row},
                                             {"sku": "ROW-2", "name": "Fine", "row": 7}])
    assert items["inserted"] == 1
    [rejected] = items["rejected"]
    assert (rejected["row"], rejected["code"]) == (1, "INVALID_ARGUMENT") and "row must be" in rejected["reason"]
    policies = catalogue.import_batch("policies", [
        {"sku": "A1", "location": "main", "reorder_point": "2", "safety_stock": "0", "row": row},
        {"sku": "B2", "location": "main", "reorder_point": "2", "safety_stock": "0"}])
    assert policies["applied"] == 1 and policies["rejected"][0]["row"] == 1


def test_import_policies_opens_alerts_and_rejects_bad_rows(catalogue: Inventory, tmp_path: Path, db) -> None:
    catalogue.import_batch("items", [{"sku": f"P-{n:05d}", "name": f"Policy item {n}"} for n in range(3000)])
    lines = ["sku,location,reorder_point,safety_stock,reorder_quantity,max_stock_level,lead_time_days"]
    lines += [f"P-{n:05d},{'main' if n % 2 else 'east'},5,2,10,,3" for n in range(3000)]
    lines += ["NOPE,main,5,2,,,", "A1,nowhere,5,2,,,", "A1,main,2,5,,,", "A1,main,x,1,,,", "B2,main,5,1,,,",
              "B2,main,6,1,,,", "A1,east,5,2,,4,"]
    path = tmp_path / "policies.csv"
    path.write_text("\n".join(lines) + "\n")
    report = catalogue.import_csv(path)
    assert (report.kind, report.received, report.applied) == ("policies", 3007, 3001)
    codes = sorted((r["code"], r["reason"]) for r in report.rejected)
    assert codes == [
        ("INVALID_ARGUMENT", "duplicate sku and location in the batch"),
        ("INVALID_ARGUMENT", "max_stock_level must not be below reorder_point"),
        ("INVALID_ARGUMENT", "reorder_point must be a number between 0 and 1e12 with at most 4 decimals"),
        ("INVALID_ARGUMENT", "safety_stock must not exceed reorder_point"),
        ("LOCATION_NOT_FOUND", "no location with this code"),
        ("PRODUCT_NOT_FOUND", "no item with this sku"),
    ]
    # The new levels are empty: 3000 CRITICAL alerts, and B2 (5 on hand, reorder point 5) is REORDER.
    assert db.execute("select severity, count(*) from inventory.reorder_alerts group by 1 order by 1").fetchall() == [
        ("CRITICAL", 3000), ("REORDER", 1)]
    catalogue.receive_stock("P-00001", 20)  # the trigger works for imported policies too
    assert open_alerts(catalogue, "P-00001") == []


def test_cli_import(run, catalogue: Inventory, tmp_path: Path) -> None:
    path = write_items_csv(tmp_path / "items.csv", 300, {3: "bad sku!,x,each,1"})
    result = run("import", str(path), "--batch-size", "100", exit_code=1)
    assert "300 rows in 3 batches, 299 applied" in result.stdout
    assert "bad sku!" in result.stdout
    report = json.loads(run("--json", "import", str(path), exit_code=1).stdout)
    assert (report["unchanged"], len(report["rejected"])) == (299, 1)


def test_a_level_changed_in_replica_mode_still_updates_its_alert(catalogue: Inventory, db) -> None:
    catalogue.set_stock_policy("B2", "main", reorder_point=6, safety_stock=5)  # 5 on hand: CRITICAL
    with db.transaction():
        db.execute("set local session_replication_role = replica")  # skips ordinary triggers
        db.execute("update inventory.stock_levels set on_hand = on_hand + 20 where item_id ="
                   " (select item_id from inventory.items where sku = 'B2')")
    assert open_alerts(catalogue, "B2") == []
    assert catalogue.check_reorder_points().to_dict() == {"levels_checked": 1, "opened": 0, "escalated": 0,
                                                          "resolved": 0}
