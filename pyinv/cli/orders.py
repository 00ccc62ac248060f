"""The order lifecycle (receive, reserve, fulfill, cancel, return) and its readers (stock, reservations,
movements)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import click

from .context import emit, json_option, state
from .output import CHANGE_COLUMNS, LEVEL_COLUMNS, MOVEMENT_COLUMNS, RESERVATION_COLUMNS, RETURN_COLUMNS, STOCK_COLUMNS
from .params import DECIMAL, DURATION, ORDER_LINE, key_option

# -- the order lifecycle ----------------------------------------------------------------------------------


@click.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@click.option("--reference", help="Purchase order or delivery note.")
@click.option("--unit-cost", type=DECIMAL, help="Updates the item's moving-average cost.")
@key_option
@json_option
def receive(sku: str, quantity: Decimal, location: str, reference: str | None, unit_cost: Decimal | None,
            key: str | None) -> None:
    """Receive QUANTITY units of SKU into stock."""
    emit(state().inventory().receive_stock(sku, quantity, location=location, reference=reference,
                                           unit_cost=unit_cost, idempotency_key=key), LEVEL_COLUMNS)


@click.command()
@click.argument("order_ref")
@click.argument("sku", required=False)
@click.argument("quantity", type=DECIMAL, required=False)
@click.option("--line", "lines", type=ORDER_LINE, multiple=True,
              help="SKU:QTY[:LOCATION]; repeat for an all-or-nothing multi-line order.")
@click.option("--location", default=None, help="Location of SKU QTY (default main).")
@click.option("--expires-in", type=DURATION, help="Hold lifetime: 90 (seconds), 15m, 2h, 1d.")
@key_option
@json_option
def reserve(order_ref: str, sku: str | None, quantity: Decimal | None, lines: tuple[dict[str, Any], ...],
            location: str | None, expires_in: timedelta | None, key: str | None) -> None:
    """Hold stock for an order.

    Either `ORDER_REF SKU QTY [--location L]`, or `ORDER_REF --line SKU:QTY[:LOCATION] ...` to hold every
    line at once, all or nothing (duplicate lines are merged)."""
    inv = state().inventory()
    if lines:
        if sku is not None or quantity is not None or location is not None:
            raise click.UsageError("give either SKU QTY [--location L] or --line options, not both")
        emit(inv.reserve_order(order_ref, list(lines), expires_in=expires_in, idempotency_key=key),
             RESERVATION_COLUMNS)
        return
    if sku is None or quantity is None:
        raise click.UsageError("give SKU and QTY, or one or more --line SKU:QTY[:LOCATION]")
    emit(inv.reserve_stock(sku, quantity, order_ref, location=location or "main", expires_in=expires_in,
                           idempotency_key=key), RESERVATION_COLUMNS)


@click.command()
@click.argument("order_ref")
@click.option("--sku", help="Ship only this item.")
@click.option("--quantity", type=DECIMAL, help="Ship only this many units of --sku (the rest stays held).")
@key_option
@json_option
def fulfill(order_ref: str, sku: str | None, quantity: Decimal | None, key: str | None) -> None:
    """Ship the held stock of ORDER_REF (or part of it)."""
    emit(state().inventory().fulfill_order(order_ref, sku=sku, quantity=quantity, idempotency_key=key),
         CHANGE_COLUMNS, empty="nothing shipped")


@click.command()
@click.argument("order_ref")
@click.option("--sku", help="Release only the holds of this item.")
@key_option
@json_option
def cancel(order_ref: str, sku: str | None, key: str | None) -> None:
    """Release the active holds of ORDER_REF."""
    emit(state().inventory().cancel_reservation(order_ref, sku=sku, idempotency_key=key), CHANGE_COLUMNS,
         empty="nothing released")


@click.command("return")
@click.argument("order_ref")
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--reason", required=True, help="Why the customer sent it back.")
@click.option("--no-restock", is_flag=True, help="Record the return without putting the units back on hand.")
@click.option("--location", default="main", show_default=True, help="Where the units come back.")
@key_option
@json_option
def return_command(order_ref: str, sku: str, quantity: Decimal, reason: str, no_restock: bool, location: str,
                   key: str | None) -> None:
    """Record QUANTITY units of SKU sent back for ORDER_REF."""
    emit(state().inventory().process_return(order_ref, sku, quantity, reason, restock=not no_restock,
                                            location=location, idempotency_key=key), RETURN_COLUMNS)


# -- readers -----------------------------------------------------------------------------------------------


@click.command()
@click.option("--sku")
@click.option("--location")
@json_option
def stock(sku: str | None, location: str | None) -> None:
    """Stock levels: on hand, reserved, available."""
    emit(state().inventory().stock_levels(sku=sku, location=location), STOCK_COLUMNS, empty="no stock levels")


@click.command()
@click.option("--order", "order_ref", help="Only this order.")
@click.option("--status", type=click.Choice(["ACTIVE", "FULFILLED", "CANCELLED", "EXPIRED"], case_sensitive=False))
@json_option
def reservations(order_ref: str | None, status: str | None) -> None:
    """Holds of stock for orders."""
    emit(state().inventory().reservations(order_ref=order_ref, status=status.upper() if status else None),
         RESERVATION_COLUMNS, empty="no reservations")


@click.command()
@click.option("--sku")
@click.option("--reference", help="Order reference or purchase order.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option
def movements(sku: str | None, reference: str | None, limit: int) -> None:
    """The ledger: the latest stock movements (--limit of them), oldest first."""
    emit(state().inventory().movements(sku=sku, reference=reference, limit=limit), MOVEMENT_COLUMNS,
         empty="no movements")
