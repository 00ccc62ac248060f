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
        self.detail: dict[str, Any] = detail or {}
        self.actual_sqlstate = sqlstate or self.sqlstate
        self.hint = hint or self.code

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if tried again later (see RetryPolicy)."""
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


class ConnectionFailed(DatabaseError):
    """The database could not be reached, did not answer within connect_timeout, or the connection
    broke during a call (then whether the call took effect is unknown, unless it was read-only or
    carried an idempotency key: retry it with the same key)."""

    code = "CONNECTION_FAILED"
    advice = ("Check that the database server runs and is reachable (the DSN comes from --dsn, "
              "PYINV_DATABASE_URL, DATABASE_URL or the PG* variables), or start the embedded server "
              "with `pyinv db start`; then retry.")

    @property
    def retryable(self) -> bool:
        # libpq reports a failed connection attempt without a SQLSTATE, so a refused login cannot be
        # told from a server that is down: a connection failure is always worth another try.
        return True


class ConfigurationError(InventoryError, ValueError):
    """A setting pyinv reads (an argument or environment variable such as PYINV_PREPARED_STATEMENTS
    or PYINV_CONNECT_TIMEOUT) has a value it cannot use. Raised before anything is sent."""

    code = "INVALID_CONFIGURATION"
    advice = "Fix the setting named in the message and try again."


class InvalidDsn(ConfigurationError):
    """A DSN libpq cannot parse."""

    code = "INVALID_DSN"
    advice = "Give a libpq DSN: postgresql://user@host:5432/dbname or 'host=... dbname=...'."


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

# -- lots and expiry (issue 12) ----------------------------------------------------------------------------


class LotNotFound(NotFound):
    """No lot with this number for the item (LOT_NOT_FOUND, PT404)."""

    code = "LOT_NOT_FOUND"
    advice = "Check the lot number (pyinv lots --sku SKU lists the item's lots)."


CATALOGUE[LotNotFound.code] = LotNotFound

# -- the coalescer (issue 14) ---------------------------------------------------------------------------------


class CoalescerClosed(InventoryError, RuntimeError):
    """A reserve_stock call reached a Coalescer after close() (raised before anything is sent)."""

    code = "COALESCER_CLOSED"
    advice = "The coalescer was closed: call the Inventory directly, or open a new Coalescer."


RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014"})
"""Errors after which the transaction was rolled back and the same call may succeed later."""

AUTOMATIC_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
"""The retryable errors the client retries by itself (serialization failure, deadlock, lock not
available); a statement timeout or cancel (57014) is left to the caller."""

# Connection-level failures: the connection is gone (or never came up).
_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def is_connection_failure(error: psycopg.Error) -> bool:
    """Whether a psycopg error means the connection failed or broke (not that a statement failed)."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    sqlstate = error.sqlstate or ""
    return not sqlstate or sqlstate.startswith("08") or sqlstate in _CONNECTION_SQLSTATES


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
    if is_connection_failure(error):
        return ConnectionFailed(message.strip().splitlines()[0] if message.strip() else type(error).__name__,
                                detail=detail, sqlstate=sqlstate, hint=hint or None)
    return _classified(sqlstate, hint, message, detail)


def error_from_outcome(sqlstate: str | None, code: str | None, message: str | None,
                       detail: object = None) -> InventoryError:
    """The exception a call raising (SQLSTATE, HINT code, message, DETAIL) raises: for outcomes that
    a function reports as data instead of raising them, such as one request of reserve_many (its
    sqlstate, error_code, message and detail). Same class and attributes as translate() gives for the
    same error raised by the database (DETAIL as decoded JSON: an object, or anything else kept
    under "detail")."""
    shaped: dict[str, Any]
    if detail is None:
        shaped = {}
    elif isinstance(detail, dict):
        shaped = dict(detail)
    else:
        shaped = {"detail": detail}
    return _classified(sqlstate or "", code or "", message or "", shaped)


def _classified(sqlstate: str, hint: str, message: str, detail: dict[str, Any]) -> InventoryError:
    """The exception for a statement's error (not a connection failure): the catalogue's class when
    SQLSTATE and HINT agree with it, else by SQLSTATE."""
    cls = CATALOGUE.get(hint)
    if cls is not None and cls.sqlstate == sqlstate:
        return cls(message, detail=detail, sqlstate=sqlstate, hint=hint)
    if sqlstate == "42501":
        return PermissionDenied(message, detail=detail, sqlstate=sqlstate, hint=hint or None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return Retryable(message, detail=detail, sqlstate=sqlstate, hint=hint or None)
    return DatabaseError(message, detail=detail, sqlstate=sqlstate, hint=hint or None)


def translate_connect(error: psycopg.Error) -> InventoryError:
    """An error raised while connecting: ConnectionFailed (refused, timed out, login refused, no such
    database), keeping the server's SQLSTATE when there is one; InvalidDsn for a DSN that libpq
    cannot parse."""
    message = str(error).strip() or type(error).__name__
    first_line = message.splitlines()[0]
    if not isinstance(error, psycopg.OperationalError):
        return InvalidDsn(f"cannot use the DSN: {first_line}")
    return ConnectionFailed(f"cannot connect to the database: {first_line}",
                            detail={"detail": message} if message != first_line else {}, sqlstate=error.sqlstate)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise psycopg errors as pyinv exceptions (the original stays as __cause__)."""
    try:
        yield
    except psycopg.Error as error:
        raise translate(error) from error


@contextmanager
def translated_connect() -> Iterator[None]:
    """Re-raise errors of opening a connection as ConnectionFailed (the original stays as __cause__)."""
    try:
        yield
    except psycopg.Error as error:
        raise translate_connect(error) from error
