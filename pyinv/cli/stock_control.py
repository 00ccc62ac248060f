"""Stock control: adjustments and their approval, physical counts, transfers, stock policies, reorder
alerts."""

from __future__ import annotations

from decimal import Decimal

import click

from .context import emit, json_option, state
from .output import (
    ADJUSTMENT_COLUMNS,
    ALERT_CHECK_COLUMNS,
    ALERT_COLUMNS,
    COUNT_COLUMNS,
    POLICY_COLUMNS,
    RECOMMENDATION_COLUMNS,
    TRANSFER_COLUMNS,
)
from .params import DECIMAL, key_option

ADJUSTMENT_TYPES = ("physical_count", "damage", "correction", "write_off", "found")

# -- adjustments, counts, transfers --------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("sku")
@click.argument("quantity_delta", type=DECIMAL)
@click.option("--type", "adjustment_type", type=click.Choice(ADJUSTMENT_TYPES), default="correction",
              show_default=True)
@click.option("--reason", "reason_code", required=True,
              help="Reason code: received, correction, cycle_count, damaged, shrinkage, theft, expired, promotion, "
                   "restock, quality_control, other.")
@click.option("--location", default="main", show_default=True)
@click.option("--description", help="Free text for the approver.")
@key_option
@json_option
def adjust(sku: str, quantity_delta: Decimal, adjustment_type: str, reason_code: str, location: str,
           description: str | None, key: str | None) -> None:
    """Request a change of on_hand by QUANTITY_DELTA (negative removes units).

    Applied at once when the reason needs no approval at this size, else PENDING for an admin."""
    emit(state().inventory().create_adjustment(sku, quantity_delta, adjustment_type, reason_code, location=location,
                                               description=description, idempotency_key=key), ADJUSTMENT_COLUMNS)


@click.command()
@click.argument("adjustment_id", type=int)
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", help="Note recorded with the decision.")
@json_option
def approve(adjustment_id: int, reject: bool, note: str | None) -> None:
    """Approve (or --reject) a PENDING adjustment; admins only, never your own."""
    emit(state().inventory().approve_adjustment(adjustment_id, "rejected" if reject else "approved", note=note),
         ADJUSTMENT_COLUMNS)


@click.command()
@click.option("--status", type=click.Choice(["PENDING", "APPLIED", "APPROVED", "REJECTED", "SUPERSEDED"],
                                            case_sensitive=False))
@click.option("--sku")
@click.option("--location")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option
def adjustments(status: str | None, sku: str | None, location: str | None, limit: int) -> None:
    """History of stock adjustments (the latest --limit of them)."""
    emit(state().inventory().adjustments(status=status.upper() if status else None, sku=sku, location=location,
                                         limit=limit), ADJUSTMENT_COLUMNS, empty="no adjustments")


@click.command()
@click.argument("sku")
@click.argument("counted_quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@json_option
def count(sku: str, counted_quantity: Decimal, location: str) -> None:
    """Record a physical count of SKU; a difference becomes a physical_count adjustment."""
    emit(state().inventory().record_count(sku, counted_quantity, location=location), COUNT_COLUMNS)


@click.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--from", "from_location", required=True, help="Location the units leave.")
@click.option("--to", "to_location", required=True, help="Location the units arrive at.")
@click.option("--reference", help="Transfer order or note.")
@key_option
@json_option
def transfer(sku: str, quantity: Decimal, from_location: str, to_location: str, reference: str | None,
             key: str | None) -> None:
    """Move QUANTITY available units of SKU between locations, atomically."""
    emit(state().inventory().transfer_stock(sku, quantity, from_location, to_location, reference=reference,
                                            idempotency_key=key), TRANSFER_COLUMNS)


# -- stock policies and reorder alerts ------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Stock policies: reorder point, safety stock, order quantity."""


@policy.command("set")
@click.argument("sku")
@click.option("--location", default="main", show_default=True)
@click.option("--reorder-point", type=DECIMAL, required=True, help="Reorder when available falls to this.")
@click.option("--safety-stock", type=DECIMAL, required=True, help="Critical when available falls to this.")
@click.option("--reorder-quantity", type=DECIMAL, help="Fixed quantity to order.")
@click.option("--max-stock", "max_stock_level", type=DECIMAL, help="Order up to this level.")
@click.option("--lead-time-days", type=click.IntRange(min=0))
@json_option
def policy_set(sku: str, location: str, reorder_point: Decimal, safety_stock: Decimal,
               reorder_quantity: Decimal | None, max_stock_level: Decimal | None,
               lead_time_days: int | None) -> None:
    """Set the stock policy of SKU at a location (admins)."""
    emit(state().inventory().set_stock_policy(sku, location, reorder_point, safety_stock,
                                              reorder_quantity=reorder_quantity, max_stock_level=max_stock_level,
                                              lead_time_days=lead_time_days), POLICY_COLUMNS)


@policy.command("list")
@click.option("--sku")
@click.option("--location")
@json_option
def policy_list(sku: str | None, location: str | None) -> None:
    """List stock policies."""
    emit(state().inventory().stock_policies(sku=sku, location=location), POLICY_COLUMNS, empty="no policies")


@click.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include resolved and dismissed alerts.")
@json_option
@click.pass_context
def alerts(ctx: click.Context, show_all: bool) -> None:
    """Reorder alerts: a table of the open ones (ack | resolve | dismiss ALERT_ID to handle them)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = state().inventory().reorder_alerts()
    if not show_all:
        rows = [row for row in rows if row.status in ("OPEN", "ACKNOWLEDGED")]
    emit(rows, ALERT_COLUMNS, empty="no open alerts")


def _alert_command(name: str, status: str, help_text: str) -> None:
    @alerts.command(name, help=help_text)
    @click.argument("alert_id", type=int)
    @click.option("--note", help="Note recorded with the change.")
    @json_option
    def command(alert_id: int, note: str | None) -> None:
        emit(state().inventory().update_reorder_alert(alert_id, status, note=note), ALERT_COLUMNS)


_alert_command("ack", "ACKNOWLEDGED", "Acknowledge an open alert (e.g. a purchase order is placed).")
_alert_command("resolve", "RESOLVED", "Resolve an alert by hand.")
_alert_command("dismiss", "DISMISSED", "Dismiss an alert; it is not reopened until stock has recovered once.")


@alerts.command("check")
@json_option
def alerts_check() -> None:
    """Re-evaluate every level with a policy in one pass (open, raise, resolve alerts)."""
    emit(state().inventory().check_reorder_points(), ALERT_CHECK_COLUMNS)


@alerts.command("recommendations")
@click.option("--all", "show_all", is_flag=True, help="Include levels in NORMAL state.")
@json_option
def alerts_recommendations(show_all: bool) -> None:
    """What to reorder: CRITICAL / REORDER levels with a suggested order quantity."""
    rows = state().inventory().reorder_recommendations()
    if not show_all:
        rows = [row for row in rows if row.status != "NORMAL"]
    emit(rows, RECOMMENDATION_COLUMNS, empty="nothing to reorder")
