"""Schema migrations with yoyo-migrations, bookkept in the inventory_meta schema.

Concurrent runs are serialised by a PostgreSQL advisory lock held for the whole run (yoyo's own
lock table is polled and can itself race while being created), and the list of migrations to apply
is computed only once the lock is held, so a second run finds nothing to do.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .resources import migrations_dir

META_SCHEMA = "inventory_meta"
LOCK_KEY = "pyinv.migrate"


@dataclass(frozen=True)
class MigrationState:
    id: str
    applied: bool


def yoyo_url(dsn: str) -> str:
    """A yoyo URL for the psycopg 3 driver from any libpq DSN (URI or key=value)."""
    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
    dbname = params.pop("dbname", "")
    params["schema"] = META_SCHEMA
    return f"postgresql+psycopg:///{dbname}?{urlencode(params)}"


@contextmanager
def _migration_lock(dsn: str) -> Iterator[None]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("select pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
        try:
            # yoyo's ?schema= only sets search_path: the schema must exist first, and API roles get nothing.
            connection.execute(f"create schema if not exists {META_SCHEMA}")
            connection.execute(f"revoke all on schema {META_SCHEMA} from public")
            yield
        finally:
            connection.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))


def _backend_and_migrations(dsn: str):  # type: ignore[no-untyped-def]
    logging.getLogger("yoyo").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="yoyo")
    from yoyo import get_backend, read_migrations

    return get_backend(yoyo_url(dsn)), read_migrations(str(migrations_dir()))


def apply(dsn: str) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    with _migration_lock(dsn):
        backend, migrations = _backend_and_migrations(dsn)
        try:
            with backend.lock():
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
                return [migration.id for migration in pending]
        finally:
            backend.connection.close()


def rollback(dsn: str, count: int = 1) -> list[str]:
    """Roll back the last `count` applied migrations; returns their ids."""
    with _migration_lock(dsn):
        backend, migrations = _backend_and_migrations(dsn)
        try:
            with backend.lock():
                applied = backend.to_rollback(migrations)[:count]
                backend.rollback_migrations(applied)
                return [migration.id for migration in applied]
        finally:
            backend.connection.close()


def status(dsn: str) -> list[MigrationState]:
    with _migration_lock(dsn):
        backend, migrations = _backend_and_migrations(dsn)
        try:
            applied = {migration.id for migration in migrations if backend.is_applied(migration)}
            return [MigrationState(migration.id, migration.id in applied) for migration in migrations]
        finally:
            backend.connection.close()
