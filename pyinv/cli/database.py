"""The database itself: the embedded server (`db`), the migrations (`migrate`), the SQL scripts (`sql`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import install, migrate, server
from .context import CliError, HelpGroup, example, json_option, state
from .output import format_cell, table, to_json

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


# -- migrations and the SQL scripts ---------------------------------------------------------------------

MIGRATION_COLUMNS = ("id", "version", "applied", "recorded_by")
MIGRATION_HEADERS = ("id", "version", "applied", "applied by")


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
    try:
        _migrate(dsn, show_status, rollback, yes)
    except migrate.MigrationError as error:
        raise CliError("SCHEMA_NOT_RECOGNISED", f"pyinv migrate cannot run on {describe_dsn(dsn)}: {error}",
                       "See `pyinv migrate --status`; `pyinv sql upgrade --help` for installs by SQL script."
                       ) from error


def _migrate(dsn: str, show_status: bool, rollback: bool, yes: bool) -> None:
    if show_status:
        states = migrate.status(dsn)
        if state().json:
            click.echo(to_json([asdict(item) for item in states]))
        else:
            click.echo(table([asdict(item) for item in states], MIGRATION_COLUMNS, MIGRATION_HEADERS))
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
    """SQL scripts for databases you manage by hand (psql, the Supabase SQL editor or CLI).

    Each script runs in one transaction, records what it applied in inventory_meta (so `pyinv
    migrate` recognises it), and is refused with SQLSTATE 55000, changing nothing, unless the
    database is in the state it was written for."""


def _version(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return install.resolve(value).version
    except install.InstallError as error:
        raise click.BadParameter(str(error)) from error


@example("pyinv sql bundle > install.sql")
@sql_group.command("bundle")
def sql_bundle() -> None:
    """Print the whole schema as one SQL transaction (a new install).

    For databases where migrations cannot run, e.g. `psql -v ON_ERROR_STOP=1 -f install.sql`
    or the Supabase SQL editor. Run on a database that has pyinv already, it is refused and
    names the upgrade to print instead."""
    click.echo(install.bundle(), nl=False)


@example("pyinv sql upgrade --from 0.2.0 > upgrade.sql")
@sql_group.command("upgrade")
@click.option("--from", "from_version", required=True, metavar="VERSION",
              help="The installed release (e.g. 0.2.0; `pyinv migrate --status` or"
                   " `select * from inventory_api.schema_version()` shows it).")
@click.option("--to", "to_version", metavar="VERSION", help="Stop at this release (default: the newest).")
def sql_upgrade(from_version: str, to_version: str | None) -> None:
    """Print the upgrade from release --from as one SQL transaction (then psql -v ON_ERROR_STOP=1 -f it)."""
    start, end = _version(from_version), _version(to_version)
    try:
        click.echo(install.upgrade(start, end), nl=False)
    except install.InstallError as error:
        raise click.BadParameter(str(error), param_hint="--from/--to") from error


@example("pyinv sql migrations supabase/migrations")
@sql_group.command("migrations")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "from_version", metavar="VERSION",
              help="The installed release (default: after the newest pyinv file in DIRECTORY, else from nothing).")
@json_option
def sql_migrations(directory: Path, from_version: str | None) -> None:
    """Write one SQL file per migration into DIRECTORY, for tools that apply files in name order.

    Named <UTC timestamp>_pyinv_<migration>.sql, as the Supabase CLI expects
    (e.g. pyinv sql migrations supabase/migrations, then supabase db push). Each file is one
    transaction that records itself."""
    try:
        written = install.write_migration_files(directory, _version(from_version))
    except install.InstallError as error:
        raise click.BadParameter(str(error), param_hint="--from") from error
    if state().json:
        click.echo(to_json({"written": [str(path) for path in written]}))
    elif written:
        click.echo("\n".join(f"wrote {path}" for path in written))
    else:
        click.echo(f"up to date: {directory} has every pyinv migration")
