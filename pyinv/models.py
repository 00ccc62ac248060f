"""Typed rows returned by the API (field names are the SQL column names)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


class Row:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Item(Row):
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


@dataclass(frozen=True)
class Location(Row):
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
    """A row of the inventory_api.stock_levels view."""

    sku: str
    location: str
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    expired_unreleased: Decimal
    status: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class Reservation(Row):
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
class ReservationRow(Reservation):
    """A row of the inventory_api.reservations view."""

    is_overdue: bool
    closed_at: datetime | None
    quantity_returned: Decimal


@dataclass(frozen=True)
class ReservationChange(Row):
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
class StockCheck(Row):
    can_fulfill: bool
    available: Decimal | None
    error_code: str | None


@dataclass(frozen=True)
class InvariantViolation(Row):
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
    metadata: dict[str, Any]
    created_at: datetime


# -- stock control (issue 5) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment(Row):
    """A stock adjustment (result of create_adjustment / approve_adjustment, row of the adjustments view)."""

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


@dataclass(frozen=True)
class StockCount(Row):
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


@dataclass(frozen=True)
class StockTransfer(Row):
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
    levels_checked: int
    opened: int
    escalated: int
    resolved: int


@dataclass(frozen=True)
class ReorderRecommendation(Row):
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


@dataclass(frozen=True)
class ImportReport(Row):
    """Outcome of a bulk import: counts, and every rejected row with its reason."""

    kind: str
    received: int = 0
    applied: int = 0
    unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    rejected: tuple[dict[str, Any], ...] = ()


# -- added by the CLI branch: user grants, the audit log, the returns view ------------------------------


@dataclass(frozen=True)
class UserRole(Row):
    """A business role held by a user (result of grant_user_role)."""

    user_id: str
    role: str
    location: str | None
    granted_by: str
    granted_at: datetime


@dataclass(frozen=True)
class UserRoleRow(Row):
    """A row of the inventory_api.user_roles view."""

    user_role_id: int
    user_id: str
    role: str
    location: str | None
    granted_by: str
    granted_at: datetime


@dataclass(frozen=True)
class AuditEntry(Row):
    """A row of the inventory_api.audit_log view (admins only)."""

    audit_id: int
    table_name: str
    operation: str
    actor: str | None
    db_role: str | None
    login: str | None
    request_path: str | None
    request_id: str | None
    old_row: dict[str, Any] | None
    new_row: dict[str, Any] | None
    created_at: datetime
    sealed: bool
    chain_seq: int | None


@dataclass(frozen=True)
class ReturnRow(StockReturn):
    """A row of the inventory_api.returns view."""

    created_by: str
