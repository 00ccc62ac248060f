"""How the CLI prints values: numbers, JSON, aligned tables, and the columns each kind of row shows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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


def table(rows: Iterable[Any], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """Aligned columns: numbers right-aligned, everything else left-aligned."""
    records = [row if isinstance(row, Mapping) else plain(row) for row in rows]
    headers = list(headers or columns)
    cells = [[format_cell(record.get(column)) for column in columns] for record in records]
    numeric = [
        any(is_numeric(record.get(column)) for record in records)
        and all(record.get(column) is None or is_numeric(record.get(column)) for record in records)
        for column in columns
    ]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [value.rjust(width) if right else value.ljust(width)
                 for value, width, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)])


# -- the columns of each kind of row in a table ------------------------------------------------------------

ITEM_COLUMNS = ("sku", "name", "unit_of_measure", "unit_cost", "status", "track_lots")
LOCATION_COLUMNS = ("code", "name", "created_at")
LEVEL_COLUMNS = ("sku", "location", "on_hand", "reserved", "available")
STOCK_COLUMNS = ("sku", "location", "on_hand", "reserved", "available", "status")
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
MIGRATION_COLUMNS = ("id", "applied")
IMPORT_REJECT_COLUMNS = ("row", "key", "code", "reason")
