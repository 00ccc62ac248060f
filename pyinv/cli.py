"""The ``pyinv`` command: a thin shell over pyinv.Inventory, the migrations and the embedded server.

Every command prints a readable table by default and JSON on stdout with ``--json`` (given before or
after the command name). Errors go to stderr with their code, detail and advice, exit code 2;
``pyinv verify`` exits 1 when the books do not balance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from . import __version__, migrate, resources, server
from .client import Inventory
from .errors import DatabaseError, InventoryError, translate

EXIT_ERROR = 2
EXIT_VIOLATIONS = 1

# SQLSTATEs of a database that lacks the pyinv schema (or part of it).
MISSING_SCHEMA_SQLSTATES = frozenset({"3F000", "42P01", "42883", "42704"})
MIGRATE_ADVICE = "The pyinv schema is missing from this database: run `pyinv migrate` first."
CONNECT_ADVICE = ("Check the database named by --dsn, PYINV_DATABASE_URL or DATABASE_URL, "
                  "or start the embedded server with `pyinv db start`.")


# -- formatting ---------------------------------------------------------------------------------------


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


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def table(rows: Iterable[Any], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """Aligned columns: numbers right-aligned, everything else left-aligned."""
    records = [row if isinstance(row, Mapping) else plain(row) for row in rows]
    headers = list(headers or columns)
    cells = [[format_cell(record.get(column)) for column in columns] for record in records]
    numeric = [
        any(_is_numeric(record.get(column)) for record in records)
        and all(record.get(column) is None or _is_numeric(record.get(column)) for record in records)
        for column in columns
    ]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [value.rjust(width) if right else value.ljust(width)
                 for value, width, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)])


# -- state, errors and the command group -----------------------------------------------------------


class CliError(Exception):
    """A failure outside the SQL API (connection, embedded server), reported like an InventoryError."""

    def __init__(self, code: str, message: str, advice: str, detail: dict[str, Any] | None = None,
                 sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.advice = advice
        self.detail = detail or {}
        self.sqlstate = sqlstate


@dataclass
class State:
    dsn_option: str | None = None
    json: bool = False
    _inventory: Inventory | None = None

    def dsn(self) -> str:
        try:
            return server.resolve_dsn(self.dsn_option)
        except psycopg.OperationalError:
            raise
        except Exception as error:  # the embedded server could not start
            raise CliError("EMBEDDED_SERVER_FAILED", f"cannot start the embedded PostgreSQL: {error}",
                           f"See the log in {server.data_dir() / 'log'}, or name a database with --dsn.",
                           {"data_dir": str(server.data_dir())}) from error

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory.connect(self.dsn())
        return self._inventory

    def close(self) -> None:
        if self._inventory is not None:
            self._inventory.close()
            self._inventory = None


def _numbers_as_text(value: Any) -> Any:
    """DETAIL holds 8.0000 (a Decimal) next to 100 (an int): print every number the same way."""
    if isinstance(value, dict):
        return {key: _numbers_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_text(item) for item in value]
    if _is_numeric(value):
        return format_decimal(Decimal(str(value)))
    return value


def _error_fields(error: Exception) -> dict[str, Any]:
    if isinstance(error, InventoryError):
        advice = error.advice
        if isinstance(error, DatabaseError) and _schema_missing(error):
            advice = MIGRATE_ADVICE
        return {"code": error.code, "sqlstate": error.actual_sqlstate, "message": error.message,
                "detail": _numbers_as_text(error.detail), "advice": advice}
    if isinstance(error, CliError):
        return {"code": error.code, "sqlstate": error.sqlstate, "message": error.message,
                "detail": error.detail, "advice": error.advice}
    if isinstance(error, psycopg.OperationalError):
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return {"code": "CONNECTION_FAILED", "sqlstate": error.sqlstate, "message":
                f"cannot connect to the database: {message}", "detail": {}, "advice": CONNECT_ADVICE}
    if isinstance(error, psycopg.Error):
        if error.sqlstate is None:  # raised by libpq/psycopg itself, e.g. a malformed DSN
            return {"code": "INVALID_DSN", "sqlstate": None, "message": f"cannot use the DSN: {str(error).strip()}",
                    "detail": {}, "advice": "Give a libpq DSN: postgresql://user@host:5432/dbname or "
                    "'host=... dbname=...'."}
        return _error_fields(translate(error))  # raw database errors, e.g. from the migrations
    raise TypeError(error)


def _schema_missing(error: InventoryError) -> bool:
    return error.actual_sqlstate in MISSING_SCHEMA_SQLSTATES and "inventory" in error.message


def report_error(error: Exception, as_json: bool) -> None:
    fields = _error_fields(error)
    if as_json:
        click.echo(json.dumps({"error": fields}, default=json_default), err=True)
        return
    click.echo(f"error: {fields['message']}", err=True)
    code = fields["code"] + (f" ({fields['sqlstate']})" if fields["sqlstate"] else "")
    click.echo(f"  code: {code}", err=True)
    if fields["detail"]:
        detail = ", ".join(f"{key}={format_cell(value)}" for key, value in fields["detail"].items())
        click.echo(f"  detail: {detail}", err=True)
    click.echo(f"  what to do: {fields['advice']}", err=True)


class PyinvGroup(click.Group):
    """Turns pyinv and connection errors into a short report on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InventoryError, CliError, psycopg.Error) as error:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            report_error(error, bool(state and state.json) or bool(ctx.params.get("json_output")))
            ctx.exit(EXIT_ERROR)
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` after the command name too (`pyinv stock --json`)."""
    return click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_set_json,
                        help="Machine-readable JSON on stdout.")(function)


def state() -> State:
    return click.get_current_context().ensure_object(State)


def emit(value: Any, columns: Sequence[str] | None = None, empty: str = "(none)") -> None:
    """Print one row or a list of rows: JSON with --json, else an aligned table of `columns`."""
    if state().json:
        click.echo(to_json(plain(value)))
        return
    rows = value if isinstance(value, list) else [value]
    if not rows:
        click.echo(empty)
        return
    click.echo(table(rows, columns or list(plain(rows[0]).keys())))


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
    """15m, 2h, 1d, 90s or plain seconds."""

    name = "duration"
    UNITS: ClassVar[dict[str, str]] = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value).lower())
        if not match:
            self.fail(f"{value!r} is not a duration like 90, 90s, 15m, 2h or 1d", param, ctx)
        return timedelta(**{self.UNITS[match.group(2)]: float(match.group(1))})


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


DECIMAL = DecimalType()
DURATION = DurationType()
ORDER_LINE = OrderLineType()

ITEM_COLUMNS = ("sku", "name", "unit_of_measure", "unit_cost", "status", "track_lots")
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


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the database"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"database {params.get('dbname') or params.get('user') or '?'} on {host}{port}"


@click.group(cls=PyinvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dsn", metavar="DSN",
              help="PostgreSQL to use (also PYINV_DATABASE_URL or DATABASE_URL); default: the embedded server.")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON on stdout.")
@click.version_option(__version__, prog_name="pyinv")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, json_output: bool) -> None:
    """pyinv: a PostgreSQL-native inventory engine."""
    current = ctx.ensure_object(State)
    current.dsn_option = dsn
    current.json = current.json or json_output


# -- embedded server ----------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Manage the embedded PostgreSQL.

    It lives in a per-user data directory (PYINV_DATA_DIR overrides it)."""


@db.command("start")
@json_option
def db_start() -> None:
    """Start the embedded server (initialising it on first use)."""
    try:
        url = server.start()
    except Exception as error:
        raise CliError("EMBEDDED_SERVER_FAILED", f"cannot start the embedded PostgreSQL: {error}",
                       f"See the log in {server.data_dir() / 'log'}.") from error
    if state().json:
        click.echo(to_json({"running": True, "url": url}))
    else:
        click.echo(f"running: {url}")


@db.command("stop")
@json_option
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = server.stop()
    if state().json:
        click.echo(to_json({"stopped": stopped}))
    else:
        click.echo("stopped" if stopped else "not running")


@db.command("status")
@json_option
def db_status() -> None:
    """Data directory, whether it runs, its pid and URL."""
    status = server.status()
    if state().json:
        click.echo(to_json(status))
        return
    click.echo(f"data dir:    {status.data_dir}")
    click.echo(f"initialised: {format_cell(status.initialised)}")
    click.echo(f"running:     {format_cell(status.running)}")
    click.echo(f"pid:         {status.pid if status.pid is not None else '-'}")
    click.echo(f"url:         {status.url or '-'}")


@db.command("url")
@json_option
def db_url() -> None:
    """Print the URL pyinv uses (--dsn or the environment, else the embedded server, started if needed)."""
    url = state().dsn()
    click.echo(to_json({"url": url}) if state().json else url)


# -- migrations and the SQL bundle ----------------------------------------------------------------------


@cli.command("migrate")
@click.option("--status", "show_status", is_flag=True, help="List migrations and whether they are applied.")
@click.option("--rollback", is_flag=True, help="Roll back the last applied migration.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before rolling back.")
@json_option
def migrate_command(show_status: bool, rollback: bool, yes: bool) -> None:
    """Apply pending migrations (or --status, --rollback)."""
    if show_status and rollback:
        raise click.UsageError("use either --status or --rollback")
    dsn = state().dsn()
    if show_status:
        states = migrate.status(dsn)
        if state().json:
            click.echo(to_json([asdict(item) for item in states]))
        else:
            click.echo(table([asdict(item) for item in states], ("id", "applied")))
        return
    if rollback:
        applied = [item.id for item in migrate.status(dsn) if item.applied]
        if not applied:
            rolled_back: list[str] = []
        else:
            if not yes:
                click.confirm(f"Roll back migration {applied[-1]} on {describe_dsn(dsn)}? "
                              "This can drop pyinv's tables and their data", abort=True, err=True)
            rolled_back = migrate.rollback(dsn, 1)
        if state().json:
            click.echo(to_json({"rolled_back": rolled_back}))
        else:
            click.echo(f"rolled back {', '.join(rolled_back)}" if rolled_back else "nothing to roll back")
        return
    done = migrate.apply(dsn)
    if state().json:
        click.echo(to_json({"applied": done}))
    else:
        click.echo(f"applied {', '.join(done)}" if done else "up to date")


@cli.group("sql")
def sql_group() -> None:
    """The SQL schema, for databases you manage by hand."""


@sql_group.command("bundle")
def sql_bundle() -> None:
    """Print the schema as one SQL transaction.

    For databases where migrations cannot run, e.g. paste it into the Supabase SQL editor."""
    click.echo("begin;\n\n" + resources.schema_sql().rstrip() + "\n\ncommit;")


# -- catalogue -----------------------------------------------------------------------------------------


@cli.group()
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


@cli.group()
def location() -> None:
    """Stock locations."""


@location.command("add")
@click.argument("code")
@click.argument("name")
@json_option
def location_add(code: str, name: str) -> None:
    """Create a location (the same name again is fine)."""
    emit(state().inventory().create_location(code, name), ("code", "name", "created_at"))


@location.command("list")
@json_option
def location_list() -> None:
    """List the locations."""
    emit(state().inventory().locations(), ("code", "name", "created_at"), empty="no locations")


# -- the order lifecycle ----------------------------------------------------------------------------------


key_option = click.option("--key", help="Idempotency key: a retry with the same key replays the result.")


@cli.command()
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@click.option("--reference", help="Purchase order or delivery note.")
@click.option("--unit-cost", type=DECIMAL, help="Updates the item's moving-average cost.")
@key_option
@json_option
def receive(sku: str, quantity: Decimal, location: str, reference: str | None, unit_cost: Decimal | None,
            key: str | None) -> None:
    """Receive QUANTITY units of SKU into stock."""
    emit(state().inventory().receive_stock(sku, quantity, location=location, reference=reference,
                                           unit_cost=unit_cost, idempotency_key=key), LEVEL_COLUMNS)


@cli.command()
@click.argument("order_ref")
@click.argument("sku", required=False)
@click.argument("quantity", type=DECIMAL, required=False)
@click.option("--line", "lines", type=ORDER_LINE, multiple=True,
              help="SKU:QTY[:LOCATION]; repeat for an all-or-nothing multi-line order.")
@click.option("--location", default=None, help="Location of SKU QTY (default main).")
@click.option("--expires-in", type=DURATION, help="Hold lifetime: 90 (seconds), 15m, 2h, 1d.")
@key_option
@json_option
def reserve(order_ref: str, sku: str | None, quantity: Decimal | None, lines: tuple[dict[str, Any], ...],
            location: str | None, expires_in: timedelta | None, key: str | None) -> None:
    """Hold stock for an order.

    Either `ORDER_REF SKU QTY [--location L]`, or `ORDER_REF --line SKU:QTY[:LOCATION] ...` to hold every
    line at once, all or nothing (duplicate lines are merged)."""
    inv = state().inventory()
    if lines:
        if sku is not None or quantity is not None or location is not None:
            raise click.UsageError("give either SKU QTY [--location L] or --line options, not both")
        emit(inv.reserve_order(order_ref, list(lines), expires_in=expires_in, idempotency_key=key),
             RESERVATION_COLUMNS)
        return
    if sku is None or quantity is None:
        raise click.UsageError("give SKU and QTY, or one or more --line SKU:QTY[:LOCATION]")
    emit(inv.reserve_stock(sku, quantity, order_ref, location=location or "main", expires_in=expires_in,
                           idempotency_key=key), RESERVATION_COLUMNS)


@cli.command()
@click.argument("order_ref")
@click.option("--sku", help="Ship only this item.")
@click.option("--quantity", type=DECIMAL, help="Ship only this many units of --sku (the rest stays held).")
@key_option
@json_option
def fulfill(order_ref: str, sku: str | None, quantity: Decimal | None, key: str | None) -> None:
    """Ship the held stock of ORDER_REF (or part of it)."""
    emit(state().inventory().fulfill_order(order_ref, sku=sku, quantity=quantity, idempotency_key=key),
         CHANGE_COLUMNS, empty="nothing shipped")


@cli.command()
@click.argument("order_ref")
@click.option("--sku", help="Release only the holds of this item.")
@key_option
@json_option
def cancel(order_ref: str, sku: str | None, key: str | None) -> None:
    """Release the active holds of ORDER_REF."""
    emit(state().inventory().cancel_reservation(order_ref, sku=sku, idempotency_key=key), CHANGE_COLUMNS,
         empty="nothing released")


@cli.command("return")
@click.argument("order_ref")
@click.argument("sku")
@click.argument("quantity", type=DECIMAL)
@click.option("--reason", required=True, help="Why the customer sent it back.")
@click.option("--no-restock", is_flag=True, help="Record the return without putting the units back on hand.")
@click.option("--location", default="main", show_default=True, help="Where the units come back.")
@key_option
@json_option
def return_command(order_ref: str, sku: str, quantity: Decimal, reason: str, no_restock: bool, location: str,
                   key: str | None) -> None:
    """Record QUANTITY units of SKU sent back for ORDER_REF."""
    emit(state().inventory().process_return(order_ref, sku, quantity, reason, restock=not no_restock,
                                            location=location, idempotency_key=key), RETURN_COLUMNS)


# -- readers -----------------------------------------------------------------------------------------------


@cli.command()
@click.option("--sku")
@click.option("--location")
@json_option
def stock(sku: str | None, location: str | None) -> None:
    """Stock levels: on hand, reserved, available."""
    emit(state().inventory().stock_levels(sku=sku, location=location), STOCK_COLUMNS, empty="no stock levels")


@cli.command()
@click.option("--order", "order_ref", help="Only this order.")
@click.option("--status", type=click.Choice(["ACTIVE", "FULFILLED", "CANCELLED", "EXPIRED"], case_sensitive=False))
@json_option
def reservations(order_ref: str | None, status: str | None) -> None:
    """Holds of stock for orders."""
    emit(state().inventory().reservations(order_ref=order_ref, status=status.upper() if status else None),
         RESERVATION_COLUMNS, empty="no reservations")


@cli.command()
@click.option("--sku")
@click.option("--reference", help="Order reference or purchase order.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option
def movements(sku: str | None, reference: str | None, limit: int) -> None:
    """The ledger: the latest stock movements (--limit of them), oldest first."""
    emit(state().inventory().movements(sku=sku, reference=reference, limit=limit), MOVEMENT_COLUMNS,
         empty="no movements")


# -- maintenance and checks ---------------------------------------------------------------------------------


@cli.command()
@json_option
def verify() -> None:
    """Check that the books balance (exit code 1 if not)."""
    violations = state().inventory().verify_inventory()
    if state().json:
        click.echo(to_json({"balanced": not violations, "violations": plain(violations)}))
    elif violations:
        click.echo(table(violations, VIOLATION_COLUMNS))
        click.echo(f"{len(violations)} violation{'s' if len(violations) != 1 else ''}: the books do not balance")
    else:
        click.echo("books balance")
    if violations:
        click.get_current_context().exit(EXIT_VIOLATIONS)


@cli.command()
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@json_option
def expire(batch_size: int) -> None:
    """Release overdue holds, in batches, until none are left."""
    inv = state().inventory()
    total = batches = 0
    show_progress = not state().json
    while True:
        expired = inv.expire_reservations(batch_size)
        total += expired
        batches += 1
        if show_progress and (batches > 1 or expired == batch_size):
            click.echo(f"\rexpired {total} so far ({batches} batches)", nl=False, err=True)
        if expired < batch_size:
            break
    if show_progress and batches > 1:
        click.echo(err=True)
    if state().json:
        click.echo(to_json({"expired": total, "batches": batches}))
    else:
        click.echo(f"expired {total} reservation{'s' if total != 1 else ''}")


@cli.group()
def audit() -> None:
    """The audit log's hash chain: seal it, verify it, anchor it outside the database."""


@audit.command("seal")
@click.option("--batch-size", default=10000, show_default=True, type=click.IntRange(1, 1000000))
@json_option
def audit_seal(batch_size: int) -> None:
    """Seal committed audit rows onto the hash chain until none are left (schedule it)."""
    inv = state().inventory()
    total, busy = 0, False
    while True:
        sealed = inv.seal_audit_log(batch_size)
        if sealed is None:
            busy = True
            break
        total += sealed
        if sealed < batch_size:
            break
    if state().json:
        click.echo(to_json({"sealed": total, "busy": busy}))
    elif busy:
        click.echo(f"sealed {total}; another sealer is running (busy), it seals the rest")
    else:
        click.echo(f"sealed {total} audit row{'s' if total != 1 else ''}")


@audit.command("anchor")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the anchor to this new file (it is never overwritten); default: stdout.")
@click.option("--wait", "wait_seconds", default=10.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds to wait for transactions still writing below the ledger cut.")
def audit_anchor(output: Path | None, wait_seconds: float) -> None:
    """Export the heads of the audit and ledger chains.

    Keep anchors where the database (and its superuser) cannot write: another machine, object
    storage with retention, a mailbox. `pyinv audit verify --anchor FILE` later reports anything
    they cover that was rewritten or deleted."""
    anchor = state().inventory().audit_anchor(Decimal(str(wait_seconds)))
    text = json.dumps(anchor, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "x", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"anchor written to {output}", err=True)


@audit.command("verify")
@click.option("--anchor", "anchor_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An anchor from `pyinv audit anchor`: also check nothing it covers changed.")
@json_option
def audit_verify(anchor_path: Path | None) -> None:
    """Verify the audit chain and the ledger (with an anchor: against it too); exit 1 on a problem."""
    anchor = json.loads(anchor_path.read_text(encoding="utf-8")) if anchor_path else None
    inv = state().inventory()
    breaks, violations = inv.verify_audit_chain(anchor), inv.verify_inventory(anchor)
    if state().json:
        click.echo(to_json({"intact": not breaks and not violations, "audit_chain": plain(breaks),
                            "inventory": plain(violations)}))
    else:
        if breaks:
            click.echo(table(breaks, ("seq", "audit_id", "problem")))
        if violations:
            click.echo(table(violations, VIOLATION_COLUMNS))
        if not breaks and not violations:
            click.echo("audit chain and ledger intact" + (" and match the anchor" if anchor else ""))
    if breaks or violations:
        click.get_current_context().exit(EXIT_VIOLATIONS)


@cli.command()
@click.option("--workers", default=8, show_default=True, type=click.IntRange(min=1, max=64))
@click.option("--orders", default=400, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", type=int, help="Seed the random choices (threads still race).")
@json_option
def demo(workers: int, orders: int, seed: int | None) -> None:
    """Simulate concurrent orders; prove nothing is oversold.

    Applies the migrations first, creates a small shop with SKUs unique to the run, races WORKERS
    threads (each with its own connection) through ORDERS orders, then verifies the books."""
    from .demo import format_report, run_demo

    report = run_demo(state().dsn(), workers=workers, orders=orders, seed=seed, progress=True)
    if state().json:
        click.echo(to_json(report.to_dict()))
    else:
        click.echo(format_report(report))
    if not report.ok:
        click.get_current_context().exit(EXIT_VIOLATIONS)



@cli.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
             add_help_option=False)
@click.pass_context
def bench_command(ctx: click.Context) -> None:
    """Run the benchmark suite in its own database (see `pyinv bench --help`)."""
    from .bench.command import bench

    args = list(ctx.args)
    if state().dsn_option and "--dsn" not in args:
        args = ["--dsn", state().dsn_option, *args]
    bench.main(args=args, prog_name="pyinv bench", standalone_mode=True)

# -- stock control: adjustments, counts, transfers, policies, alerts, bulk import -----------------------

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
ADJUSTMENT_TYPES = ("physical_count", "damage", "correction", "write_off", "found")


@cli.command(context_settings={"ignore_unknown_options": True})
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


@cli.command()
@click.argument("adjustment_id", type=int)
@click.option("--reject", is_flag=True, help="Reject instead of approving.")
@click.option("--note", help="Note recorded with the decision.")
@json_option
def approve(adjustment_id: int, reject: bool, note: str | None) -> None:
    """Approve (or --reject) a PENDING adjustment; admins only, never your own."""
    emit(state().inventory().approve_adjustment(adjustment_id, "rejected" if reject else "approved", note=note),
         ADJUSTMENT_COLUMNS)


@cli.command()
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


@cli.command()
@click.argument("sku")
@click.argument("counted_quantity", type=DECIMAL)
@click.option("--location", default="main", show_default=True)
@json_option
def count(sku: str, counted_quantity: Decimal, location: str) -> None:
    """Record a physical count of SKU; a difference becomes a physical_count adjustment."""
    emit(state().inventory().record_count(sku, counted_quantity, location=location), COUNT_COLUMNS)


@cli.command()
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


@cli.group()
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


@cli.group(invoke_without_command=True)
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
    emit(state().inventory().check_reorder_points(), ("levels_checked", "opened", "escalated", "resolved"))


@alerts.command("recommendations")
@click.option("--all", "show_all", is_flag=True, help="Include levels in NORMAL state.")
@json_option
def alerts_recommendations(show_all: bool) -> None:
    """What to reorder: CRITICAL / REORDER levels with a suggested order quantity."""
    rows = state().inventory().reorder_recommendations()
    if not show_all:
        rows = [row for row in rows if row.status != "NORMAL"]
    emit(rows, ("sku", "location", "available", "reorder_point", "safety_stock", "status",
                "suggested_order_quantity", "alert_id"), empty="nothing to reorder")


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["items", "policies"]),
              help="What the file holds (default: guessed from the header).")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 10000),
              help="Rows per transaction.")
@json_option
def import_command(path: Path, kind: str | None, batch_size: int) -> None:
    """Bulk import items or stock policies from a CSV file.

    Items: sku,name[,unit_of_measure,unit_cost,track_lots,status]. Policies:
    sku,location,reorder_point,safety_stock[,reorder_quantity,max_stock_level,lead_time_days].
    One transaction per batch: its valid rows are applied, the rest reported with the reason.
    Exit code 1 when rows were rejected."""
    import sys

    inv = state().inventory()
    if state().json:
        report = inv.import_csv(path, kind=kind, batch_size=batch_size)
    else:
        with path.open("rb") as handle:
            total = max(sum(1 for _ in handle) - 1, 0)
        with click.progressbar(length=total, label=f"importing {path.name}", file=sys.stderr,
                               show_pos=True) as bar:
            done = 0

            def advance(rows_done: int) -> None:
                nonlocal done
                bar.update(rows_done - done)
                done = rows_done

            report = inv.import_csv(path, kind=kind, batch_size=batch_size, progress=advance)
    if state().json:
        click.echo(to_json(plain(report)))
    else:
        click.echo(f"{report.kind}: {report.received} rows in {report.batches} batch"
                   f"{'es' if report.batches != 1 else ''}, {report.applied} applied, {report.unchanged} unchanged, "
                   f"{len(report.rejected)} rejected ({report.seconds:.1f}s)")
        if report.rejected:
            click.echo(table(list(report.rejected), ("row", "key", "code", "reason")))
    if report.rejected:
        click.get_current_context().exit(EXIT_VIOLATIONS)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `pyinv` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="pyinv")


if __name__ == "__main__":
    main()
