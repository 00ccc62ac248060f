"""Reports: stock value, movements, holds, low stock and alert figures (`reports ...`), the one-screen
`dashboard`, the stock of a level at a past moment (`stock-as-of`) and the refresh of the materialized
views behind them (`refresh-views`)."""

from __future__ import annotations

from datetime import datetime

import click

from .context import HelpGroup, emit, emit_page, example, json_option, list_options, state
from .output import (
    ALERT_STATISTICS_COLUMNS,
    HOLDS_SUMMARY_COLUMNS,
    LOW_STOCK_COLUMNS,
    MOVEMENT_SUMMARY_COLUMNS,
    SNAPSHOT_COLUMNS,
    VALUATION_COLUMNS,
    format_cell,
    plain,
    to_json,
)
from .params import MOMENT

STOCK_STATUSES = ("OUT_OF_STOCK", "CRITICAL", "LOW")


@example("pyinv reports valuation", "pyinv reports low-stock --status CRITICAL")
@click.group(cls=HelpGroup)
def reports() -> None:
    """Reports over your locations: valuation, movements, holds, low-stock, alerts."""


@example("pyinv reports valuation --location main")
@reports.command("valuation")
@click.option("--sku")
@click.option("--location")
@list_options
def reports_valuation(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Value of the stock on hand at unit cost, per item and location (per lot for lot-tracked items).

    A lot is valued at its own unit cost when it has one, else at the item's; value is empty where no
    cost is known."""
    emit_page(state().inventory().inventory_valuation, limit, offset, VALUATION_COLUMNS, empty="no stock on hand",
              sku=sku, location=location)


@example("pyinv reports movements --sku A1")
@reports.command("movements")
@click.option("--sku")
@click.option("--location")
@list_options
def reports_movements(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Units received, shipped, returned, adjusted and transferred in the last 90 days, with the net change."""
    emit_page(state().inventory().movement_summary, limit, offset, MOVEMENT_SUMMARY_COLUMNS,
              empty="no movements in the last 90 days", sku=sku, location=location)


@example("pyinv reports holds")
@reports.command("holds")
@click.option("--sku")
@click.option("--location")
@list_options
def reports_holds(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Active holds per item and location: how many, units held, the oldest and the next to expire."""
    emit_page(state().inventory().active_reservations_summary, limit, offset, HOLDS_SUMMARY_COLUMNS,
              empty="no active holds", sku=sku, location=location)


@example("pyinv reports low-stock --status OUT_OF_STOCK")
@reports.command("low-stock")
@click.option("--sku")
@click.option("--location")
@click.option("--status", "stock_status", type=click.Choice(STOCK_STATUSES, case_sensitive=False),
              help="OUT_OF_STOCK (available <= 0), CRITICAL (<= safety stock) or LOW (<= reorder point).")
@list_options
def reports_low_stock(sku: str | None, location: str | None, stock_status: str | None, limit: int,
                      offset: int) -> None:
    """Levels at or below their reorder point, as of the last refresh-views (refreshed_at)."""
    emit_page(state().inventory().low_stock_items, limit, offset, LOW_STOCK_COLUMNS, empty="no low stock",
              sku=sku, location=location, stock_status=stock_status.upper() if stock_status else None)


@example("pyinv reports alerts")
@reports.command("alerts")
@json_option
def reports_alerts() -> None:
    """Reorder alerts counted by status and severity."""
    emit(state().inventory().alert_statistics(), ALERT_STATISTICS_COLUMNS, empty="no reorder alerts")


@example("pyinv dashboard", "pyinv dashboard --json")
@click.command()
@json_option
def dashboard() -> None:
    """One screen of figures over your locations: stock, value, alerts, approvals, expiry, maintenance."""
    figures = state().inventory().dashboard()
    if state().json:
        click.echo(to_json(plain(figures)))
        return
    record = plain(figures)
    width = max(len(name) for name in record)
    for name, value in record.items():
        click.echo(f"{name.replace('_', ' '):<{width}}  {format_cell(value)}")


@example("pyinv stock-as-of A1 --at 2026-05-01T09:30", "pyinv stock-as-of A1 --at 2h --location east")
@click.command("stock-as-of")
@click.argument("sku")
@click.option("--at", "at", type=MOMENT, required=True,
              help="The moment: ISO 8601 (local time without an offset) or a duration ago (15m, 2h, 7d).")
@click.option("--location", default="main", show_default=True)
@json_option
def stock_as_of(sku: str, at: datetime, location: str) -> None:
    """On hand, reserved and available of SKU at a past moment, from the ledger."""
    emit(state().inventory().stock_as_of(sku, at, location=location), SNAPSHOT_COLUMNS)


@example("pyinv refresh-views")
@click.command("refresh-views")
@json_option
def refresh_views() -> None:
    """Refresh the materialized views behind the reports (low stock); schedule it every few minutes.

    Returns at once, saying so, while another refresh is running."""
    result = state().inventory().refresh_inventory_views()
    if state().json:
        click.echo(to_json(plain(result)))
    elif result.refreshed:
        click.echo(f"{result.message} in {format_cell(result.duration_ms)} ms")
    else:
        click.echo(f"not refreshed: {result.message}")
