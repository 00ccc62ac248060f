"""What every command shares: the per-invocation State, `--json`, emit(), the error report and the exit
codes.

EXIT_CODES below is the one table of exit codes: every failure is classified by `exit_code_for()` from
its SQLSTATE (or, for failures outside the database, its code), and both the `pyinv --help` epilog and
the README section "Exit codes" are the same table. Errors go to stderr: with --json as one JSON object
{"error": {"code", "message", "detail", "advice", "sqlstate", "exit_code"}}, click's usage errors
(unknown option, missing argument) included.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import click
import psycopg

from .. import server
from ..client import Inventory
from ..errors import DatabaseError, InventoryError, translate
from .output import format_cell, format_decimal, is_numeric, json_default, plain, render_table, terminal_width, to_json

# -- exit codes: the one table ----------------------------------------------------------------------------

EXIT_OK = 0
EXIT_VIOLATIONS = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_PERMISSION = 4
EXIT_RETRY = 5
EXIT_INTERNAL = 6

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "ok"),
    (EXIT_VIOLATIONS, "check failed: verify / audit verify found problems, validate said no, import rejected "
     "rows, the demo oversold, or you declined a confirmation"),
    (EXIT_USAGE, "usage error: unknown command or option, missing or malformed argument, bad --dsn; nothing "
     "was done"),
    (EXIT_REFUSED, "refused by a business rule (PT4xx such as INSUFFICIENT_STOCK or PRODUCT_NOT_FOUND, 22xxx "
     "such as INVALID_QUANTITY, 23xxx, P0001): the same call gets the same answer"),
    (EXIT_PERMISSION, "permission denied (42501 PERMISSION_DENIED, 28xxx authentication failed)"),
    (EXIT_RETRY, "database unreachable or busy (no answer, 08xxx, 40001, 40P01, 55P03, 57014, 57Pxx, 53xxx): "
     "retry later, with the same idempotency key"),
    (EXIT_INTERNAL, "anything else: the pyinv schema is missing (run pyinv migrate), the embedded server "
     "failed, an unexpected database error, a bug"),
)

# SQLSTATE -> exit code: the full SQLSTATE first, then its first three characters, then its class.
_SQLSTATE_EXITS: dict[str, int] = {
    "42501": EXIT_PERMISSION,
    "40001": EXIT_RETRY, "40P01": EXIT_RETRY, "55P03": EXIT_RETRY, "57014": EXIT_RETRY,
    "P0001": EXIT_REFUSED,
    "PT4": EXIT_REFUSED,
    "08": EXIT_RETRY, "53": EXIT_RETRY, "57P": EXIT_RETRY,
    "22": EXIT_REFUSED, "23": EXIT_REFUSED,
    "28": EXIT_PERMISSION,
}
# Codes of failures that carry no SQLSTATE (outside the database, or before a connection exists).
_CODE_EXITS: dict[str, int] = {
    "USAGE_ERROR": EXIT_USAGE,
    "INVALID_DSN": EXIT_USAGE,
    "ABORTED": EXIT_VIOLATIONS,
    "CONNECTION_FAILED": EXIT_RETRY,
    "ALREADY_EXISTS": EXIT_REFUSED,
    "PG_CRON_UNAVAILABLE": EXIT_REFUSED,
    "MIGRATION_REQUIRED": EXIT_INTERNAL,
    "EMBEDDED_SERVER_FAILED": EXIT_INTERNAL,
    "INTERNAL_ERROR": EXIT_INTERNAL,
}


def exit_code_for(code: str, sqlstate: str | None) -> int:
    """The exit code of a failure with this code (pyinv's HINT token or a CLI code) and SQLSTATE."""
    if code in _CODE_EXITS:
        return _CODE_EXITS[code]
    if sqlstate:
        for key in (sqlstate, sqlstate[:3], sqlstate[:2]):
            if key in _SQLSTATE_EXITS:
                return _SQLSTATE_EXITS[key]
    return EXIT_INTERNAL


def exit_codes_help() -> str:
    """The exit code table as the `pyinv --help` epilog (\\b keeps click from re-wrapping it)."""
    width = 76
    lines = ["\b", "Exit codes:"]
    for code, meaning in EXIT_CODES:
        wrapped = click.wrap_text(meaning, width - 5).splitlines()
        lines += [f"  {code}  {wrapped[0]}", *(f"     {line}" for line in wrapped[1:])]
    return "\n".join(lines) + ("\n\nWith --json every result is JSON on stdout, and every error (usage errors "
                               "too) one JSON object on stderr: {\"error\": {code, message, detail, advice, "
                               "sqlstate, exit_code}}. The README's \"Exit codes\" section explains each code.")


# SQLSTATEs of a database that lacks the pyinv schema (or part of it).
MISSING_SCHEMA_SQLSTATES = frozenset({"3F000", "42P01", "42883", "42704"})
MIGRATE_ADVICE = "The pyinv schema is missing from this database: run `pyinv migrate` first."
CONNECT_ADVICE = ("Check the database named by --dsn, PYINV_DATABASE_URL, DATABASE_URL or the PG* variables, "
                  "or start the embedded server with `pyinv db start`; retry when it is up.")


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
    """One invocation's options and its (lazily opened) connection."""

    dsn_option: str | None = None
    json: bool = False
    wide: bool = False
    connect_timeout: int | None = None
    prepared_statements: bool = True
    _inventory: Inventory | None = None
    _resolved: str | None = field(default=None, repr=False)

    def dsn(self) -> str:
        if self._resolved is not None:
            return self._resolved
        try:
            self._resolved = server.resolve_dsn(self.dsn_option, announce=notice)
        except psycopg.Error:
            raise
        except Exception as error:  # the embedded server could not start
            raise CliError("EMBEDDED_SERVER_FAILED", f"cannot start the embedded PostgreSQL: {error}",
                           f"See the log in {server.data_dir() / 'log'}, or name a database with --dsn.",
                           {"data_dir": str(server.data_dir())}) from error
        return self._resolved

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments of Inventory.connect for the global options that were given."""
        options: dict[str, Any] = {}
        if not self.prepared_statements:
            options["prepared_statements"] = False
        if self.connect_timeout is not None:
            options["connect_timeout"] = self.connect_timeout
        return options

    def connect(self, dsn: str | None = None) -> Inventory:
        """A new client (the caller closes it), with the global connection options."""
        return Inventory.connect(dsn or self.dsn(), **self.connect_options())

    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = self.connect()
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_fields(error: BaseException) -> dict[str, Any]:
    """code, sqlstate, message, detail, advice and exit_code of any failure a command can end with."""
    if isinstance(error, DatabaseError) and not error.actual_sqlstate and isinstance(
            error.__cause__, psycopg.OperationalError):
        return error_fields(error.__cause__)  # the connection broke during the call
    if isinstance(error, InventoryError):
        code, advice = error.code, error.advice
        if isinstance(error, DatabaseError) and _schema_missing(error):
            code, advice = "MIGRATION_REQUIRED", MIGRATE_ADVICE
        fields = {"code": code, "sqlstate": error.actual_sqlstate, "message": error.message,
                  "detail": _numbers_as_text(error.detail), "advice": advice}
    elif isinstance(error, CliError):
        fields = {"code": error.code, "sqlstate": error.sqlstate, "message": error.message,
                  "detail": error.detail, "advice": error.advice}
    elif isinstance(error, psycopg.OperationalError) and not _is_server_error(error):
        fields = {"code": "CONNECTION_FAILED", "sqlstate": error.sqlstate,
                  "message": f"cannot connect to the database: {_first_line(error)}", "detail": {},
                  "advice": CONNECT_ADVICE}
        if error.sqlstate and error.sqlstate.startswith("28"):
            fields["code"] = "AUTHENTICATION_FAILED"
            fields["advice"] = "Check the user name and password of the DSN (or ~/.pgpass, PGPASSWORD)."
    elif isinstance(error, psycopg.Error) and error.sqlstate is None and not isinstance(
            error, psycopg.OperationalError):
        # raised by libpq/psycopg itself, e.g. a malformed DSN
        fields = {"code": "INVALID_DSN", "sqlstate": None, "message": f"cannot use the DSN: {str(error).strip()}",
                  "detail": {}, "advice": "Give a libpq DSN: postgresql://user@host:5432/dbname or "
                  "'host=... dbname=...'."}
    elif isinstance(error, psycopg.Error):
        return error_fields(translate(error))  # raw database errors, e.g. from the migrations
    elif isinstance(error, click.ClickException):
        fields = {"code": "USAGE_ERROR", "sqlstate": None, "message": error.format_message(), "detail": {},
                  "advice": _usage_advice(error)}
        usage = getattr(error, "ctx", None)
        if usage is not None:
            fields["detail"] = {"usage": usage.get_usage().strip()}
    elif isinstance(error, click.Abort):
        fields = {"code": "ABORTED", "sqlstate": None, "message": "aborted: nothing was changed", "detail": {},
                  "advice": "Answer yes to the question, or pass --yes."}
    else:
        fields = {"code": "INTERNAL_ERROR", "sqlstate": None,
                  "message": f"unexpected {type(error).__name__}: {_first_line(error)}", "detail": {},
                  "advice": "This is a bug in pyinv: run again with PYINV_DEBUG=1 for the traceback and report "
                  "it with the command line."}
    fields["exit_code"] = exit_code_for(fields["code"], fields["sqlstate"])
    return fields


def _is_server_error(error: psycopg.Error) -> bool:
    """An OperationalError the server raised on an open connection (e.g. 57014, 55P03, 53xxx), not a
    failure to connect: it is classified by its SQLSTATE."""
    return bool(error.sqlstate) and not error.sqlstate.startswith(("08", "28")) and error.sqlstate != "3D000"


def _usage_advice(error: click.ClickException) -> str:
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else "pyinv"
    return f"Fix the command line; `{command} --help` lists the arguments and options."


def _schema_missing(error: InventoryError) -> bool:
    return error.actual_sqlstate in MISSING_SCHEMA_SQLSTATES and "inventory" in error.message


def report_error(error: BaseException, as_json: bool) -> int:
    """Print the error on stderr (one JSON object with --json) and return its exit code."""
    fields = error_fields(error)
    if as_json:
        click.echo(json.dumps({"error": fields}, default=json_default), err=True)
        return int(fields["exit_code"])
    click.echo(f"error: {fields['message']}", err=True)
    code = fields["code"] + (f" ({fields['sqlstate']})" if fields["sqlstate"] else "")
    click.echo(f"  code: {code}, exit code {fields['exit_code']}", err=True)
    if fields["detail"]:
        detail = ", ".join(f"{key}={format_cell(value)}" for key, value in fields["detail"].items())
        click.echo(f"  detail: {detail}", err=True)
    click.echo(f"  what to do: {fields['advice']}", err=True)
    return int(fields["exit_code"])


def notice(message: str) -> None:
    """A remark on stderr that is not the command's result (one JSON object per line with --json)."""
    ctx = click.get_current_context(silent=True)
    as_json = ctx is not None and isinstance(ctx.find_root().obj, State) and ctx.find_root().obj.json
    if as_json:
        click.echo(json.dumps({"notice": message}), err=True)
    else:
        click.echo(f"pyinv: {message}", err=True)


def _wants_json(args: Sequence[str]) -> bool:
    """--json anywhere on the command line (before a `--`): known even when parsing failed."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


# -- help: commands grouped by section, each with an example --------------------------------------------------

SECTIONS = ("Stock", "Orders", "Catalogue", "Stock control", "Lots", "Reports", "Events", "Audit & maintenance",
            "Users", "Database", "Try it")


def example(*lines: str) -> Callable[[click.Command], click.Command]:
    """Attach usage examples to a command: shown in its group's listing and its own --help."""

    def decorate(command: click.Command) -> click.Command:
        command.examples = lines  # type: ignore[attr-defined]
        block = "\n".join(["\b", "Example:" if len(lines) == 1 else "Examples:", *(f"  {line}" for line in lines)])
        command.epilog = f"{command.epilog}\n\n{block}" if command.epilog else block
        return command

    return decorate


def _short_help(command: click.Command) -> str:
    return command.get_short_help_str(limit=10_000)  # the first sentence, never cut with "..."


class HelpGroup(click.Group):
    """A group whose listing shows each command's whole first sentence and its example."""

    def _rows(self, ctx: click.Context, names: Iterable[str]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for name in names:
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            text = _short_help(command)
            examples = getattr(command, "examples", ())
            if examples:
                text += "\n\b\n" + "\n".join(f"e.g. {line}" for line in examples[:1])
            rows.append((name, text))
        return rows

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = self._rows(ctx, self.list_commands(ctx))
        if rows:
            with formatter.section("Commands"):
                _write_rows(formatter, rows)


def _write_rows(formatter: click.HelpFormatter, rows: list[tuple[str, str]]) -> None:
    """Like formatter.write_dl, but the example goes on its own line, unwrapped."""
    width = max(len(name) for name, _text in rows)
    column = min(width, 16) + 2
    text_width = max((formatter.width or 80) - formatter.current_indent - column, 30)
    for name, text in rows:
        summary, _, example_text = text.partition("\n\b\n")
        wrapped = click.wrap_text(summary, text_width).splitlines() or [""]
        prefix = " " * formatter.current_indent
        if len(name) <= column - 2:
            formatter.write(f"{prefix}{name.ljust(column)}{wrapped[0]}\n")
        else:
            formatter.write(f"{prefix}{name}\n{prefix}{' ' * column}{wrapped[0]}\n")
        for line in wrapped[1:]:
            formatter.write(f"{prefix}{' ' * column}{line}\n")
        for line in example_text.splitlines():
            formatter.write(f"{prefix}{' ' * (column + 2)}{line}\n")


class PyinvGroup(HelpGroup):
    """The root group: commands listed by section; every failure reported on stderr (JSON with --json)
    with the exit code from EXIT_CODES.

    add_lazy_command() registers a command by import path: it is imported only when it is run or
    listed (`pyinv --help`), so a heavy command does not slow down every other one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}
        self.sections: dict[str, str] = {}
        self.lazy_examples: dict[str, tuple[str, ...]] = {}

    def add_command(self, cmd: click.Command, name: str | None = None, section: str | None = None) -> None:
        super().add_command(cmd, name)
        if section is not None:
            self.sections[name or cmd.name or ""] = section

    def add_lazy_command(self, name: str, import_path: str, section: str, examples: Sequence[str] = ()) -> None:
        """`import_path` is "package.module:attribute", a click command."""
        self.lazy_commands[name] = import_path
        self.sections[name] = section
        self.lazy_examples[name] = tuple(examples)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        import_path = self.lazy_commands.get(cmd_name)
        if import_path is not None:
            module_name, attribute = import_path.split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if self.lazy_examples.get(cmd_name):
                example(*self.lazy_examples[cmd_name])(command)
            self.add_command(command, cmd_name)
            del self.lazy_commands[cmd_name]
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = [*self.sections, *(name for name in self.list_commands(ctx) if name not in self.sections)]
        for section in (*SECTIONS, None):
            members = [name for name in names if self.sections.get(name) == section
                       or (section is None and self.sections.get(name) not in SECTIONS)]
            rows = self._rows(ctx, members)
            if rows:
                with formatter.section(section or "Other"):
                    _write_rows(formatter, rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (InventoryError, CliError, psycopg.Error) as error:
            ctx.exit(report_error(error, _json_of(ctx)))
        except Exception as error:
            if os.environ.get("PYINV_DEBUG"):
                raise
            ctx.exit(report_error(error, _json_of(ctx)))
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """click's main, except that usage errors and aborts are reported like every other error: as JSON
        with --json, and with the exit code of EXIT_CODES."""
        argv = list(args) if args is not None else sys.argv[1:]
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as error:
            if _wants_json(argv):
                sys.exit(report_error(error, True))
            error.show()
            sys.exit(EXIT_USAGE)
        except (click.Abort, EOFError, KeyboardInterrupt) as error:
            sys.exit(report_error(error if isinstance(error, click.Abort) else click.Abort(), _wants_json(argv)))
        except BrokenPipeError:
            sys.exit(EXIT_OK)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def _json_of(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj
    return bool(isinstance(obj, State) and obj.json) or bool(ctx.params.get("json_output"))


# -- helpers of the commands --------------------------------------------------------------------------------


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` after the command name too (`pyinv stock --json`)."""
    return click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_set_json,
                        help="Machine-readable JSON on stdout.")(function)


def _set_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).wide = True


def wide_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """`--wide` after the command name too."""
    return click.option("--wide", is_flag=True, expose_value=False, callback=_set_wide,
                        help="Show every column, at full width.")(function)


DEFAULT_LIMIT = 50


def list_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--limit, --offset, --wide and --json: the options of every list command."""
    function = json_option(function)
    function = wide_option(function)
    function = click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0), metavar="N",
                            help="Skip this many rows (page on with the offset the last page names).")(function)
    return click.option("--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(min=1),
                        metavar="N", help="Show at most this many rows.")(function)


def state() -> State:
    return click.get_current_context().ensure_object(State)


def emit(value: Any, columns: Sequence[str] | None = None, empty: str = "(none)") -> None:
    """Print one row or a list of rows: JSON with --json, else a table of `columns` (all with --wide)
    that fits the terminal."""
    current = state()
    if current.json:
        click.echo(to_json(plain(value)))
        return
    rows = value if isinstance(value, list) else [value]
    if not rows:
        click.echo(empty)
        return
    print_table(rows, columns)


def print_table(rows: Sequence[Any], columns: Sequence[str] | None = None) -> None:
    """A table of `columns` of rows (every column with --wide) that fits the terminal (--wide: full width)."""
    wide = state().wide
    if wide or not columns:
        columns = list(plain(rows[0]).keys())
    click.echo(render_table(rows, columns, width=None if wide else terminal_width()), nl=False)


def emit_page(fetch: Callable[..., list[Any]], limit: int, offset: int, columns: Sequence[str],
              empty: str = "(none)", latest: bool = False, **filters: Any) -> None:
    """One page of a list: fetches limit + 1 rows to know whether more follow, prints `limit` of them,
    and when the list was cut says on stderr how to see the rest. latest: `fetch` pages from the newest
    row back (returned oldest first), so the extra row is the first one."""
    rows = fetch(limit=limit + 1, offset=offset, **filters)
    more = len(rows) > limit
    rows = rows[len(rows) - limit:] if latest and more else rows[:limit]
    emit(rows, columns, empty=empty if offset == 0 else f"{empty} (at offset {offset})")
    if more:
        notice(f"showing rows {offset + 1}-{offset + limit}; more rows: use --offset {offset + limit}"
               f" (or a larger --limit)")
