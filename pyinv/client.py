"""pyinv.Inventory: the one place in Python that calls the SQL API.

Every method is one call of an inventory_api function with named arguments, exactly as psql or
PostgREST would call it, in a transaction of its own: the statement itself on an autocommit
connection; otherwise a transaction the call opens and ends (or a savepoint, when the caller has a
transaction open), so that a refused call never leaves the connection in a failed transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from .errors import translated
from .models import (
    AuditEntry,
    ChainBreak,
    InvariantViolation,
    Item,
    Location,
    Movement,
    ReasonCode,
    Reservation,
    ReservationChange,
    ReservationRow,
    ReturnRow,
    StockCheck,
    StockLevel,
    StockReturn,
    StockRow,
    UserRole,
    UserRoleRow,
)

T = TypeVar("T")
Number = int | float | Decimal | str


def _quantity(value: Number | None) -> Decimal | None:
    """Pass quantities as exact decimals; floats go through str so 0.1 stays 0.1."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


class Inventory:
    """Client of the pyinv SQL API over one psycopg connection."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    @classmethod
    def connect(cls, dsn: str, *, prepared_statements: bool = True, connect_timeout: int | None = None,
                **kwargs: Any) -> Inventory:
        """Connect to `dsn`. prepared_statements=False for transaction-mode poolers (PgBouncer,
        Supavisor); connect_timeout in seconds (libpq's)."""
        kwargs.setdefault("autocommit", True)
        if not prepared_statements:
            kwargs["prepare_threshold"] = None
        if connect_timeout is not None:
            kwargs["connect_timeout"] = connect_timeout
        return cls(psycopg.connect(dsn, **kwargs))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one place that talks to the database -------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Translated errors, and the call's own transaction unless the connection autocommits."""
        with translated():
            if self.connection.autocommit:
                yield
            else:
                with self.connection.transaction():
                    yield

    @staticmethod
    def _call_sql(function: str, arguments: dict[str, Any], template: str) -> sql.Composed:
        return sql.SQL(template).format(
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in arguments
            ),
        )

    def _call(self, function: str, row_type: type[T], **arguments: Any) -> list[T]:
        query = self._call_sql(function, arguments, "select * from inventory_api.{}({})")
        with self._transaction(), self.connection.cursor(row_factory=class_row(row_type)) as cursor:
            cursor.execute(query, arguments)
            return cursor.fetchall()

    def _call_one(self, function: str, row_type: type[T], **arguments: Any) -> T:
        return self._call(function, row_type, **arguments)[0]

    def _scalar(self, function: str, **arguments: Any) -> Any:
        query = self._call_sql(function, arguments, "select inventory_api.{}({})")
        with self._transaction(), self.connection.cursor() as cursor:
            row = cursor.execute(query, arguments).fetchone()
            return row[0] if row else None

    def _view(self, view: str, row_type: type[T], order_by: Sequence[str], limit: int | None = None,
              offset: int | None = None, latest: bool = False,
              conditions: Sequence[tuple[str, str, Any]] = (), **filters: Any) -> list[T]:
        """Rows of an inventory_api view, filtered by equality (None: no filter) and by `conditions`
        (column, operator, value) with operator one of >=, <, <>, "is null", "is not null", ordered by
        `order_by`. `limit` / `offset` page through them in that order; with latest=True from the end
        (the most recent rows: offset skips the newest), still returned in that order."""
        present = {name: value for name, value in filters.items() if value is not None}
        clauses = [sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in present]
        for number, (column, operator, value) in enumerate(conditions):
            if operator in ("is null", "is not null"):
                clauses.append(sql.SQL("{} " + operator).format(sql.Identifier(column)))
            elif operator in (">=", "<", "<>"):
                present[f"_c{number}"] = value
                clauses.append(sql.SQL("{} " + operator + " {}").format(sql.Identifier(column),
                                                                       sql.Placeholder(f"_c{number}")))
            else:
                raise ValueError(f"unsupported operator {operator!r}")
        query = sql.SQL("select * from inventory_api.{}").format(sql.Identifier(view))
        if clauses:
            query += sql.SQL(" where ") + sql.SQL(" and ").join(clauses)
        ascending = sql.SQL(", ").join(sql.Identifier(column) for column in order_by)
        page = sql.SQL("")
        if limit is not None:
            page += sql.SQL(" limit {}").format(sql.Literal(limit))
        if offset:
            page += sql.SQL(" offset {}").format(sql.Literal(offset))
        if latest and (limit is not None or offset):
            descending = sql.SQL(", ").join(sql.SQL("{} desc").format(sql.Identifier(column)) for column in order_by)
            query = sql.SQL("select * from ({} order by {}{}) latest order by {}").format(
                query, descending, page, ascending)
        else:
            query += sql.SQL(" order by ") + ascending + page
        with self._transaction(), self.connection.cursor(row_factory=class_row(row_type)) as cursor:
            cursor.execute(query, present)
            return cursor.fetchall()

    # -- catalogue ----------------------------------------------------------------------------------

    def create_item(self, sku: str, name: str, unit_of_measure: str = "each", unit_cost: Number | None = None,
                    track_lots: bool = False) -> Item:
        return self._call_one("create_item", Item, sku=sku, name=name, unit_of_measure=unit_of_measure,
                              unit_cost=_quantity(unit_cost), track_lots=track_lots)

    def set_item_status(self, sku: str, status: str) -> Item:
        return self._call_one("set_item_status", Item, sku=sku, status=status)

    def create_location(self, code: str, name: str) -> Location:
        return self._call_one("create_location", Location, code=code, name=name)

    # -- stock and the order lifecycle --------------------------------------------------------------

    def receive_stock(self, sku: str, quantity: Number, location: str = "main", reference: str | None = None,
                      unit_cost: Number | None = None, idempotency_key: str | None = None) -> StockLevel:
        return self._call_one("receive_stock", StockLevel, sku=sku, quantity=_quantity(quantity),
                              location=location, reference=reference, unit_cost=_quantity(unit_cost),
                              idempotency_key=idempotency_key)

    def reserve_stock(self, sku: str, quantity: Number, order_ref: str, location: str = "main",
                      expires_in: timedelta | None = None, idempotency_key: str | None = None,
                      reference_type: str | None = None, notes: str | None = None) -> Reservation:
        """Hold stock for an order; reference_type (order, work_order, transfer, production, sample,
        other; default order) and notes are stored with the hold."""
        return self._call_one("reserve_stock", Reservation, sku=sku, quantity=_quantity(quantity),
                              order_ref=order_ref, location=location, expires_in=expires_in,
                              idempotency_key=idempotency_key, **_given(reference_type=reference_type, notes=notes))

    def reserve_order(self, order_ref: str, lines: Sequence[dict[str, Any]], expires_in: timedelta | None = None,
                      idempotency_key: str | None = None, reference_type: str | None = None,
                      notes: str | None = None) -> list[Reservation]:
        payload = [
            {**line, "quantity": _quantity(line["quantity"])} if "quantity" in line else dict(line)
            for line in lines
        ]
        return self._call("reserve_order", Reservation, order_ref=order_ref,
                          lines=Jsonb(payload, dumps=exact_json), expires_in=expires_in,
                          idempotency_key=idempotency_key, **_given(reference_type=reference_type, notes=notes))

    def fulfill_order(self, order_ref: str, sku: str | None = None, quantity: Number | None = None,
                      idempotency_key: str | None = None) -> list[ReservationChange]:
        return self._call("fulfill_order", ReservationChange, order_ref=order_ref, sku=sku,
                          quantity=_quantity(quantity), idempotency_key=idempotency_key)

    def cancel_reservation(self, order_ref: str, sku: str | None = None,
                           idempotency_key: str | None = None) -> list[ReservationChange]:
        return self._call("cancel_reservation", ReservationChange, order_ref=order_ref, sku=sku,
                          idempotency_key=idempotency_key)

    def process_return(self, order_ref: str, sku: str, quantity: Number, reason: str, restock: bool = True,
                       location: str = "main", idempotency_key: str | None = None) -> StockReturn:
        return self._call_one("process_return", StockReturn, order_ref=order_ref, sku=sku,
                              quantity=_quantity(quantity), reason=reason, restock=restock, location=location,
                              idempotency_key=idempotency_key)

    def validate_stock(self, sku: str, quantity: Number, location: str = "main") -> StockCheck:
        return self._call_one("validate_stock", StockCheck, sku=sku, quantity=_quantity(quantity),
                              location=location)

    # -- maintenance and checks ---------------------------------------------------------------------

    def expire_reservations(self, batch_size: int = 1000) -> int:
        return int(self._scalar("expire_reservations", batch_size=batch_size))

    def verify_inventory(self, anchor: dict[str, Any] | None = None) -> list[InvariantViolation]:
        """Every broken invariant (none: the books balance); with an anchor from audit_anchor(), also
        every ledger rewrite or deletion the anchor covers."""
        return self._call("verify_inventory", InvariantViolation, anchor=_jsonb(anchor))

    def verify_audit_chain(self, anchor: dict[str, Any] | None = None) -> list[ChainBreak]:
        """Problems of the audit chain (none: intact); with an anchor, also truncation or rewriting since."""
        return self._call("verify_audit_chain", ChainBreak, anchor=_jsonb(anchor))

    def seal_audit_log(self, batch_size: int = 10000) -> int | None:
        """Seal up to batch_size audit rows; the number sealed, or None when another sealer is running."""
        sealed = self._scalar("seal_audit_log", batch_size=batch_size)
        return None if sealed is None else int(sealed)

    def audit_anchor(self, wait_seconds: Number = 10) -> dict[str, Any]:
        """The heads of the audit and ledger chains, to keep where the database cannot write. Needs a
        READ COMMITTED transaction of its own (an autocommit connection, or the default level)."""
        return dict(self._scalar("audit_anchor", wait_seconds=_quantity(wait_seconds)))

    # -- readers --------------------------------------------------------------------------------------

    def stock_levels(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                     offset: int | None = None) -> list[StockRow]:
        return self._view("stock_levels", StockRow, ("sku", "location"), limit=limit, offset=offset, sku=sku,
                          location=location)

    def items(self, include_deleted: bool = False, limit: int | None = None, offset: int | None = None) -> list[Item]:
        """The catalogue by SKU; soft-deleted items only with include_deleted."""
        conditions = () if include_deleted else (("deleted_at", "is null", None),)
        return self._view("items", Item, ("sku",), limit=limit, offset=offset, conditions=conditions)

    def locations(self, limit: int | None = None, offset: int | None = None) -> list[Location]:
        return self._view("locations", Location, ("code",), limit=limit, offset=offset)

    def reservations(self, order_ref: str | None = None, status: str | None = None, limit: int | None = None,
                     offset: int | None = None) -> list[ReservationRow]:
        return self._view("reservations", ReservationRow, ("reservation_id",), limit=limit, offset=offset,
                          order_ref=order_ref, status=status)

    def movements(self, sku: str | None = None, reference: str | None = None,
                  limit: int | None = None, offset: int | None = None) -> list[Movement]:
        """The latest `limit` movements (offset skips the newest), oldest first."""
        return self._view("stock_movements", Movement, ("movement_id",), limit=limit, offset=offset, latest=True,
                          sku=sku, reference=reference)

    # -- stock control: adjustments, counts, transfers, policies, alerts, bulk import ------------------

    def reason_codes(self) -> list[ReasonCode]:
        return self._view("reason_codes", ReasonCode, ("reason_code",))

    def set_reason_code(self, code: str, requires_approval: bool, approval_threshold: Number,
                        direction: str | None = None, description: str | None = None) -> ReasonCode:
        """Create or change an adjustment reason (unscoped admins; audited)."""
        return self._call_one("set_reason_code", ReasonCode, code=code, requires_approval=requires_approval,
                              approval_threshold=_quantity(approval_threshold), direction=direction,
                              description=description)

    def create_adjustment(self, sku: str, quantity_delta: Number, adjustment_type: str, reason_code: str,
                          location: str = "main", description: str | None = None,
                          idempotency_key: str | None = None) -> Any:
        from .models import Adjustment

        return self._call_one("create_adjustment", Adjustment, sku=sku, quantity_delta=_quantity(quantity_delta),
                              adjustment_type=adjustment_type, reason_code=reason_code, location=location,
                              description=description, idempotency_key=idempotency_key)

    def approve_adjustment(self, adjustment_id: int, decision: str = "approved", note: str | None = None) -> Any:
        from .models import Adjustment

        return self._call_one("approve_adjustment", Adjustment, adjustment_id=adjustment_id, decision=decision,
                              note=note)

    def adjustments(self, status: str | None = None, sku: str | None = None, location: str | None = None,
                    limit: int | None = None, offset: int | None = None) -> list[Any]:
        from .models import Adjustment

        return self._view("adjustments", Adjustment, ("adjustment_id",), limit=limit, offset=offset, latest=True,
                          status=status, sku=sku, location=location)

    def record_count(self, sku: str, counted_quantity: Number, location: str = "main") -> Any:
        from .models import StockCount

        return self._call_one("record_count", StockCount, sku=sku, counted_quantity=_quantity(counted_quantity),
                              location=location)

    def transfer_stock(self, sku: str, quantity: Number, from_location: str, to_location: str,
                       reference: str | None = None, idempotency_key: str | None = None) -> Any:
        from .models import StockTransfer

        return self._call_one("transfer_stock", StockTransfer, sku=sku, quantity=_quantity(quantity),
                              from_location=from_location, to_location=to_location, reference=reference,
                              idempotency_key=idempotency_key)

    def set_stock_policy(self, sku: str, location: str, reorder_point: Number, safety_stock: Number,
                         reorder_quantity: Number | None = None, max_stock_level: Number | None = None,
                         lead_time_days: int | None = None) -> Any:
        from .models import StockPolicy

        return self._call_one("set_stock_policy", StockPolicy, sku=sku, location=location,
                              reorder_point=_quantity(reorder_point), safety_stock=_quantity(safety_stock),
                              reorder_quantity=_quantity(reorder_quantity),
                              max_stock_level=_quantity(max_stock_level), lead_time_days=lead_time_days)

    def stock_policies(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                       offset: int | None = None) -> list[Any]:
        from .models import StockPolicy

        return self._view("stock_policies", StockPolicy, ("sku", "location"), limit=limit, offset=offset, sku=sku,
                          location=location)

    def reorder_alerts(self, status: str | None = None, sku: str | None = None,
                       location: str | None = None, limit: int | None = None, offset: int | None = None,
                       open_only: bool = False) -> list[Any]:
        """Reorder alerts by id; open_only: OPEN and ACKNOWLEDGED ones."""
        from .models import ReorderAlert

        conditions = (("closed_at", "is null", None),) if open_only else ()
        return self._view("reorder_alerts", ReorderAlert, ("alert_id",), limit=limit, offset=offset,
                          conditions=conditions, status=status, sku=sku, location=location)

    def update_reorder_alert(self, alert_id: int, status: str, note: str | None = None) -> Any:
        from .models import ReorderAlert

        return self._call_one("update_reorder_alert", ReorderAlert, alert_id=alert_id, status=status, note=note)

    def check_reorder_points(self) -> Any:
        from .models import ReorderCheck

        return self._call_one("check_reorder_points", ReorderCheck)

    def reorder_recommendations(self, sku: str | None = None, location: str | None = None,
                                status: str | None = None, limit: int | None = None, offset: int | None = None,
                                actionable: bool = False) -> list[Any]:
        """Levels with a stock policy and what to order; actionable: only CRITICAL and REORDER ones."""
        from .models import ReorderRecommendation

        conditions = (("status", "<>", "NORMAL"),) if actionable else ()
        return self._view("reorder_recommendations", ReorderRecommendation, ("sku", "location"), limit=limit,
                          offset=offset, conditions=conditions, sku=sku, location=location, status=status)

    def import_batch(self, kind: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One batch (at most 10000 rows) of `kind` items or policies: one call, one transaction."""
        function = {"items": "import_items", "policies": "import_stock_policies"}[kind]
        return dict(self._scalar(function, rows=Jsonb(list(rows), dumps=exact_json)))

    def import_csv(self, path: str | Any, kind: str | None = None, batch_size: int = 5000,
                   progress: Any = None) -> Any:
        """Imports a CSV file of items (sku,name[,unit_of_measure,unit_cost,track_lots,status]) or stock
        policies (sku,location,reorder_point,safety_stock[,reorder_quantity,max_stock_level,lead_time_days])
        in batches of `batch_size` rows, each applied in its own transaction (valid rows applied, the
        rest reported; nothing half-applied). `kind` is guessed from the header when not given.
        `progress(rows_done)` is called after every batch."""
        import csv
        import time

        from .models import ImportReport

        if not 1 <= batch_size <= 10000:
            raise ValueError("batch_size must be between 1 and 10000")
        started = time.perf_counter()
        received = applied = unchanged = batches = 0
        rejected: list[dict[str, Any]] = []
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            if kind is None:
                kind = "policies" if "reorder_point" in header else "items"
            if kind not in ("items", "policies"):
                raise ValueError("kind must be items or policies")
            batch: list[dict[str, Any]] = []

            def flush() -> None:
                nonlocal received, applied, unchanged, batches
                result = self.import_batch(kind, batch)
                batches += 1
                received += int(result.get("received", 0))
                applied += int(result.get("inserted", result.get("applied", 0)))
                unchanged += int(result.get("unchanged", 0))
                rejected.extend(result.get("rejected", []))
                batch.clear()
                if progress is not None:
                    progress(received)

            for record in reader:
                row: dict[str, Any] = {key: value for key, value in record.items() if key}
                row["row"] = reader.line_num
                batch.append(row)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
        return ImportReport(kind=kind, received=received, applied=applied, unchanged=unchanged, batches=batches,
                            seconds=round(time.perf_counter() - started, 3), rejected=tuple(rejected))

    # added by the CLI branch: the catalogue's updates, user grants, the audit log, returns, counts

    def update_item(self, sku: str, name: str | None = None, unit_of_measure: str | None = None,
                    unit_cost: Number | None = None, expected_version: int | None = None) -> Item:
        """Change an item's attributes (None: unchanged); with expected_version, refused with
        VersionConflict when the item changed since that version (admins)."""
        return self._call_one("update_item", Item, sku=sku, name=name, unit_of_measure=unit_of_measure,
                              unit_cost=_quantity(unit_cost), expected_version=expected_version)

    def delete_item(self, sku: str, expected_version: int | None = None) -> Item:
        """Soft-delete an item (refused with InvalidState while stock is on hand or held; admins)."""
        return self._call_one("delete_item", Item, sku=sku, expected_version=expected_version)

    def restore_item(self, sku: str) -> Item:
        """Undo a soft delete (admins)."""
        return self._call_one("restore_item", Item, sku=sku)

    def grant_user_role(self, user_id: str, role: str, location: str | None = None) -> UserRole:
        """Give a user (JWT sub or login name) a business role, at one location or (None) everywhere."""
        return self._call_one("grant_user_role", UserRole, user_id=user_id, role=role, location=location)

    def revoke_user_role(self, user_id: str, role: str, location: str | None = None) -> int:
        """Take a business role away; the number of grants removed."""
        return int(self._scalar("revoke_user_role", user_id=user_id, role=role, location=location))

    def user_roles(self, user_id: str | None = None, role: str | None = None, limit: int | None = None,
                   offset: int | None = None) -> list[UserRoleRow]:
        """Grants of business roles (admins see all, others their own)."""
        return self._view("user_roles", UserRoleRow, ("user_id", "role", "user_role_id"), limit=limit,
                          offset=offset, user_id=user_id, role=role)

    def audit_log(self, table: str | None = None, actor: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int | None = None,
                  offset: int | None = None) -> list[AuditEntry]:
        """The latest audit rows (admins; others see none), oldest first: filtered by table name, actor,
        and created_at in [since, until)."""
        conditions = [(column, operator, value) for column, operator, value in
                      (("created_at", ">=", since), ("created_at", "<", until)) if value is not None]
        return self._view("audit_log", AuditEntry, ("audit_id",), limit=limit, offset=offset, latest=True,
                          conditions=conditions, table_name=table, actor=actor)

    def returns(self, order_ref: str | None = None, sku: str | None = None, location: str | None = None,
                limit: int | None = None, offset: int | None = None) -> list[ReturnRow]:
        """Customer returns, the latest first page oldest first."""
        return self._view("returns", ReturnRow, ("return_id",), limit=limit, offset=offset, latest=True,
                          order_ref=order_ref, sku=sku, location=location)

    def cycle_counts(self, sku: str | None = None, location: str | None = None, limit: int | None = None,
                     offset: int | None = None) -> list[Any]:
        """Physical counts and the adjustment each produced, the latest page oldest first."""
        from .models import StockCount

        return self._view("cycle_counts", StockCount, ("count_id",), limit=limit, offset=offset, latest=True,
                          sku=sku, location=location)


def _given(**arguments: Any) -> dict[str, Any]:
    """The optional arguments that were given: the rest keep the SQL function's defaults."""
    return {name: value for name, value in arguments.items() if value is not None}


def _jsonb(value: Any) -> Jsonb | None:
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
