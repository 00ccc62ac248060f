"""The embedded server: started on demand, and its pyinv database created whenever it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from pyinv import server

# These tests drop and recreate the embedded server's pyinv database: one worker runs them all.
pytestmark = pytest.mark.xdist_group("embedded-default")


@pytest.fixture
def embedded_pgdata() -> Path:
    if os.environ.get("PYINV_TEST_DSN"):
        pytest.skip("the tests run against PYINV_TEST_DSN, not an embedded cluster")
    import platformdirs

    return Path(os.environ.get("PYINV_TEST_DATA_DIR") or platformdirs.user_cache_path("pyinv") / "test-pgdata")


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
