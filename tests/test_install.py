"""One install story: the SQL bundle, `pyinv migrate`, upgrade scripts and plain-SQL migration files
(as the Supabase CLI applies them) converge. A database installed one way is recognised and upgraded
another way; re-running an install, or an upgrade on the wrong version, is refused with SQLSTATE
55000 and a hint naming what to run, and changes nothing. Scripts run through psql as a user would
(`psql -v ON_ERROR_STOP=1 -f`), and through a driver for the exact SQLSTATE."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from helpers import MIGRATIONS, VERSIONS
from psycopg.conninfo import make_conninfo
from test_migrations import schema_dump

from pyinv import install, migrate, server
from pyinv.cli import cli


def _psql() -> str | None:
    for candidate in (server.bin_dir() / "psql", shutil.which("psql")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


PSQL = _psql()


def psql(dsn: str, script: str, stop_on_error: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs a script as `psql -f` does (with VERBOSITY verbose, so errors show their SQLSTATE)."""
    if PSQL is None:
        pytest.skip("no psql binary on this machine")
    options = ["-v", "ON_ERROR_STOP=1"] if stop_on_error else []
    return subprocess.run([PSQL, "-X", "-q", *options, "-v", "VERBOSITY=verbose", "-d", dsn, "-f", "-"],
                          input=script, capture_output=True, text=True, timeout=600, check=False)


def installs(dsn: str, script: str) -> None:
    result = psql(dsn, script)
    assert result.returncode == 0, result.stderr[-3000:]


def refused(dsn: str, script: str, hint: str) -> None:
    """The script is refused with 55000 and this hint, through psql and through a driver, and the
    database is exactly as before."""
    before = state(dsn)
    result = psql(dsn, script)
    assert result.returncode == 3, result.stderr[-3000:]  # psql: a statement failed under ON_ERROR_STOP
    assert "ERROR:  55000: pyinv: this script is for" in result.stderr, result.stderr[-3000:]
    assert f"HINT:  {hint}" in result.stderr, result.stderr[-3000:]
    with psycopg.connect(dsn, autocommit=True) as connection, pytest.raises(psycopg.Error) as caught:
        connection.execute(script)
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("55000", hint)
    # Without ON_ERROR_STOP psql goes on: every later statement fails in the aborted transaction.
    assert psql(dsn, script, stop_on_error=False).returncode == 0
    assert state(dsn) == before


def state(dsn: str) -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The schema, pyinv's record and yoyo's (whichever exist)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        present = connection.execute("select to_regnamespace('inventory') is not null").fetchone() == (True,)

        def rows(table: str, columns: str) -> list[tuple[Any, ...]]:
            if connection.execute("select to_regclass(%s)", (table,)).fetchone() == (None,):
                return []
            return connection.execute(f"select {columns} from {table} order by 1").fetchall()

        return (schema_dump(dsn) if present else "", rows("inventory_meta.pyinv_migrations", "*"),
                rows("inventory_meta._yoyo_migration", "migration_id, applied_at_utc"))


def applied(dsn: str) -> list[tuple[str, bool, str | None]]:
    return [(item.id, item.applied, item.recorded_by) for item in migrate.status(dsn)]


def pyinv(*args: str) -> str:
    """Runs the CLI in-process; returns its stdout (exit code 0 required)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def drop_record(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("drop table inventory_meta.pyinv_migrations")


def schema_version(dsn: str) -> tuple[str, str]:
    with psycopg.connect(dsn) as connection:
        return connection.execute("select version, migration from inventory_api.schema_version()").fetchone()


@pytest.fixture(scope="module")
def fresh_dump(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Callable[[], str]], str]:
    """The schema dump of a database `pyinv migrate` installed (computed once per module)."""
    cache: dict[str, str] = {}

    def _dump(empty_database: Callable[[], str]) -> str:
        if "dump" not in cache:
            dsn = empty_database()
            migrate.apply(dsn)
            cache["dump"] = schema_dump(dsn)
        return cache["dump"]

    return _dump


# -- the bundle ------------------------------------------------------------------------------------------------


def test_a_bundle_install_is_recognised_by_migrate(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    installs(dsn, pyinv("sql", "bundle"))
    assert applied(dsn) == [(name, True, "bundle") for name in MIGRATIONS]
    assert schema_version(dsn) == (VERSIONS[-1], MIGRATIONS[-1])
    before = schema_dump(dsn)
    assert migrate.apply(dsn) == []
    assert schema_dump(dsn) == before
    with psycopg.connect(dsn) as connection:
        yoyo = connection.execute("select migration_id from inventory_meta._yoyo_migration order by 1").fetchall()
        recorded = connection.execute(
            "select migration_id, version, checksum, recorded_by from inventory_meta.pyinv_migrations order by 1")
        assert recorded.fetchall() == [(m.id, m.version, m.checksum, "bundle") for m in install.migrations()]
        # The script leaves neither its login a member of the owner role nor its temporary function.
        assert connection.execute("select to_regprocedure('pg_temp.pyinv_installed()')").fetchone() == (None,)
        assert connection.execute("select count(*) from pg_auth_members where roleid = 'inventory_owner'::regrole"
                                  " and member = current_user::regrole").fetchone() == (0,)
    assert yoyo == [(name,) for name in MIGRATIONS]
    out = pyinv("--dsn", dsn, "migrate", "--status")
    assert all(line.split()[2:] == ["yes", "bundle"] for line in out.splitlines()[2:]), out
    assert pyinv("--dsn", dsn, "migrate").strip() == "up to date"


def test_running_the_bundle_twice_is_refused_and_changes_nothing(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    bundle = install.bundle()
    installs(dsn, bundle)
    refused(dsn, bundle, "ALREADY_INSTALLED: it is up to date, nothing to do")


def test_the_bundle_on_an_older_install_names_the_upgrade(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    assert migrate.apply(dsn, up_to=MIGRATIONS[-2]) == MIGRATIONS[:-1]
    refused(dsn, install.bundle(), f"ALREADY_INSTALLED: use pyinv sql upgrade --from {VERSIONS[-2]}")
    refused(dsn, install.upgrade(VERSIONS[0]), f"ALREADY_INSTALLED: use pyinv sql upgrade --from {VERSIONS[-2]}")


def test_an_upgrade_needs_an_install(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    refused(dsn, install.upgrade(VERSIONS[-2]), "NOT_INSTALLED: install with pyinv sql bundle (or pyinv migrate)")
    with psycopg.connect(dsn) as connection:
        assert connection.execute("select to_regnamespace('inventory_meta')").fetchone() == (None,)


# -- upgrades, both ways -------------------------------------------------------------------------------------


def test_a_migrated_previous_release_upgraded_by_script_equals_a_fresh_install(
        empty_database: Callable[[], str], fresh_dump: Callable[..., str]) -> None:
    dsn = empty_database()
    assert migrate.apply(dsn, up_to=MIGRATIONS[-2]) == MIGRATIONS[:-1]
    drop_record(dsn)  # as pyinv 0.2.0's migrate left a database: only yoyo's bookkeeping
    installs(dsn, pyinv("sql", "upgrade", "--from", VERSIONS[-2]))
    assert schema_dump(dsn) == fresh_dump(empty_database)
    assert applied(dsn) == [*((name, True, "migrate") for name in MIGRATIONS[:-1]), (MIGRATIONS[-1], True, "upgrade")]
    assert migrate.apply(dsn) == []
    refused(dsn, install.upgrade(VERSIONS[-2]), "ALREADY_INSTALLED: it is up to date, nothing to do")


def test_a_previous_release_migrated_without_its_record_is_upgraded_by_migrate(
        empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    assert migrate.apply(dsn, up_to=MIGRATIONS[-2]) == MIGRATIONS[:-1]
    drop_record(dsn)
    assert applied(dsn) == [*((name, True, "migrate") for name in MIGRATIONS[:-1]), (MIGRATIONS[-1], False, None)]
    assert migrate.apply(dsn) == [MIGRATIONS[-1]]
    with psycopg.connect(dsn) as connection:
        assert connection.execute("select migration_id, recorded_by from inventory_meta.pyinv_migrations"
                                  " order by 1").fetchall() == [(name, "migrate") for name in MIGRATIONS]


def test_a_scripted_previous_release_is_upgraded_by_migrate(
        empty_database: Callable[[], str], fresh_dump: Callable[..., str]) -> None:
    dsn = empty_database()
    installs(dsn, install.upgrade(None, VERSIONS[-2]))
    assert applied(dsn) == [*((name, True, "upgrade") for name in MIGRATIONS[:-1]), (MIGRATIONS[-1], False, None)]
    assert migrate.apply(dsn) == [MIGRATIONS[-1]]
    assert schema_dump(dsn) == fresh_dump(empty_database)
    assert applied(dsn)[-1] == (MIGRATIONS[-1], True, "migrate")


def test_an_install_nothing_recorded_is_dated_from_its_schema(
        empty_database: Callable[[], str], fresh_dump: Callable[..., str]) -> None:
    """The previous release restored from a dump without inventory_meta (as a 0.1.0 or 0.2.0 bundle,
    which recorded nothing, left it), dated from inventory.schema_version()."""
    old = empty_database()
    installs(old, install.upgrade(None, VERSIONS[-2]))
    current = empty_database()
    installs(current, install.bundle())
    for dsn in (old, current):
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("drop schema inventory_meta cascade")
    assert applied(old) == [*((name, True, "schema") for name in MIGRATIONS[:-1]), (MIGRATIONS[-1], False, None)]
    assert applied(current) == [(name, True, "schema") for name in MIGRATIONS]
    refused(old, install.bundle(), f"ALREADY_INSTALLED: use pyinv sql upgrade --from {VERSIONS[-2]}")
    assert migrate.apply(old) == [MIGRATIONS[-1]]
    assert schema_dump(old) == fresh_dump(empty_database)
    assert migrate.apply(current) == []


def test_a_foreign_schema_named_inventory_is_not_taken_for_pyinv(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("create schema inventory; create table inventory.things (id int)")
    assert not any(item.applied for item in migrate.status(dsn))
    refused(dsn, install.bundle(), "ALREADY_INSTALLED: restore the inventory_meta schema it was installed with,"
                                   " or see pyinv migrate --status")
    with pytest.raises(migrate.MigrationError, match="nothing records which pyinv installed it"):
        migrate.apply(dsn)
    result = CliRunner().invoke(cli, ["--dsn", dsn, "migrate"])
    assert result.exit_code != 0 and "SCHEMA_NOT_RECOGNISED" in result.stderr, result.stderr
    assert "nothing records which pyinv installed it" in result.stderr


def test_rolling_back_a_bundle_install_with_migrate(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    installs(dsn, install.bundle())
    assert migrate.rollback(dsn) == [MIGRATIONS[-1]]
    assert applied(dsn)[-1] == (MIGRATIONS[-1], False, None)
    refused(dsn, install.bundle(), f"ALREADY_INSTALLED: use pyinv sql upgrade --from {VERSIONS[-2]}")
    installs(dsn, install.upgrade(VERSIONS[-2]))
    assert applied(dsn)[-1] == (MIGRATIONS[-1], True, "upgrade")


# -- migration files for the Supabase CLI ----------------------------------------------------------------------


def test_migration_files_applied_in_order_converge(empty_database: Callable[[], str], tmp_path: Path,
                                                   fresh_dump: Callable[..., str]) -> None:
    directory = tmp_path / "supabase" / "migrations"
    out = pyinv("sql", "migrations", str(directory))
    files = sorted(directory.iterdir())
    assert out.splitlines() == [f"wrote {path}" for path in files]
    assert [install.MIGRATION_FILE.match(path.name).group(2) for path in files] == MIGRATIONS
    assert "up to date" in pyinv("sql", "migrations", str(directory))
    assert json.loads(pyinv("sql", "migrations", str(directory), "--json")) == {"written": []}
    assert sorted(directory.iterdir()) == files
    dsn = empty_database()
    for n, path in enumerate(files):
        if n + 1 < len(files):
            # Out of order: the next file is refused.
            refused(dsn, files[n + 1].read_text(), "NOT_INSTALLED: install with pyinv sql bundle (or pyinv migrate)"
                    if n == 0 else f"ALREADY_INSTALLED: use pyinv sql upgrade --from {VERSIONS[n - 1]}")
        installs(dsn, path.read_text())
    assert schema_dump(dsn) == fresh_dump(empty_database)
    assert applied(dsn) == [(name, True, "sql-file") for name in MIGRATIONS]
    assert migrate.apply(dsn) == []
    refused(dsn, files[0].read_text(), "ALREADY_INSTALLED: it is up to date, nothing to do")


def test_migration_files_continue_an_install(empty_database: Callable[[], str], tmp_path: Path) -> None:
    dsn = empty_database()
    assert migrate.apply(dsn, up_to=MIGRATIONS[-2]) == MIGRATIONS[:-1]
    pyinv("sql", "migrations", str(tmp_path), "--from", VERSIONS[-2])
    (only,) = tmp_path.iterdir()
    assert only.name.endswith(f"_pyinv_{MIGRATIONS[-1]}.sql")
    installs(dsn, only.read_text())
    assert applied(dsn)[-1] == (MIGRATIONS[-1], True, "sql-file")


def test_unknown_or_pointless_versions_are_usage_errors() -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["sql", "upgrade", "--from", "9.9.9"])
    assert unknown.exit_code != 0 and "knows no release '9.9.9'" in unknown.stderr
    newest = runner.invoke(cli, ["sql", "upgrade", "--from", VERSIONS[-1]])
    assert newest.exit_code != 0 and "nothing to do" in newest.stderr
    assert install.resolve(MIGRATIONS[-2]) == install.resolve(VERSIONS[-2]) == install.resolve(MIGRATIONS[-2][:4])


def test_schema_version_names_the_newest_migration(db: psycopg.Connection[Any]) -> None:
    """The migrated schema (and so the newest migration) reports the newest release."""
    assert db.execute("select version, migration from inventory_api.schema_version()").fetchone() == (
        VERSIONS[-1], MIGRATIONS[-1])
    latest = install.latest()
    assert latest.sql.startswith(f"-- pyinv {latest.version}:")
    assert f"select '{latest.version}'::text, '{latest.id}'::text;" in (
        install.sql_dir().joinpath("34_schema_version.sql").read_text())


# -- the Supabase path on PostgreSQL 15 ----------------------------------------------------------------------

# Supabase's API roles as Supabase creates them.
SUPABASE_ROLES = """
do $roles$
begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role; end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then create role authenticator; end if;
end
$roles$;
alter role anon nologin noinherit;
alter role authenticated nologin noinherit;
alter role service_role nologin noinherit bypassrls;
alter role authenticator login noinherit password 'pyinv-test';
grant anon, authenticated, service_role to authenticator;
"""

PG15_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def postgres15() -> Iterator[Callable[[], str] | None]:
    """A throw-away PostgreSQL 15 cluster (Debian's packages), unless the test server is 15 already
    (then None: the tests use empty_database)."""
    from conftest import SERVER

    maintenance = make_conninfo(host=SERVER["host"], port=SERVER["port"], user=SERVER["user"],
                                password=SERVER["password"] or None, dbname=SERVER["maintenance_dbname"])
    with psycopg.connect(maintenance) as connection:
        if connection.info.server_version // 10000 == 15:
            yield None
            return
    if not (PG15_BIN / "initdb").is_file():
        pytest.skip("PostgreSQL 15 is not installed here (Debian: apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="pyinv-pg15-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    data = root / "data"
    subprocess.run([*as_postgres, str(PG15_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_postgres, str(PG15_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                    "-o", f"-k {root} -c listen_addresses='' -c fsync=off", "start"], check=True, capture_output=True)
    counter = iter(range(1000))
    try:
        yield lambda: _create_database(make_conninfo(host=str(root), port=5432, user="postgres", dbname="postgres"),
                                       f"pyinv15_{next(counter)}")
    finally:
        subprocess.run([*as_postgres, str(PG15_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _create_database(maintenance: str, name: str) -> str:
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'create database "{name}"')
    return make_conninfo(maintenance, dbname=name)


@pytest.fixture
def supabase_database(postgres15: Callable[[], str] | None, empty_database: Callable[[], str]) -> str:
    """An empty database on PostgreSQL 15 with Supabase's roles."""
    dsn = (postgres15 or empty_database)()
    with psycopg.connect(dsn, autocommit=True) as connection:
        assert connection.info.server_version // 10000 == 15
        connection.execute(SUPABASE_ROLES)
    return dsn


def _as_api_role(dsn: str, role: str, sub: str | None, statement: str) -> list[tuple[Any, ...]]:
    """Runs a statement the way PostgREST does for a JWT role, through the authenticator login."""
    with psycopg.connect(make_conninfo(dsn, user="authenticator", password="pyinv-test")) as connection:
        claims = {"role": role} | ({"sub": sub} if sub else {})
        connection.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                           (role, json.dumps(claims)))
        return connection.execute(statement).fetchall()


def test_supabase_bundle_migrate_upgrade_on_postgresql_15(supabase_database: str, tmp_path: Path) -> None:
    """Supabase-made roles (NOINHERIT, service_role BYPASSRLS): the previous release installed by script,
    then the upgrade printed by `pyinv sql upgrade`; migrate sees each; the API roles work as Supabase
    uses them."""
    dsn = supabase_database
    installs(dsn, install.upgrade(None, VERSIONS[-2]))
    assert applied(dsn) == [*((name, True, "upgrade") for name in MIGRATIONS[:-1]), (MIGRATIONS[-1], False, None)]
    out = pyinv("--dsn", dsn, "migrate", "--status")
    assert [line.split()[:3] for line in out.splitlines()[2:]] == [
        [name, version, "yes" if name != MIGRATIONS[-1] else "no"] for name, version in zip(MIGRATIONS, VERSIONS,
                                                                                               strict=True)]
    installs(dsn, pyinv("sql", "upgrade", "--from", VERSIONS[-2]))
    assert applied(dsn)[-1] == (MIGRATIONS[-1], True, "upgrade")
    assert pyinv("--dsn", dsn, "migrate").strip() == "up to date"
    assert _as_api_role(dsn, "service_role", None,
                        "select sku from inventory_api.create_item(sku => 'A1', name => 'Widget')") == [("A1",)]
    assert _as_api_role(dsn, "service_role", None, "select sku from inventory_api.items") == [("A1",)]
    assert _as_api_role(dsn, "service_role", None, "select * from inventory_api.schema_version()") == [
        (VERSIONS[-1], MIGRATIONS[-1])]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_api_role(dsn, "anon", None, "select * from inventory_api.items")


def test_supabase_bundle_on_postgresql_15(supabase_database: str) -> None:
    dsn = supabase_database
    installs(dsn, install.bundle())
    assert applied(dsn) == [(name, True, "bundle") for name in MIGRATIONS]
    assert migrate.apply(dsn) == []
    refused(dsn, install.bundle(), "ALREADY_INSTALLED: it is up to date, nothing to do")
    assert _as_api_role(dsn, "service_role", None,
                        "select sku from inventory_api.create_item(sku => 'A1', name => 'Widget')") == [("A1",)]
    _as_api_role(dsn, "service_role", None,
                 "select inventory_api.grant_user_role(user_id => 'u-1', role => 'viewer', location => null)")
    assert _as_api_role(dsn, "authenticated", "u-1", "select sku from inventory_api.items") == [("A1",)]
    assert _as_api_role(dsn, "authenticated", "u-2", "select sku from inventory_api.items") == []
