"""The database itself: the embedded server (`db`), the migrations (`migrate`), the SQL bundle (`sql`)."""

from __future__ import annotations

from dataclasses import asdict

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import migrate, resources, server
from .context import CliError, HelpGroup, example, json_option, state
from .output import MIGRATION_COLUMNS, format_cell, table, to_json

# -- embedded server ----------------------------------------------------------------------------------


@example("pyinv db status", "pyinv db start")
@click.group(cls=HelpGroup)
def db() -> None:
    """Manage the embedded PostgreSQL.

    It lives in a per-user data directory (PYINV_DATA_DIR overrides it)."""


@example("pyinv db start")
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


@example("pyinv db stop")
@db.command("stop")
@json_option
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = server.stop()
    if state().json:
        click.echo(to_json({"stopped": stopped}))
    else:
        click.echo("stopped" if stopped else "not running")


@example("pyinv db status")
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


@example("psql \"$(pyinv db url)\"")
@db.command("url")
@json_option
def db_url() -> None:
    """Print the URL pyinv uses (--dsn or the environment, else the embedded server, started if needed)."""
    url = state().dsn()
    click.echo(to_json({"url": url}) if state().json else url)


# -- migrations and the SQL bundle ----------------------------------------------------------------------


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the database"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"database {params.get('dbname') or params.get('user') or '?'} on {host}{port}"


@example("pyinv migrate", "pyinv migrate --status")
@click.command("migrate")
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
            click.echo(table([asdict(item) for item in states], MIGRATION_COLUMNS))
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


@example("pyinv sql bundle > install.sql")
@click.group("sql", cls=HelpGroup)
def sql_group() -> None:
    """The SQL schema, for databases you manage by hand."""


@example("pyinv sql bundle > install.sql")
@sql_group.command("bundle")
def sql_bundle() -> None:
    """Print the schema as one SQL transaction.

    For databases where migrations cannot run, e.g. paste it into the Supabase SQL editor."""
    click.echo("begin;\n\n" + resources.schema_sql().rstrip() + "\n\ncommit;")
