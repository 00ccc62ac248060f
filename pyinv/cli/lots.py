"""Lots and expiry: the lots of lot-tracked items (`lots`, `lots expiring`, `lots allocations`), a lot's QC
status and quarantine (`lot status`), the recall trace (`trace`) and the expiry sweep (`expire-lots`)."""

from __future__ import annotations

import click

from .context import HelpGroup, emit, emit_page, example, json_option, list_options, state
from .output import (
    EXPIRING_LOT_COLUMNS,
    LOT_ALLOCATION_COLUMNS,
    LOT_COLUMNS,
    LOT_STATUS_COLUMNS,
    TRACE_COLUMNS,
    format_decimal,
    plain,
    to_json,
)

QC_STATUSES = ("PENDING", "PASSED", "FAILED")
EXPIRY_STATUSES = ("EXPIRED", "EXPIRING_SOON", "EXPIRING")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@example("pyinv lots --sku VACCINE-A", "pyinv lots expiring --within-days 7", "pyinv lots allocations --order SO-1")
@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--sku")
@click.option("--location")
@click.option("--lot", "lot_number", help="Only this lot number.")
@click.option("--qc", "qc_status", type=click.Choice(QC_STATUSES, case_sensitive=False),
              help="Only lots in this QC status.")
@list_options
@click.pass_context
def lots(ctx: click.Context, sku: str | None, location: str | None, lot_number: str | None, qc_status: str | None,
         limit: int, offset: int) -> None:
    """Lots per location: on hand, reserved, available, expiry, QC; or expiring | allocations.

    A lot that cannot be sold (expired, QC pending or failed, quarantined) has nothing available and
    says why in blocked_reason. Lots are listed by SKU and location, first expiring first."""
    if ctx.invoked_subcommand is not None:
        return
    emit_page(state().inventory().lots, limit, offset, LOT_COLUMNS, empty="no lots", sku=sku, location=location,
              lot_number=lot_number, qc_status=qc_status.upper() if qc_status else None)


@example("pyinv lots expiring --within-days 7")
@lots.command("expiring")
@click.option("--sku")
@click.option("--location")
@click.option("--within-days", type=click.IntRange(min=0), metavar="N",
              help="Only lots expiring within N days (expired ones included); default 30.")
@click.option("--status", "expiry_status", type=click.Choice(EXPIRY_STATUSES, case_sensitive=False),
              help="EXPIRED, EXPIRING_SOON (7 days or less) or EXPIRING (30 days or less).")
@list_options
def lots_expiring(sku: str | None, location: str | None, within_days: int | None, expiry_status: str | None,
                  limit: int, offset: int) -> None:
    """Lots with stock on hand that expired or expire within 30 days, first expiring first."""
    emit_page(state().inventory().expiring_lots, limit, offset, EXPIRING_LOT_COLUMNS, empty="no expiring lots",
              sku=sku, location=location, within_days=within_days,
              expiry_status=expiry_status.upper() if expiry_status else None)


@example("pyinv lots allocations --order SO-1")
@lots.command("allocations")
@click.option("--order", "order_ref", help="Only this order.")
@click.option("--sku")
@click.option("--lot", "lot_number", help="Only this lot number.")
@click.option("--location")
@list_options
def lots_allocations(order_ref: str | None, sku: str | None, lot_number: str | None, location: str | None,
                     limit: int, offset: int) -> None:
    """Which lots the holds took units from: the latest --limit (--offset skips newer ones)."""
    emit_page(state().inventory().lot_allocations, limit, offset, LOT_ALLOCATION_COLUMNS, latest=True,
              empty="no lot allocations", order_ref=order_ref, sku=sku, lot_number=lot_number, location=location)


@example("pyinv lot status VACCINE-A L-2607 --qc PASSED", "pyinv lot status VACCINE-A L-2607 --quarantine")
@click.group(cls=HelpGroup)
def lot() -> None:
    """One lot: set its QC status or quarantine it (status)."""


@example("pyinv lot status VACCINE-A L-2607 --quarantine --note \"supplier recall\"",
         "pyinv lot status VACCINE-A L-2607 --qc PASSED --release")
@lot.command("status")
@click.argument("sku")
@click.argument("lot_number", metavar="LOT")
@click.option("--qc", "qc_status", type=click.Choice(QC_STATUSES, case_sensitive=False), help="New QC status.")
@click.option("--quarantine/--release", "quarantined", default=None,
              help="Put the lot in quarantine, or release it from quarantine.")
@click.option("--note", help="Why: recorded with the change.")
@json_option
def lot_status(sku: str, lot_number: str, qc_status: str | None, quarantined: bool | None, note: str | None) -> None:
    """Set the QC status of LOT of SKU and/or quarantine or release it (admins).

    When the lot stops being sellable, its open holds move to other sellable lots at the same location
    (first expiring first); what cannot move is released."""
    if qc_status is None and quarantined is None:
        raise click.UsageError("give --qc STATUS, --quarantine or --release")
    emit(state().inventory().set_lot_status(sku, lot_number, qc_status=qc_status.upper() if qc_status else None,
                                            quarantined=quarantined, note=note), LOT_STATUS_COLUMNS)


@example("pyinv trace VACCINE-A L-2607")
@click.command()
@click.argument("sku")
@click.argument("lot_number", metavar="LOT")
@json_option
def trace(sku: str, lot_number: str) -> None:
    """Recall trace: every order that took units of LOT of SKU, and what was shipped, returned, released."""
    emit(state().inventory().trace_lot(sku, lot_number), TRACE_COLUMNS, empty="no holds took units of this lot")


@example("pyinv expire-lots")
@click.command("expire-lots")
@json_option
def expire_lots() -> None:
    """Write off the stock of expired lots and move or release their holds (schedule it daily)."""
    result = state().inventory().expire_inventory_lots()
    if state().json:
        click.echo(to_json(plain(result)))
        return
    click.echo(f"expired {_plural(result.lots_expired, 'lot')}, {format_decimal(result.units_written_off)} "
               f"units written off; {_plural(result.holds_reallocated, 'hold')} re-allocated, "
               f"{result.holds_released} released ({format_decimal(result.units_released)} units)")
