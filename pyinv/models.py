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


@dataclass(frozen=True)
class ReservationRow(Reservation):
    """A row of the inventory_api.reservations view."""

    is_overdue: bool
    closed_at: datetime | None


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
