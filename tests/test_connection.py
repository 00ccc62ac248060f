"""Which database pyinv connects to and how, by libpq's conventions: explicit DSN >
PYINV_DATABASE_URL > DATABASE_URL > the libpq environment (PGHOST, PGDATABASE, PGSERVICE) > the
embedded server; PGPORT alone never breaks the embedded default; a connect timeout; an
application_name; the prepared-statements switch."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from helpers import cluster_lock
from psycopg.conninfo import conninfo_to_dict

import pyinv
from pyinv import ConfigurationError, ConnectionFailed, Inventory, resolve_dsn, server
from pyinv.cli import cli

PYINV_ENV = ("PYINV_DATABASE_URL", "DATABASE_URL", "PYINV_CONNECT_TIMEOUT", "PYINV_PREPARED_STATEMENTS")
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "PGAPPNAME",
             "PGCONNECT_TIMEOUT", "PGOPTIONS")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DSN or libpq variable set (as on a new user's machine)."""
    for name in (*PYINV_ENV, *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def embedded(clean_env: pytest.MonkeyPatch) -> Iterator[Path]:
    """PYINV_DATA_DIR names the running embedded test cluster: the embedded default is that server
    (its pyinv database, which tests/test_server.py drops and recreates under the same lock)."""
    if os.environ.get("PYINV_TEST_DSN"):
        pytest.skip("the tests run against PYINV_TEST_DSN, not an embedded cluster")
    import platformdirs

    pgdata = Path(os.environ.get("PYINV_TEST_DATA_DIR") or platformdirs.user_cache_path("pyinv") / "test-pgdata")
    clean_env.setenv("PYINV_DATA_DIR", str(pgdata))
    with cluster_lock("embedded-default-database"):
        yield pgdata


# -- precedence -------------------------------------------------------------------------------------------


def test_the_first_configured_source_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PGHOST", "/nowhere")
    assert resolve_dsn() == ""  # libpq resolves it from PGHOST (and PGPORT, PGUSER, ~/.pgpass ...)
    clean_env.setenv("DATABASE_URL", "postgresql:///from-database-url")
    assert resolve_dsn() == "postgresql:///from-database-url"
    clean_env.setenv("PYINV_DATABASE_URL", "postgresql:///from-pyinv")
    assert resolve_dsn() == "postgresql:///from-pyinv"
    assert resolve_dsn("dbname=explicit") == "dbname=explicit"


@pytest.mark.parametrize("variable", ["PGHOST", "PGDATABASE", "PGSERVICE"])
def test_a_libpq_variable_naming_a_server_or_database_is_honoured(clean_env: pytest.MonkeyPatch,
                                                                  variable: str) -> None:
    clean_env.setenv(variable, "somewhere")
    assert resolve_dsn() == ""


def test_the_libpq_environment_reaches_the_database_it_names(clean_env: pytest.MonkeyPatch, dsn: str,
                                                             catalogue: Inventory) -> None:
    params = conninfo_to_dict(dsn)
    clean_env.setenv("PGHOST", str(params["host"]))
    clean_env.setenv("PGPORT", str(params["port"]))
    clean_env.setenv("PGDATABASE", str(params["dbname"]))
    clean_env.setenv("PGUSER", str(params["user"]))
    with Inventory.connect() as client:
        assert [item.sku for item in client.items()] == ["A1", "B2"]


def test_pgport_alone_does_not_break_the_embedded_default(embedded: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PGPORT", "1")
    clean_env.setenv("PGUSER", "nobody")
    announced: list[str] = []
    url = resolve_dsn(announce=announced.append)
    params = conninfo_to_dict(url)
    assert params["host"] and params["port"] and params["user"] == "postgres", url
    assert announced == []  # it was running already: nothing to announce
    with Inventory.connect() as client:
        assert client.connection.execute("select current_database()").fetchone() == (server.DATABASE_NAME,)


def test_starting_the_embedded_server_is_announced(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    if os.environ.get("PYINV_TEST_DSN"):
        pytest.skip("the tests run against PYINV_TEST_DSN, not an embedded cluster")
    pgdata = tmp_path / "pgdata"
    settings = {"shared_buffers": "16MB", "fsync": "off", "max_connections": "20"}
    announced: list[str] = []
    try:
        url = server.start(pgdata, settings=settings, announce=announced.append)
        assert len(announced) == 1 and "initialising" in announced[0] and str(pgdata) in announced[0]
        assert conninfo_to_dict(url)["port"]
        server.stop(pgdata)
        server.start(pgdata, announce=announced.append)
        assert len(announced) == 2 and announced[1].startswith("starting the embedded PostgreSQL")
        server.start(pgdata, announce=announced.append)
        assert len(announced) == 2  # already running: silent
    finally:
        server.stop(pgdata)


# -- connect timeout ----------------------------------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A DSN for a TCP listener on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    host, port = listener.getsockname()
    yield f"host={host} port={port} dbname=pyinv user=pyinv sslmode=disable"
    listener.close()


def failing_within(seconds: float, call: object) -> tuple[ConnectionFailed, float]:
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as failure:
        call()  # type: ignore[operator]
    elapsed = time.monotonic() - started
    assert elapsed < seconds, elapsed
    return failure.value, elapsed


def test_a_server_that_never_answers_fails_within_the_connect_timeout(clean_env, black_hole: str) -> None:
    error, elapsed = failing_within(6, lambda: Inventory.connect(black_hole, connect_timeout=2))
    assert elapsed >= 1.5 and error.retryable and error.code == "CONNECTION_FAILED"
    assert "timeout" in error.message
    clean_env.setenv("PYINV_CONNECT_TIMEOUT", "2")
    failing_within(6, lambda: Inventory.connect(black_hole))


def test_the_cli_reports_a_server_that_never_answers_as_a_connection_failure(clean_env, black_hole: str) -> None:
    clean_env.setenv("PYINV_CONNECT_TIMEOUT", "2")
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--dsn", black_hole, "stock"])
    assert time.monotonic() - started < 6
    assert result.exit_code != 0 and "CONNECTION_FAILED" in result.stderr, result.stderr


def test_the_connect_timeout_defaults_to_ten_seconds(clean_env: pytest.MonkeyPatch, dsn: str) -> None:
    from pyinv.connection import connect_kwargs

    assert connect_kwargs(dsn)["connect_timeout"] == 10
    assert "connect_timeout" not in connect_kwargs(dsn + " connect_timeout=3")  # the DSN's own wins
    clean_env.setenv("PGCONNECT_TIMEOUT", "4")
    assert "connect_timeout" not in connect_kwargs(dsn)  # libpq's variable applies
    clean_env.setenv("PYINV_CONNECT_TIMEOUT", "1.5")
    assert connect_kwargs(dsn)["connect_timeout"] == 2
    assert connect_kwargs(dsn, connect_timeout_=7)["connect_timeout"] == 7


@pytest.mark.parametrize(("variable", "value"), [("PYINV_CONNECT_TIMEOUT", "soon"), ("PYINV_CONNECT_TIMEOUT", "-1"),
                                                 ("PYINV_PREPARED_STATEMENTS", "maybe")])
def test_a_setting_pyinv_cannot_use_is_refused_before_connecting(clean_env, dsn: str, variable: str,
                                                                 value: str) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        Inventory.connect(dsn)
    assert variable in refused.value.message and isinstance(refused.value, ValueError)


def test_a_missing_database_is_a_connection_failure(clean_env, dsn: str) -> None:
    with pytest.raises(ConnectionFailed) as failure:
        Inventory.connect(psycopg.conninfo.make_conninfo(dsn, dbname="no_such_database_here"))
    assert "no_such_database_here" in str(failure.value.message) + str(failure.value.detail)


# -- application_name and prepared statements ---------------------------------------------------------------


def application_name(client: Inventory) -> str:
    row = client.connection.execute("select current_setting('application_name')").fetchone()
    assert row is not None
    return str(row[0])


def test_connections_are_named_pyinv_unless_told_otherwise(clean_env: pytest.MonkeyPatch, dsn: str) -> None:
    with Inventory.connect(dsn) as client:
        assert application_name(client) == "pyinv"
    with Inventory.connect(dsn + " application_name=shop-web") as client:
        assert application_name(client) == "shop-web"
    clean_env.setenv("PGAPPNAME", "nightly-job")
    with Inventory.connect(dsn) as client:
        assert application_name(client) == "nightly-job"


def test_prepared_statements_can_be_switched_off(clean_env: pytest.MonkeyPatch, dsn: str,
                                                 catalogue: Inventory) -> None:
    def prepared_after_ten_calls(client: Inventory) -> int:
        for _ in range(10):
            client.stock_levels(sku="A1")
        row = client.connection.execute("select count(*) from pg_prepared_statements").fetchone()
        return int(row[0]) if row else 0

    with Inventory.connect(dsn) as client:
        assert client.connection.prepare_threshold == 5 and prepared_after_ten_calls(client) > 0
    with Inventory.connect(dsn, prepared_statements=False) as client:
        assert client.connection.prepare_threshold is None and prepared_after_ten_calls(client) == 0
    clean_env.setenv("PYINV_PREPARED_STATEMENTS", "off")
    with Inventory.connect(dsn) as client:
        assert prepared_after_ten_calls(client) == 0
    with Inventory.connect(dsn, prepared_statements=True) as client:  # the argument beats the variable
        assert prepared_after_ten_calls(client) > 0


def test_the_package_is_typed() -> None:
    assert (Path(pyinv.__file__).parent / "py.typed").is_file()


def test_a_dsn_libpq_cannot_parse_is_a_configuration_error(clean_env) -> None:
    with pytest.raises(pyinv.InvalidDsn) as refused:
        Inventory.connect("host")
    assert "DSN" in refused.value.message and isinstance(refused.value, ConfigurationError)
