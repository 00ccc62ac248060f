"""Reports (issue 13): every reporting view against a hand-computed scene, stock_as_of against the level
recorded at each past moment, refresh_inventory_views (concurrent, self-locking, recorded in
maintenance_status), and what location-scoped users see of all of them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from helpers import PostgREST, raises_db_error, raises_inventory_error

from pyinv import AsyncInventory, Inventory, LocationNotFound, PermissionDenied, ProductNotFound
from pyinv.models import (
    AlertStatistics,
    Dashboard,
    HoldsSummary,
    LowStockItem,
    MaintenanceStatus,
    MovementSummary,
    StockSnapshot,
    ValuationRow,
    ViewsRefresh,
)

D = Decimal


def rows(db: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    return db.execute(query, params).fetchall()


@pytest.fixture
def scene(catalogue: Inventory) -> Inventory:
    """A hand-built inventory whose every report figure is computed by hand in the tests below.

    From the catalogue (A1: 10 at main, B2: 5 at main, location east):
      A1   unit cost 2.5. main: SO-SHIP 3 shipped, 1 returned, -2 and +1 corrections, 4 transferred to east
           -> on hand 3. east: 4 received, 4 transferred in, holds SO-A 2 (30 min), SO-B 1 (2 h), SO-D 3
           (3 h, 1 shipped) -> on hand 7, reserved 5, available 2.
      B2   main: theft -1 pending approval; hold SO-B2 5 made and cancelled twice, then SO-B2 again
           -> on hand 5, reserved 5, available 0.
      C3   main: 5 received, hold SO-C 1 overdue (not swept) -> on hand 5, reserved 1, available 5.
      LT   lot-tracked, unit cost 1.5; main: lot L1 3 at cost 4 (expires in 5 days), lot L2 2 without a
           cost (expires in 20 days).
    Policies (reorder point / safety stock): A1 main 5/3 (max 20), A1 east 3/1 (order 10), B2 main 2/1,
    LT main 1/0. The A1 east alert is acknowledged.
    """
    inv = catalogue
    inv.update_item("A1", unit_cost=D("2.5"))
    inv.receive_stock("A1", 4, location="east")
    inv.create_item("C3", "Gizmo")
    inv.create_item("LT", "Lotted", track_lots=True)
    today = date.today()
    inv.receive_stock("LT", 3, lot_number="L1", unit_cost=4, expires_on=today + timedelta(days=5))
    inv.receive_stock("LT", 2, lot_number="L2", expires_on=today + timedelta(days=20))
    inv.update_item("LT", unit_cost=D("1.5"))
    # A1 at main: ship, return, adjust, transfer.
    inv.reserve_stock("A1", 3, "SO-SHIP")
    inv.fulfill_order("SO-SHIP")
    inv.process_return("SO-SHIP", "A1", 1, reason="unused")
    assert inv.create_adjustment("A1", -2, "correction", "correction").status == "APPLIED"
    assert inv.create_adjustment("A1", 1, "correction", "correction").status == "APPLIED"
    inv.transfer_stock("A1", 4, "main", "east")
    # A1 at east: holds.
    inv.reserve_stock("A1", 2, "SO-A", location="east", expires_in=timedelta(minutes=30))
    inv.reserve_stock("A1", 1, "SO-B", location="east", expires_in=timedelta(hours=2))
    inv.reserve_stock("A1", 3, "SO-D", location="east", expires_in=timedelta(hours=3))
    inv.fulfill_order("SO-D", "A1", 1)
    # B2: a pending write-off, then a level that runs out twice and recovers once in between.
    assert inv.create_adjustment("B2", -1, "write_off", "theft").status == "PENDING"
    inv.set_stock_policy("B2", "main", reorder_point=2, safety_stock=1)
    for _ in range(2):
        inv.reserve_stock("B2", 5, "SO-B2")
        inv.cancel_reservation("SO-B2")
    inv.reserve_stock("B2", 5, "SO-B2")
    # C3: an overdue hold, not swept yet.
    inv.receive_stock("C3", 5)
    inv.reserve_stock("C3", 1, "SO-C", expires_in=timedelta(seconds=1))
    time.sleep(1.1)
    inv.set_stock_policy("A1", "main", reorder_point=5, safety_stock=3, max_stock_level=20)
    inv.set_stock_policy("A1", "east", reorder_point=3, safety_stock=1, reorder_quantity=10)
    inv.set_stock_policy("LT", "main", reorder_point=1, safety_stock=0)
    [east_alert] = inv.reorder_alerts(sku="A1", location="east")
    inv.update_reorder_alert(east_alert.alert_id, "ACKNOWLEDGED")
    levels = {(s.sku, s.location): (s.on_hand, s.reserved, s.available) for s in inv.stock_levels()}
    assert levels == {("A1", "main"): (3, 0, 3), ("A1", "east"): (7, 5, 2), ("B2", "main"): (5, 5, 0),
                      ("C3", "main"): (5, 1, 5), ("LT", "main"): (5, 0, 5)}
    return inv


def test_valuation_is_on_hand_at_unit_cost_per_lot_where_lots_exist(scene: Inventory) -> None:
    assert scene.inventory_valuation() == [
        ValuationRow("A1", "east", None, D(7), D("2.5"), D("17.5"), "item"),
        ValuationRow("A1", "main", None, D(3), D("2.5"), D("7.5"), "item"),
        ValuationRow("B2", "main", None, D(5), None, None, None),
        ValuationRow("C3", "main", None, D(5), None, None, None),
        ValuationRow("LT", "main", "L1", D(3), D(4), D(12), "lot"),  # the lot's own cost
        ValuationRow("LT", "main", "L2", D(2), D("1.5"), D(3), "item"),  # no cost of its own: the item's
    ]
    assert [row.value for row in scene.inventory_valuation(sku="A1", location="main")] == [D("7.5")]


def test_movement_summary_adds_up_the_last_90_days_by_movement_type(scene: Inventory) -> None:
    summary = {(row.sku, row.location): row for row in scene.movement_summary()}
    assert all(isinstance(row, MovementSummary) for row in summary.values())
    figures = {key: (row.received, row.shipped, row.returned, row.adjusted, row.transferred_in, row.transferred_out,
                     row.net_change, row.movements) for key, row in summary.items()}
    assert figures == {
        # received, shipped, returned, adjusted, transferred in, transferred out, net, movements
        ("A1", "main"): (10, 3, 1, -1, 0, 4, 3, 7),  # RECEIVE RESERVE SHIP RETURN ADJUST ADJUST TRANSFER_OUT
        ("A1", "east"): (4, 1, 0, 0, 4, 0, 7, 6),  # RECEIVE TRANSFER_IN RESERVE x3 SHIP
        ("B2", "main"): (5, 0, 0, 0, 0, 0, 5, 6),  # RECEIVE (RESERVE RELEASE) x2 RESERVE
        ("C3", "main"): (5, 0, 0, 0, 0, 0, 5, 2),
        ("LT", "main"): (5, 0, 0, 0, 0, 0, 5, 2),
    }
    # The net change of a level whose whole history is in the window is its on_hand.
    assert {key: row.net_change for key, row in summary.items()} == {
        (s.sku, s.location): s.on_hand for s in scene.stock_levels()}
    moments = [m.created_at for m in scene.movements(sku="A1") if m.location == "main"]
    assert (summary["A1", "main"].first_movement_at, summary["A1", "main"].last_movement_at) == (
        min(moments), max(moments))


@pytest.mark.breaks_invariants  # moving a movement back in time breaks its hash chain, on purpose
def test_movement_summary_leaves_out_movements_older_than_90_days(scene: Inventory, db) -> None:
    db.execute("alter table inventory.ledger disable trigger ledger_forbid_change")  # the DBA forces it
    db.execute("update inventory.ledger set created_at = now() - interval '91 days'"
               " where item_id = (select item_id from inventory.items where sku = 'C3')"
               " and movement_type = 'RECEIVE'")
    db.execute("update inventory.ledger set created_at = now() - interval '89 days'"
               " where item_id = (select item_id from inventory.items where sku = 'LT')")
    db.execute("alter table inventory.ledger enable always trigger ledger_forbid_change")
    summary = {(row.sku, row.location): row for row in scene.movement_summary()}
    assert (summary["C3", "main"].received, summary["C3", "main"].net_change, summary["C3", "main"].movements) == (
        0, 0, 1)  # only the hold is left
    assert (summary["LT", "main"].received, summary["LT", "main"].movements) == (5, 2)


def test_active_reservations_summary_counts_holds_units_oldest_and_next_expiry(scene: Inventory) -> None:
    holds = {r.order_ref: r for r in scene.reservations(status="ACTIVE")}
    assert scene.active_reservations_summary() == [
        HoldsSummary("A1", "east", 3, D(5), 0, D(0), holds["SO-A"].created_at, holds["SO-A"].expires_at),
        HoldsSummary("B2", "main", 1, D(5), 0, D(0), holds["SO-B2"].created_at, holds["SO-B2"].expires_at),
        HoldsSummary("C3", "main", 0, D(0), 1, D(1), None, None),  # overdue: counted apart
    ]
    scene.expire_reservations()
    assert [row.sku for row in scene.active_reservations_summary()] == ["A1", "B2"]


def test_low_stock_items_are_read_from_the_materialized_view_as_of_its_last_refresh(scene: Inventory) -> None:
    assert scene.low_stock_items() == []  # nothing refreshed since the scene was built
    refresh = scene.refresh_inventory_views()
    assert (refresh.refreshed, refresh.views, refresh.rows) == (True, ["inventory.mv_low_stock_items"], 3)
    low = scene.low_stock_items()
    assert all(isinstance(row, LowStockItem) for row in low)
    assert [(r.sku, r.location, r.on_hand, r.reserved, r.available, r.reorder_point, r.safety_stock, r.stock_status,
             r.shortfall, r.reorder_quantity, r.max_stock_level, r.suggested_order_quantity) for r in low] == [
        ("A1", "east", 7, 5, 2, 3, 1, "LOW", 1, 10, None, 10),  # 1 < 2 <= 3
        ("A1", "main", 3, 0, 3, 5, 3, "CRITICAL", 2, None, 20, 17),  # 0 < 3 <= 3: up to the maximum, 20
        ("B2", "main", 5, 5, 0, 2, 1, "OUT_OF_STOCK", 2, None, None, None),  # 0 <= 0
    ]  # LT (5 > 1) is not low; C3 has no policy
    [refreshed_at] = {r.refreshed_at for r in low}  # the refresh's transaction time
    assert refreshed_at <= refresh.started_at
    assert [r.sku for r in scene.low_stock_items(stock_status="CRITICAL")] == ["A1"]
    # Stale until the next refresh: B2 back in stock still shows, then goes.
    scene.cancel_reservation("SO-B2")
    assert [(r.sku, r.stock_status) for r in scene.low_stock_items(location="main")] == [
        ("A1", "CRITICAL"), ("B2", "OUT_OF_STOCK")]
    scene.refresh_inventory_views()
    assert [(r.sku, r.stock_status) for r in scene.low_stock_items(location="main")] == [("A1", "CRITICAL")]


def test_stock_status_boundaries(catalogue: Inventory) -> None:
    """OUT_OF_STOCK available <= 0, CRITICAL <= safety_stock, LOW <= reorder_point, else not listed."""
    catalogue.set_stock_policy("A1", "main", reorder_point=10, safety_stock=4)
    catalogue.receive_stock("A1", 1)  # 11 available: one more than the reorder point
    available = 11
    for target, status in ((11, None), (10, "LOW"), (5, "LOW"), (4, "CRITICAL"), (1, "CRITICAL"),
                           (0, "OUT_OF_STOCK")):
        if target < available:
            catalogue.reserve_stock("A1", available - target, f"SO-{target}")
            available = target
        catalogue.refresh_inventory_views()
        assert [r.stock_status for r in catalogue.low_stock_items()] == ([status] if status else []), target
    catalogue.set_stock_policy("B2", "main", reorder_point=5, safety_stock=0)  # B2: 5 available, safety 0
    catalogue.refresh_inventory_views()
    assert [(r.sku, r.stock_status) for r in catalogue.low_stock_items()] == [("A1", "OUT_OF_STOCK"), ("B2", "LOW")]



def test_low_stock_available_is_what_stock_levels_shows(catalogue: Inventory) -> None:
    """Overdue holds count as released and units in lots that may not be sold do not count, as in
    inventory_api.stock_levels (the alert trigger, which sees on_hand - reserved, may differ until the
    sweeper runs)."""
    catalogue.reserve_stock("A1", 3, "SO-LATE", expires_in=timedelta(seconds=1))  # A1: 10 on hand
    catalogue.create_item("LT", "Lotted", track_lots=True)
    catalogue.receive_stock("LT", 5, lot_number="L1")
    catalogue.receive_stock("LT", 4, lot_number="L2")
    catalogue.set_lot_status("LT", "L2", quarantined=True)  # 4 blocked
    catalogue.reserve_stock("LT", 1, "SO-LT")
    for sku in ("A1", "B2", "LT"):
        catalogue.set_stock_policy(sku, "main", reorder_point=20, safety_stock=4)
    time.sleep(1.1)
    catalogue.refresh_inventory_views()
    low = {r.sku: (r.on_hand, r.reserved, r.available, r.stock_status) for r in catalogue.low_stock_items()}
    assert low == {"A1": (10, 3, 10, "LOW"), "B2": (5, 0, 5, "LOW"), "LT": (9, 1, 4, "CRITICAL")}
    assert {sku: available for sku, (_, _, available, _) in low.items()} == {
        s.sku: s.available for s in catalogue.stock_levels(location="main")}

def test_alert_statistics_count_alerts_by_status_and_severity(scene: Inventory) -> None:
    assert scene.alert_statistics() == [
        AlertStatistics("ACKNOWLEDGED", "REORDER", 1, 1, *_opened(scene, "ACKNOWLEDGED", "REORDER")),
        AlertStatistics("OPEN", "CRITICAL", 2, 2, *_opened(scene, "OPEN", "CRITICAL")),  # A1 main, B2 main
        AlertStatistics("RESOLVED", "CRITICAL", 2, 1, *_opened(scene, "RESOLVED", "CRITICAL")),  # B2 twice
    ]


def _opened(inv: Inventory, status: str, severity: str) -> tuple[datetime, datetime]:
    opened = [a.opened_at for a in inv.reorder_alerts(status=status) if a.severity == severity]
    return min(opened), max(opened)


def test_dashboard_sums_the_scene(scene: Inventory) -> None:
    scene.refresh_inventory_views()
    dashboard = scene.dashboard()
    [refresh] = scene.maintenance_status("refresh_inventory_views")
    assert dashboard == Dashboard(
        items=4, locations=2,
        units_on_hand=D(25),  # 3 + 7 (A1) + 5 (B2) + 5 (C3) + 5 (LT)
        units_reserved=D(11),  # 5 (A1 east) + 5 (B2) + 1 (C3, overdue, not swept)
        inventory_value=D(40),  # 7.5 + 17.5 (A1) + 12 + 3 (LT lots); B2 and C3 have no cost
        open_alerts=3, open_reorder_alerts=1, open_critical_alerts=2,
        pending_approvals=1,  # B2 theft
        expiring_lots=2, expired_lots=0,  # L1 in 5 days, L2 in 20
        holds_expiring_within_hour=1,  # SO-A (30 min); SO-C is already overdue
        low_stock_items=3,
        last_maintenance_at=refresh.last_finished_at,
        as_of=dashboard.as_of)


def test_dashboard_of_an_empty_inventory(inv: Inventory) -> None:
    dashboard = inv.dashboard()
    assert (dashboard.items, dashboard.locations, dashboard.units_on_hand, dashboard.units_reserved,
            dashboard.inventory_value, dashboard.open_alerts, dashboard.low_stock_items,
            dashboard.last_maintenance_at) == (0, 1, 0, 0, None, 0, 0, None)


# -- stock_as_of -------------------------------------------------------------------------------------------


def test_stock_as_of_equals_the_level_recorded_at_every_past_moment(catalogue: Inventory, db) -> None:
    inv = catalogue
    inv.create_item("H1", "History")
    recorded: list[tuple[datetime, Decimal, Decimal, int | None]] = []

    def record() -> None:
        recorded.append(db.execute(
            "select now(), coalesce(s.on_hand, 0), coalesce(s.reserved, 0), s.last_movement_id"
            " from inventory.items i left join inventory.stock_levels s"
            "   on s.item_id = i.item_id and s.location_id = (select location_id from inventory.locations"
            "                                                  where code = 'main')"
            " where i.sku = 'H1'").fetchone())

    record()  # before the first movement
    steps: list[Callable[[], object]] = [
        lambda: inv.receive_stock("H1", 5),
        lambda: inv.reserve_stock("H1", 2, "SO-H"),
        lambda: inv.receive_stock("H1", D("3.5")),
        lambda: inv.fulfill_order("SO-H"),
        lambda: inv.create_adjustment("H1", -1, "correction", "correction"),
        lambda: inv.transfer_stock("H1", 1, "main", "east"),
        lambda: inv.reserve_stock("H1", D("0.25"), "SO-I"),
        lambda: inv.cancel_reservation("SO-I"),
    ]
    for step in steps:
        step()
        record()
    assert [(on_hand, reserved) for _, on_hand, reserved, _ in recorded] == [
        (0, 0), (5, 0), (5, 2), (D("8.5"), 2), (D("6.5"), 0), (D("5.5"), 0), (D("4.5"), 0), (D("4.5"), D("0.25")),
        (D("4.5"), 0)]
    for at, on_hand, reserved, movement_id in recorded:
        snapshot = inv.stock_as_of("H1", at)
        assert (snapshot.on_hand, snapshot.reserved, snapshot.available, snapshot.movement_id) == (
            on_hand, reserved, on_hand - reserved, movement_id), at
        assert snapshot.at == at and (snapshot.sku, snapshot.location) == ("H1", "main")
    # Between two movements: the earlier one; at the exact moment of a movement: that movement.
    movements = [m for m in inv.movements(sku="H1") if m.location == "main"]
    for movement in movements:
        snapshot = inv.stock_as_of("H1", movement.created_at)
        assert (snapshot.movement_id, snapshot.on_hand, snapshot.reserved, snapshot.movement_at) == (
            movement.movement_id, movement.on_hand_after, movement.reserved_after, movement.created_at)
        before = inv.stock_as_of("H1", movement.created_at - timedelta(microseconds=1))
        assert before.movement_id is None or before.movement_id < movement.movement_id
    # The other location has its own history; the default moment is now.
    east = inv.stock_as_of("H1", recorded[-1][0], location="east")
    assert (east.on_hand, east.reserved, east.available) == (1, 0, 1)
    now = inv.connection.execute("select * from inventory_api.stock_as_of(sku => 'H1')").fetchone()
    assert now[3:6] == (D("4.5"), 0, D("4.5"))


def test_stock_as_of_refuses_bad_input(catalogue: Inventory, db) -> None:
    moment = datetime.now().astimezone()
    with raises_inventory_error(db, ProductNotFound):
        catalogue.stock_as_of("NOPE", moment)
    with raises_inventory_error(db, LocationNotFound):
        catalogue.stock_as_of("A1", moment, location="nowhere")
    for at in (None, "infinity", "-infinity"):
        with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
            catalogue.connection.execute("select * from inventory_api.stock_as_of(sku => 'A1', at => %s)", (at,))
        assert json.loads(caught.value.diag.message_detail)["argument"] == "at"


# -- refresh_inventory_views and maintenance_status ----------------------------------------------------------


def test_refresh_is_self_locking_and_never_blocks_readers(catalogue: Inventory, connect) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=20, safety_stock=5)
    first = connect(autocommit=False)
    [result] = first.execute("select refreshed, rows from inventory_api.refresh_inventory_views()").fetchall()
    assert result == (True, 1)  # not committed yet: it holds the job's lock
    second = Inventory(connect())
    started = time.monotonic()
    busy = second.refresh_inventory_views()
    assert time.monotonic() - started < 1
    assert busy == ViewsRefresh(False, [], 0, busy.started_at, busy.duration_ms,
                                "another refresh_inventory_views run is in progress; it does this work")
    # Readers see the rows of the last committed refresh, without waiting for the one in progress.
    reader = connect()
    reader.execute("set statement_timeout = '2s'")
    assert reader.execute("select count(*) from inventory_api.low_stock_items").fetchone() == (0,)
    first.commit()
    assert reader.execute("select count(*) from inventory_api.low_stock_items").fetchone() == (1,)
    assert second.refresh_inventory_views().refreshed


def test_maintenance_status_records_each_run(catalogue: Inventory, db) -> None:
    before = {row.job: row for row in catalogue.maintenance_status()}
    assert set(before) >= {"refresh_inventory_views", "seal_audit_log", "check_reorder_points",
                           "expire_inventory_lots"}
    assert (before["refresh_inventory_views"].last_started_at, before["refresh_inventory_views"].lag) == (None, None)
    catalogue.set_stock_policy("A1", "main", reorder_point=20, safety_stock=5)
    catalogue.set_stock_policy("B2", "main", reorder_point=20, safety_stock=5)
    result = catalogue.refresh_inventory_views()
    [status] = catalogue.maintenance_status("refresh_inventory_views")
    assert (status.last_rows, status.last_result, status.last_duration_ms) == (
        2, "refreshed 1 materialized view(s), 2 rows", result.duration_ms)
    assert status.last_started_at is not None and status.last_finished_at is not None
    assert result.started_at <= status.last_started_at <= status.last_finished_at
    assert status.last_duration_ms == D(
        round((status.last_finished_at - status.last_started_at) / timedelta(milliseconds=1), 3)).quantize(D("0.001"))
    assert status.lag is not None and timedelta(0) <= status.lag < timedelta(minutes=1)
    # The other jobs record theirs too.
    catalogue.seal_audit_log()
    catalogue.check_reorder_points()
    after = {row.job: row for row in catalogue.maintenance_status()}
    assert (after["seal_audit_log"].last_result, after["check_reorder_points"].last_result,
            after["check_reorder_points"].last_rows) == ("ok", "ok", 2)


def test_refresh_is_maintenance(clerk: Inventory, catalogue: Inventory) -> None:
    with pytest.raises(PermissionDenied):  # no EXECUTE for an operator's login
        clerk.refresh_inventory_views()
    assert clerk.maintenance_status()  # readers see the jobs' status



def test_a_scheduler_login_refreshes_and_reads_the_status_only(catalogue: Inventory, login_dsn, connect, db) -> None:
    db.execute("create role pyinv_cron login password 'pyinv-test' in role inventory_scheduler")
    try:
        cron = Inventory(connect(conninfo=login_dsn("pyinv_cron")))
        assert cron.refresh_inventory_views().refreshed
        assert {row.job for row in cron.maintenance_status()} >= {"refresh_inventory_views", "seal_audit_log"}
        with pytest.raises(PermissionDenied):  # no business role: no reports
            cron.dashboard()
    finally:
        db.execute("drop owned by pyinv_cron; drop role pyinv_cron")

# -- who sees what ----------------------------------------------------------------------------------------


def test_reports_show_only_the_caller_s_locations(gateway: Callable[..., PostgREST], catalogue: Inventory) -> None:
    """The gateway's stock: A1 10 at main and 5 at east, B2 5 at main, LOT-1 lot L1 5 at main."""
    catalogue.update_item("A1", unit_cost=2)
    catalogue.reserve_stock("A1", 1, "SO-MAIN")
    catalogue.reserve_stock("A1", 2, "SO-EAST", location="east")
    catalogue.set_stock_policy("A1", "main", reorder_point=20, safety_stock=1)
    catalogue.set_stock_policy("A1", "east", reorder_point=20, safety_stock=1)
    catalogue.refresh_inventory_views()
    east, main, reader, nobody = (gateway("authenticated", user)
                                  for user in ("u-clerk-east", "u-clerk-main", "u-reader", "u-nobody"))

    def where(client: PostgREST, view: str) -> list[tuple[Any, ...]]:
        return sorted((row[0], row[1]) for row in client.query(f"select sku, location from inventory_api.{view}"))

    for view in ("inventory_valuation", "movement_summary", "active_reservations_summary", "low_stock_items"):
        everything = where(reader, view)
        assert where(east, view) == [row for row in everything if row[1] == "east"], view
        assert where(main, view) == [row for row in everything if row[1] == "main"], view
        assert {location for _, location in everything} == {"main", "east"}, view
        assert where(nobody, view) == [], view
    assert east.query("select sku, location, value from inventory_api.inventory_valuation") == [
        ("A1", "east", D(10))]
    assert east.query("select status, severity, alerts from inventory_api.alert_statistics") == [
        ("OPEN", "REORDER", 1)]
    figures = "select items, locations, units_on_hand, units_reserved, open_alerts from inventory_api.dashboard"
    assert east.query(figures) == [(3, 1, D(5), D(2), 1)]  # items: the catalogue is shared
    assert main.query(figures) == [(3, 1, D(20), D(1), 1)]
    assert reader.query(figures) == [(3, 2, D(25), D(3), 2)]
    assert nobody.query(figures) == [(0, 0, D(0), D(0), 0)]
    assert nobody.select("maintenance_status") == []
    assert len(reader.select("maintenance_status")) == 7  # + expire_reservations, audit_anchor, purge_events
    # stock_as_of: a viewer of the location only.
    at = catalogue.connection.execute("select now()").fetchone()[0]
    assert east.rpc("stock_as_of", read_only=True, sku="A1", location="east", at=at)[0][3:6] == (5, 2, 3)
    with pytest.raises(psycopg.Error) as caught:
        east.rpc("stock_as_of", read_only=True, sku="A1", location="main", at=at)
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("42501", "PERMISSION_DENIED")


def test_the_materialized_view_is_never_read_directly(gateway: Callable[..., PostgREST], catalogue: Inventory,
                                                      clerk: Inventory) -> None:
    catalogue.set_stock_policy("A1", "east", reorder_point=20, safety_stock=1)
    catalogue.set_stock_policy("A1", "main", reorder_point=20, safety_stock=1)
    catalogue.refresh_inventory_views()
    for client in (gateway("authenticated", "u-admin"), gateway("service_role")):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            client.query("select * from inventory.mv_low_stock_items")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        clerk.connection.execute("select * from inventory.mv_low_stock_items")
    # Its rows reach a user only through low_stock_rows(), filtered to the user's locations.
    east = gateway("authenticated", "u-clerk-east")
    assert [row[3] for row in east.query("select * from inventory.low_stock_rows()")] == ["east"]
    assert len(clerk.low_stock_items()) == 2
    # The job rows are readable, but not lockable (that needs UPDATE): a login cannot stop a job.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        clerk.connection.execute("select * from inventory_api.maintenance_status for update")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        clerk.connection.execute("select * from inventory.maintenance_jobs for key share")



def test_the_async_client_has_the_report_methods(dsn: str, scene: Inventory) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with await AsyncInventory.connect(dsn) as client:
            refresh = await client.refresh_inventory_views()
            return (refresh, await client.dashboard(), await client.low_stock_items(),
                    await client.inventory_valuation(sku="A1"), await client.movement_summary(location="east"),
                    await client.active_reservations_summary(sku="C3"), await client.alert_statistics(),
                    await client.maintenance_status(), await client.stock_as_of("A1", refresh.started_at))

    refresh, dashboard, low, valuation, movements, holds, alerts, status, snapshot = asyncio.run(scenario())
    assert isinstance(refresh, ViewsRefresh) and refresh.refreshed
    assert isinstance(dashboard, Dashboard) and dashboard.low_stock_items == len(low) == 3
    assert [row.value for row in valuation] == [D("17.5"), D("7.5")]
    assert [row.sku for row in movements] == ["A1"]
    assert [row.overdue_holds for row in holds] == [1]
    assert len(alerts) == 3
    assert all(isinstance(row, MaintenanceStatus) for row in status)
    assert isinstance(snapshot, StockSnapshot) and (snapshot.on_hand, snapshot.reserved) == (3, 0)

# -- the CLI ----------------------------------------------------------------------------------------------


def test_cli_reports(run, scene: Inventory) -> None:
    assert "refreshed 1 materialized view(s), 3 rows in" in run("refresh-views").stdout
    valuation = run("reports", "valuation", "--sku", "LT").stdout.splitlines()
    assert valuation[0].split() == ["sku", "location", "lot_number", "on_hand", "unit_cost", "value", "cost_source"]
    assert [line.split() for line in valuation[2:]] == [["LT", "main", "L1", "3", "4", "12", "lot"],
                                                        ["LT", "main", "L2", "2", "1.5", "3", "item"]]
    movements = json.loads(run("reports", "movements", "--sku", "A1", "--location", "main", "--json").stdout)
    assert [(m["received"], m["shipped"], m["returned"], m["adjusted"], m["transferred_out"], m["net_change"])
            for m in movements] == [("10", "3", "1", "-1", "4", "3")]
    holds = json.loads(run("reports", "holds", "--json").stdout)
    assert [(h["sku"], h["location"], h["holds"], h["units"], h["overdue_holds"]) for h in holds] == [
        ("A1", "east", 3, "5", 0), ("B2", "main", 1, "5", 0), ("C3", "main", 0, "0", 1)]
    low = json.loads(run("reports", "low-stock", "--status", "out_of_stock", "--json").stdout)
    assert [(r["sku"], r["location"], r["stock_status"]) for r in low] == [("B2", "main", "OUT_OF_STOCK")]
    assert "no low stock" in run("reports", "low-stock", "--sku", "LT").stdout
    alerts = json.loads(run("reports", "alerts", "--json").stdout)
    assert [(a["status"], a["severity"], a["alerts"], a["levels"]) for a in alerts] == [
        ("ACKNOWLEDGED", "REORDER", 1, 1), ("OPEN", "CRITICAL", 2, 2), ("RESOLVED", "CRITICAL", 2, 1)]
    dashboard = json.loads(run("dashboard", "--json").stdout)
    assert (dashboard["units_on_hand"], dashboard["inventory_value"], dashboard["low_stock_items"],
            dashboard["pending_approvals"]) == ("25", "40", 3, 1)
    text = run("dashboard").stdout
    assert "units on hand" in text and "inventory value" in text and "40" in text


def test_cli_stock_as_of_and_a_busy_refresh(run, catalogue: Inventory, connect) -> None:
    at = catalogue.connection.execute("select now()").fetchone()[0]
    catalogue.reserve_stock("A1", 4, "SO-LATER")
    then = json.loads(run("stock-as-of", "A1", "--at", at.isoformat(), "--json").stdout)
    assert (then["on_hand"], then["reserved"], then["available"]) == ("10", "0", "10")
    now = json.loads(run("stock-as-of", "A1", "--at", "0s", "--json").stdout)
    assert (now["on_hand"], now["reserved"], now["available"]) == ("10", "4", "6")
    table = run("stock-as-of", "A1", "--at", "0s", "--location", "east").stdout.splitlines()
    assert table[2].split()[:2] == ["A1", "east"] and table[2].split()[-1] == "0"  # no movement there: all 0
    assert "LOCATION_NOT_FOUND" in run("stock-as-of", "A1", "--at", "1h", "--location", "nowhere",
                                       exit_code=3).stderr
    assert "--at" in run("stock-as-of", "A1", exit_code=2).stderr
    holder = connect(autocommit=False)
    holder.execute("select inventory_api.refresh_inventory_views()")
    assert run("refresh-views").stdout == (
        "not refreshed: another refresh_inventory_views run is in progress; it does this work\n")
    holder.rollback()
    assert json.loads(run("refresh-views", "--json").stdout)["refreshed"] is True
