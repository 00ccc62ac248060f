"""pyinv.Inventory: the one place in Python that calls the SQL API.

Every method is one call of an inventory_api function (one round trip, its own transaction when the
connection is in autocommit mode) with named arguments, exactly as psql or PostgREST would call it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from .errors import translated
from .models import (
    InvariantViolation,
    Item,
    Location,
    Movement,
    Reservation,
    ReservationChange,
    ReservationRow,
    StockCheck,
    StockLevel,
    StockReturn,
    StockRow,
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
    def connect(cls, dsn: str, **kwargs: Any) -> Inventory:
        kwargs.setdefault("autocommit", True)
        return cls(psycopg.connect(dsn, **kwargs))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one place that talks to the database -------------------------------------------------

    def _call(self, function: str, row_type: type[T], **arguments: Any) -> list[T]:
        query = sql.SQL("select * from inventory_api.{}({})").format(
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in arguments
            ),
        )
        with translated(), self.connection.cursor(row_factory=class_row(row_type)) as cursor:
            cursor.execute(query, arguments)
            return cursor.fetchall()

    def _call_one(self, function: str, row_type: type[T], **arguments: Any) -> T:
        return self._call(function, row_type, **arguments)[0]

    def _scalar(self, function: str, **arguments: Any) -> Any:
        query = sql.SQL("select inventory_api.{}({})").format(
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in arguments
            ),
        )
        with translated(), self.connection.cursor() as cursor:
            row = cursor.execute(query, arguments).fetchone()
            return row[0] if row else None

    def _view(self, view: str, row_type: type[T], order_by: Sequence[str], limit: int | None = None,
              **filters: Any) -> list[T]:
        """Rows of an inventory_api view, filtered by equality, ordered by `order_by`; with `limit`,
        the last `limit` rows in that order (the most recent ones)."""
        present = {name: value for name, value in filters.items() if value is not None}
        query = sql.SQL("select * from inventory_api.{}").format(sql.Identifier(view))
        if present:
            query += sql.SQL(" where ") + sql.SQL(" and ").join(
                sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in present
            )
        ascending = sql.SQL(", ").join(sql.Identifier(column) for column in order_by)
        if limit is not None:
            descending = sql.SQL(", ").join(sql.SQL("{} desc").format(sql.Identifier(column)) for column in order_by)
            query = sql.SQL("select * from ({} order by {} limit {}) latest order by {}").format(
                query, descending, sql.Literal(limit), ascending)
        else:
            query += sql.SQL(" order by ") + ascending
        with translated(), self.connection.cursor(row_factory=class_row(row_type)) as cursor:
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
                      expires_in: timedelta | None = None, idempotency_key: str | None = None) -> Reservation:
        return self._call_one("reserve_stock", Reservation, sku=sku, quantity=_quantity(quantity),
                              order_ref=order_ref, location=location, expires_in=expires_in,
                              idempotency_key=idempotency_key)

    def reserve_order(self, order_ref: str, lines: Sequence[dict[str, Any]], expires_in: timedelta | None = None,
                      idempotency_key: str | None = None) -> list[Reservation]:
        payload = [
            {**line, "quantity": _quantity(line["quantity"])} if "quantity" in line else dict(line)
            for line in lines
        ]
        return self._call("reserve_order", Reservation, order_ref=order_ref,
                          lines=Jsonb(payload, dumps=_dumps_decimal), expires_in=expires_in,
                          idempotency_key=idempotency_key)

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

    def verify_inventory(self) -> list[InvariantViolation]:
        return self._call("verify_inventory", InvariantViolation)

    # -- readers --------------------------------------------------------------------------------------

    def stock_levels(self, sku: str | None = None, location: str | None = None) -> list[StockRow]:
        return self._view("stock_levels", StockRow, ("sku", "location"), sku=sku, location=location)

    def items(self) -> list[Item]:
        return self._view("items", Item, ("sku",))

    def locations(self) -> list[Location]:
        return self._view("locations", Location, ("code",))

    def reservations(self, order_ref: str | None = None, status: str | None = None) -> list[ReservationRow]:
        return self._view("reservations", ReservationRow, ("reservation_id",), order_ref=order_ref,
                          status=status)

    def movements(self, sku: str | None = None, reference: str | None = None,
                  limit: int | None = None) -> list[Movement]:
        return self._view("stock_movements", Movement, ("movement_id",), limit=limit, sku=sku,
                          reference=reference)


def _dumps_decimal(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                return str(obj)  # not a JSON number: the server answers INVALID_QUANTITY
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")

    return json.dumps(value, default=default)
