"""The ``pyinv`` command: a thin shell over pyinv.Inventory, the migrations and the embedded server.

Every command prints a table that fits the terminal by default (all columns with ``--wide``) and JSON
on stdout with ``--json`` (given before or after the command name). Errors go to stderr with their
code, detail and advice (one JSON object with ``--json``, usage errors included); the exit code says
what kind of failure it was (context.EXIT_CODES, the one table of them).

The root group and the registration of every command family, by help section, live here; the
families are database (db, migrate, sql), catalogue (item, location, user), orders (receive ...
return, stock, validate, reservations, returns, movements), stock_control (adjust, approve,
adjustments, count, counts, transfer, policy, alerts), lots (lots, lot, trace, expire-lots), reports
(dashboard, reports, stock-as-of, refresh-views), metrics (metrics, metrics serve, report), events
(events: list, --follow, deliver, consumers, ack, purge), maintenance (verify, expire, audit, import,
maintain, status, schedule), demo, and the benchmark (pyinv.bench.command, imported only when it is run
or listed). The shared machinery is in context, output and params.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from .. import __version__
from . import catalogue, database, demo, events, lots, maintenance, metrics, orders, reports, stock_control
from .context import (
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_REFUSED,
    EXIT_RETRY,
    EXIT_USAGE,
    EXIT_VIOLATIONS,
    CliError,
    PyinvGroup,
    State,
    emit,
    exit_code_for,
    exit_codes_help,
    json_option,
    report_error,
    state,
)
from .output import format_cell, format_decimal, json_default, plain, render_table, table, to_json
from .params import DECIMAL, DURATION, ORDER_LINE, key_option

__all__ = [
    "DECIMAL",
    "DURATION",
    "EXIT_CODES",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PERMISSION",
    "EXIT_REFUSED",
    "EXIT_RETRY",
    "EXIT_USAGE",
    "EXIT_VIOLATIONS",
    "ORDER_LINE",
    "CliError",
    "PyinvGroup",
    "State",
    "cli",
    "emit",
    "exit_code_for",
    "exit_codes_help",
    "format_cell",
    "format_decimal",
    "json_default",
    "json_option",
    "key_option",
    "main",
    "plain",
    "render_table",
    "report_error",
    "state",
    "table",
    "to_json",
]


@click.group("pyinv", cls=PyinvGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=exit_codes_help())
@click.option("--dsn", metavar="DSN",
              help="PostgreSQL to use (also PYINV_DATABASE_URL or DATABASE_URL); default: the embedded server.")
@click.option("--json", "json_output", is_flag=True,
              help="Machine-readable JSON on stdout; errors as one JSON object on stderr.")
@click.option("--wide", is_flag=True, help="Tables with every column, at full width (default: fit the terminal).")
@click.option("--connect-timeout", type=click.IntRange(min=1), metavar="SECONDS",
              help="Give up connecting after this long (default 10, or PGCONNECT_TIMEOUT).")
@click.option("--no-prepared-statements", is_flag=True,
              help="For transaction-mode poolers (PgBouncer, Supavisor).")
@click.version_option(__version__, prog_name="pyinv")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, json_output: bool, wide: bool, connect_timeout: int | None,
        no_prepared_statements: bool) -> None:
    """pyinv: a PostgreSQL-native inventory engine.

    Every command prints a table (or JSON with --json; --json and --wide also go after the command).
    Lists show --limit rows (50) from --offset. With no database named, pyinv uses (and starts) its
    embedded PostgreSQL."""
    current = ctx.ensure_object(State)
    current.dsn_option = dsn
    current.json = current.json or json_output
    current.wide = current.wide or wide
    current.connect_timeout = connect_timeout
    current.prepared_statements = not no_prepared_statements
    if dsn is not None:  # `pyinv --dsn X bench`: the bench's own --dsn defaults to X
        ctx.default_map = {**(ctx.default_map or {}), "bench": {"dsn": dsn}}


# Stock: what is where.
cli.add_command(orders.stock, section="Stock")
cli.add_command(orders.validate, section="Stock")
cli.add_command(orders.receive, section="Stock")
cli.add_command(orders.movements, section="Stock")
# The order lifecycle.
cli.add_command(orders.reserve, section="Orders")
cli.add_command(orders.fulfill, section="Orders")
cli.add_command(orders.cancel, section="Orders")
cli.add_command(orders.return_command, section="Orders")
cli.add_command(orders.reservations, section="Orders")
cli.add_command(orders.returns, section="Orders")
# The catalogue.
cli.add_command(catalogue.item, section="Catalogue")
cli.add_command(catalogue.location, section="Catalogue")
cli.add_command(maintenance.import_command, section="Catalogue")
# Stock control.
cli.add_command(stock_control.adjust, section="Stock control")
cli.add_command(stock_control.approve, section="Stock control")
cli.add_command(stock_control.adjustments, section="Stock control")
cli.add_command(stock_control.count, section="Stock control")
cli.add_command(stock_control.counts, section="Stock control")
cli.add_command(stock_control.transfer, section="Stock control")
cli.add_command(stock_control.hot_mode, section="Stock control")
cli.add_command(stock_control.policy, section="Stock control")
cli.add_command(stock_control.alerts, section="Stock control")
# Lots and expiry.
cli.add_command(lots.lots, section="Lots")
cli.add_command(lots.lot, section="Lots")
cli.add_command(lots.trace, section="Lots")
cli.add_command(lots.expire_lots, section="Lots")
# Reports.
cli.add_command(reports.dashboard, section="Reports")
cli.add_command(reports.reports, section="Reports")
cli.add_command(reports.stock_as_of, section="Reports")
cli.add_command(metrics.metrics, section="Reports")
cli.add_command(metrics.report, section="Reports")
# Events, for other systems.
cli.add_command(events.events, section="Events")
# Audit and maintenance.
cli.add_command(reports.refresh_views, section="Audit & maintenance")
cli.add_command(maintenance.verify, section="Audit & maintenance")
cli.add_command(maintenance.expire, section="Audit & maintenance")
cli.add_command(maintenance.audit, section="Audit & maintenance")
cli.add_command(maintenance.maintain, section="Audit & maintenance")
cli.add_command(maintenance.status, section="Audit & maintenance")
cli.add_command(maintenance.schedule, section="Audit & maintenance")
# Users.
cli.add_command(catalogue.user, section="Users")
# The embedded server, the migrations and the SQL bundle.
cli.add_command(database.db, section="Database")
cli.add_command(database.migrate_command, section="Database")
cli.add_command(database.sql_group, section="Database")
# Try it.
cli.add_command(demo.demo, section="Try it")
cli.add_lazy_command("bench", "pyinv.bench.command:bench", section="Try it", examples=("pyinv bench --quick",))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `pyinv` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="pyinv")
