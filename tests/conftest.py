"""Test databases: every test gets a fresh database cloned from a template that `pyinv migrate`
built, on the embedded PostgreSQL (a throw-away test cluster) or on the server named by
PYINV_TEST_DSN (its database is used only to create and drop test databases)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from helpers import PostgREST, cluster_lock, make_catalogue
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories

from pyinv import Inventory, install, migrate, server
from pyinv.cli import cli

# A test cluster trades durability for speed; never use these settings for data you keep.
TEST_CLUSTER_SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _test_server() -> dict[str, Any]:
    dsn = os.environ.get("PYINV_TEST_DSN")
    if not dsn:
        import platformdirs

        pgdata = Path(os.environ.get("PYINV_TEST_DATA_DIR") or platformdirs.user_cache_path("pyinv") / "test-pgdata")
        with cluster_lock("embedded-" + str(pgdata)):  # one worker initialises and starts it
            dsn = server.start(pgdata, settings=TEST_CLUSTER_SETTINGS)
    params = conninfo_to_dict(dsn)
    return {
        "host": params.get("host") or "localhost",
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": params.get("password") or "",
        # On the embedded server, not its pyinv database: tests of the embedded default drop and
        # recreate that one while other workers create and drop their test databases.
        "maintenance_dbname": (params.get("dbname") or "postgres") if os.environ.get("PYINV_TEST_DSN") else "postgres",
    }


SERVER = _test_server()


# Test-only stand-ins for the roles PostgREST/Supabase create, made as Supabase makes them (NOINHERIT;
# never created by migrations), and two plain logins: a clerk (member of inventory_operator) and an
# attacker with only PUBLIC's default TEMP right.
TEST_ROLES = """
do $roles$
begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'pyinv-test';
  end if;
  if not exists (select from pg_roles where rolname = 'pyinv_clerk') then
    create role pyinv_clerk login password 'pyinv-test';
  end if;
  if not exists (select from pg_roles where rolname = 'pyinv_attacker') then
    create role pyinv_attacker login password 'pyinv-test';
  end if;
end
$roles$;
alter role anon noinherit;
alter role authenticated noinherit;
alter role service_role noinherit bypassrls;
grant anon, authenticated, service_role to authenticator;
"""


def migrate_template(host: str, port: int, user: str, dbname: str, password: str, **_: Any) -> None:
    with cluster_lock(f"template-{host}:{port}"):
        _migrate_template(make_conninfo(host=host, port=port, user=user, dbname=dbname, password=password or None))


def _migrate_template(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(TEST_ROLES)
    if os.environ.get("PYINV_TEST_SCHEMA") == "sql":
        # While a migration is being written: the schema straight from sql/ (`pyinv sql bundle`).
        # tests/test_migrations.py proves the migrations produce the same schema.
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(install.bundle())
    else:
        migrate.apply(dsn)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("grant inventory_operator to pyinv_clerk")


postgresql_template = factories.postgresql_noproc(
    host=SERVER["host"], port=SERVER["port"], user=SERVER["user"], password=SERVER["password"],
    dbname=f"pyinv_test_{os.getpid()}", maintenance_dbname=SERVER["maintenance_dbname"], load=[migrate_template],
)
postgresql = factories.postgresql("postgresql_template")


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    info = postgresql.info
    return make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname,
                         password=info.password or None)


@pytest.fixture
def login_dsn(dsn: str) -> Callable[[str], str]:
    """DSN of the test database for another login role (test roles share one password)."""
    return lambda role: make_conninfo(dsn, user=role, password="pyinv-test")


@pytest.fixture
def connect(dsn: str) -> Iterator[Callable[..., psycopg.Connection[Any]]]:
    """Opens extra autocommit connections to the test database; all closed after the test."""
    opened: list[psycopg.Connection[Any]] = []

    def _connect(conninfo: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("autocommit", True)
        connection = psycopg.connect(conninfo or dsn, **kwargs)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def db(connect: Callable[..., psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    """A superuser autocommit connection for arranging and inspecting (the DBA in psql)."""
    return connect()


@pytest.fixture
def inv(request: pytest.FixtureRequest, connect: Callable[..., psycopg.Connection[Any]]) -> Iterator[Inventory]:
    """The client under test. After the test, the books must balance: verify_inventory() is empty."""
    client = Inventory(connect())
    yield client
    if request.node.get_closest_marker("breaks_invariants") is None and not client.connection.closed:
        assert client.verify_inventory() == []


# Users known to PostgREST in the tests: JWT sub -> (business role, location code or None for all).
USERS = {
    "u-reader": ("viewer", None),
    "u-clerk-main": ("operator", "main"),
    "u-clerk-east": ("operator", "east"),
    "u-admin": ("admin", None),
    "u-admin-2": ("admin", None),
    "u-admin-east": ("admin", "east"),
}

Run = Callable[..., Result]


@pytest.fixture
def clerk(login_dsn: Callable[[str], str], connect: Callable[..., psycopg.Connection[Any]],
          catalogue: Inventory) -> Inventory:
    """A second user: the pyinv_clerk login (a member of inventory_operator: operator everywhere)."""
    return Inventory(connect(conninfo=login_dsn("pyinv_clerk")))


@pytest.fixture
def gateway(login_dsn: Callable[[str], str], catalogue: Inventory,
            connect: Callable[..., psycopg.Connection[Any]]) -> Callable[..., PostgREST]:
    """PostgREST clients (gateway(role, sub)) over the authenticator login; the catalogue has stock at
    main and east, and USERS' roles are granted."""
    catalogue.receive_stock("A1", 5, location="east")
    catalogue.connection.execute("select inventory_api.create_item('LOT-1', 'Lot-tracked', track_lots => true)")
    catalogue.connection.execute("select inventory_api.receive_stock('LOT-1', 5, lot_number => 'L1')")
    for user, (role, location) in USERS.items():
        catalogue.connection.execute(
            "select inventory_api.grant_user_role(user_id => %s, role => %s, location => %s)", (user, role, location))
    connection = connect(conninfo=login_dsn("authenticator"))
    return lambda role, sub=None: PostgREST(connection, role, sub)


@pytest.fixture
def run(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Runs `pyinv --dsn <test database> ARGS...` in-process; checks the exit code (0 unless told otherwise)."""
    for name in ("PYINV_DATABASE_URL", "DATABASE_URL", "COLUMNS"):  # COLUMNS: tables at full width
        monkeypatch.delenv(name, raising=False)

    def _run(*args: str, exit_code: int = 0, input: str | None = None, dsn_: str | None = None) -> Result:
        result = CliRunner().invoke(cli, ["--dsn", dsn_ or dsn, *args], input=input, catch_exceptions=False)
        assert result.exit_code == exit_code, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    return _run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "breaks_invariants: the test corrupts the books on purpose")


@pytest.fixture
def ledger_rows(db: psycopg.Connection[Any]) -> Callable[[], int]:
    return lambda: db.execute("select count(*) from inventory.ledger").fetchone()[0]


@pytest.fixture
def catalogue(inv: Inventory) -> Inventory:
    """Two items (A1 with 10 on hand at main, B2 with 5) and a second location, east."""
    make_catalogue(inv)
    return inv


@pytest.fixture
def empty_database() -> Iterator[Callable[[], str]]:
    """Creates empty databases on the test server (DSNs returned); dropped after the test."""
    created: list[str] = []
    maintenance = make_conninfo(host=SERVER["host"], port=SERVER["port"], user=SERVER["user"],
                                password=SERVER["password"] or None, dbname=SERVER["maintenance_dbname"])

    def _create() -> str:
        name = f"pyinv_empty_{os.getpid()}_{len(created)}"
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(f'drop database if exists "{name}"')
            connection.execute(f'create database "{name}"')
        created.append(name)
        return make_conninfo(maintenance, dbname=name)

    yield _create
    with psycopg.connect(maintenance, autocommit=True) as connection:
        for name in created:
            connection.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def module_dsn(postgresql_template: Any) -> Iterator[str]:
    """A database cloned from the migrated template, shared by one test module: for tests that prove
    they change nothing (every failed call), so they need not pay for a fresh database each."""
    maintenance = make_conninfo(host=SERVER["host"], port=SERVER["port"], user=SERVER["user"],
                                password=SERVER["password"] or None, dbname=SERVER["maintenance_dbname"])
    name = f"pyinv_module_{os.getpid()}_{next(_module_databases)}"
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'create database "{name}" template "{postgresql_template.template_dbname}"')
    yield make_conninfo(maintenance, dbname=name)
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'drop database if exists "{name}" with (force)')


_module_databases = itertools.count()
