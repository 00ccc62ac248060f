"""The embedded server: started on demand, and its pyinv database created whenever it is missing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import cluster_lock

from pyinv import server


@pytest.fixture
def embedded_pgdata() -> Iterator[Path]:
    """The embedded test cluster's data directory, held alone: these tests drop and recreate its pyinv
    database, which tests of other workers read (the lock serialises them)."""
    if os.environ.get("PYINV_TEST_DSN"):
        pytest.skip("the tests run against PYINV_TEST_DSN, not an embedded cluster")
    import platformdirs

    with cluster_lock("embedded-default-database"):
        yield Path(os.environ.get("PYINV_TEST_DATA_DIR") or platformdirs.user_cache_path("pyinv") / "test-pgdata")


def test_start_recreates_a_dropped_database_on_a_running_server(embedded_pgdata: Path) -> None:
    url = server.start(embedded_pgdata)
    with psycopg.connect(url.replace(f"/{server.DATABASE_NAME}?", "/postgres?"), autocommit=True) as connection:
        connection.execute(f"drop database if exists {server.DATABASE_NAME} with (force)")
    assert server.start(embedded_pgdata) == url
    with psycopg.connect(url) as connection:
        assert connection.execute("select current_database()").fetchone() == (server.DATABASE_NAME,)


def test_status_reports_the_running_server(embedded_pgdata: Path) -> None:
    url = server.start(embedded_pgdata)
    status = server.status(embedded_pgdata)
    assert (status.initialised, status.running, status.url) == (True, True, url)
    assert status.pid and status.pid > 0
