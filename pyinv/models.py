"""Typed rows returned by the API (field names are the SQL column names of the inventory_api type
or view each one mirrors). Rows are frozen dataclasses; JSON documents the API hands back as they
are (an audit anchor, an import batch's outcome) are TypedDicts: plain dicts with a declared shape."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

JsonObject = dict[str, object]
"""A JSON object as psycopg decodes jsonb (values: str, int, float, bool, None, lists, objects)."""


class Row:
    """Base of every typed row."""

    def to_dict(self) -> dict[str, object]:
        """The row as a dict of column name -> value."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class Item(Row):
    """An item of the catalogue (inventory_api.item, a row of inventory_api.items). `version` grows
    with every change (pass it as expected_version to update or delete it safely); `deleted_at` and
    `deleted_by` are set while the item is soft-deleted. `track_lots`: its stock is kept by lot;
    `requires_qc`: its new lots are not sellable until they pass QC."""

    sku: str
    name: str
    unit_of_measure: str
    unit_cost: Decimal | None
    status: str
    track_lots: bool
    created_at: datetime
    updated_at: datetime
    version: int
    deleted_at: datetime | None
    deleted_by: str | None
    requires_qc: bool = False


@dataclass(frozen=True)
class Location(Row):
    """A stock location."""

    code: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class StockLevel(Row):
    """Result of receive_stock: the level right after the movement."""

    sku: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class StockRow(Row):
    """A row of the inventory_api.stock_levels view. `available` leaves out units in lots that cannot be
    sold (expired, awaiting or failed QC, quarantined); `blocked` is how many such units are on hand and
    not reserved. `hot_buckets` > 1: the level is in hot mode (set_hot_mode)."""

    sku: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    expired_unreleased: Decimal
    status: str
    version: int
    updated_at: datetime
    blocked: Decimal = Decimal(0)
    hot_buckets: int = 1


@dataclass(frozen=True)
class HotMode(Row):
    """A level's hot mode after set_hot_mode (inventory_api.hot_mode): buckets (1 = off), its
    quantities and the free units of each active bucket."""

    sku: str
    location: str
    buckets: int
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    bucket_free: list[Decimal]


@dataclass(frozen=True)
class Reservation(Row):
    """A hold of stock for an order (inventory_api.reservation). `reference_type` says what the
    order_ref refers to: order, work_order, transfer, production, sample or other."""

    reservation_id: int
    order_ref: str
    sku: str
    location: str
    quantity: Decimal
    quantity_fulfilled: Decimal
    quantity_open: Decimal
    status: str
    expires_at: datetime | None
    created_by: str
    created_at: datetime
    reference_type: str | None  # None only in results replayed from keys stored before 0.3.0
    notes: str | None


@dataclass(frozen=True)
class ReserveManyResult(Row):
    """The outcome of one request of reserve_many (inventory_api.reserve_many_result), in request
    order (`ordinal` from 1): `ok` with the hold (`reservation`: what reserve_stock returns, as JSON),
    or the error reserve_stock would have raised: `sqlstate`, `error_code` (its hint), `message` and
    `detail`."""

    ordinal: int
    order_ref: str | None
    sku: str | None
    location: str | None
    reservation_id: int | None
    quantity: Decimal | None
    expires_at: datetime | None
    ok: bool
    sqlstate: str | None
    error_code: str | None
    message: str | None
    detail: JsonObject | None
    reservation: JsonObject | None


def reservation_from_json(document: JsonObject) -> Reservation:
    """A Reservation from its JSON form (inventory_api.reservation as to_jsonb gives it: the
    `reservation` of a ReserveManyResult, a stored idempotent response), equal to the row
    reserve_stock returns (quantities exact, times as aware datetimes)."""

    def number(name: str) -> Decimal:
        value = document[name]
        return value if isinstance(value, Decimal) else Decimal(str(value))

    def moment(name: str) -> datetime | None:
        value = document.get(name)
        return None if value is None else datetime.fromisoformat(str(value))

    created_at = moment("created_at")
    assert created_at is not None, "a reservation has a creation time"
    reference_type, notes = document.get("reference_type"), document.get("notes")
    return Reservation(
        reservation_id=int(str(document["reservation_id"])), order_ref=str(document["order_ref"]),
        sku=str(document["sku"]), location=str(document["location"]), quantity=number("quantity"),
        quantity_fulfilled=number("quantity_fulfilled"), quantity_open=number("quantity_open"),
        status=str(document["status"]), expires_at=moment("expires_at"), created_by=str(document["created_by"]),
        created_at=created_at, reference_type=None if reference_type is None else str(reference_type),
        notes=None if notes is None else str(notes))


@dataclass(frozen=True)
class ReservationRow(Reservation):
    """A row of the inventory_api.reservations view."""

    is_overdue: bool
    closed_at: datetime | None
    quantity_returned: Decimal


@dataclass(frozen=True)
class ReservationChange(Row):
    """What one fulfil or cancel call did to one hold: movement_type (SHIP, RELEASE, EXPIRE) and the
    quantity moved, with the hold's state after it."""

    reservation_id: int
    order_ref: str
    sku: str
    location: str
    movement_type: str
    quantity: Decimal
    quantity_fulfilled: Decimal
    quantity_open: Decimal
    status: str


@dataclass(frozen=True)
class StockReturn(Row):
    """A recorded customer return (result of process_return)."""

    return_id: int
    order_ref: str
    sku: str
    location: str
    quantity: Decimal
    reason: str
    restocked: bool
    movement_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class ReturnRow(StockReturn):
    """A row of the inventory_api.returns view."""

    created_by: str


@dataclass(frozen=True)
class StockCheck(Row):
    """Answer of validate_stock: whether the quantity can be reserved now, and if not, why."""

    can_fulfill: bool
    available: Decimal | None
    error_code: str | None


@dataclass(frozen=True)
class InvariantViolation(Row):
    """One broken invariant reported by verify_inventory."""

    invariant: str
    sku: str | None
    location: str | None
    expected: Decimal | None
    actual: Decimal | None
    detail: str


@dataclass(frozen=True)
class ChainBreak(Row):
    """A problem verify_audit_chain found: a broken link (seq set), a row left unsealed, or a
    difference from an anchor."""

    seq: int | None
    audit_id: int | None
    problem: str


@dataclass(frozen=True)
class ReasonCode(Row):
    """A row of inventory_api.reason_codes."""

    reason_code: str
    description: str
    requires_approval: bool
    approval_threshold: Decimal
    direction: str
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Movement(Row):
    """A row of the ledger (inventory_api.stock_movements): one stock movement, append-only. `lots`:
    for a lot-tracked item, what it moved in each lot ({"lot_number", "on_hand_delta", "reserved_delta"});
    None otherwise."""

    movement_id: int
    movement_type: str
    sku: str
    location: str
    on_hand_delta: Decimal
    reserved_delta: Decimal
    on_hand_before: Decimal
    on_hand_after: Decimal
    reserved_before: Decimal
    reserved_after: Decimal
    actor: str
    reason: str | None
    reference: str | None
    idempotency_key: str | None
    related_movement_id: int | None
    reservation_id: int | None
    metadata: JsonObject
    created_at: datetime
    lots: list[JsonObject] | None = None


# -- stock control (issue 5) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment(Row):
    """A stock adjustment (result of create_adjustment / approve_adjustment, row of the adjustments view);
    `lot_number` names the lot it changes (lot-tracked items only)."""

    adjustment_id: int
    sku: str
    location: str
    quantity_delta: Decimal
    adjustment_type: str
    reason_code: str
    description: str | None
    status: str
    requires_approval: bool
    on_hand_at_request: Decimal
    count_id: int | None
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    on_hand_at_apply: Decimal | None
    movement_id: int | None
    lot_number: str | None = None


@dataclass(frozen=True)
class StockCount(Row):
    """A recorded cycle count and the adjustment it produced (result of record_count, a row of
    inventory_api.cycle_counts); `lot_number` names the lot counted (lot-tracked items only)."""

    count_id: int
    sku: str
    location: str
    counted_quantity: Decimal
    on_hand_at_count: Decimal
    reserved_at_count: Decimal
    difference: Decimal
    adjustment_id: int | None
    adjustment_status: str | None
    counted_by: str
    counted_at: datetime
    lot_number: str | None = None


@dataclass(frozen=True)
class StockTransfer(Row):
    """A transfer between two locations: the linked movements and both levels after it."""

    sku: str
    quantity: Decimal
    from_location: str
    to_location: str
    reference: str | None
    out_movement_id: int
    in_movement_id: int
    from_on_hand: Decimal
    from_available: Decimal
    to_on_hand: Decimal
    to_available: Decimal


@dataclass(frozen=True)
class StockPolicy(Row):
    """Replenishment policy of an item at a location; `version` grows with every change (pass it as
    expected_version to set_stock_policy to change it safely)."""

    sku: str
    location: str
    reorder_point: Decimal
    safety_stock: Decimal
    reorder_quantity: Decimal | None
    max_stock_level: Decimal | None
    lead_time_days: int | None
    updated_by: str
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class ReorderAlert(Row):
    """A low-stock alert, with the level's current available quantity."""

    alert_id: int
    sku: str
    location: str
    severity: str
    status: str
    available: Decimal | None
    available_at_open: Decimal
    reorder_point: Decimal
    safety_stock: Decimal
    opened_at: datetime
    escalated_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    note: str | None


@dataclass(frozen=True)
class ReorderCheck(Row):
    """What check_reorder_points did: levels checked, alerts opened, raised to CRITICAL, resolved."""

    levels_checked: int
    opened: int
    escalated: int
    resolved: int


@dataclass(frozen=True)
class ReorderRecommendation(Row):
    """A level with a stock policy: its status (CRITICAL, REORDER, NORMAL) and suggested order."""

    sku: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    reorder_point: Decimal
    safety_stock: Decimal
    reorder_quantity: Decimal | None
    max_stock_level: Decimal | None
    lead_time_days: int | None
    status: str
    suggested_order_quantity: Decimal | None
    alert_id: int | None
    alert_status: str | None
    last_counted_at: datetime | None
    last_counted_by: str | None


class ImportRejection(TypedDict):
    """A row an import refused: its row number, key (sku, or sku@location), error code and reason."""

    row: int
    key: str | None
    code: str
    reason: str


class _ImportBatchCounts(TypedDict):
    received: int
    rejected: list[ImportRejection]


class ImportBatch(_ImportBatchCounts, total=False):
    """Outcome of one import batch as the database reports it: received and rejected always;
    import_items adds inserted, unchanged and updated, import_stock_policies applied and alerts_opened."""

    inserted: int
    unchanged: int
    updated: int
    applied: int
    alerts_opened: int


@dataclass(frozen=True)
class ImportReport(Row):
    """Outcome of a bulk import: counts, and every rejected row with its reason."""

    kind: str
    received: int = 0
    applied: int = 0
    unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    rejected: tuple[ImportRejection, ...] = ()


# -- users, audit, catalogue of errors (issue 11) ----------------------------------------------------------


@dataclass(frozen=True)
class UserRole(Row):
    """A business role granted to a user (result of grant_user_role); location None: everywhere."""

    user_id: str
    role: str
    location: str | None
    granted_by: str
    granted_at: datetime


@dataclass(frozen=True)
class UserRoleRow(UserRole):
    """A row of the inventory_api.user_roles view (admins see every grant, others their own)."""

    user_role_id: int


@dataclass(frozen=True)
class AuditEntry(Row):
    """A row of inventory_api.audit_log (admins only): one row change by anyone, who made it and
    through which request, the row before and after, and its place on the hash chain once sealed."""

    audit_id: int
    table_name: str
    operation: str
    actor: str | None
    db_role: str | None
    login: str | None
    request_path: str | None
    request_id: str | None
    old_row: JsonObject | None
    new_row: JsonObject | None
    created_at: datetime
    sealed: bool
    chain_seq: int | None


@dataclass(frozen=True)
class SchemaVersion(Row):
    """The installed pyinv schema: its release (e.g. 0.3.0) and the last migration applied."""

    version: str
    migration: str


@dataclass(frozen=True)
class ErrorCode(Row):
    """An entry of the error catalogue: the HINT token, its SQLSTATE and what it means."""

    code: str
    sqlstate: str
    description: str


class AnchorAuditHead(TypedDict):
    """The head of the audit chain when an anchor was taken."""

    seq: int
    hash: str


class AnchorLocation(TypedDict):
    """One location's ledger digest in an anchor."""

    levels: int
    digest: str


class AnchorLedger(TypedDict):
    """The ledger part of an anchor: the movement id it was cut at and a digest per location."""

    through_movement: int
    locations: dict[str, AnchorLocation]


class AuditAnchor(TypedDict):
    """An anchor (audit_anchor()): a JSON document to keep where the database cannot write, and to
    pass back to verify_audit_chain / verify_inventory later (json.dumps / json.loads it as is)."""

    format: str
    database: str
    taken_at: str
    audit: AnchorAuditHead
    ledger: AnchorLedger

# -- lots and expiry (issue 12) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lot(Row):
    """A row of inventory_api.lots: one lot of an item at one location where it has had stock.
    `available` is on_hand - reserved while the lot is sellable, else 0; `blocked_reason` says why it
    is not: expired, qc_pending, qc_failed or quarantined (None when sellable). `expires_on` is the last
    sellable day."""

    sku: str
    lot_number: str
    supplier_lot: str | None
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    received_at: datetime
    expires_on: date | None
    unit_cost: Decimal | None
    qc_status: str
    quarantined: bool
    sellable: bool
    blocked_reason: str | None


@dataclass(frozen=True)
class ExpiringLot(Row):
    """A row of inventory_api.expiring_lots: a lot with stock on hand that expires within 30 days or
    has expired; expiry_status EXPIRED, EXPIRING_SOON (7 days or less) or EXPIRING."""

    sku: str
    lot_number: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    expires_on: date
    days_left: int
    expiry_status: str


@dataclass(frozen=True)
class LotAllocation(Row):
    """A row of inventory_api.lot_allocations: how much of one lot a hold took, and what became of it
    (fulfilled, released, returned)."""

    reservation_id: int
    order_ref: str
    sku: str
    location: str
    lot_number: str
    quantity: Decimal
    fulfilled: Decimal
    released: Decimal
    returned: Decimal
    hold_status: str
    created_at: datetime


@dataclass(frozen=True)
class LotTrace(Row):
    """One hold that took units of a lot (result of trace_lot, for a recall): the order, what was
    allocated from the lot, shipped, returned and released, and the hold's status."""

    order_ref: str
    reservation_id: int
    location: str
    allocated: Decimal
    fulfilled: Decimal
    returned: Decimal
    released: Decimal
    hold_status: str
    reserved_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class LotStatusChange(Row):
    """What set_lot_status did: the lot's QC status and quarantine flag after it, whether it is
    sellable, and the open holds it re-allocated to other lots or released (and how many units)."""

    sku: str
    lot_number: str
    qc_status: str
    quarantined: bool
    sellable: bool
    holds_reallocated: int
    holds_released: int
    units_released: Decimal


@dataclass(frozen=True)
class LotExpiry(Row):
    """What expire_inventory_lots did: lots that expired, units written off, and the holds on them
    re-allocated to other lots or released (and how many units)."""

    lots_expired: int
    units_written_off: Decimal
    holds_reallocated: int
    holds_released: int
    units_released: Decimal



# -- reports (issue 13) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValuationRow(Row):
    """A row of inventory_api.inventory_valuation: the value of the units on hand of an item at a
    location (per lot for a lot-tracked item) at unit cost. `cost_source` says where unit_cost comes
    from: 'lot', 'item', or None when no cost is known (then `value` is None too)."""

    sku: str
    location: str
    lot_number: str | None
    on_hand: Decimal
    unit_cost: Decimal | None
    value: Decimal | None
    cost_source: str | None


@dataclass(frozen=True)
class MovementSummary(Row):
    """A row of inventory_api.movement_summary: the movements of the last 90 days of an item at a
    location. shipped and transferred_out are positive; adjusted is signed; net_change is the change
    of on_hand over the window."""

    sku: str
    location: str
    received: Decimal
    shipped: Decimal
    returned: Decimal
    adjusted: Decimal
    transferred_in: Decimal
    transferred_out: Decimal
    net_change: Decimal
    movements: int
    first_movement_at: datetime
    last_movement_at: datetime


@dataclass(frozen=True)
class HoldsSummary(Row):
    """A row of inventory_api.active_reservations_summary: the ACTIVE holds of an item at a location
    (overdue ones, which no longer count, apart), the oldest and when the next lapses."""

    sku: str
    location: str
    holds: int
    units: Decimal
    overdue_holds: int
    overdue_units: Decimal
    oldest_hold_at: datetime | None
    next_expiry_at: datetime | None


@dataclass(frozen=True)
class LowStockItem(Row):
    """A row of inventory_api.low_stock_items (as of the last refresh_inventory_views): a level with a
    stock policy at or below its reorder point. stock_status: OUT_OF_STOCK (available <= 0), CRITICAL
    (<= safety_stock) or LOW (<= reorder_point)."""

    sku: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    reorder_point: Decimal
    safety_stock: Decimal
    stock_status: str
    shortfall: Decimal
    reorder_quantity: Decimal | None
    max_stock_level: Decimal | None
    suggested_order_quantity: Decimal | None
    refreshed_at: datetime


@dataclass(frozen=True)
class AlertStatistics(Row):
    """A row of inventory_api.alert_statistics: reorder alerts of one status and severity."""

    status: str
    severity: str
    alerts: int
    levels: int
    oldest_opened_at: datetime
    latest_opened_at: datetime


@dataclass(frozen=True)
class Dashboard(Row):
    """The one row of inventory_api.dashboard, over the caller's locations."""

    items: int
    locations: int
    units_on_hand: Decimal
    units_reserved: Decimal
    inventory_value: Decimal | None
    open_alerts: int
    open_reorder_alerts: int
    open_critical_alerts: int
    pending_approvals: int
    expiring_lots: int
    expired_lots: int
    holds_expiring_within_hour: int
    low_stock_items: int
    last_maintenance_at: datetime | None
    as_of: datetime


@dataclass(frozen=True)
class MaintenanceStatus(Row):
    """A row of inventory_api.maintenance_status: a maintenance job's last run (None: it never ran)
    and the time since it finished (lag)."""

    job: str
    description: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_duration_ms: Decimal | None
    last_rows: int | None
    last_result: str | None
    lag: timedelta | None


@dataclass(frozen=True)
class Metric(Row):
    """A row of inventory_api.inventory_metrics: one operational figure (the Prometheus gauge
    pyinv_<metric>). value is None when the figure is undefined (a rate with nothing to count); unit is
    ratio, count, units, currency, per year or seconds; period the window it covers, ending now (None:
    a figure of the present moment)."""

    metric: str
    value: Decimal | None
    unit: str
    period: timedelta | None
    description: str


@dataclass(frozen=True)
class DailyMovement(Row):
    """A row of inventory_api.daily_movements: the units moved on one day (UTC) of the last 30, over
    the caller's locations (zeros on a day without movements)."""

    day: date
    received: Decimal
    shipped: Decimal
    returned: Decimal
    adjusted: Decimal
    transferred_in: Decimal
    transferred_out: Decimal
    net_change: Decimal
    movements: int


@dataclass(frozen=True)
class StockSnapshot(Row):
    """What stock_as_of returns: the level as the ledger recorded it at `at` (after movement_id,
    made at movement_at; both None before the level's first movement, when the quantities are 0).
    available is on_hand - reserved."""

    sku: str
    location: str
    at: datetime
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    movement_id: int | None
    movement_at: datetime | None


@dataclass(frozen=True)
class ViewsRefresh(Row):
    """What refresh_inventory_views did: refreshed False means another run was in progress and this
    one returned at once (message says so); views and rows: the materialized views refreshed and the
    rows they now hold."""

    refreshed: bool
    views: list[str]
    rows: int
    started_at: datetime
    duration_ms: Decimal
    message: str


@dataclass(frozen=True)
class MaintenanceLeader(Row):
    """The maintenance runner that leads (inventory_api.maintenance_leader): since when, its last
    renewal, until when its lease runs, and whether the lease is current and its session alive."""

    runner_id: str
    claimed_at: datetime
    renewed_at: datetime
    lease_until: datetime
    is_current: bool


@dataclass(frozen=True)
class Event(Row):
    """An event (inventory_api.event, a row of inventory_api.events): what happened (`type`, e.g.
    stock.received, reservation.created, reservation.expired, adjustment.approved, lot.quarantined,
    alert.opened), to which item and location (location None for a lot), with details in `payload`
    (ids, quantities before and after, reason, reference, actor). Acknowledge `id` with ack_events."""

    id: int
    type: str
    sku: str | None
    location: str | None
    payload: JsonObject
    created_at: datetime


@dataclass(frozen=True)
class EventConsumer(Row):
    """A named reader of events (inventory_api.event_consumer): its owner (who created it) and the
    last event it acknowledged (0: none yet)."""

    consumer: str
    owner: str
    acknowledged_id: int
    updated_at: datetime
