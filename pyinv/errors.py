"""The one place where database errors become pyinv exceptions.

The contract is the SQLSTATE plus the HINT token (see inventory.error_codes and the README's error
catalogue), never the message text. DETAIL is a JSON object of specifics, exposed as ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar

import psycopg


class InventoryError(Exception):
    """Base class of every error pyinv raises on purpose."""

    code: ClassVar[str] = "INVENTORY_ERROR"
    sqlstate: ClassVar[str] = ""
    advice: ClassVar[str] = "See the error catalogue in the README."

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None, sqlstate: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}
        self.actual_sqlstate = sqlstate or self.sqlstate
        self.hint = hint or self.code

    @property
    def retryable(self) -> bool:
        return False


class NotFound(InventoryError):
    sqlstate = "PT404"


class ProductNotFound(NotFound):
    code = "PRODUCT_NOT_FOUND"
    advice = "Check the SKU, or create the item first (pyinv item add)."


class LocationNotFound(NotFound):
    code = "LOCATION_NOT_FOUND"
    advice = "Check the location code, or create it first (pyinv location add)."


class NoReservation(NotFound):
    code = "NO_RESERVATION"
    advice = "The order holds nothing (for this SKU): reserve it first, or check the order reference."


class Conflict(InventoryError):
    sqlstate = "PT409"


class InsufficientStock(Conflict):
    code = "INSUFFICIENT_STOCK"
    advice = "Reserve less, receive more stock, or wait for holds to be released."


class ProductUnavailable(Conflict):
    code = "PRODUCT_UNAVAILABLE"
    advice = "The item is on hold or discontinued: set it active again (pyinv item status SKU active)."


class QuantityMismatch(Conflict):
    code = "QUANTITY_MISMATCH"
    advice = "Ship at most what is held, return at most what was shipped and not yet returned."


class ReservationExpired(Conflict):
    code = "RESERVATION_EXPIRED"
    advice = "The hold lapsed before shipping: reserve the stock again, then fulfil."


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"
    advice = "This idempotency key was used for a different request: use a new key."


class AlreadyExists(Conflict):
    code = "ALREADY_EXISTS"
    advice = "An object with this key exists with other attributes: pick another key or reuse it as is."


class InvalidInput(InventoryError):
    sqlstate = "22023"


class InvalidQuantity(InvalidInput):
    code = "INVALID_QUANTITY"
    advice = "Quantities must be numbers greater than 0 and at most 1e12, with at most 4 decimals."


class InvalidArgument(InvalidInput):
    code = "INVALID_ARGUMENT"
    advice = "Fix the argument named in the detail and try again."


class AppendOnly(InventoryError):
    code = "APPEND_ONLY"
    sqlstate = "42501"
    advice = "The ledger is never rewritten: record a correcting movement instead."


class PermissionDenied(InventoryError):
    code = "PERMISSION_DENIED"
    sqlstate = "42501"
    advice = "Your role may not do this: ask an administrator for the right pyinv role."


class Retryable(InventoryError):
    """Serialization failure, deadlock, lock or statement timeout: retry with the same idempotency key."""

    code = "RETRYABLE"
    advice = "Retry the call with the same idempotency key."

    @property
    def retryable(self) -> bool:
        return True


class DatabaseError(InventoryError):
    """Any other database error, kept with its SQLSTATE."""

    code = "DATABASE_ERROR"
    advice = "This is not a pyinv business error; the message says what the database refused."


CATALOGUE: dict[str, type[InventoryError]] = {
    cls.code: cls
    for cls in (ProductNotFound, LocationNotFound, NoReservation, InsufficientStock, ProductUnavailable,
                QuantityMismatch, ReservationExpired, IdempotencyConflict, AlreadyExists, InvalidQuantity,
                InvalidArgument, AppendOnly, PermissionDenied)
}
"""Hint token -> exception, mirroring inventory.error_codes (a test checks they agree)."""

# -- stock control (issue 5) ---------------------------------------------------------------------------


class SelfApprovalForbidden(Conflict):
    code = "SELF_APPROVAL_FORBIDDEN"
    advice = "An adjustment must be approved by an admin other than the one who requested it."


class InvalidState(Conflict):
    code = "INVALID_STATE"
    advice = "The adjustment or alert was already decided or closed: check its current status."


class AdjustmentNotFound(NotFound):
    code = "ADJUSTMENT_NOT_FOUND"
    advice = "Check the adjustment id (pyinv adjustments, or the inventory_api.adjustments view)."


class AlertNotFound(NotFound):
    code = "ALERT_NOT_FOUND"
    advice = "Check the alert id (pyinv alerts)."


CATALOGUE.update({cls.code: cls for cls in (SelfApprovalForbidden, InvalidState, AdjustmentNotFound, AlertNotFound)})

class Busy(Retryable):
    """Other transactions kept what the call needs busy for longer than it may wait (BUSY, 55P03)."""

    code = "BUSY"
    sqlstate = "55P03"
    advice = "Other transactions are still running: retry in a moment."


CATALOGUE[Busy.code] = Busy


class VersionConflict(Conflict):
    """The object changed since the version passed as expected_version (VERSION_CONFLICT, PT409)."""

    code = "VERSION_CONFLICT"
    advice = "Someone changed it since you read it: re-read it (DETAIL has the current version) and decide again."


CATALOGUE[VersionConflict.code] = VersionConflict

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014"})


def translate(error: psycopg.Error) -> InventoryError:
    diag = error.diag
    sqlstate = error.sqlstate or ""
    hint = diag.message_hint or ""
    message = diag.message_primary or str(error)
    detail: dict[str, Any] = {}
    if diag.message_detail:
        try:
            parsed = json.loads(diag.message_detail, parse_float=Decimal)
            detail = parsed if isinstance(parsed, dict) else {"detail": parsed}
        except ValueError:
            detail = {"detail": diag.message_detail}
    if diag.constraint_name:
        detail.setdefault("constraint", diag.constraint_name)
    cls = CATALOGUE.get(hint)
    if cls is not None and cls.sqlstate == sqlstate:
        return cls(message, detail=detail, sqlstate=sqlstate, hint=hint)
    if sqlstate == "42501":
        return PermissionDenied(message, detail=detail, sqlstate=sqlstate, hint=hint or None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return Retryable(message, detail=detail, sqlstate=sqlstate, hint=hint or None)
    return DatabaseError(message, detail=detail, sqlstate=sqlstate, hint=hint or None)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise psycopg errors as pyinv exceptions (the original stays as __cause__)."""
    try:
        yield
    except psycopg.Error as error:
        raise translate(error) from error
