"""The catalogue: items (`item`) and stock locations (`location`)."""

from __future__ import annotations

from decimal import Decimal

import click

from .context import emit, json_option, state
from .output import ITEM_COLUMNS, LOCATION_COLUMNS
from .params import DECIMAL


@click.group()
def item() -> None:
    """The catalogue of items."""


@item.command("add")
@click.argument("sku")
@click.argument("name")
@click.option("--uom", default="each", show_default=True, help="Unit of measure.")
@click.option("--unit-cost", type=DECIMAL, help="Cost of one unit.")
@click.option("--track-lots", is_flag=True, help="Track lots for this item.")
@json_option
def item_add(sku: str, name: str, uom: str, unit_cost: Decimal | None, track_lots: bool) -> None:
    """Create an item (the same attributes again are fine)."""
    emit(state().inventory().create_item(sku, name, unit_of_measure=uom, unit_cost=unit_cost,
                                         track_lots=track_lots), ITEM_COLUMNS)


@item.command("status")
@click.argument("sku")
@click.argument("status", type=click.Choice(["active", "on_hold", "discontinued"]))
@json_option
def item_status(sku: str, status: str) -> None:
    """Set an item active, on hold or discontinued."""
    emit(state().inventory().set_item_status(sku, status), ITEM_COLUMNS)


@item.command("list")
@json_option
def item_list() -> None:
    """List the catalogue."""
    emit(state().inventory().items(), ITEM_COLUMNS, empty="no items")


@click.group()
def location() -> None:
    """Stock locations."""


@location.command("add")
@click.argument("code")
@click.argument("name")
@json_option
def location_add(code: str, name: str) -> None:
    """Create a location (the same name again is fine)."""
    emit(state().inventory().create_location(code, name), LOCATION_COLUMNS)


@location.command("list")
@json_option
def location_list() -> None:
    """List the locations."""
    emit(state().inventory().locations(), LOCATION_COLUMNS, empty="no locations")
