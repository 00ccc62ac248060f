"""Schema migrations with yoyo-migrations, bookkept in the inventory_meta schema.

Concurrent runs are serialised by a lock on a table in inventory_meta held for the whole run (yoyo's
own lock table is polled and can itself race while being created), and the list of migrations to
apply is computed only once the lock is held, so a second run finds nothing to do.

pyinv's SQL scripts (the bundle, upgrade scripts, migration files; see install.py) record what they
applied in inventory_meta.pyinv_migrations, and every run first brings yoyo's records and that table
into step (install.detect() reads both, and dates an install nothing recorded from its schema): a
database installed by a script is migrated from where it stands, and one migrated here can be
upgraded by a script.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict

from . import install
from .install import META_SCHEMA
from .resources import migrations_dir

LOCK_TABLE = "pyinv_migration_lock"


@dataclass(frozen=True)
class MigrationState:
    """One migration: whether it is applied, the release it brings, and how it was applied (migrate,
    bundle, upgrade, sql-file, or schema for an install found in the schema without a record)."""

    id: str
    applied: bool
    version: str | None = None
    recorded_by: str | None = None


class MigrationError(RuntimeError):
    """The database is in a state migrate will not touch; the message says what to do."""


def yoyo_url(dsn: str) -> str:
    """A yoyo URL for the psycopg 3 driver from any libpq DSN (URI or key=value)."""
    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
    dbname = params.pop("dbname", "")
    params["schema"] = META_SCHEMA
    return f"postgresql+psycopg:///{dbname}?{urlencode(params)}"


def _create_lock_table(connection: psycopg.Connection[Any]) -> None:
    """inventory_meta and its lock table, created by the first run. Concurrent first runs race on
    the catalog (duplicate names, "tuple concurrently updated"), so a loser of that race tries again."""
    exists = connection.execute("select to_regclass(%s) is not null and to_regclass(%s) is not null",
                                (f"{META_SCHEMA}.{LOCK_TABLE}", f"{META_SCHEMA}.{install.RECORD_TABLE}")).fetchone()
    if exists == (True,):
        return
    for attempt in range(10):
        try:
            with connection.transaction():
                # yoyo's ?schema= only sets search_path: the schema must exist first, and API roles get nothing.
                connection.execute(f"create schema if not exists {META_SCHEMA}")
                connection.execute(f"revoke all on schema {META_SCHEMA} from public")
                connection.execute(f"create table if not exists {META_SCHEMA}.{LOCK_TABLE} ()")
                connection.execute(f"revoke all on {META_SCHEMA}.{LOCK_TABLE} from public")
                connection.execute(install.RECORD_TABLE_SQL)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateSchema,
                psycopg.errors.InternalError):
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


@contextmanager
def _migration_lock(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """Serialises migration runs with a table lock only the migrating login can take (an advisory
    lock key could be taken by any login, which would hang every later run). Yields an autocommit
    connection of the migrating login (a member of inventory_owner for the run) for bookkeeping."""
    with psycopg.connect(dsn, autocommit=True) as connection, psycopg.connect(dsn, autocommit=True) as owner:
        _create_lock_table(connection)
        with connection.transaction():
            connection.execute(f"lock table {META_SCHEMA}.{LOCK_TABLE} in access exclusive mode")
            owner.execute(install.TAKE_OWNER_SQL)
            try:
                yield owner
            finally:
                owner.execute(install.GIVE_UP_OWNER_SQL)


def _backend_and_migrations(dsn: str):  # type: ignore[no-untyped-def]
    logging.getLogger("yoyo").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="yoyo")
    from yoyo import get_backend, read_migrations

    return get_backend(yoyo_url(dsn)), read_migrations(str(migrations_dir()))


def _reconcile(bookkeeping: psycopg.Connection[Any], backend: Any, migrations: Any) -> install.Installed:
    """Brings yoyo's records and pyinv's (inventory_meta.pyinv_migrations) into step: what a script
    applied is marked applied for yoyo, what yoyo applied (or the schema shows, for an install
    nothing recorded) is recorded. Refuses a schema it cannot date or one newer than this pyinv."""
    installed = install.detect(bookkeeping)
    if installed.schema_present and not installed.applied:
        raise MigrationError(
            "the schema inventory exists but nothing records which pyinv installed it, and its objects match"
            " no release: restore the inventory_meta schema it was installed with, or move that schema away")
    known = {migration.id: migration for migration in install.migrations()}
    newer = sorted(set(installed.applied) - set(known))
    if newer:
        raise MigrationError(f"this database has migrations {', '.join(newer)}, newer than this pyinv"
                             f" ({max(known)}): use the pyinv release that applied them")
    hashes = set(backend.get_applied_migration_hashes())
    in_yoyo = {migration.id for migration in migrations if migration.hash in hashes}
    to_mark = migrations.filter(lambda migration: migration.id in installed.applied and migration.id not in in_yoyo)
    if to_mark:
        backend.mark_migrations(to_mark)
    recorded = {row[0] for row in bookkeeping.execute(
        f"select migration_id from {META_SCHEMA}.{install.RECORD_TABLE}").fetchall()}
    for migration_id, recorded_by in installed.applied.items():
        if migration_id not in recorded:
            bookkeeping.execute(install.record_sql(known[migration_id], recorded_by))
    return installed


def apply(dsn: str, up_to: str | None = None) -> list[str]:
    """Apply every pending migration (or those up to the id `up_to`); returns the ids applied
    (empty when up to date). Migrations a script applied count as applied."""
    with _migration_lock(dsn) as bookkeeping:
        backend, migrations = _backend_and_migrations(dsn)
        try:
            with backend.lock():
                _reconcile(bookkeeping, backend, migrations)
                pending = backend.to_apply(migrations)
                if up_to is not None:
                    if up_to not in {migration.id for migration in migrations}:
                        raise ValueError(f"no migration {up_to!r}")
                    pending = pending.filter(lambda migration: migration.id <= up_to)
                    if up_to != max(migration.id for migration in migrations):
                        # post-apply re-asserts the grants of the current schema, which an older
                        # schema does not have yet.
                        pending.post_apply = []
                backend.apply_migrations(pending)
                known = {migration.id: migration for migration in install.migrations()}
                for migration in pending:
                    bookkeeping.execute(install.record_sql(known[migration.id], install.BY_MIGRATE))
                return [migration.id for migration in pending]
        finally:
            backend.connection.close()


def rollback(dsn: str, count: int = 1) -> list[str]:
    """Roll back the last `count` applied migrations (however they were applied); returns their ids."""
    with _migration_lock(dsn) as bookkeeping:
        backend, migrations = _backend_and_migrations(dsn)
        try:
            with backend.lock():
                _reconcile(bookkeeping, backend, migrations)
                applied = backend.to_rollback(migrations)[:count]
                backend.rollback_migrations(applied)
                rolled_back = [migration.id for migration in applied]
                bookkeeping.execute(f"delete from {META_SCHEMA}.{install.RECORD_TABLE} where migration_id = any (%s)",
                                    (rolled_back,))
                return rolled_back
        finally:
            backend.connection.close()


def status(dsn: str) -> list[MigrationState]:
    """Every shipped migration (and any newer one the database has), applied or not, and how."""
    with _migration_lock(dsn) as bookkeeping:
        installed = install.detect(bookkeeping)
    known = {migration.id: migration.version for migration in install.migrations()}
    ids = sorted(set(known) | set(installed.applied))
    return [MigrationState(migration_id, migration_id in installed.applied, known.get(migration_id),
                           installed.applied.get(migration_id)) for migration_id in ids]
