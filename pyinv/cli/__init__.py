"""The ``pyinv`` command: a thin shell over pyinv.Inventory, the migrations and the embedded server.

Every command prints a readable table by default and JSON on stdout with ``--json`` (given before or
after the command name). Errors go to stderr with their code, detail and advice, exit code 2;
``pyinv verify`` exits 1 when the books do not balance.

The root group and the registration of every command family live here; the families are
database (db, migrate, sql), catalogue (item, location), orders (receive ... return, stock,
reservations, movements), stock_control (adjust, approve, adjustments, count, transfer, policy,
alerts), maintenance (verify, expire, audit, import), demo, and the benchmark (pyinv.bench.command,
imported only when it is run or listed). The shared machinery is in context, output and params.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from .. import __version__
from . import catalogue, database, demo, maintenance, orders, stock_control
from .context import EXIT_ERROR, EXIT_VIOLATIONS, CliError, PyinvGroup, State, emit, json_option, report_error, state
from .output import format_cell, format_decimal, json_default, plain, table, to_json
from .params import DECIMAL, DURATION, ORDER_LINE, key_option

__all__ = [
    "DECIMAL",
    "DURATION",
    "EXIT_ERROR",
    "EXIT_VIOLATIONS",
    "ORDER_LINE",
    "CliError",
    "PyinvGroup",
    "State",
    "cli",
    "emit",
    "format_cell",
    "format_decimal",
    "json_default",
    "json_option",
    "key_option",
    "main",
    "plain",
    "report_error",
    "state",
    "table",
    "to_json",
]


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
    if dsn is not None:  # `pyinv --dsn X bench`: the bench's own --dsn defaults to X
        ctx.default_map = {**(ctx.default_map or {}), "bench": {"dsn": dsn}}


# The embedded server, the migrations and the SQL bundle.
cli.add_command(database.db)
cli.add_command(database.migrate_command)
cli.add_command(database.sql_group)
# The catalogue.
cli.add_command(catalogue.item)
cli.add_command(catalogue.location)
# The order lifecycle and its readers.
cli.add_command(orders.receive)
cli.add_command(orders.reserve)
cli.add_command(orders.fulfill)
cli.add_command(orders.cancel)
cli.add_command(orders.return_command)
cli.add_command(orders.stock)
cli.add_command(orders.reservations)
cli.add_command(orders.movements)
# Maintenance and checks.
cli.add_command(maintenance.verify)
cli.add_command(maintenance.expire)
cli.add_command(maintenance.audit)
cli.add_command(demo.demo)
cli.add_lazy_command("bench", "pyinv.bench.command:bench")
# Stock control and bulk import.
cli.add_command(stock_control.adjust)
cli.add_command(stock_control.approve)
cli.add_command(stock_control.adjustments)
cli.add_command(stock_control.count)
cli.add_command(stock_control.transfer)
cli.add_command(stock_control.policy)
cli.add_command(stock_control.alerts)
cli.add_command(maintenance.import_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `pyinv` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="pyinv")
