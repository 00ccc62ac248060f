"""Shared assertions for tests."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyinv import install
from pyinv.resources import migrations_dir

MIGRATIONS = sorted(path.name.removesuffix(".sql") for path in migrations_dir().glob("[0-9]*.sql")
                    if not path.name.endswith(".rollback.sql"))
"""Ids of the shipped migrations, in order."""
VERSIONS = [migration.version for migration in install.migrations()]
"""The release each of MIGRATIONS brings a database to."""


def worker_role(name: str) -> str:
    """A login role name of this pytest-xdist worker (roles are cluster-wide; test databases are not)."""
    return f"{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@contextmanager
def cluster_lock(name: str) -> Iterator[None]:
    """Serialises the pytest-xdist workers on cluster-wide work: starting the embedded cluster, building
    the template databases (the migrations and the test roles create roles, which are cluster-wide),
    and the tests that drop and recreate the embedded server's own pyinv database."""
    path = Path(tempfile.gettempdir()) / f"pyinv-test-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def snapshot(db: psycopg.Connection[Any]) -> dict[str, Any]:
    """Everything a failed call must leave untouched."""
    return {
        "ledger": db.execute("select count(*), max(movement_id) from inventory.ledger").fetchone(),
        "levels": db.execute(
            "select item_id, location_id, on_hand, reserved, version from inventory.stock_levels order by 1, 2"
        ).fetchall(),
        "hot_buckets": db.execute(
            "select item_id, location_id, bucket, parked, held, version from inventory.hot_buckets order by 1, 2, 3"
        ).fetchall(),
        "reservations": db.execute(
            "select reservation_id, status, quantity_fulfilled from inventory.reservations order by 1"
        ).fetchall(),
        "returns": db.execute("select count(*) from inventory.returns").fetchone(),
        "keys": db.execute("select count(*) from inventory.idempotency_keys").fetchone(),
        "items": db.execute("select sku, status, unit_cost from inventory.items order by 1").fetchall(),
        "locations": db.execute("select code, name from inventory.locations order by 1").fetchall(),
        "events": db.execute("select count(*), max(event_id) from inventory.events").fetchone(),
        "event_consumers": db.execute(
            "select consumer, acknowledged_id from inventory.event_consumers order by 1").fetchall(),
    }


@contextmanager
def raises_db_error(db: psycopg.Connection[Any], sqlstate: str, hint: str):
    """Expect a psycopg error with this SQLSTATE and HINT token, a JSON DETAIL, and no change at all."""
    before = snapshot(db)
    with pytest.raises(psycopg.Error) as caught:
        yield caught
    error = caught.value
    assert (error.sqlstate, error.diag.message_hint) == (sqlstate, hint), error.diag.message_primary
    assert isinstance(json.loads(error.diag.message_detail or "null"), dict)
    assert snapshot(db) == before


@contextmanager
def raises_inventory_error(db: psycopg.Connection[Any], exception: type[Exception]):
    """Expect a pyinv exception (checked by SQLSTATE and hint through its class) and no change at all."""
    before = snapshot(db)
    with pytest.raises(exception) as caught:
        yield caught
    error = caught.value
    assert error.actual_sqlstate == error.sqlstate  # type: ignore[attr-defined]
    assert error.hint == error.code  # type: ignore[attr-defined]
    assert snapshot(db) == before


def run_together(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs work(n) for n in range(workers) on threads released at the same instant (a barrier);
    returns each result, or the exception it raised, in order."""
    barrier = threading.Barrier(workers)
    outcomes: list[Any] = [None] * workers

    def run(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = work(n)
        except Exception as error:
            outcomes[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def make_catalogue(inv: Any) -> None:
    """Two items (A1 with 10 on hand at main, B2 with 5) and a second location, east."""
    inv.create_item("A1", "Widget")
    inv.create_item("B2", "Gadget")
    inv.create_location("east", "East store")
    inv.receive_stock("A1", 10)
    inv.receive_stock("B2", 5)


class PostgREST:
    """Calls functions the way PostgREST does, for one database role and JWT subject."""

    def __init__(self, connection: psycopg.Connection[Any], role: str, sub: str | None) -> None:
        self.connection = connection
        self.role = role
        self.sub = sub

    def _begin(self, path: str, read_only: bool) -> None:
        claims = {"role": self.role} | ({"sub": self.sub} if self.sub else {})
        self.connection.execute("start transaction read only" if read_only else "start transaction read write")
        self.connection.execute(
            "select set_config('search_path', 'inventory_api', true), set_config('role', %s, true),"
            " set_config('request.jwt.claims', %s, true), set_config('request.method', 'POST', true),"
            " set_config('request.path', %s, true), set_config('request.headers', %s, true)",
            (self.role, json.dumps(claims), path, json.dumps({"x-request-id": f"req-{path}"})))

    def rpc(self, function: str, read_only: bool = False, **arguments: Any) -> list[tuple[Any, ...]]:
        self._begin(f"/rpc/{function}", read_only)
        query = sql.SQL("select * from inventory_api.{}({})").format(
            sql.Identifier(function),
            sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in arguments))
        try:
            rows = self.connection.execute(query, arguments).fetchall()
        except psycopg.Error:
            self.connection.execute("rollback")
            raise
        self.connection.execute("commit")
        return rows

    def select(self, view: str) -> list[tuple[Any, ...]]:
        self._begin(f"/{view}", read_only=True)
        try:
            return self.connection.execute(
                sql.SQL("select * from inventory_api.{}").format(sql.Identifier(view))).fetchall()
        finally:
            self.connection.execute("rollback")

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """A read with filters, as PostgREST turns GET /view?... into one (any SQL here, for brevity)."""
        self._begin("/query", read_only=True)
        try:
            return self.connection.execute(statement).fetchall()
        finally:
            self.connection.execute("rollback")

    def execute(self, statement: str) -> None:
        self._begin("/raw", read_only=False)
        try:
            self.connection.execute(statement)
        finally:
            self.connection.execute("rollback")
