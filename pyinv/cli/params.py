"""Parameter types and options several commands share."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import click


class DecimalType(click.ParamType):
    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        if isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)


class DurationType(click.ParamType):
    """15m, 2h, 1d, 90s or plain seconds; the unit also written out (30 days, 2 hours, 15 min)."""

    name = "duration"
    UNITS: ClassVar[dict[str, str]] = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    WORDS: ClassVar[dict[str, str]] = {"sec": "s", "secs": "s", "second": "s", "seconds": "s", "min": "m",
                                       "mins": "m", "minute": "m", "minutes": "m", "hour": "h", "hours": "h",
                                       "day": "d", "days": "d"}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(value).lower())
        unit = self.WORDS.get(match.group(2), match.group(2)) if match else ""
        if match is None or unit not in self.UNITS:
            self.fail(f"{value!r} is not a duration like 90, 90s, 15m, 2h, 1d or 30 days", param, ctx)
        return timedelta(**{self.UNITS[unit]: float(match.group(1))})


class OrderLineType(click.ParamType):
    """SKU:QTY[:LOCATION] -> {"sku", "quantity", "location"?}."""

    name = "SKU:QTY[:LOCATION]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        parts = str(value).split(":")
        if len(parts) not in (2, 3) or not parts[0] or (len(parts) == 3 and not parts[2]):
            self.fail(f"{value!r} is not SKU:QTY or SKU:QTY:LOCATION", param, ctx)
        line: dict[str, Any] = {"sku": parts[0], "quantity": DecimalType().convert(parts[1], param, ctx)}
        if len(parts) == 3:
            line["location"] = parts[2]
        return line


class DayType(click.ParamType):
    """A calendar day, YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a day like 2026-05-31", param, ctx)


DECIMAL = DecimalType()
DURATION = DurationType()
ORDER_LINE = OrderLineType()
DAY = DayType()

key_option = click.option("--key", help="Idempotency key: a retry with the same key replays the result.")


class MomentType(click.ParamType):
    """A point in time: ISO 8601 (2026-05-01, 2026-05-01T09:30, with or without offset; local time when
    without) or a duration ago (90s, 15m, 2h, 7d)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if re.fullmatch(r"\d+(?:\.\d+)?\s*[smhd]?", text.lower()):
            return datetime.now(timezone.utc) - DURATION.convert(text, param, ctx)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is neither a time like 2026-05-01T09:30 nor a duration ago like 2h or 7d",
                      param, ctx)
        return moment if moment.tzinfo is not None else moment.astimezone()


MOMENT = MomentType()
