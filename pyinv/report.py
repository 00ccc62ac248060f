"""The HTML report (`pyinv report out.html`): one self-contained page, readable without a network (CSS
inline, the chart an inline SVG, no scripts, fonts or images from anywhere), built from the report
views through the client: dashboard, inventory_metrics, daily_movements, low_stock_items,
expiring_lots, stock_levels, inventory_valuation and movement_summary. Every text that comes from
the database is escaped (SKUs, names and lot numbers are user data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from html import escape
from typing import Any

from .client import Inventory
from .metrics import period_text
from .models import (
    DailyMovement,
    Dashboard,
    Item,
    Metric,
    StockRow,
)

ROW_LIMIT = 1000
"""Rows shown per table; the page says when there were more (the CLI's reports list them all)."""


@dataclass(frozen=True)
class Table:
    """Rows of one section, and whether there were more than were read."""

    rows: list[Any]
    more: bool


def _page(fetch: Callable[..., list[Any]], limit: int = ROW_LIMIT, **filters: Any) -> Table:
    rows = fetch(limit=limit + 1, **filters)
    return Table(rows[:limit], len(rows) > limit)


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, read at `generated_at`."""

    generated_at: datetime
    dashboard: Dashboard
    metrics: list[Metric]
    days: list[DailyMovement]
    low_stock: Table
    expiring: Table
    levels: Table
    valuation: Table
    movements: Table
    names: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for stderr: what the page holds."""
        value = "unknown" if self.dashboard.inventory_value is None else _number(self.dashboard.inventory_value)
        return (f"{len(self.levels.rows)}{'+' if self.levels.more else ''} stock levels, "
                f"{len(self.low_stock.rows)}{'+' if self.low_stock.more else ''} low, "
                f"{len(self.expiring.rows)}{'+' if self.expiring.more else ''} expiring lots, value {value}, "
                f"{sum(day.movements for day in self.days)} movements in 30 days")


def collect(inv: Inventory, limit: int = ROW_LIMIT) -> ReportData:
    """Read every section of the report through the client (over the caller's locations)."""
    items: list[Item] = inv.items(limit=limit * 10)
    return ReportData(
        generated_at=datetime.now(timezone.utc),
        dashboard=inv.dashboard(),
        metrics=inv.inventory_metrics(),
        days=inv.daily_movements(),
        low_stock=_page(inv.low_stock_items, limit),
        expiring=_page(inv.expiring_lots, limit),
        levels=_page(inv.stock_levels, limit),
        valuation=_page(inv.inventory_valuation, limit),
        movements=_page(inv.movement_summary, limit),
        names={item.sku: item.name for item in items},
    )


# -- rendering --------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1f2933;
       background: #f7f9fb; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 2px solid #d9e2ec; padding-bottom: 0.3rem; }
.muted { color: #627d98; font-size: 0.9rem; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; margin-top: 1rem; }
.card { background: #fff; border: 1px solid #d9e2ec; border-radius: 6px; padding: 0.6rem 0.9rem; min-width: 9rem; }
.card .figure { font-size: 1.4rem; font-weight: 600; }
.card .label { color: #627d98; font-size: 0.8rem; }
table { border-collapse: collapse; background: #fff; margin-top: 0.6rem; font-size: 0.9rem; }
th, td { border: 1px solid #d9e2ec; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f0f4f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { border-radius: 3px; padding: 0 0.4rem; font-size: 0.8rem; font-weight: 600; }
.OUT_OF_STOCK, .EXPIRED, .OUT { background: #ffe3e3; color: #a61b1b; }
.CRITICAL, .EXPIRING_SOON { background: #fff3c4; color: #8d2b0b; }
.LOW, .EXPIRING { background: #fffbea; color: #8d6a0b; }
.OK { background: #e3f9e5; color: #0e7c3a; }
svg text { font-size: 10px; fill: #486581; }
"""


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return f'<td class="num">{escape(_number(value))}</td>'
    if isinstance(value, datetime):
        return f"<td>{escape(value.isoformat(sep=' ', timespec='seconds'))}</td>"
    return f"<td>{'' if value is None else escape(str(value))}</td>"


def _badge(status: str) -> str:
    return f'<td><span class="badge {escape(status)}">{escape(status.replace("_", " "))}</span></td>'


def _table(headers: Sequence[str], rows: Sequence[str], table: Table | None = None, empty: str = "none") -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    more = ""
    if table is not None and table.more:
        more = f'<p class="muted">Only the first {len(table.rows)} rows are shown.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cards(dashboard: Dashboard) -> str:
    figures = [
        ("Items", dashboard.items), ("Locations", dashboard.locations), ("Units on hand", dashboard.units_on_hand),
        ("Units reserved", dashboard.units_reserved),
        ("Stock value", "unknown" if dashboard.inventory_value is None else dashboard.inventory_value),
        ("Low stock levels", dashboard.low_stock_items), ("Open alerts", dashboard.open_alerts),
        ("Pending approvals", dashboard.pending_approvals), ("Expiring lots", dashboard.expiring_lots),
        ("Expired lots", dashboard.expired_lots), ("Holds lapsing within 1 h", dashboard.holds_expiring_within_hour),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="figure">{escape(_number(value))}</div>'
        f'<div class="label">{escape(label)}</div></div>' for label, value in figures) + "</div>"


def movement_chart(days: Sequence[DailyMovement], width: int = 900, height: int = 260) -> str:
    """An inline SVG bar chart: units received (up, green) and shipped (down, red) per day, with the
    day's net change of on hand as a line."""
    left, right, top, bottom = 48, 12, 14, 34
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = max([Decimal(1)] + [max(day.received, day.shipped, abs(day.net_change)) for day in days])
    middle = top + plot_height / 2
    scale = (plot_height / 2) / float(peak)
    slot = plot_width / max(len(days), 1)
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg role="img" aria-label="Units received and shipped per day" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="#fff" stroke="#d9e2ec"/>',
             f'<line x1="{left}" y1="{middle:.1f}" x2="{left + plot_width}" y2="{middle:.1f}" stroke="#9fb3c8"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{escape(_number(peak))}</text>',
             f'<text x="{left - 4}" y="{middle + 3:.1f}" text-anchor="end">0</text>',
             f'<text x="{left - 4}" y="{top + plot_height}" text-anchor="end">-{escape(_number(peak))}</text>']
    points = []
    for index, day in enumerate(days):
        x = left + index * slot
        received = float(day.received) * scale
        shipped = float(day.shipped) * scale
        label = escape(f"{day.day.isoformat()}: received {_number(day.received)}, shipped {_number(day.shipped)}, "
                       f"net {_number(day.net_change)}")
        parts.append(f'<g class="day"><title>{label}</title>'
                     f'<rect class="received" x="{x + 1:.1f}" y="{middle - received:.1f}" width="{bar:.1f}" '
                     f'height="{received:.1f}" fill="#3ebd93"/>'
                     f'<rect class="shipped" x="{x + 1 + bar:.1f}" y="{middle:.1f}" width="{bar:.1f}" '
                     f'height="{shipped:.1f}" fill="#e66a6a"/></g>')
        points.append(f"{x + slot / 2:.1f},{middle - float(day.net_change) * scale:.1f}")
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                         f"{escape(day.day.strftime('%m-%d'))}</text>")
    if points:
        parts.append(f'<polyline class="net" points="{" ".join(points)}" fill="none" stroke="#334e68" '
                     'stroke-width="1.5"/>')
    legend_y = height - 6
    parts.append(f'<rect x="{left}" y="{legend_y - 8}" width="10" height="8" fill="#3ebd93"/>'
                 f'<text x="{left + 14}" y="{legend_y}">received</text>'
                 f'<rect x="{left + 80}" y="{legend_y - 8}" width="10" height="8" fill="#e66a6a"/>'
                 f'<text x="{left + 94}" y="{legend_y}">shipped</text>'
                 f'<line x1="{left + 150}" y1="{legend_y - 4}" x2="{left + 166}" y2="{legend_y - 4}" stroke="#334e68"/>'
                 f'<text x="{left + 170}" y="{legend_y}">net change of on hand</text>')
    parts.append("</svg>")
    return "".join(parts)


def _level_status(level: StockRow, low: dict[tuple[str, str], str]) -> str:
    if level.available <= 0:
        return "OUT_OF_STOCK"
    return low.get((level.sku, level.location), "OK")


def render(data: ReportData, title: str = "Inventory report") -> str:
    """The page, as one string of HTML."""
    names = data.names
    low = {(row.sku, row.location): row.stock_status for row in data.low_stock.rows}
    refreshed = min((row.refreshed_at for row in data.low_stock.rows), default=None)

    def name(sku: str) -> str:
        return names.get(sku, "")

    metric_rows = [
        f"<td>{escape(metric.metric)}</td>{_cell(metric.value)}<td>{escape(metric.unit)}</td>"
        f"<td>{escape(_window(metric))}</td><td>{escape(metric.description)}</td>"
        for metric in data.metrics]
    low_rows = [
        f"{_cell(row.sku)}{_cell(name(row.sku))}{_cell(row.location)}{_badge(row.stock_status)}{_cell(row.on_hand)}"
        f"{_cell(row.available)}{_cell(row.reorder_point)}{_cell(row.safety_stock)}{_cell(row.shortfall)}"
        f"{_cell(row.suggested_order_quantity)}" for row in data.low_stock.rows]
    expiring_rows = [
        f"{_cell(row.sku)}{_cell(name(row.sku))}{_cell(row.lot_number)}{_cell(row.location)}"
        f"{_badge(row.expiry_status)}{_cell(row.expires_on.isoformat())}{_cell(row.days_left)}{_cell(row.on_hand)}"
        f"{_cell(row.reserved)}" for row in data.expiring.rows]
    level_rows = [
        f"{_cell(row.sku)}{_cell(name(row.sku))}{_cell(row.location)}{_badge(_level_status(row, low))}"
        f"{_cell(row.on_hand)}{_cell(row.reserved)}{_cell(row.available)}" for row in data.levels.rows]
    valuation_rows = [
        f"{_cell(row.sku)}{_cell(name(row.sku))}{_cell(row.location)}{_cell(row.lot_number)}{_cell(row.on_hand)}"
        f"{_cell(row.unit_cost)}{_cell(row.value)}{_cell(row.cost_source)}" for row in data.valuation.rows]
    movement_rows = [
        f"{_cell(row.sku)}{_cell(name(row.sku))}{_cell(row.location)}{_cell(row.received)}{_cell(row.shipped)}"
        f"{_cell(row.returned)}{_cell(row.adjusted)}{_cell(row.transferred_in)}{_cell(row.transferred_out)}"
        f"{_cell(row.net_change)}" for row in data.movements.rows]
    total = sum((row.value for row in data.valuation.rows if row.value is not None), Decimal(0))
    generated = data.generated_at.isoformat(sep=" ", timespec="seconds")
    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Generated {escape(generated)} over the locations the reader may see. '
        "Low stock is as of the last refresh of the report views"
        + (f" ({escape(refreshed.isoformat(sep=' ', timespec='seconds'))})" if refreshed else "") + ".</p>",
        _cards(data.dashboard),
        "<h2>Movements, last 30 days</h2>",
        movement_chart(data.days),
        "<h2>Low stock</h2>",
        _table(("SKU", "name", "location", "status", "on hand", "available", "reorder point", "safety stock",
                "shortfall", "suggested order"), low_rows, data.low_stock,
               "No level is at or below its reorder point."),
        "<h2>Expiring lots</h2>",
        _table(("SKU", "name", "lot", "location", "status", "expires on", "days left", "on hand", "reserved"),
               expiring_rows, data.expiring, "No lot expires within 30 days."),
        "<h2>Stock status</h2>",
        _table(("SKU", "name", "location", "status", "on hand", "reserved", "available"), level_rows, data.levels,
               "No stock levels."),
        "<h2>Valuation</h2>",
        f'<p class="muted">Total of the rows shown: {escape(_number(total))}'
        " (units without a known cost left out).</p>",
        _table(("SKU", "name", "location", "lot", "on hand", "unit cost", "value", "cost source"), valuation_rows,
               data.valuation, "No stock on hand."),
        "<h2>Movements per item, last 90 days</h2>",
        _table(("SKU", "name", "location", "received", "shipped", "returned", "adjusted", "transferred in",
                "transferred out", "net change"), movement_rows, data.movements, "No movements in 90 days."),
        "<h2>Metrics</h2>",
        _table(("metric", "value", "unit", "window", "description"), metric_rows, None, "No metrics."),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def _window(metric: Metric) -> str:
    return "" if metric.period is None else period_text(metric.period)
