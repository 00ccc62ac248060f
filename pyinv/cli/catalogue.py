"""The catalogue: items (`item`), stock locations (`location`), and who may do what (`user`)."""

from __future__ import annotations

from decimal import Decimal

import click

from .context import HelpGroup, emit, emit_page, example, json_option, list_options, state
from .output import ITEM_COLUMNS, LOCATION_COLUMNS, USER_ROLE_COLUMNS, to_json
from .params import DECIMAL

ROLES = ("viewer", "operator", "admin", "scheduler")


@example("pyinv item add TSHIRT-M \"T-shirt, M\" --unit-cost 12.50", "pyinv item list")
@click.group(cls=HelpGroup)
def item() -> None:
    """The catalogue of items: add, list, update, delete, restore."""


@example("pyinv item add TSHIRT-M \"T-shirt, M\" --unit-cost 12.50",
         "pyinv item add VACCINE-A \"Vaccine A\" --track-lots --requires-qc")
@item.command("add")
@click.argument("sku")
@click.argument("name")
@click.option("--uom", default="each", show_default=True, help="Unit of measure.")
@click.option("--unit-cost", type=DECIMAL, help="Cost of one unit.")
@click.option("--track-lots", is_flag=True, help="Track lots for this item (receipts name the lot).")
@click.option("--requires-qc", is_flag=True,
              help="New lots are not sellable until they pass QC (pyinv lot status SKU LOT --qc PASSED); "
                   "needs --track-lots.")
@json_option
def item_add(sku: str, name: str, uom: str, unit_cost: Decimal | None, track_lots: bool, requires_qc: bool) -> None:
    """Create an item (the same attributes again are fine)."""
    emit(state().inventory().create_item(sku, name, unit_of_measure=uom, unit_cost=unit_cost,
                                         track_lots=track_lots, requires_qc=requires_qc), ITEM_COLUMNS)


@example("pyinv item status TSHIRT-M on_hold")
@item.command("status")
@click.argument("sku")
@click.argument("status", type=click.Choice(["active", "on_hold", "discontinued"]))
@json_option
def item_status(sku: str, status: str) -> None:
    """Set an item active, on hold or discontinued."""
    emit(state().inventory().set_item_status(sku, status), ITEM_COLUMNS)


@example("pyinv item list --limit 20 --offset 40")
@item.command("list")
@click.option("--include-deleted", is_flag=True, help="Also list soft-deleted items.")
@list_options
def item_list(include_deleted: bool, limit: int, offset: int) -> None:
    """List the catalogue, by SKU."""
    emit_page(state().inventory().items, limit, offset, ITEM_COLUMNS, empty="no items",
              include_deleted=include_deleted)


@example("pyinv item update TSHIRT-M --unit-cost 13 --expected-version 1")
@item.command("update")
@click.argument("sku")
@click.option("--name", help="New name.")
@click.option("--uom", help="New unit of measure.")
@click.option("--unit-cost", type=DECIMAL, help="New cost of one unit.")
@click.option("--expected-version", type=int,
              help="Refuse (VERSION_CONFLICT) if the item changed since this version (item list shows it).")
@json_option
def item_update(sku: str, name: str | None, uom: str | None, unit_cost: Decimal | None,
                expected_version: int | None) -> None:
    """Change an item's name, unit of measure or cost (admins)."""
    if name is None and uom is None and unit_cost is None:
        raise click.UsageError("give at least one of --name, --uom, --unit-cost")
    emit(state().inventory().update_item(sku, name=name, unit_of_measure=uom, unit_cost=unit_cost,
                                         expected_version=expected_version), ITEM_COLUMNS)


@example("pyinv item delete MUG")
@item.command("delete")
@click.argument("sku")
@click.option("--expected-version", type=int,
              help="Refuse (VERSION_CONFLICT) if the item changed since this version.")
@json_option
def item_delete(sku: str, expected_version: int | None) -> None:
    """Soft-delete an item with no stock on hand or held (admins; `item restore` undoes it)."""
    emit(state().inventory().delete_item(sku, expected_version=expected_version), ITEM_COLUMNS)


@example("pyinv item restore MUG")
@item.command("restore")
@click.argument("sku")
@json_option
def item_restore(sku: str) -> None:
    """Bring back a soft-deleted item (admins)."""
    emit(state().inventory().restore_item(sku), ITEM_COLUMNS)


@example("pyinv location add store-1 \"Store 1\"", "pyinv location list")
@click.group(cls=HelpGroup)
def location() -> None:
    """Stock locations: add, list."""


@example("pyinv location add store-1 \"Store 1\"")
@location.command("add")
@click.argument("code")
@click.argument("name")
@json_option
def location_add(code: str, name: str) -> None:
    """Create a location (the same name again is fine)."""
    emit(state().inventory().create_location(code, name), LOCATION_COLUMNS)


@example("pyinv location list")
@location.command("list")
@list_options
def location_list(limit: int, offset: int) -> None:
    """List the locations, by code."""
    emit_page(state().inventory().locations, limit, offset, LOCATION_COLUMNS, empty="no locations")


# -- users and their business roles ----------------------------------------------------------------------


@example("pyinv user grant store_app operator --location store-1", "pyinv user list")
@click.group(cls=HelpGroup)
def user() -> None:
    """Business roles of users (logins or JWT subs): grant, revoke, list."""


@example("pyinv user grant store_app operator --location store-1")
@user.command("grant")
@click.argument("user_id")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--location", help="Only at this location (default: every location).")
@json_option
def user_grant(user_id: str, role: str, location: str | None) -> None:
    """Give USER_ID a business role, at one location or everywhere (admins)."""
    emit(state().inventory().grant_user_role(user_id, role, location=location), USER_ROLE_COLUMNS)


@example("pyinv user revoke store_app operator --location store-1")
@user.command("revoke")
@click.argument("user_id")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--location", help="The location of the grant (default: the grant for every location).")
@json_option
def user_revoke(user_id: str, role: str, location: str | None) -> None:
    """Take a business role away from USER_ID (admins)."""
    removed = state().inventory().revoke_user_role(user_id, role, location=location)
    if state().json:
        click.echo(to_json({"revoked": removed}))
    else:
        click.echo(f"revoked {removed} grant{'s' if removed != 1 else ''}")


@example("pyinv user list --user store_app")
@user.command("list")
@click.option("--user", "user_id", help="Only this user.")
@click.option("--role", type=click.Choice(ROLES), help="Only this role.")
@list_options
def user_list(user_id: str | None, role: str | None, limit: int, offset: int) -> None:
    """Grants of business roles (admins see all, others their own); group role members are not listed."""
    emit_page(state().inventory().user_roles, limit, offset, USER_ROLE_COLUMNS, empty="no grants",
              user_id=user_id, role=role)
