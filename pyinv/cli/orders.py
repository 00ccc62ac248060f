"""The order lifecycle (receive, reserve, fulfill, cancel, return) and its readers (stock, validate,
reservations, returns, movements)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import click

from .context import EXIT_VIOLATIONS, emit, emit_page, example, json_option, list_options, state
from .output import (
    CHANGE_COLUMNS,
    LEVEL_COLUMNS,
    MOVEMENT_COLUMNS,
    RESERVATION_COLUMNS,
    RETURN_COLUMNS,
    RETURN_LIST_COLUMNS,
    STOCK_CHECK_COLUMNS,
    STOCK_COLUMNS,
    to_json,
)
from .params import DAY, DECIMAL, DURATION, ORDER_LINE, key_option

REFERENCE_TYPES = ("order", "work_order", "transfer", "production", "sample", "other")

# -- the order lifecycle ----------------------------------------------------------------------------------


@example("pyinv receive TSHIRT-M 40 --reference PO-1001",
         "pyinv receive VACCINE-A 100 --lot L-2607 --expires 2026-07-31 --supplier-lot SUP-88")
@click.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@click.option("--reference", help="Purchase order or delivery note.")
@click.option("--unit-cost", type=DECIMAL, help="Updates the item's moving-average cost.")
@click.option("--lot", "lot_number", help="Lot number (required for lot-tracked items, refused for others).")
@click.option("--expires", "expires_on", type=DAY, help="The lot's last sellable day.")
@click.option("--supplier-lot", help="The supplier's own number for the lot.")
@key_option
@json_option
def receive(sku: str, quantity: Decimal, location: str, reference: str | None, unit_cost: Decimal | None,
            lot_number: str | None, expires_on: date | None, supplier_lot: str | None, key: str | None) -> None:
    """Receive QUANTITY units of SKU into stock (into a lot with --lot)."""
    emit(state().inventory().receive_stock(sku, quantity, location=location, reference=reference,
                                           unit_cost=unit_cost, idempotency_key=key, lot_number=lot_number,
                                           expires_on=expires_on, supplier_lot=supplier_lot), LEVEL_COLUMNS)


@example("pyinv reserve SO-1001 TSHIRT-M 2 --expires-in 15m --key checkout-7f3a",
         "pyinv reserve SO-1002 --line TSHIRT-M:1 --line MUG:2:store-1")
@click.command()
@click.argument("order_ref")
@click.argument("sku", required=False)
@click.argument("quantity", type=DECIMAL, required=False)
@click.option("--line", "lines", type=ORDER_LINE, multiple=True,
              help="SKU:QTY[:LOCATION]; repeat for an all-or-nothing multi-line order.")
@click.option("--location", default=None, help="Location of SKU QTY (default main).")
@click.option("--expires-in", type=DURATION, help="Hold lifetime: 90 (seconds), 15m, 2h, 1d.")
@click.option("--reference-type", type=click.Choice(REFERENCE_TYPES),
              help="What ORDER_REF names (default order).")
@click.option("--notes", help="Free text stored with the hold.")
@click.option("--min-shelf-life", type=DURATION,
              help="Lot-tracked items: only lots sellable for at least this long from today, e.g. 30d or '30 days'.")
@key_option
@json_option
def reserve(order_ref: str, sku: str | None, quantity: Decimal | None, lines: tuple[dict[str, Any], ...],
            location: str | None, expires_in: timedelta | None, reference_type: str | None, notes: str | None,
            min_shelf_life: timedelta | None, key: str | None) -> None:
    """Hold stock for an order.

    Either `ORDER_REF SKU QTY [--location L]`, or `ORDER_REF --line SKU:QTY[:LOCATION] ...` to hold every
    line at once, all or nothing (duplicate lines are merged)."""
    inv = state().inventory()
    if lines:
        if sku is not None or quantity is not None or location is not None:
            raise click.UsageError("give either SKU QTY [--location L] or --line options, not both")
        emit(inv.reserve_order(order_ref, list(lines), expires_in=expires_in, idempotency_key=key,
                               reference_type=reference_type, notes=notes, min_shelf_life=min_shelf_life),
             RESERVATION_COLUMNS)
        return
    if sku is None or quantity is None:
        raise click.UsageError("give SKU and QTY, or one or more --line SKU:QTY[:LOCATION]")
    emit(inv.reserve_stock(sku, quantity, order_ref, location=location or "main", expires_in=expires_in,
                           idempotency_key=key, reference_type=reference_type, notes=notes,
                           min_shelf_life=min_shelf_life), RESERVATION_COLUMNS)


@example("pyinv fulfill SO-1001", "pyinv fulfill SO-1001 --sku TSHIRT-M --quantity 1")
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


@example("pyinv cancel SO-1002")
@click.command()
@click.argument("order_ref")
@click.option("--sku", help="Release only the holds of this item.")
@key_option
@json_option
def cancel(order_ref: str, sku: str | None, key: str | None) -> None:
    """Release the active holds of ORDER_REF."""
    emit(state().inventory().cancel_reservation(order_ref, sku=sku, idempotency_key=key), CHANGE_COLUMNS,
         empty="nothing released")


@example("pyinv return SO-1001 TSHIRT-M 1 --reason \"wrong size\"")
@click.command("return")
@click.argument("order_ref")
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--reason", required=True, help="Why the customer sent it back.")
@click.option("--no-restock", is_flag=True, help="Record the return without putting the units back on hand.")
@click.option("--location", default="main", show_default=True, help="Where the units come back.")
@click.option("--lot", "lot_number", help="The lot the units were shipped from (lot-tracked items).")
@key_option
@json_option
def return_command(order_ref: str, sku: str, quantity: Decimal, reason: str, no_restock: bool, location: str,
                   lot_number: str | None, key: str | None) -> None:
    """Record QUANTITY units of SKU sent back for ORDER_REF."""
    emit(state().inventory().process_return(order_ref, sku, quantity, reason, restock=not no_restock,
                                            location=location, idempotency_key=key, lot_number=lot_number),
         RETURN_COLUMNS)


# -- readers -----------------------------------------------------------------------------------------------


@example("pyinv stock --sku TSHIRT-M")
@click.command()
@click.option("--sku")
@click.option("--location")
@list_options
def stock(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Stock levels: on hand, reserved, available."""
    emit_page(state().inventory().stock_levels, limit, offset, STOCK_COLUMNS, empty="no stock levels", sku=sku,
              location=location)


@example("pyinv validate TSHIRT-M 3 --location main")
@click.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@json_option
def validate(sku: str, quantity: Decimal, location: str) -> None:
    """Could QUANTITY of SKU be reserved now? Reserves nothing; exit code 1 when not."""
    check = state().inventory().validate_stock(sku, quantity, location=location)
    if state().json:
        click.echo(to_json({"sku": sku, "location": location, "quantity": quantity, **check.to_dict()}))
    else:
        emit({"sku": sku, "location": location, "quantity": quantity, **check.to_dict()}, STOCK_CHECK_COLUMNS)
    if not check.can_fulfill:
        click.get_current_context().exit(EXIT_VIOLATIONS)


@example("pyinv reservations --status active")
@click.command()
@click.option("--order", "order_ref", help="Only this order.")
@click.option("--status", type=click.Choice(["ACTIVE", "FULFILLED", "CANCELLED", "EXPIRED"], case_sensitive=False))
@list_options
def reservations(order_ref: str | None, status: str | None, limit: int, offset: int) -> None:
    """Holds of stock for orders, oldest first."""
    emit_page(state().inventory().reservations, limit, offset, RESERVATION_COLUMNS, empty="no reservations",
              order_ref=order_ref, status=status.upper() if status else None)


@example("pyinv returns --order SO-1001")
@click.command()
@click.option("--order", "order_ref", help="Only this order.")
@click.option("--sku")
@click.option("--location")
@list_options
def returns(order_ref: str | None, sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Customer returns: the latest --limit of them (--offset skips newer ones), oldest first."""
    emit_page(state().inventory().returns, limit, offset, RETURN_LIST_COLUMNS, latest=True,
              empty="no returns", order_ref=order_ref, sku=sku, location=location)


@example("pyinv movements --sku TSHIRT-M --limit 10")
@click.command()
@click.option("--sku")
@click.option("--reference", help="Order reference or purchase order.")
@list_options
def movements(sku: str | None, reference: str | None, limit: int, offset: int) -> None:
    """The ledger: the latest --limit movements (--offset skips newer ones), oldest first."""
    emit_page(state().inventory().movements, limit, offset, MOVEMENT_COLUMNS, latest=True,
              empty="no movements", sku=sku, reference=reference)
