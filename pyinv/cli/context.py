"""What every command shares: the per-invocation State, `--json`, emit(), and the error report.

Errors go to stderr with their code, detail and advice, exit code 2 (EXIT_ERROR); commands that find
the books out of balance exit 1 (EXIT_VIOLATIONS).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import click
import psycopg

from .. import server
from ..client import Inventory
from ..errors import DatabaseError, InventoryError, translate
from .output import format_cell, format_decimal, is_numeric, json_default, plain, table, to_json

EXIT_ERROR = 2
EXIT_VIOLATIONS = 1

# SQLSTATEs of a database that lacks the pyinv schema (or part of it).
MISSING_SCHEMA_SQLSTATES = frozenset({"3F000", "42P01", "42883", "42704"})
MIGRATE_ADVICE = "The pyinv schema is missing from this database: run `pyinv migrate` first."
CONNECT_ADVICE = ("Check the database named by --dsn, PYINV_DATABASE_URL or DATABASE_URL, "
                  "or start the embedded server with `pyinv db start`.")


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


# -- the error report ---------------------------------------------------------------------------------------


def _numbers_as_text(value: Any) -> Any:
    """DETAIL holds 8.0000 (a Decimal) next to 100 (an int): print every number the same way."""
    if isinstance(value, dict):
        return {key: _numbers_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_text(item) for item in value]
    if is_numeric(value):
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


# -- the command group ------------------------------------------------------------------------------------


class PyinvGroup(click.Group):
    """Turns pyinv and connection errors into a short report on stderr and exit code 2.

    add_lazy_command() registers a command by import path: it is imported only when it is run or
    listed (`pyinv --help`), so a heavy command does not slow down every other one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def add_lazy_command(self, name: str, import_path: str) -> None:
        """`import_path` is "package.module:attribute", a click command."""
        self.lazy_commands[name] = import_path

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        import_path = self.lazy_commands.get(cmd_name)
        if import_path is not None:
            module_name, attribute = import_path.split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
            del self.lazy_commands[cmd_name]
        return super().get_command(ctx, cmd_name)

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


# -- helpers of the commands --------------------------------------------------------------------------------


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
