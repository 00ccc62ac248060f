"""pyinv.Inventory and pyinv.AsyncInventory: the one place in Python that calls the SQL API.

Every method is one call of an inventory_api function (or one read of an inventory_api view) with
named arguments, exactly as psql or PostgREST would make it, in a transaction of its own: the
statement itself on an autocommit connection; otherwise a transaction the call opens and ends, so a
refused call never leaves the connection in a failed transaction. When the caller has a transaction
open on the connection, the call joins it as a savepoint (it commits or rolls back with the caller's
work; a refused call is rolled back to the savepoint and the caller's transaction stays usable).

Each method is written once, in `_Api`, as a function that builds the call: the statement, its
arguments, the row type of the result and whether the call is safe to repeat. `Inventory` runs it
on a connection or a psycopg_pool pool and returns the result; `AsyncInventory` does the same with
asyncio and returns an awaitable. Errors are translated in errors.py; retries follow RetryPolicy.
"""

from __future__ import annotations

import abc
import asyncio
import csv
import functools
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from os import PathLike
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

import psycopg
from psycopg import pq, sql
from psycopg.rows import BaseRowFactory, class_row, tuple_row
from psycopg.types.json import Jsonb, set_json_loads

from .connection import connect_kwargs, prepared_statements_enabled
from .errors import ConfigurationError, InvalidArgument, InventoryError, translated, translated_connect
from .models import (
    Adjustment,
    AlertStatistics,
    AuditAnchor,
    AuditEntry,
    ChainBreak,
    DailyMovement,
    Dashboard,
    ErrorCode,
    Event,
    EventConsumer,
    ExpiringLot,
    HoldsSummary,
    HotMode,
    ImportBatch,
    ImportRejection,
    ImportReport,
    InvariantViolation,
    Item,
    Location,
    Lot,
    LotAllocation,
    LotExpiry,
    LotStatusChange,
    LotTrace,
    LowStockItem,
    MaintenanceLeader,
    MaintenanceStatus,
    Metric,
    Movement,
    MovementSummary,
    ReasonCode,
    ReorderAlert,
    ReorderCheck,
    ReorderRecommendation,
    Reservation,
    ReservationChange,
    ReservationRow,
    ReserveManyResult,
    ReturnRow,
    SchemaVersion,
    StockCheck,
    StockCount,
    StockLevel,
    StockPolicy,
    StockReturn,
    StockRow,
    StockSnapshot,
    StockTransfer,
    UserRole,
    UserRoleRow,
    ValuationRow,
    ViewsRefresh,
)
from .retry import DEFAULT_RETRY, RetryPolicy
from .server import resolve_dsn

# JSON in results (a movement's lots and metadata, import reports) keeps numbers exact, as quantities are
# everywhere else: 987654321098.7654 must not come back as a float.
_exact_json = functools.partial(json.loads, parse_float=Decimal)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
Number = int | float | Decimal | str
"""A quantity or amount: passed to the database as an exact decimal (floats through str)."""

_log = logging.getLogger("pyinv")


def _quantity(value: Number | None) -> Decimal | None:
    """Pass quantities as exact decimals; floats go through str so 0.1 stays 0.1."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _interval_text(value: object) -> object:
    """A timedelta as interval text with the days and seconds psycopg would send, so that its
    idempotency request matches reserve_stock's (interval_key compares months, days, seconds)."""
    if isinstance(value, timedelta):
        return f"{value.days} days {value.seconds}.{value.microseconds:06d} seconds"
    return value


def _announce(message: str) -> None:
    _log.info("%s", message)


# -- a call, as data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One statement to run and how to turn its rows into the method's result."""

    query: sql.Composed
    params: Mapping[str, Any]
    row_factory: BaseRowFactory[Any]
    shape: Callable[[list[Any]], T]
    idempotent: bool
    """Safe to run again after a failure whose outcome is unknown: read-only, a maintenance sweep,
    or a write that carries an idempotency key (a repeat replays the first outcome)."""


@functools.lru_cache(maxsize=256)
def _function_query(function: str, names: tuple[str, ...], scalar: bool) -> sql.Composed:
    template = "select inventory_api.{}({})" if scalar else "select * from inventory_api.{}({})"
    return sql.SQL(template).format(
        sql.Identifier(function),
        sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in names),
    )


_ROW_FACTORIES: dict[type[Any], BaseRowFactory[Any]] = {}


def _row_factory(row_type: type[Any]) -> BaseRowFactory[Any]:
    factory = _ROW_FACTORIES.get(row_type)
    if factory is None:
        factory = _ROW_FACTORIES[row_type] = class_row(row_type)
    return factory


def _present(arguments: Mapping[str, object], optional: Mapping[str, object] | None) -> dict[str, object]:
    """Arguments always passed, plus optional ones only when given (the SQL default applies otherwise,
    and a database on an older schema still accepts the call when they are not used)."""
    present = dict(arguments)
    if optional:
        present.update({name: value for name, value in optional.items() if value is not None})
    return present


def _rows(function: str, row_type: type[R], arguments: Mapping[str, object], *, idempotent: bool,
          optional: Mapping[str, object] | None = None) -> _Call[list[R]]:
    params = _present(arguments, optional)
    return _Call(_function_query(function, tuple(params), False), params, _row_factory(row_type), list, idempotent)


def _one(function: str, row_type: type[R], arguments: Mapping[str, object], *, idempotent: bool,
         optional: Mapping[str, object] | None = None) -> _Call[R]:
    params = _present(arguments, optional)
    return _Call(_function_query(function, tuple(params), False), params, _row_factory(row_type),
                 _first, idempotent)


def _value(function: str, convert: Callable[[Any], R], arguments: Mapping[str, object], *,
           idempotent: bool) -> _Call[R]:
    params = dict(arguments)
    return _Call(_function_query(function, tuple(params), True), params, tuple_row,
                 lambda rows: convert(rows[0][0]), idempotent)


def _first(rows: list[R]) -> R:
    return rows[0]


def _check_page(limit: int | None, offset: int) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgument(f"limit must be a whole number of 0 or more, not {limit!r}",
                              detail={"argument": "limit", "problem": "out of range"})
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgument(f"offset must be a whole number of 0 or more, not {offset!r}",
                              detail={"argument": "offset", "problem": "out of range"})


Where = Sequence[tuple[str, str, object]]
"""View filters: (column, operator, value); a filter whose value is None is left out."""


def _view(view: str, row_type: type[R], order_by: Sequence[str], where: Where = (), *, limit: int | None = None,
          offset: int = 0, newest_first: bool = False) -> _Call[list[R]]:
    """Rows of an inventory_api view, filtered, in `order_by` order. limit/offset page through them
    from the first row, or with `newest_first` from the last one (the most recent rows of a history),
    still returned in `order_by` order."""
    _check_page(limit, offset)
    params: dict[str, object] = {}
    conditions: list[sql.Composable] = []
    for number, (column, operator, value) in enumerate(where):
        if value is None:
            continue
        if operator == "is null":
            conditions.append(sql.SQL("{} is null").format(sql.Identifier(column)))
            continue
        name = f"p{number}"
        params[name] = value
        conditions.append(sql.SQL("{} {} {}").format(sql.Identifier(column), sql.SQL(operator), sql.Placeholder(name)))
    query: sql.Composed = sql.SQL("select * from inventory_api.{}").format(sql.Identifier(view))
    if conditions:
        query += sql.SQL(" where ") + sql.SQL(" and ").join(conditions)
    ascending = sql.SQL(", ").join(sql.Identifier(column) for column in order_by)
    page: sql.Composable = sql.SQL("")
    if limit is not None:
        params["page_limit"] = limit
        page += sql.SQL(" limit {}").format(sql.Placeholder("page_limit"))
    if offset:
        params["page_offset"] = offset
        page += sql.SQL(" offset {}").format(sql.Placeholder("page_offset"))
    if newest_first and (limit is not None or offset):
        descending = sql.SQL(", ").join(sql.SQL("{} desc").format(sql.Identifier(column)) for column in order_by)
        query = sql.SQL("select * from ({} order by {}{}) latest order by {}").format(
            query, descending, page, ascending)
    else:
        query += sql.SQL(" order by ") + ascending + page
    return _Call(query, params, _row_factory(row_type), list, True)


def _jsonb(value: object) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=exact_json)


def exact_json(value: Any) -> str:
    """JSON with Decimals written as the exact numbers they are (the json module would go through
    float: Decimal('862478641446.5169') would arrive as 862478641446.5168). A non-finite Decimal is
    written as a string, which the server refuses as INVALID_QUANTITY."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key))}: {exact_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(exact_json(item) for item in value) + "]"
    return json.dumps(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(cast(int, value))


# -- one definition per method, two ways to run it ----------------------------------------------------------


class _Operation(Generic[P, T]):
    """A method of both clients, defined once by a function that builds its call. Looked up on an
    Inventory it runs the call and returns T; on an AsyncInventory it returns a coroutine of T."""

    def __init__(self, build: Callable[Concatenate[Any, P], _Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        self.__qualname__ = build.__qualname__
        self.__module__ = build.__module__
        signature = inspect.signature(build)
        returns = str(signature.return_annotation)
        self.returns = returns[len("_Call["):-1] if returns.startswith("_Call[") else returns
        self.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:],
                                               return_annotation=self.returns)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _Operation[P, T]: ...
    @overload
    def __get__(self, instance: Inventory, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, instance: AsyncInventory, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, instance: _Api | None, owner: type[Any]) -> Any:
        if instance is None:
            return self
        return instance._bind(self)


def _operation(build: Callable[Concatenate[Any, P], _Call[T]]) -> _Operation[P, T]:
    return _Operation(build)


class _Api(abc.ABC):
    """The methods both clients share, each building its call (see _Operation)."""

    @abc.abstractmethod
    def _bind(self, operation: _Operation[P, T]) -> Callable[..., Any]:
        """How the client runs a built call: at once (Inventory) or as a coroutine (AsyncInventory)."""

    # -- catalogue --------------------------------------------------------------------------------------------

    @_operation
    def create_item(self, sku: str, name: str, unit_of_measure: str = "each", unit_cost: Number | None = None,
                    track_lots: bool = False, requires_qc: bool = False) -> _Call[Item]:
        """Create an item. Idempotent by SKU: the same attributes again return the item; other
        attributes raise AlreadyExists. track_lots: its stock is kept by lot (receipts name the lot);
        requires_qc (lot-tracked items only): a new lot is PENDING QC, not sellable until it PASSED."""
        return _one("create_item", Item, {"sku": sku, "name": name, "unit_of_measure": unit_of_measure,
                                          "unit_cost": _quantity(unit_cost), "track_lots": track_lots},
                    optional={"requires_qc": requires_qc or None}, idempotent=True)

    @_operation
    def update_item(self, sku: str, name: str | None = None, unit_of_measure: str | None = None,
                    unit_cost: Number | None = None, expected_version: int | None = None) -> _Call[Item]:
        """Change an item's name, unit of measure or unit cost (None: unchanged); admins only. With
        expected_version (the `version` you read), refused with VersionConflict if it changed since."""
        return _one("update_item", Item, {"sku": sku, "name": name, "unit_of_measure": unit_of_measure,
                                          "unit_cost": _quantity(unit_cost)},
                    optional={"expected_version": expected_version}, idempotent=False)

    @_operation
    def delete_item(self, sku: str, expected_version: int | None = None) -> _Call[Item]:
        """Soft-delete an item (it keeps its history; deleted_at and deleted_by are set); admins only.
        Refused with InvalidState while stock is on hand or held; VersionConflict with a stale
        expected_version."""
        return _one("delete_item", Item, {"sku": sku}, optional={"expected_version": expected_version},
                    idempotent=False)

    @_operation
    def restore_item(self, sku: str) -> _Call[Item]:
        """Bring a soft-deleted item back; admins only."""
        return _one("restore_item", Item, {"sku": sku}, idempotent=False)

    @_operation
    def set_item_status(self, sku: str, status: str) -> _Call[Item]:
        """Set an item's status: active, on_hold or discontinued (on_hold and discontinued items cannot
        be reserved; discontinued items cannot be received)."""
        return _one("set_item_status", Item, {"sku": sku, "status": status}, idempotent=False)

    @_operation
    def create_location(self, code: str, name: str) -> _Call[Location]:
        """Create a stock location. Idempotent by code: the same name again returns it; another name
        raises AlreadyExists."""
        return _one("create_location", Location, {"code": code, "name": name}, idempotent=True)

    @_operation
    def grant_user_role(self, user_id: str, role: str, location: str | None = None) -> _Call[UserRole]:
        """Give a user (JWT sub, or a login name) a business role: viewer, operator, admin or
        scheduler, at one location or (None) everywhere. Admins only."""
        return _one("grant_user_role", UserRole, {"user_id": user_id, "role": role, "location": location},
                    idempotent=False)

    @_operation
    def revoke_user_role(self, user_id: str, role: str, location: str | None = None) -> _Call[int]:
        """Take a business role away from a user; returns how many grants were removed. Admins only."""
        return _value("revoke_user_role", int, {"user_id": user_id, "role": role, "location": location},
                      idempotent=False)

    # -- stock and the order lifecycle ------------------------------------------------------------------------

    @_operation
    def receive_stock(self, sku: str, quantity: Number, location: str = "main", reference: str | None = None,
                      unit_cost: Number | None = None, idempotency_key: str | None = None,
                      lot_number: str | None = None, expires_on: date | None = None,
                      supplier_lot: str | None = None) -> _Call[StockLevel]:
        """Add received stock to a location; returns the level after the movement. A lot-tracked item
        needs lot_number (a new lot, or more of an existing one); expires_on is the lot's last sellable
        day, supplier_lot the supplier's own number for it."""
        return _one("receive_stock", StockLevel, {
            "sku": sku, "quantity": _quantity(quantity), "location": location, "reference": reference,
            "unit_cost": _quantity(unit_cost), "idempotency_key": idempotency_key,
        }, optional={"lot_number": lot_number, "expires_on": expires_on, "supplier_lot": supplier_lot},
            idempotent=idempotency_key is not None)

    @_operation
    def reserve_stock(self, sku: str, quantity: Number, order_ref: str, location: str = "main",
                      expires_in: timedelta | None = None, idempotency_key: str | None = None,
                      reference_type: str | None = None, notes: str | None = None,
                      min_shelf_life: timedelta | None = None) -> _Call[Reservation]:
        """Hold stock for an order (never more than is available: InsufficientStock otherwise). The
        hold lapses after expires_in (default: the configured lifetime). reference_type says what
        order_ref is (order, work_order, transfer, production, sample, other; default order). For a
        lot-tracked item the units come from sellable lots, first expiring first; min_shelf_life
        leaves out lots that expire sooner than that from today."""
        return _one("reserve_stock", Reservation, {
            "sku": sku, "quantity": _quantity(quantity), "order_ref": order_ref, "location": location,
            "expires_in": expires_in, "idempotency_key": idempotency_key,
        }, optional={"reference_type": reference_type, "notes": notes, "min_shelf_life": min_shelf_life},
            idempotent=idempotency_key is not None)

    @_operation
    def reserve_order(self, order_ref: str, lines: Sequence[Mapping[str, Any]], expires_in: timedelta | None = None,
                      idempotency_key: str | None = None, reference_type: str | None = None,
                      notes: str | None = None, min_shelf_life: timedelta | None = None) -> _Call[list[Reservation]]:
        """Hold every line of an order ({"sku", "quantity"[, "location"]}) all or nothing; lots of
        lot-tracked items as reserve_stock takes them (min_shelf_life applies to every line)."""
        payload = [
            {**line, "quantity": _quantity(line["quantity"])} if "quantity" in line else dict(line)
            for line in lines
        ]
        return _rows("reserve_order", Reservation, {
            "order_ref": order_ref, "lines": Jsonb(payload, dumps=exact_json), "expires_in": expires_in,
            "idempotency_key": idempotency_key,
        }, optional={"reference_type": reference_type, "notes": notes, "min_shelf_life": min_shelf_life},
            idempotent=idempotency_key is not None)

    @_operation
    def reserve_many(self, requests: Sequence[Mapping[str, Any]]) -> _Call[list[ReserveManyResult]]:
        """Holds for many independent orders in one call, each request ({"order_ref", "sku", "quantity"
        [, "location", "expires_in", "idempotency_key"]}) succeeding or failing on its own exactly as
        reserve_stock would, called once per request in this order; one result per request, in order.
        Safe to retry only when every request has an idempotency key."""
        payload = [
            {key: _quantity(value) if key == "quantity" else _interval_text(value) if key == "expires_in" else value
             for key, value in request.items()}
            for request in requests
        ]
        return _rows("reserve_many", ReserveManyResult, {"requests": Jsonb(payload, dumps=exact_json)},
                     idempotent=bool(requests) and all(r.get("idempotency_key") for r in requests))

    @_operation
    def fulfill_order(self, order_ref: str, sku: str | None = None, quantity: Number | None = None,
                      idempotency_key: str | None = None) -> _Call[list[ReservationChange]]:
        """Ship what an order holds (all of it, one SKU, or a quantity of one SKU)."""
        return _rows("fulfill_order", ReservationChange, {
            "order_ref": order_ref, "sku": sku, "quantity": _quantity(quantity), "idempotency_key": idempotency_key,
        }, idempotent=idempotency_key is not None)

    @_operation
    def cancel_reservation(self, order_ref: str, sku: str | None = None,
                           idempotency_key: str | None = None) -> _Call[list[ReservationChange]]:
        """Release what an order (or one SKU of it) holds."""
        return _rows("cancel_reservation", ReservationChange,
                     {"order_ref": order_ref, "sku": sku, "idempotency_key": idempotency_key},
                     idempotent=idempotency_key is not None)

    @_operation
    def process_return(self, order_ref: str, sku: str, quantity: Number, reason: str, restock: bool = True,
                       location: str = "main", idempotency_key: str | None = None,
                       lot_number: str | None = None) -> _Call[StockReturn]:
        """Record a customer return of shipped units, restocked (default) or not; lot_number: the lot
        the units came from (lot-tracked items)."""
        return _one("process_return", StockReturn, {
            "order_ref": order_ref, "sku": sku, "quantity": _quantity(quantity), "reason": reason,
            "restock": restock, "location": location, "idempotency_key": idempotency_key,
        }, optional={"lot_number": lot_number}, idempotent=idempotency_key is not None)

    @_operation
    def validate_stock(self, sku: str, quantity: Number, location: str = "main") -> _Call[StockCheck]:
        """Whether `quantity` could be reserved now, and if not, why (read-only)."""
        return _one("validate_stock", StockCheck,
                    {"sku": sku, "quantity": _quantity(quantity), "location": location}, idempotent=True)

    # -- maintenance and checks -------------------------------------------------------------------------------

    @_operation
    def expire_reservations(self, batch_size: int = 1000) -> _Call[int]:
        """Release up to batch_size overdue holds; returns how many (call again while it returns
        batch_size)."""
        return _value("expire_reservations", int, {"batch_size": batch_size}, idempotent=True)

    @_operation
    def verify_inventory(self, anchor: Mapping[str, object] | None = None) -> _Call[list[InvariantViolation]]:
        """Every broken invariant (none: the books balance); with an anchor from audit_anchor(), also
        every ledger rewrite or deletion the anchor covers."""
        return _rows("verify_inventory", InvariantViolation, {"anchor": _jsonb(anchor)}, idempotent=True)

    @_operation
    def verify_audit_chain(self, anchor: Mapping[str, object] | None = None) -> _Call[list[ChainBreak]]:
        """Problems of the audit chain (none: intact); with an anchor, also truncation or rewriting since."""
        return _rows("verify_audit_chain", ChainBreak, {"anchor": _jsonb(anchor)}, idempotent=True)

    @_operation
    def seal_audit_log(self, batch_size: int = 10000) -> _Call[int | None]:
        """Seal up to batch_size audit rows; the number sealed, or None when another sealer is running."""
        return _value("seal_audit_log", _optional_int, {"batch_size": batch_size}, idempotent=True)

    @_operation
    def audit_anchor(self, wait_seconds: Number = 10) -> _Call[AuditAnchor]:
        """The heads of the audit and ledger chains, to keep where the database cannot write. Needs a
        READ COMMITTED transaction of its own (an autocommit connection, or the default level)."""
        return _value("audit_anchor", lambda document: cast(AuditAnchor, document),
                      {"wait_seconds": _quantity(wait_seconds)}, idempotent=True)

    @_operation
    def check_reorder_points(self) -> _Call[ReorderCheck]:
        """Re-evaluate every level with a stock policy (alerts are also kept up to date by a trigger)."""
        return _one("check_reorder_points", ReorderCheck, {}, idempotent=True)

    @_operation
    def claim_maintenance_lease(self, runner_id: str, lease_seconds: int = 5) -> _Call[bool]:
        """Take or renew the lead of the maintenance runners for lease_seconds; True when runner_id
        leads (pyinv.maintenance.Runner calls it every second)."""
        return _value("claim_maintenance_lease", bool, {"runner_id": runner_id, "lease_seconds": lease_seconds},
                      idempotent=True)

    @_operation
    def release_maintenance_lease(self, runner_id: str) -> _Call[bool]:
        """Give up the lead (clean shutdown); False when runner_id did not lead."""
        return _value("release_maintenance_lease", bool, {"runner_id": runner_id}, idempotent=True)

    @_operation
    def maintenance_leader(self) -> _Call[MaintenanceLeader | None]:
        """The runner that leads or led last; None when none has led since the last clean shutdown."""
        return _Call(_function_query("maintenance_leader", (), False), {}, _row_factory(MaintenanceLeader),
                     lambda rows: rows[0] if rows else None, True)

    @_operation
    def record_maintenance_run(self, job: str, rows_touched: int, duration: timedelta | None = None,
                               result: str = "ok") -> _Call[None]:
        """Record a run of a job that does not record itself (expire_reservations, audit_anchor) or ran
        in several batches, as maintenance_status shows it."""
        return _value("record_maintenance_run", lambda _: None,
                      {"job": job, "rows_touched": rows_touched, "duration": duration, "result": result},
                      idempotent=True)

    # -- readers ----------------------------------------------------------------------------------------------

    @_operation
    def stock_levels(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                     offset: int = 0) -> _Call[list[StockRow]]:
        """Stock per item and location, by SKU and location (limit/offset page from the first)."""
        return _view("stock_levels", StockRow, ("sku", "location"), [("sku", "=", sku), ("location", "=", location)],
                     limit=limit, offset=offset)

    @_operation
    def items(self, include_deleted: bool = False, limit: int | None = None,
              offset: int = 0) -> _Call[list[Item]]:
        """The catalogue by SKU, soft-deleted items only with include_deleted (limit/offset page from
        the first)."""
        return _view("items", Item, ("sku",), [] if include_deleted else [("deleted_at", "is null", True)],
                     limit=limit, offset=offset)

    @_operation
    def locations(self, limit: int | None = None, offset: int = 0) -> _Call[list[Location]]:
        """Stock locations by code (limit/offset page from the first)."""
        return _view("locations", Location, ("code",), limit=limit, offset=offset)

    @_operation
    def reservations(self, order_ref: str | None = None, status: str | None = None, sku: str | None = None,
                     limit: int | None = None, offset: int = 0) -> _Call[list[ReservationRow]]:
        """Holds, oldest first; limit/offset count from the newest (limit=20: the latest 20)."""
        return _view("reservations", ReservationRow, ("reservation_id",),
                     [("order_ref", "=", order_ref), ("status", "=", status), ("sku", "=", sku)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def movements(self, sku: str | None = None, reference: str | None = None, limit: int | None = None,
                  offset: int = 0) -> _Call[list[Movement]]:
        """The ledger, oldest first; limit/offset count from the newest (limit=20: the latest 20)."""
        return _view("stock_movements", Movement, ("movement_id",), [("sku", "=", sku), ("reference", "=", reference)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def returns(self, order_ref: str | None = None, sku: str | None = None, location: str | None = None,
                limit: int | None = None, offset: int = 0) -> _Call[list[ReturnRow]]:
        """Customer returns, oldest first; limit/offset count from the newest."""
        return _view("returns", ReturnRow, ("return_id",),
                     [("order_ref", "=", order_ref), ("sku", "=", sku), ("location", "=", location)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def cycle_counts(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                     offset: int = 0) -> _Call[list[StockCount]]:
        """Physical counts and the adjustment each produced, oldest first; limit/offset count from the
        newest."""
        return _view("cycle_counts", StockCount, ("count_id",), [("sku", "=", sku), ("location", "=", location)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def audit_log(self, table: str | None = None, actor: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int | None = None,
                  offset: int = 0) -> _Call[list[AuditEntry]]:
        """Audit rows (admins only; others see none), oldest first, of one table and one actor, from
        `since` (included) to `until` (excluded); limit/offset count from the newest."""
        return _view("audit_log", AuditEntry, ("audit_id",),
                     [("table_name", "=", table), ("actor", "=", actor), ("created_at", ">=", since),
                      ("created_at", "<", until)], limit=limit, offset=offset, newest_first=True)

    @_operation
    def user_roles(self, user_id: str | None = None, role: str | None = None, limit: int | None = None,
                   offset: int = 0) -> _Call[list[UserRoleRow]]:
        """Business roles granted (admins see all, others their own), by user and role."""
        return _view("user_roles", UserRoleRow, ("user_id", "role", "user_role_id"),
                     [("user_id", "=", user_id), ("role", "=", role)], limit=limit, offset=offset)

    @_operation
    def error_codes(self, limit: int | None = None, offset: int = 0) -> _Call[list[ErrorCode]]:
        """The error catalogue: every code pyinv raises, its SQLSTATE and meaning."""
        return _view("error_codes", ErrorCode, ("code",), limit=limit, offset=offset)

    @_operation
    def schema_version(self) -> _Call[SchemaVersion]:
        """The installed schema's release and last migration (compare with pyinv.__version__)."""
        return _one("schema_version", SchemaVersion, {}, idempotent=True)

    # -- stock control: adjustments, counts, transfers, policies, alerts, bulk import ----------------------

    @_operation
    def reason_codes(self, limit: int | None = None, offset: int = 0) -> _Call[list[ReasonCode]]:
        """Adjustment reasons by code."""
        return _view("reason_codes", ReasonCode, ("reason_code",), limit=limit, offset=offset)

    @_operation
    def set_reason_code(self, code: str, requires_approval: bool, approval_threshold: Number,
                        direction: str | None = None, description: str | None = None) -> _Call[ReasonCode]:
        """Create or change an adjustment reason (unscoped admins; audited)."""
        return _one("set_reason_code", ReasonCode, {
            "code": code, "requires_approval": requires_approval, "approval_threshold": _quantity(approval_threshold),
            "direction": direction, "description": description,
        }, idempotent=False)

    @_operation
    def create_adjustment(self, sku: str, quantity_delta: Number, adjustment_type: str, reason_code: str,
                          location: str = "main", description: str | None = None,
                          idempotency_key: str | None = None, lot_number: str | None = None) -> _Call[Adjustment]:
        """Request a stock adjustment: applied at once, or PENDING until another admin approves it.
        A lot-tracked item needs lot_number: the lot whose units change."""
        return _one("create_adjustment", Adjustment, {
            "sku": sku, "quantity_delta": _quantity(quantity_delta), "adjustment_type": adjustment_type,
            "reason_code": reason_code, "location": location, "description": description,
            "idempotency_key": idempotency_key,
        }, optional={"lot_number": lot_number}, idempotent=idempotency_key is not None)

    @_operation
    def approve_adjustment(self, adjustment_id: int, decision: str = "approved",
                           note: str | None = None) -> _Call[Adjustment]:
        """Approve (or with decision="rejected", reject) a PENDING adjustment; not its requester."""
        return _one("approve_adjustment", Adjustment,
                    {"adjustment_id": adjustment_id, "decision": decision, "note": note}, idempotent=False)

    @_operation
    def adjustments(self, status: str | None = None, sku: str | None = None, location: str | None = None,
                    limit: int | None = None, offset: int = 0) -> _Call[list[Adjustment]]:
        """Adjustments, oldest first; limit/offset count from the newest."""
        return _view("adjustments", Adjustment, ("adjustment_id",),
                     [("status", "=", status), ("sku", "=", sku), ("location", "=", location)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def record_count(self, sku: str, counted_quantity: Number, location: str = "main",
                     lot_number: str | None = None) -> _Call[StockCount]:
        """Record a physical count; a difference becomes an adjustment (approved by the rules). A
        lot-tracked item is counted lot by lot: lot_number is required."""
        return _one("record_count", StockCount, {
            "sku": sku, "counted_quantity": _quantity(counted_quantity), "location": location,
        }, optional={"lot_number": lot_number}, idempotent=False)

    @_operation
    def transfer_stock(self, sku: str, quantity: Number, from_location: str, to_location: str,
                       reference: str | None = None, idempotency_key: str | None = None,
                       lot_number: str | None = None) -> _Call[StockTransfer]:
        """Move available stock from one location to another (two linked movements); lot_number moves
        units of that lot only (lot-tracked items)."""
        return _one("transfer_stock", StockTransfer, {
            "sku": sku, "quantity": _quantity(quantity), "from_location": from_location, "to_location": to_location,
            "reference": reference, "idempotency_key": idempotency_key,
        }, optional={"lot_number": lot_number}, idempotent=idempotency_key is not None)

    @_operation
    def set_stock_policy(self, sku: str, location: str, reorder_point: Number, safety_stock: Number,
                         reorder_quantity: Number | None = None, max_stock_level: Number | None = None,
                         lead_time_days: int | None = None,
                         expected_version: int | None = None) -> _Call[StockPolicy]:
        """Create or replace the replenishment policy of an item at a location. With expected_version
        (the policy's `version` you read), refused with VersionConflict if it changed since."""
        return _one("set_stock_policy", StockPolicy, {
            "sku": sku, "location": location, "reorder_point": _quantity(reorder_point),
            "safety_stock": _quantity(safety_stock), "reorder_quantity": _quantity(reorder_quantity),
            "max_stock_level": _quantity(max_stock_level), "lead_time_days": lead_time_days,
        }, optional={"expected_version": expected_version}, idempotent=False)

    @_operation
    def stock_policies(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                       offset: int = 0) -> _Call[list[StockPolicy]]:
        """Replenishment policies by SKU and location."""
        return _view("stock_policies", StockPolicy, ("sku", "location"),
                     [("sku", "=", sku), ("location", "=", location)], limit=limit, offset=offset)

    @_operation
    def reorder_alerts(self, status: str | None = None, sku: str | None = None, location: str | None = None,
                       limit: int | None = None, offset: int = 0, open_only: bool = False
                       ) -> _Call[list[ReorderAlert]]:
        """Low-stock alerts, oldest first; limit/offset count from the newest; open_only: OPEN and
        ACKNOWLEDGED ones."""
        return _view("reorder_alerts", ReorderAlert, ("alert_id",),
                     [("status", "=", status), ("sku", "=", sku), ("location", "=", location),
                      ("closed_at", "is null", True if open_only else None)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def update_reorder_alert(self, alert_id: int, status: str, note: str | None = None) -> _Call[ReorderAlert]:
        """Acknowledge or dismiss an alert (status ACKNOWLEDGED or DISMISSED), with a note."""
        return _one("update_reorder_alert", ReorderAlert, {"alert_id": alert_id, "status": status, "note": note},
                    idempotent=False)

    @_operation
    def reorder_recommendations(self, sku: str | None = None, location: str | None = None, status: str | None = None,
                                limit: int | None = None, offset: int = 0, actionable: bool = False
                                ) -> _Call[list[ReorderRecommendation]]:
        """Every level with a policy, CRITICAL / REORDER / NORMAL, with a suggested order quantity;
        actionable: only CRITICAL and REORDER ones."""
        return _view("reorder_recommendations", ReorderRecommendation, ("sku", "location"),
                     [("sku", "=", sku), ("location", "=", location), ("status", "=", status),
                      ("status", "<>", "NORMAL" if actionable else None)],
                     limit=limit, offset=offset)

    # -- lots and expiry --------------------------------------------------------------------------------------

    @_operation
    def lots(self, sku: str | None = None, location: str | None = None, lot_number: str | None = None,
             qc_status: str | None = None, limit: int | None = None, offset: int = 0) -> _Call[list[Lot]]:
        """Lots of lot-tracked items per location, by SKU and location, first expiring first (limit/offset
        page from the first)."""
        return _view("lots", Lot, ("sku", "location", "expires_on", "lot_number"),
                     [("sku", "=", sku), ("location", "=", location), ("lot_number", "=", lot_number),
                      ("qc_status", "=", qc_status)], limit=limit, offset=offset)

    @_operation
    def expiring_lots(self, sku: str | None = None, location: str | None = None, within_days: int | None = None,
                      expiry_status: str | None = None, limit: int | None = None,
                      offset: int = 0) -> _Call[list[ExpiringLot]]:
        """Lots with stock on hand that have expired or expire within 30 days (within_days: fewer),
        first expiring first (limit/offset page from the first)."""
        return _view("expiring_lots", ExpiringLot, ("expires_on", "sku", "location", "lot_number"),
                     [("sku", "=", sku), ("location", "=", location), ("days_left", "<=", within_days),
                      ("expiry_status", "=", expiry_status)], limit=limit, offset=offset)

    @_operation
    def lot_allocations(self, order_ref: str | None = None, sku: str | None = None, lot_number: str | None = None,
                        location: str | None = None, limit: int | None = None,
                        offset: int = 0) -> _Call[list[LotAllocation]]:
        """Which lots each hold took units from, oldest hold first; limit/offset count from the newest."""
        return _view("lot_allocations", LotAllocation, ("reservation_id", "lot_number"),
                     [("order_ref", "=", order_ref), ("sku", "=", sku), ("lot_number", "=", lot_number),
                      ("location", "=", location)], limit=limit, offset=offset, newest_first=True)

    @_operation
    def set_hot_mode(self, sku: str, location: str = "main", buckets: int = 8) -> _Call[HotMode]:
        """Hot mode for a flash sale (admins): spread the level's free units over `buckets` rows so that
        holds commit side by side; buckets=1 turns it off. Every client (SQL, PostgREST, this one)
        then gets it; a hold is still refused only when the level as a whole is short."""
        return _one("set_hot_mode", HotMode, {"sku": sku, "location": location, "buckets": buckets},
                    idempotent=True)

    @_operation
    def set_lot_status(self, sku: str, lot_number: str, qc_status: str | None = None,
                       quarantined: bool | None = None, note: str | None = None) -> _Call[LotStatusChange]:
        """Set a lot's QC status (PENDING, PASSED, FAILED) and/or quarantine it (True) or release it
        (False); None: unchanged. Admins only. When the lot stops being sellable, its open holds move to
        other sellable lots of the same level, first expiring first; what cannot move is released."""
        return _one("set_lot_status", LotStatusChange, {
            "sku": sku, "lot_number": lot_number, "qc_status": qc_status, "quarantined": quarantined, "note": note,
        }, idempotent=False)

    @_operation
    def expire_inventory_lots(self) -> _Call[LotExpiry]:
        """Write off the stock of lots past their expiry day (expires_on before today, UTC), moving
        their open holds to other sellable lots or releasing them. Schedulers and admins; Busy when
        another run is under way."""
        return _one("expire_inventory_lots", LotExpiry, {}, idempotent=True)

    @_operation
    def trace_lot(self, sku: str, lot_number: str) -> _Call[list[LotTrace]]:
        """Every hold that took units of a lot, with its order, and what was shipped, returned and
        released (a recall); LotNotFound for an unknown lot."""
        return _rows("trace_lot", LotTrace, {"sku": sku, "lot_number": lot_number}, idempotent=True)

    # -- reports ----------------------------------------------------------------------------------------------

    @_operation
    def inventory_valuation(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                            offset: int = 0) -> _Call[list[ValuationRow]]:
        """Value of the stock on hand at unit cost, per item and location (per lot for lot-tracked
        items, at the lot's own cost when it has one), by SKU, location and lot."""
        return _view("inventory_valuation", ValuationRow, ("sku", "location", "lot_number"),
                     [("sku", "=", sku), ("location", "=", location)], limit=limit, offset=offset)

    @_operation
    def movement_summary(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                         offset: int = 0) -> _Call[list[MovementSummary]]:
        """Units received, shipped, returned, adjusted and transferred in the last 90 days, per item and
        location, with the net change of on_hand."""
        return _view("movement_summary", MovementSummary, ("sku", "location"),
                     [("sku", "=", sku), ("location", "=", location)], limit=limit, offset=offset)

    @_operation
    def active_reservations_summary(self, sku: str | None = None, location: str | None = None,
                                    limit: int | None = None, offset: int = 0) -> _Call[list[HoldsSummary]]:
        """ACTIVE holds per item and location: how many, the units they hold, the oldest and the next
        to lapse (overdue ones apart)."""
        return _view("active_reservations_summary", HoldsSummary, ("sku", "location"),
                     [("sku", "=", sku), ("location", "=", location)], limit=limit, offset=offset)

    @_operation
    def low_stock_items(self, sku: str | None = None, location: str | None = None, stock_status: str | None = None,
                        limit: int | None = None, offset: int = 0) -> _Call[list[LowStockItem]]:
        """Levels at or below their reorder point as of the last refresh_inventory_views: OUT_OF_STOCK,
        CRITICAL or LOW (stock_status filters)."""
        return _view("low_stock_items", LowStockItem, ("sku", "location"),
                     [("sku", "=", sku), ("location", "=", location), ("stock_status", "=", stock_status)],
                     limit=limit, offset=offset)

    @_operation
    def alert_statistics(self) -> _Call[list[AlertStatistics]]:
        """Reorder alerts counted by status and severity."""
        return _view("alert_statistics", AlertStatistics, ("status", "severity"))

    @_operation
    def dashboard(self) -> _Call[Dashboard]:
        """One row of figures over the caller's locations: items, units, value, alerts, approvals,
        expiring lots and holds, low stock, last maintenance."""
        call = _view("dashboard", Dashboard, ("as_of",))
        return _Call(call.query, call.params, call.row_factory, _first, True)

    # -- events ---------------------------------------------------------------------------------------------

    @_operation
    def read_events(self, consumer: str | None = None, max_events: int = 100,
                    after_id: int | None = None) -> _Call[list[Event]]:
        """Up to max_events events after consumer's last acknowledged one (after_id: after that event
        instead), at your locations, in order; acknowledge the last with ack_events. Never skips an
        event committed late: events of transactions of this database still running wait until they end."""
        return _rows("read_events", Event, {"consumer": consumer, "max_events": max_events},
                     idempotent=True, optional={"after_id": after_id})

    @_operation
    def ack_events(self, consumer: str, up_to_id: int) -> _Call[EventConsumer]:
        """Record that consumer processed every event read_events gave it up to up_to_id (creates the
        consumer, owned by you; never moves back)."""
        return _one("ack_events", EventConsumer, {"consumer": consumer, "up_to_id": up_to_id}, idempotent=True)

    @_operation
    def purge_events(self, older_than: timedelta | None = None) -> _Call[int]:
        """Delete events older than older_than (default: the configured event_retention, 30 days);
        returns how many. Scheduler or unscoped admin."""
        return _value("purge_events", int, {"older_than": older_than}, idempotent=True)

    @_operation
    def events(self, type: str | None = None, sku: str | None = None, location: str | None = None,
               limit: int | None = None, offset: int = 0) -> _Call[list[Event]]:
        """Events at your locations, oldest first; limit/offset count from the newest (limit=20: the
        latest 20). To consume them without loss use read_events."""
        return _view("events", Event, ("id",), [("type", "=", type), ("sku", "=", sku), ("location", "=", location)],
                     limit=limit, offset=offset, newest_first=True)

    @_operation
    def event_consumers(self) -> _Call[list[EventConsumer]]:
        """Your consumers of events (an unscoped admin: all) and how far each acknowledged."""
        return _view("event_consumers", EventConsumer, ("consumer",))

    @_operation
    def maintenance_status(self, job: str | None = None) -> _Call[list[MaintenanceStatus]]:
        """Each maintenance job's last run: start, finish, duration, rows touched, result and lag."""
        return _view("maintenance_status", MaintenanceStatus, ("job",), [("job", "=", job)])

    @_operation
    def inventory_metrics(self, metric: str | None = None) -> _Call[list[Metric]]:
        """Operational metrics, one per row by name: stock-out rate, levels at or below their reorder
        point, reservation fill rate, turnover, count accuracy, expiry waste, holds expired in the last
        day (over the caller's locations), maintenance lag and the audit rows waiting to be sealed
        (the whole database). Empty for a caller without a business role."""
        return _view("inventory_metrics", Metric, ("metric",), [("metric", "=", metric)])

    @_operation
    def daily_movements(self) -> _Call[list[DailyMovement]]:
        """Units received, shipped, returned, adjusted and transferred per day (UTC) over the last 30
        days, oldest first, one row per day, over the caller's locations."""
        return _view("daily_movements", DailyMovement, ("day",))

    @_operation
    def stock_as_of(self, sku: str, at: datetime, location: str = "main") -> _Call[StockSnapshot]:
        """The level of `sku` at `location` at the moment `at`, from the ledger: on hand, reserved and
        available after the last movement at or before it (zeros before the first)."""
        return _one("stock_as_of", StockSnapshot, {"sku": sku, "location": location, "at": at}, idempotent=True)

    @_operation
    def refresh_inventory_views(self) -> _Call[ViewsRefresh]:
        """Refresh the materialized views behind the reports, concurrently (scheduler or an unscoped
        admin). refreshed is False, at once, while another run is in progress."""
        return _one("refresh_inventory_views", ViewsRefresh, {}, idempotent=True)

    @_operation
    def import_batch(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> _Call[ImportBatch]:
        """One batch (at most 10000 rows) of `kind` "items" or "policies": one call, one transaction;
        valid rows applied, the others reported in `rejected`."""
        functions = {"items": "import_items", "policies": "import_stock_policies"}
        if kind not in functions:
            raise InvalidArgument(f"kind must be items or policies, not {kind!r}",
                                  detail={"argument": "kind", "problem": "unknown"})
        return _value(functions[kind], lambda document: cast(ImportBatch, document),
                      {"rows": Jsonb(list(rows), dumps=exact_json)}, idempotent=False)


# -- CSV import, shared by both clients ---------------------------------------------------------------------


class _CsvImport:
    """Reads a CSV file in batches and adds up what the batches report."""

    def __init__(self, path: str | PathLike[str], kind: str | None, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
            raise InvalidArgument(f"batch_size must be between 1 and 10000, not {batch_size!r}",
                                  detail={"argument": "batch_size", "problem": "out of range"})
        if kind not in (None, "items", "policies"):
            raise InvalidArgument(f"kind must be items or policies, not {kind!r}",
                                  detail={"argument": "kind", "problem": "unknown"})
        self.path, self.kind, self.batch_size = path, kind, batch_size
        self.started = time.perf_counter()
        self.received = self.applied = self.unchanged = self.batches = 0
        self.rejected: list[ImportRejection] = []

    def batches_of_rows(self) -> Iterator[list[dict[str, object]]]:
        with open(self.path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            if self.kind is None:
                self.kind = "policies" if "reorder_point" in header else "items"
            batch: list[dict[str, object]] = []
            for record in reader:
                row: dict[str, object] = {key: value for key, value in record.items() if key}
                row["row"] = reader.line_num
                batch.append(row)
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def add(self, result: ImportBatch) -> None:
        self.batches += 1
        self.received += int(result.get("received", 0))
        self.applied += int(result.get("inserted", result.get("applied", 0)))
        self.unchanged += int(result.get("unchanged", 0))
        self.rejected.extend(result.get("rejected", []))

    def report(self) -> ImportReport:
        return ImportReport(kind=self.kind or "items", received=self.received, applied=self.applied,
                            unchanged=self.unchanged, batches=self.batches,
                            seconds=round(time.perf_counter() - self.started, 3), rejected=tuple(self.rejected))


_IMPORT_CSV_DOC = """Import a CSV file of items (sku,name[,unit_of_measure,unit_cost,track_lots,status]) or stock
        policies (sku,location,reorder_point,safety_stock[,reorder_quantity,max_stock_level,lead_time_days])
        in batches of `batch_size` rows, each applied in its own transaction (valid rows applied, the
        rest reported; nothing half-applied). `kind` is guessed from the header when not given.
        `progress(rows_done)` is called after every batch."""


def _idle(status: pq.TransactionStatus) -> bool:
    return status == pq.TransactionStatus.IDLE


# -- the synchronous client ---------------------------------------------------------------------------------


class Inventory(_Api):
    """Client of the pyinv SQL API over one psycopg connection, or over a psycopg_pool
    ConnectionPool (each call borrows a connection for its own transaction).

    Retryable errors are retried by `retry` (a RetryPolicy; None: never) for calls safe to repeat.
    prepared_statements=False (or PYINV_PREPARED_STATEMENTS=off) turns psycopg's prepared
    statements off on every connection used: needed behind a transaction-mode pooler."""

    def __init__(self, connection: psycopg.Connection[Any] | None = None, *,
                 pool: ConnectionPool[Any] | None = None, retry: RetryPolicy | None = DEFAULT_RETRY,
                 prepared_statements: bool | None = None) -> None:
        if (connection is None) == (pool is None):
            raise ConfigurationError("Inventory needs either a connection or a pool")
        self._connection = connection
        self._pool = pool
        self.retry = retry
        self._prepared = prepared_statements_enabled(prepared_statements)
        self._reconnect: Callable[[], psycopg.Connection[Any]] | None = None
        if connection is not None and not self._prepared:
            connection.prepare_threshold = None

    @classmethod
    def connect(cls, dsn: str | None = None, *, prepared_statements: bool | None = None,
                connect_timeout: float | None = None, retry: RetryPolicy | None = DEFAULT_RETRY,
                **kwargs: Any) -> Inventory:
        """Open a connection (autocommit) and return a client that owns it (and reopens it when it
        breaks). `dsn`: see pyinv.resolve_dsn (None: PYINV_DATABASE_URL, DATABASE_URL, the PG*
        variables, else the embedded server). prepared_statements: None reads
        PYINV_PREPARED_STATEMENTS (on/off, default on). connect_timeout in seconds: None takes the
        DSN's, else PYINV_CONNECT_TIMEOUT, else PGCONNECT_TIMEOUT, else 10. Other keyword arguments go
        to psycopg.connect. Raises ConnectionFailed when the database cannot be reached in time."""
        dsn = resolve_dsn(dsn, announce=_announce)
        options = {**connect_kwargs(dsn, prepared_statements=prepared_statements, connect_timeout_=connect_timeout),
                   **kwargs}

        def reconnect() -> psycopg.Connection[Any]:
            with translated_connect():
                return psycopg.connect(dsn, **options)

        client = cls(reconnect(), retry=retry, prepared_statements=prepared_statements)
        client._reconnect = reconnect
        return client

    @classmethod
    def from_pool(cls, pool: ConnectionPool[Any], *, retry: RetryPolicy | None = DEFAULT_RETRY,
                  prepared_statements: bool | None = None) -> Inventory:
        """A client over a psycopg_pool.ConnectionPool: each call borrows a connection for its own
        transaction and gives it back. The pool stays yours to open and close."""
        return cls(pool=pool, retry=retry, prepared_statements=prepared_statements)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The client's connection (not for a client over a pool: borrow one from the pool)."""
        if self._connection is None:
            raise ConfigurationError("this Inventory borrows connections from a pool: use pool.connection()")
        return self._connection

    @property
    def pool(self) -> ConnectionPool[Any] | None:
        """The pool the client borrows from, or None."""
        return self._pool

    def close(self) -> None:
        """Close the client's connection (a pool is left open: it is the caller's)."""
        if self._connection is not None:
            self._connection.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running a call: the one place that executes SQL --------------------------------------------------

    def _bind(self, operation: _Operation[P, T]) -> Callable[P, T]:
        build = operation.build

        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._run(build(self, *args, **kwargs))

        method.__doc__, method.__name__ = operation.__doc__, operation.__name__
        method.__signature__ = operation.__signature__  # type: ignore[attr-defined]
        return method

    def _can_reconnect(self) -> bool:
        """A pool gives a working connection; a connection this client opened is reopened when it
        broke (never when it was closed on purpose); a connection it was given is never replaced."""
        if self._pool is not None:
            return True
        return self._reconnect is not None and self._connection is not None and (
            self._connection.broken or not self._connection.closed)

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Any]]:
        if self._pool is not None:
            with self._pool.connection() as connection:
                if not self._prepared:
                    connection.prepare_threshold = None
                yield connection
            return
        connection = self.connection
        if connection.broken and self._reconnect is not None:
            connection = self._connection = self._reconnect()
        yield connection

    def _run(self, call: _Call[T]) -> T:
        attempt = 1
        while True:
            joined = False
            try:
                with translated(), self._borrow() as connection:
                    joined = not connection.autocommit and not _idle(connection.info.transaction_status)
                    with connection.cursor(row_factory=call.row_factory) as cursor:
                        set_json_loads(_exact_json, cursor)
                        if connection.autocommit:
                            rows = cursor.execute(call.query, call.params).fetchall()
                        else:
                            with connection.transaction():
                                rows = cursor.execute(call.query, call.params).fetchall()
                return call.shape(rows)
            except InventoryError as error:
                delay = None if joined or self.retry is None else self.retry.next_delay(
                    error, attempt, idempotent=call.idempotent, can_reconnect=self._can_reconnect())
                if delay is None:
                    raise
                _log.info("retrying after %s (attempt %d) in %.3fs", error.actual_sqlstate or error.code, attempt,
                          delay)
            time.sleep(delay)
            attempt += 1

    def import_csv(self, path: str | PathLike[str], kind: str | None = None, batch_size: int = 5000,
                   progress: Callable[[int], object] | None = None) -> ImportReport:
        importer = _CsvImport(path, kind, batch_size)
        for batch in importer.batches_of_rows():
            importer.add(self.import_batch(importer.kind or "items", batch))
            if progress is not None:
                progress(importer.received)
        return importer.report()

    import_csv.__doc__ = _IMPORT_CSV_DOC

    def listen_events(self) -> None:
        """LISTEN on pyinv_events, the channel every event is notified on (its id only), on this
        client's own connection (autocommit; not a pool's). Then wait_for_events()."""
        connection = self.connection
        if not connection.autocommit:
            raise ConfigurationError("listen_events needs an autocommit connection (Inventory.connect opens one)")
        with translated():
            connection.execute("listen pyinv_events")

    def wait_for_events(self, timeout: float) -> list[int]:
        """Ids notified on pyinv_events (after listen_events): waits up to `timeout` seconds for the
        first, then takes those already arrived; [] when none came. A notification only says that
        events exist: read them with read_events."""
        ids: list[int] = []
        with translated():
            for notify in self.connection.notifies(timeout=timeout, stop_after=1):
                ids.append(int(notify.payload))
            for notify in self.connection.notifies(timeout=0):
                ids.append(int(notify.payload))
        return ids


# -- the asynchronous client --------------------------------------------------------------------------------


class AsyncInventory(_Api):
    """The same methods as Inventory, to await: over one psycopg AsyncConnection, or over a
    psycopg_pool AsyncConnectionPool (each call borrows a connection for its own transaction).
    Open one with `await AsyncInventory.connect(...)` or AsyncInventory.from_pool(pool)."""

    def __init__(self, connection: psycopg.AsyncConnection[Any] | None = None, *,
                 pool: AsyncConnectionPool[Any] | None = None, retry: RetryPolicy | None = DEFAULT_RETRY,
                 prepared_statements: bool | None = None) -> None:
        if (connection is None) == (pool is None):
            raise ConfigurationError("AsyncInventory needs either a connection or a pool")
        self._connection = connection
        self._pool = pool
        self.retry = retry
        self._prepared = prepared_statements_enabled(prepared_statements)
        self._reconnect: Callable[[], Coroutine[Any, Any, psycopg.AsyncConnection[Any]]] | None = None
        if connection is not None and not self._prepared:
            connection.prepare_threshold = None

    @classmethod
    async def connect(cls, dsn: str | None = None, *, prepared_statements: bool | None = None,
                      connect_timeout: float | None = None, retry: RetryPolicy | None = DEFAULT_RETRY,
                      **kwargs: Any) -> AsyncInventory:
        """Open an async connection (autocommit) and return a client that owns it; the arguments
        are those of Inventory.connect."""
        dsn = await asyncio.to_thread(resolve_dsn, dsn, _announce)
        options = {**connect_kwargs(dsn, prepared_statements=prepared_statements, connect_timeout_=connect_timeout),
                   **kwargs}

        async def reconnect() -> psycopg.AsyncConnection[Any]:
            with translated_connect():
                return await psycopg.AsyncConnection.connect(dsn, **options)

        client = cls(await reconnect(), retry=retry, prepared_statements=prepared_statements)
        client._reconnect = reconnect
        return client

    @classmethod
    def from_pool(cls, pool: AsyncConnectionPool[Any], *, retry: RetryPolicy | None = DEFAULT_RETRY,
                  prepared_statements: bool | None = None) -> AsyncInventory:
        """A client over a psycopg_pool.AsyncConnectionPool: each call borrows a connection for its
        own transaction and gives it back. The pool stays yours to open and close."""
        return cls(pool=pool, retry=retry, prepared_statements=prepared_statements)

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The client's connection (not for a client over a pool: borrow one from the pool)."""
        if self._connection is None:
            raise ConfigurationError("this AsyncInventory borrows connections from a pool: use pool.connection()")
        return self._connection

    @property
    def pool(self) -> AsyncConnectionPool[Any] | None:
        """The pool the client borrows from, or None."""
        return self._pool

    async def close(self) -> None:
        """Close the client's connection (a pool is left open: it is the caller's)."""
        if self._connection is not None:
            await self._connection.close()

    async def __aenter__(self) -> AsyncInventory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _bind(self, operation: _Operation[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
        build = operation.build

        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._run(build(self, *args, **kwargs))

        method.__doc__, method.__name__ = operation.__doc__, operation.__name__
        method.__signature__ = operation.__signature__  # type: ignore[attr-defined]
        return method

    def _can_reconnect(self) -> bool:
        """A pool gives a working connection; a connection this client opened is reopened when it
        broke (never when it was closed on purpose); a connection it was given is never replaced."""
        if self._pool is not None:
            return True
        return self._reconnect is not None and self._connection is not None and (
            self._connection.broken or not self._connection.closed)

    @asynccontextmanager
    async def _borrow(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is not None:
            async with self._pool.connection() as connection:
                if not self._prepared:
                    connection.prepare_threshold = None
                yield connection
            return
        connection = self.connection
        if connection.broken and self._reconnect is not None:
            connection = self._connection = await self._reconnect()
        yield connection

    async def _run(self, call: _Call[T]) -> T:
        attempt = 1
        while True:
            joined = False
            try:
                with translated():
                    async with self._borrow() as connection:
                        joined = not connection.autocommit and not _idle(connection.info.transaction_status)
                        async with connection.cursor(row_factory=call.row_factory) as cursor:
                            set_json_loads(_exact_json, cursor)
                            if connection.autocommit:
                                rows = await (await cursor.execute(call.query, call.params)).fetchall()
                            else:
                                async with connection.transaction():
                                    rows = await (await cursor.execute(call.query, call.params)).fetchall()
                return call.shape(rows)
            except InventoryError as error:
                delay = None if joined or self.retry is None else self.retry.next_delay(
                    error, attempt, idempotent=call.idempotent, can_reconnect=self._can_reconnect())
                if delay is None:
                    raise
                _log.info("retrying after %s (attempt %d) in %.3fs", error.actual_sqlstate or error.code, attempt,
                          delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def import_csv(self, path: str | PathLike[str], kind: str | None = None, batch_size: int = 5000,
                         progress: Callable[[int], object] | None = None) -> ImportReport:
        importer = _CsvImport(path, kind, batch_size)
        for batch in importer.batches_of_rows():
            importer.add(await self.import_batch(importer.kind or "items", batch))
            if progress is not None:
                progress(importer.received)
        return importer.report()

    import_csv.__doc__ = _IMPORT_CSV_DOC


    async def listen_events(self) -> None:
        """LISTEN on pyinv_events, the channel every event is notified on (its id only), on this
        client's own connection (autocommit; not a pool's). Then wait_for_events()."""
        connection = self.connection
        if not connection.autocommit:
            raise ConfigurationError("listen_events needs an autocommit connection (AsyncInventory.connect opens one)")
        with translated():
            await connection.execute("listen pyinv_events")

    async def wait_for_events(self, timeout: float) -> list[int]:
        """Ids notified on pyinv_events (after listen_events): waits up to `timeout` seconds for the
        first, then takes those already arrived; [] when none came. A notification only says that
        events exist: read them with read_events."""
        ids: list[int] = []
        with translated():
            async for notify in self.connection.notifies(timeout=timeout, stop_after=1):
                ids.append(int(notify.payload))
            async for notify in self.connection.notifies(timeout=0):
                ids.append(int(notify.payload))
        return ids
