"""How the CLI prints values: numbers, JSON, aligned tables, and the columns each kind of row shows."""

from __future__ import annotations

import functools
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any


def format_decimal(value: Decimal) -> str:
    """10.0000 -> '10', 2.5000 -> '2.5', never scientific notation."""
    if not value.is_finite():
        return str(value)
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=json_default, separators=(",", ":"))
    return str(value)


def json_default(value: Any) -> Any:
    """Decimals as strings without trailing zeros (exact), datetimes as ISO 8601."""
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    return json.dumps(value, default=json_default, indent=2)


def plain(value: Any) -> Any:
    """A row (pyinv model or dataclass) or a list of them as dicts/lists for JSON."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


@functools.cache
def _box() -> Any:
    """No borders: a header, a rule of dashes under it, columns two spaces apart."""
    from rich.box import Box

    return Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def render_table(rows: Iterable[Any], columns: Sequence[str], headers: Sequence[str] | None = None,
                 width: int | None = None) -> str:
    """An aligned table (numbers right-aligned, everything else left-aligned), drawn by rich. With a
    `width`, long text cells wrap so that the table fits it; without, nothing is ever cut or wrapped."""
    from rich.console import Console
    from rich.table import Table

    records = [row if isinstance(row, Mapping) else plain(row) for row in rows]
    headers = list(headers or columns)
    numeric = [
        any(is_numeric(record.get(column)) for record in records)
        and all(record.get(column) is None or is_numeric(record.get(column)) for record in records)
        for column in columns
    ]
    grid = Table(box=_box(), show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), highlight=False)
    for header, right in zip(headers, numeric, strict=True):
        grid.add_column(header, justify="right" if right else "left", no_wrap=right, overflow="fold")
    for record in records:
        grid.add_row(*(format_cell(record.get(column)) for column in columns))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 1_000_000, color_system=None, highlight=False, emoji=False,
                      markup=False, soft_wrap=False, legacy_windows=False)
    console.print(grid)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def terminal_width() -> int | None:
    """The width tables must fit: the terminal's, or COLUMNS; None (no limit) when stdout is not a
    terminal and COLUMNS is unset, so piped output is never cut."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = sys.stdout
    if stream.isatty():
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError):
            return None
    return None


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A progress display on stderr (rich): yields update(completed=None, description=None). On a
    terminal it redraws in place; otherwise it prints its final state once, at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns: list[Any] = [TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True, highlight=False)) as display:
        task = display.add_task(label, total=total)

        def update(completed: int | None = None, description: str | None = None) -> None:
            display.update(task, completed=completed, description=description)

        yield update


def table(rows: Iterable[Any], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """The table of `rows` at full width (no trailing newline)."""
    return render_table(rows, columns, headers).rstrip("\n")


# -- the columns of each kind of row in a table ------------------------------------------------------------

ITEM_COLUMNS = ("sku", "name", "unit_of_measure", "unit_cost", "status", "track_lots", "version")
LOCATION_COLUMNS = ("code", "name", "created_at")
LEVEL_COLUMNS = ("sku", "location", "on_hand", "reserved", "available")
STOCK_COLUMNS = ("sku", "location", "on_hand", "reserved", "available", "status")
HOT_MODE_COLUMNS = ("sku", "location", "buckets", "on_hand", "reserved", "available", "bucket_free")
RESERVATION_COLUMNS = ("reservation_id", "order_ref", "sku", "location", "quantity", "quantity_fulfilled",
                       "quantity_open", "status", "expires_at")
CHANGE_COLUMNS = ("reservation_id", "order_ref", "sku", "location", "movement_type", "quantity",
                  "quantity_fulfilled", "quantity_open", "status")
RETURN_COLUMNS = ("return_id", "order_ref", "sku", "location", "quantity", "reason", "restocked", "movement_id")
MOVEMENT_COLUMNS = ("movement_id", "movement_type", "sku", "location", "on_hand_delta", "reserved_delta",
                    "on_hand_after", "reserved_after", "reference", "created_at")
VIOLATION_COLUMNS = ("invariant", "sku", "location", "expected", "actual", "detail")
AUDIT_BREAK_COLUMNS = ("seq", "audit_id", "problem")
ADJUSTMENT_COLUMNS = ("adjustment_id", "sku", "location", "quantity_delta", "adjustment_type", "reason_code",
                      "status", "requested_by", "decided_by", "movement_id")
COUNT_COLUMNS = ("count_id", "sku", "location", "counted_quantity", "on_hand_at_count", "difference",
                 "adjustment_id", "adjustment_status")
TRANSFER_COLUMNS = ("sku", "quantity", "from_location", "to_location", "out_movement_id", "in_movement_id",
                    "from_available", "to_available")
POLICY_COLUMNS = ("sku", "location", "reorder_point", "safety_stock", "reorder_quantity", "max_stock_level",
                  "lead_time_days")
ALERT_COLUMNS = ("alert_id", "sku", "location", "severity", "status", "available", "reorder_point", "safety_stock",
                 "opened_at")
ALERT_CHECK_COLUMNS = ("levels_checked", "opened", "escalated", "resolved")
RECOMMENDATION_COLUMNS = ("sku", "location", "available", "reorder_point", "safety_stock", "status",
                          "suggested_order_quantity", "alert_id")
RETURN_LIST_COLUMNS = ("return_id", "order_ref", "sku", "location", "quantity", "reason", "restocked", "created_by",
                       "created_at")
COUNT_LIST_COLUMNS = ("count_id", "sku", "location", "counted_quantity", "on_hand_at_count", "difference",
                      "adjustment_id", "adjustment_status", "counted_by", "counted_at")
STOCK_CHECK_COLUMNS = ("sku", "location", "quantity", "can_fulfill", "available", "error_code")
USER_ROLE_COLUMNS = ("user_id", "role", "location", "granted_by", "granted_at")
AUDIT_COLUMNS = ("audit_id", "created_at", "table_name", "operation", "actor", "login", "sealed", "chain_seq")
MIGRATION_COLUMNS = ("id", "applied")
IMPORT_REJECT_COLUMNS = ("row", "key", "code", "reason")
LOT_COLUMNS = ("sku", "lot_number", "location", "on_hand", "reserved", "available", "expires_on", "qc_status",
               "quarantined", "blocked_reason")
EXPIRING_LOT_COLUMNS = ("sku", "lot_number", "location", "on_hand", "reserved", "expires_on", "days_left",
                        "expiry_status")
LOT_ALLOCATION_COLUMNS = ("reservation_id", "order_ref", "sku", "location", "lot_number", "quantity", "fulfilled",
                          "released", "returned", "hold_status")
LOT_STATUS_COLUMNS = ("sku", "lot_number", "qc_status", "quarantined", "sellable", "holds_reallocated",
                      "holds_released", "units_released")
TRACE_COLUMNS = ("order_ref", "reservation_id", "location", "allocated", "fulfilled", "returned", "released",
                 "hold_status", "reserved_at", "closed_at")
MAINTENANCE_STATUS_COLUMNS = ("job", "last_started_at", "last_duration_ms", "last_rows", "last_result", "lag")
CRON_COLUMNS = ("name", "schedule", "command")
VALUATION_COLUMNS = ("sku", "location", "lot_number", "on_hand", "unit_cost", "value", "cost_source")
MOVEMENT_SUMMARY_COLUMNS = ("sku", "location", "received", "shipped", "returned", "adjusted", "transferred_in",
                            "transferred_out", "net_change", "movements")
HOLDS_SUMMARY_COLUMNS = ("sku", "location", "holds", "units", "overdue_holds", "overdue_units", "oldest_hold_at",
                         "next_expiry_at")
LOW_STOCK_COLUMNS = ("sku", "location", "available", "reorder_point", "safety_stock", "stock_status", "shortfall",
                     "suggested_order_quantity", "refreshed_at")
ALERT_STATISTICS_COLUMNS = ("status", "severity", "alerts", "levels", "oldest_opened_at", "latest_opened_at")
SNAPSHOT_COLUMNS = ("sku", "location", "at", "on_hand", "reserved", "available", "movement_id", "movement_at")
EVENT_COLUMNS = ("id", "type", "sku", "location", "created_at", "payload")
EVENT_CONSUMER_COLUMNS = ("consumer", "owner", "acknowledged_id", "updated_at")
