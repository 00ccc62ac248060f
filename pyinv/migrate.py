"""Schema migrations with yoyo-migrations, bookkept in the inventory_meta schema.

Concurrent runs are serialised by a lock on a table in inventory_meta held for the whole run (yoyo's
own lock table is polled and can itself race while being created), and the list of migrations to
apply is computed only once the lock is held, so a second run finds nothing to do.
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

from .resources import migrations_dir

META_SCHEMA = "inventory_meta"
LOCK_TABLE = "pyinv_migration_lock"


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


# The migrating login creates every object as inventory_owner, so it must be a member while it
# migrates, and must not stay one: a member could disable the append-only triggers and rewrite the
# ledger. Granted for the run, revoked at its end (also when nothing was applied, or it failed).
# USAGE, not MEMBER: on PostgreSQL 16 and later the login that creates a role is granted ADMIN on it
# without INHERIT or SET, which is membership without the right to act as the role. The owner role
# is created here when missing, so that 0001_core (whose check predates that) finds it usable.
_TAKE_OWNER = """
do $owner$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'inventory_owner') then
    create role inventory_owner nologin;
  end if;
  if not pg_catalog.pg_has_role(current_user, 'inventory_owner', 'USAGE') then
    execute pg_catalog.format('grant inventory_owner to %I', current_user);
  end if;
end
$owner$"""
_GIVE_UP_OWNER = """
do $owner$
begin
  if exists (select from pg_catalog.pg_auth_members m
              where m.roleid = (select oid from pg_catalog.pg_roles where rolname = 'inventory_owner')
                and m.member = current_user::regrole) then
    execute pg_catalog.format('revoke inventory_owner from %I', current_user);
  end if;
end
$owner$"""


def _create_lock_table(connection: psycopg.Connection[Any]) -> None:
    """inventory_meta and its lock table, created by the first run. Concurrent first runs race on
    the catalog (duplicate names, "tuple concurrently updated"), so a loser of that race tries again."""
    if connection.execute("select to_regclass(%s)", (f"{META_SCHEMA}.{LOCK_TABLE}",)).fetchone() != (None,):
        return
    for attempt in range(10):
        try:
            with connection.transaction():
                # yoyo's ?schema= only sets search_path: the schema must exist first, and API roles get nothing.
                connection.execute(f"create schema if not exists {META_SCHEMA}")
                connection.execute(f"revoke all on schema {META_SCHEMA} from public")
                connection.execute(f"create table if not exists {META_SCHEMA}.{LOCK_TABLE} ()")
                connection.execute(f"revoke all on {META_SCHEMA}.{LOCK_TABLE} from public")
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateSchema,
                psycopg.errors.InternalError):
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


@contextmanager
def _migration_lock(dsn: str) -> Iterator[None]:
    """Serialises migration runs with a table lock only the migrating login can take (an advisory
    lock key could be taken by any login, which would hang every later run)."""
    with psycopg.connect(dsn, autocommit=True) as connection, psycopg.connect(dsn, autocommit=True) as owner:
        _create_lock_table(connection)
        with connection.transaction():
            connection.execute(f"lock table {META_SCHEMA}.{LOCK_TABLE} in access exclusive mode")
            owner.execute(_TAKE_OWNER)
            try:
                yield
            finally:
                owner.execute(_GIVE_UP_OWNER)


def _backend_and_migrations(dsn: str):  # type: ignore[no-untyped-def]
    logging.getLogger("yoyo").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="yoyo")
    from yoyo import get_backend, read_migrations

    return get_backend(yoyo_url(dsn)), read_migrations(str(migrations_dir()))


def apply(dsn: str, up_to: str | None = None) -> list[str]:
    """Apply every pending migration (or those up to the id `up_to`); returns the ids applied
    (empty when up to date)."""
    with _migration_lock(dsn):
        backend, migrations = _backend_and_migrations(dsn)
        try:
            with backend.lock():
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
