"""Stock control: adjustments and their approval, physical counts, transfers, stock policies, reorder
alerts."""

from __future__ import annotations

from decimal import Decimal

import click

from .context import HelpGroup, emit, emit_page, example, json_option, list_options, state
from .output import (
    ADJUSTMENT_COLUMNS,
    ALERT_CHECK_COLUMNS,
    ALERT_COLUMNS,
    COUNT_COLUMNS,
    COUNT_LIST_COLUMNS,
    HOT_MODE_COLUMNS,
    POLICY_COLUMNS,
    RECOMMENDATION_COLUMNS,
    TRANSFER_COLUMNS,
)
from .params import DECIMAL, key_option

ADJUSTMENT_TYPES = ("physical_count", "damage", "correction", "write_off", "found")

# -- adjustments, counts, transfers --------------------------------------------------------------------------


@example("pyinv adjust TSHIRT-M -3 --type damage --reason damaged")
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
@click.option("--lot", "lot_number", help="The lot whose units change (required for lot-tracked items).")
@key_option
@json_option
def adjust(sku: str, quantity_delta: Decimal, adjustment_type: str, reason_code: str, location: str,
           description: str | None, lot_number: str | None, key: str | None) -> None:
    """Request a change of on_hand by QUANTITY_DELTA (negative removes units).

    Applied at once when the reason needs no approval at this size, else PENDING for an admin."""
    emit(state().inventory().create_adjustment(sku, quantity_delta, adjustment_type, reason_code, location=location,
                                               description=description, idempotency_key=key,
                                               lot_number=lot_number), ADJUSTMENT_COLUMNS)


@example("pyinv approve 42", "pyinv approve 42 --reject --note \"recount first\"")
@click.command()
@click.argument("adjustment_id", type=int)
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", help="Note recorded with the decision.")
@json_option
def approve(adjustment_id: int, reject: bool, note: str | None) -> None:
    """Approve (or --reject) a PENDING adjustment; admins only, never your own."""
    emit(state().inventory().approve_adjustment(adjustment_id, "rejected" if reject else "approved", note=note),
         ADJUSTMENT_COLUMNS)


@example("pyinv adjustments --status PENDING")
@click.command()
@click.option("--status", type=click.Choice(["PENDING", "APPLIED", "APPROVED", "REJECTED", "SUPERSEDED"],
                                            case_sensitive=False))
@click.option("--sku")
@click.option("--location")
@list_options
def adjustments(status: str | None, sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """History of stock adjustments: the latest --limit of them (--offset skips newer ones)."""
    emit_page(state().inventory().adjustments, limit, offset, ADJUSTMENT_COLUMNS, latest=True,
              empty="no adjustments", status=status.upper() if status else None, sku=sku, location=location)


@example("pyinv count TSHIRT-M 37 --location main")
@click.command()
@click.argument("sku")
@click.argument("counted_quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@click.option("--lot", "lot_number", help="The lot counted (lot-tracked items are counted lot by lot).")
@json_option
def count(sku: str, counted_quantity: Decimal, location: str, lot_number: str | None) -> None:
    """Record a physical count of SKU; a difference becomes a physical_count adjustment."""
    emit(state().inventory().record_count(sku, counted_quantity, location=location, lot_number=lot_number),
         COUNT_COLUMNS)


@example("pyinv counts --sku TSHIRT-M")
@click.command()
@click.option("--sku")
@click.option("--location")
@list_options
def counts(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """Physical counts and their adjustments: the latest --limit (--offset skips newer ones)."""
    emit_page(state().inventory().cycle_counts, limit, offset, COUNT_LIST_COLUMNS, latest=True,
              empty="no counts", sku=sku, location=location)


@example("pyinv transfer TSHIRT-M 5 --from main --to store-1")
@click.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--from", "from_location", required=True, help="Location the units leave.")
@click.option("--to", "to_location", required=True, help="Location the units arrive at.")
@click.option("--reference", help="Transfer order or note.")
@click.option("--lot", "lot_number", help="Move units of this lot only (lot-tracked items).")
@key_option
@json_option
def transfer(sku: str, quantity: Decimal, from_location: str, to_location: str, reference: str | None,
             lot_number: str | None, key: str | None) -> None:
    """Move QUANTITY available units of SKU between locations, atomically."""
    emit(state().inventory().transfer_stock(sku, quantity, from_location, to_location, reference=reference,
                                            idempotency_key=key, lot_number=lot_number), TRANSFER_COLUMNS)


@example("pyinv hot-mode DROP-SNEAKER --buckets 16", "pyinv hot-mode DROP-SNEAKER --off")
@click.command("hot-mode")
@click.argument("sku")
@click.option("--location", default="main", show_default=True)
@click.option("--buckets", type=click.IntRange(min=2, max=64), default=8, show_default=True,
              help="Rows the level's free units are spread over: about the number of buyers at once.")
@click.option("--off", is_flag=True, help="Turn hot mode off (gathers the free units back on the level).")
@json_option
def hot_mode(sku: str, location: str, buckets: int, off: bool) -> None:
    """Hot mode for a flash sale on one SKU: holds from every client (SQL, PostgREST, this CLI) take
    one of BUCKETS rows nobody has locked instead of queueing on one, and are refused only when the
    level as a whole is short. Admins of the location."""
    emit(state().inventory().set_hot_mode(sku, location=location, buckets=1 if off else buckets), HOT_MODE_COLUMNS)


# -- stock policies and reorder alerts ------------------------------------------------------------------------


@example("pyinv policy set TSHIRT-M --reorder-point 10 --safety-stock 3 --reorder-quantity 50")
@click.group(cls=HelpGroup)
def policy() -> None:
    """Stock policies (reorder point, safety stock, order quantity): set, list."""


@example("pyinv policy set TSHIRT-M --location main --reorder-point 10 --safety-stock 3 --reorder-quantity 50")
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


@example("pyinv policy list --sku TSHIRT-M")
@policy.command("list")
@click.option("--sku")
@click.option("--location")
@list_options
def policy_list(sku: str | None, location: str | None, limit: int, offset: int) -> None:
    """List stock policies."""
    emit_page(state().inventory().stock_policies, limit, offset, POLICY_COLUMNS, empty="no policies", sku=sku,
              location=location)


@example("pyinv alerts", "pyinv alerts ack 7 --note \"PO-2001 placed\"")
@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include resolved and dismissed alerts.")
@list_options
@click.pass_context
def alerts(ctx: click.Context, show_all: bool, limit: int, offset: int) -> None:
    """Reorder alerts: the open ones, or ack | resolve | dismiss | check | recommendations."""
    if ctx.invoked_subcommand is not None:
        return
    emit_page(state().inventory().reorder_alerts, limit, offset, ALERT_COLUMNS,
              empty="no alerts" if show_all else "no open alerts", open_only=not show_all)


def _alert_command(name: str, status: str, help_text: str) -> None:
    @example(f"pyinv alerts {name} 7")
    @alerts.command(name, help=help_text)
    @click.argument("alert_id", type=int)
    @click.option("--note", help="Note recorded with the change.")
    @json_option
    def command(alert_id: int, note: str | None) -> None:
        emit(state().inventory().update_reorder_alert(alert_id, status, note=note), ALERT_COLUMNS)


_alert_command("ack", "ACKNOWLEDGED", "Acknowledge an open alert (e.g. a purchase order is placed).")
_alert_command("resolve", "RESOLVED", "Resolve an alert by hand.")
_alert_command("dismiss", "DISMISSED", "Dismiss an alert; it is not reopened until stock has recovered once.")


@example("pyinv alerts check")
@alerts.command("check")
@json_option
def alerts_check() -> None:
    """Re-evaluate every level with a policy in one pass (open, raise, resolve alerts)."""
    emit(state().inventory().check_reorder_points(), ALERT_CHECK_COLUMNS)


@example("pyinv alerts recommendations")
@alerts.command("recommendations")
@click.option("--all", "show_all", is_flag=True, help="Include levels in NORMAL state.")
@list_options
def alerts_recommendations(show_all: bool, limit: int, offset: int) -> None:
    """What to reorder: CRITICAL / REORDER levels with a suggested order quantity."""
    emit_page(state().inventory().reorder_recommendations, limit, offset, RECOMMENDATION_COLUMNS,
              empty="nothing to reorder", actionable=not show_all)
