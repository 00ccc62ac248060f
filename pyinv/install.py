"""What is installed, and how to get from there to here: the one home of pyinv's install story.

Three ways install pyinv's schema, and each records what it applied in the same table,
``inventory_meta.pyinv_migrations`` (one row per migration: id, release, sha256 of the migration file,
who applied it, when, and how):

- ``pyinv migrate`` (yoyo, bookkept in ``inventory_meta``; see migrate.py, which keeps yoyo's records
  and this table in step, so it recognises what the scripts installed and they what it applied);
- ``pyinv sql bundle``: the whole schema from ``sql/`` as one transaction, for databases where
  migrations cannot run (psql, the Supabase SQL editor). It records every migration as applied;
- ``pyinv sql upgrade --from VERSION`` and ``pyinv sql migrations DIR``: the migration files
  themselves as plain SQL (one script, or one timestamped file per migration for tools such as the
  Supabase CLI), each recording itself.

Every script first finds out what the database has (the same detection as :func:`detect`, run as a
temporary function in the script's session) and refuses, with SQLSTATE 55000 and a hint that names
the command to run instead, when it does not start from the state it was written for: running an
install twice, or an upgrade on another version, changes nothing. Databases installed before this
record existed (pyinv 0.1.0 and 0.2.0 bundles) are recognised from their schema.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import psycopg

from . import __version__
from .resources import migrations_dir, schema_sql, sql_dir

META_SCHEMA = "inventory_meta"
RECORD_TABLE = "pyinv_migrations"
YOYO_TABLE = "_yoyo_migration"

# How a migration came to be applied (inventory_meta.pyinv_migrations.recorded_by).
BY_MIGRATE = "migrate"
BY_BUNDLE = "bundle"
BY_UPGRADE = "upgrade"
BY_SQL_FILE = "sql-file"
BY_SCHEMA = "schema"  # found in the schema itself (inventory.schema_version() or its objects)


class InstallError(ValueError):
    """A request this module cannot turn into a script (unknown version, nothing to do); the message
    says what to do instead."""


@dataclass(frozen=True)
class Migration:
    """One file of migrations/: its id (``0003_hardening``), the pyinv release it brings a database
    to (``0.3.0``, from its first line), and the sha256 of the file."""

    id: str
    version: str
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text()


@dataclass(frozen=True)
class Installed:
    """What a database has: the ids of the migrations applied (in order) and how each was found
    (``recorded_by``: migrate, bundle, upgrade, sql-file, or schema for an install nothing recorded).
    ``schema_present`` without ``applied`` means a schema pyinv cannot date."""

    applied: dict[str, str]
    schema_present: bool

    @property
    def newest(self) -> str | None:
        return max(self.applied) if self.applied else None

    @property
    def version(self) -> str | None:
        """The release of the newest applied migration (None when nothing, or one unknown here)."""
        known = {migration.id: migration.version for migration in migrations()}
        return known.get(self.newest) if self.newest else None


_HEADER = re.compile(r"^-- pyinv (\d+\.\d+\.\d+)\b")


@cache
def _migrations(directory: Path) -> tuple[Migration, ...]:
    found = []
    for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        if path.name.endswith(".rollback.sql"):
            continue
        header = _HEADER.match(path.read_text().split("\n", 1)[0])
        if header is None:
            raise InstallError(f"{path} does not start with '-- pyinv X.Y.Z: ...' (the release it brings)")
        found.append(Migration(path.name.removesuffix(".sql"), header.group(1), path,
                               hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(found)


def migrations() -> list[Migration]:
    """The shipped migrations, oldest first."""
    return list(_migrations(migrations_dir()))


def latest() -> Migration:
    return migrations()[-1]


def resolve(version: str) -> Migration:
    """A migration named by its release (``0.2.0``), id (``0002_hot_path``) or number (``0002``)."""
    for migration in migrations():
        if version in (migration.version, migration.id, migration.id.split("_", 1)[0]):
            return migration
    known = ", ".join(f"{m.version} ({m.id})" for m in migrations())
    raise InstallError(f"pyinv {__version__} knows no release {version!r}; it knows {known}")


def _between(from_version: str | None, to_version: str | None) -> list[Migration]:
    """The migrations that take a database at from_version (None: an empty database) to to_version
    (None: the newest)."""
    every = migrations()
    start = every.index(resolve(from_version)) + 1 if from_version is not None else 0
    end = every.index(resolve(to_version)) + 1 if to_version is not None else len(every)
    if start >= end:
        target = every[end - 1]
        raise InstallError(f"nothing to do: {every[start - 1].version} ({every[start - 1].id}) is not older than "
                           f"{target.version} ({target.id})")
    return every[start:end]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _array(values: Iterable[str]) -> str:
    return "array[" + ", ".join(_literal(value) for value in values) + "]::text[]"


# -- the record --------------------------------------------------------------------------------------------

RECORD_TABLE_SQL = f"""\
create schema if not exists {META_SCHEMA};
revoke all on schema {META_SCHEMA} from public;
create table if not exists {META_SCHEMA}.{RECORD_TABLE} (
  migration_id text primary key,
  version text not null,
  checksum text not null,
  recorded_by text not null check (recorded_by in ('{BY_MIGRATE}', '{BY_BUNDLE}', '{BY_UPGRADE}', '{BY_SQL_FILE}',
                                                   '{BY_SCHEMA}')),
  pyinv_version text not null,
  applied_by text not null default current_user,
  applied_at timestamptz not null default pg_catalog.now()
);
revoke all on {META_SCHEMA}.{RECORD_TABLE} from public;
comment on table {META_SCHEMA}.{RECORD_TABLE} is
  'pyinv: the migrations applied to this database and how (pyinv migrate, the SQL bundle, an upgrade script,'
  ' a migration file); read by pyinv migrate and the SQL scripts.';"""


def record_sql(migration: Migration, recorded_by: str) -> str:
    """The statement that records one migration as applied."""
    return (f"insert into {META_SCHEMA}.{RECORD_TABLE} (migration_id, version, checksum, recorded_by, pyinv_version)\n"
            f"  values ({_literal(migration.id)}, {_literal(migration.version)}, {_literal(migration.checksum)}, "
            f"{_literal(recorded_by)}, {_literal(__version__)});")


# -- detection -----------------------------------------------------------------------------------------------

# Objects that date installs made before anything recorded them (0.1.0 and 0.2.0 bundles): the
# newest migration whose object exists is installed. Catalogue lookups only, which need no privilege
# on pyinv's schemas. From 0.3.0 on every install records itself and inventory.schema_version()
# names its migration, so no later migration needs an entry here.
_SCHEMA_MARKERS = {
    "0003_hardening": "exists (select from pg_catalog.pg_class c where c.relnamespace = v_schema"
                      " and c.relname = 'maintenance_jobs')",
    "0002_hot_path": "exists (select from pg_catalog.pg_proc p where p.pronamespace = v_schema"
                     " and p.proname = 'audit_table')",
    "0001_core": "exists (select from pg_catalog.pg_class c where c.relnamespace = v_schema"
                 " and c.relname = 'ledger') and exists (select from pg_catalog.pg_proc p"
                 " where p.pronamespace = v_schema and p.proname = 'reserve_stock')",
}

DETECT_FUNCTION = "pg_temp.pyinv_installed"


def detect_function_sql() -> str:
    """A temporary function (gone with the session) listing the migrations the database has and how
    each is known: pyinv's record, then yoyo's, then, for an install nothing recorded, the schema
    itself. A schema pyinv cannot date is one row with a null migration_id."""
    ids = [migration.id for migration in migrations()]
    markers = "\n".join(
        f"    {'if' if n == 0 else 'elsif'} {condition} then\n      v_newest := {_literal(migration_id)};"
        for n, (migration_id, condition) in enumerate(_SCHEMA_MARKERS.items()))
    return f"""\
create or replace function {DETECT_FUNCTION}() returns table (migration_id text, recorded_by text)
language plpgsql volatile
set search_path = ''
as $pyinv_installed$
declare
  v_ids text[] := {_array(ids)};
  v_schema oid := (select n.oid from pg_catalog.pg_namespace n where n.nspname = 'inventory');
  v_rows bigint := 0;
  v_count bigint;
  v_newest text;
begin
  if exists (select from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where n.nspname = '{META_SCHEMA}' and c.relname = '{RECORD_TABLE}') then
    return query execute 'select r.migration_id, r.recorded_by from {META_SCHEMA}.{RECORD_TABLE} r';
    get diagnostics v_rows = row_count;
  end if;
  if exists (select from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where n.nspname = '{META_SCHEMA}' and c.relname = '{YOYO_TABLE}') then
    return query execute 'select y.migration_id::text, ''{BY_MIGRATE}''::text from {META_SCHEMA}.{YOYO_TABLE} y'
                         ' where y.migration_id = any ($1)' using v_ids;
    get diagnostics v_count = row_count;
    v_rows := v_rows + v_count;
  end if;
  if v_rows > 0 or v_schema is null then
    return;
  end if;
  -- Nothing recorded, but the schema is there: date it from the schema itself.
  if exists (select from pg_catalog.pg_proc p where p.pronamespace = v_schema and p.proname = 'schema_version')
     and pg_catalog.has_schema_privilege(v_schema, 'USAGE') then
    if pg_catalog.has_function_privilege('inventory.schema_version()', 'EXECUTE') then
      execute 'select v.migration from inventory.schema_version() v' into v_newest;
    end if;
  end if;
  if v_newest is null then
{markers}
    end if;
  end if;
  if v_newest is null then
    -- A schema named inventory that pyinv cannot date.
    return query select null::text, '{BY_SCHEMA}'::text;
  elsif v_newest = any (v_ids) then
    return query select i, '{BY_SCHEMA}'::text from pg_catalog.unnest(v_ids) i where i <= v_newest;
  else
    return query select v_newest, '{BY_SCHEMA}'::text;
  end if;
end
$pyinv_installed$;"""


def detect(connection: psycopg.Connection[Any]) -> Installed:
    """What the database of `connection` has installed. Runs in a transaction of its own that it
    rolls back (the connection must not be inside one), so it leaves nothing behind."""
    with connection.transaction(force_rollback=True):
        connection.execute(detect_function_sql())
        rows = connection.execute(f"select migration_id, recorded_by from {DETECT_FUNCTION}()").fetchall()
        present = connection.execute("select to_regnamespace('inventory') is not null").fetchone()
    return _installed(rows, bool(present and present[0]))


def _installed(rows: Iterable[tuple[str | None, str]], schema_present: bool) -> Installed:
    applied: dict[str, str] = {}
    for migration_id, recorded_by in rows:
        if migration_id is not None:
            applied.setdefault(migration_id, recorded_by)  # pyinv's record first, then yoyo's
    return Installed(dict(sorted(applied.items())), schema_present)


# -- the scripts ---------------------------------------------------------------------------------------------

# The login that runs a script (or pyinv migrate) creates every object as inventory_owner, so it must
# be a member while it does, and must not stay one: a member could disable the append-only triggers
# and rewrite the ledger. USAGE, not MEMBER: on PostgreSQL 16 and later the login that creates a
# role is granted ADMIN on it without INHERIT or SET, which is membership without the right to act as
# the role. The owner role is created here when missing, so that 0001_core (whose check predates
# that) finds it usable.
TAKE_OWNER_SQL = """\
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

GIVE_UP_OWNER_SQL = """\
do $owner$
begin
  if exists (select from pg_catalog.pg_auth_members m
              where m.roleid = (select oid from pg_catalog.pg_roles where rolname = 'inventory_owner')
                and m.member = current_user::regrole) then
    execute pg_catalog.format('revoke inventory_owner from %I', current_user);
  end if;
end
$owner$"""


def post_apply_statements() -> list[str]:
    """What runs after the newest migration, whichever way it was applied: the grants layer of
    sql/ (the 8x files: the authoritative privileges of the current schema) as the owner role, then
    PostgREST is asked to reload its schema cache."""
    return ["set local role inventory_owner;",
            *(path.read_text().strip() for path in sorted(sql_dir().glob("8*.sql"))),
            "reset role;",
            "notify pgrst, 'reload schema';"]


def _guard_sql(expected: Migration | None) -> str:
    """A do block that refuses (SQLSTATE 55000, nothing changed) unless the database is at
    `expected` (None: has no pyinv schema). The hint starts with a code and says what to run."""
    versions = {migration.id: migration.version for migration in migrations()}
    newest = latest()
    if expected is None:
        want, state = "null", "an empty database"
    else:
        want, state = _literal(expected.id), f"pyinv {expected.version} ({expected.id})"
    return f"""\
do $pyinv_guard$
declare
  v_ids text[] := {_array(versions)};
  v_versions text[] := {_array(versions.values())};
  v_expected text := {want};
  v_newest text;
  v_unknown boolean;
  v_version text;
begin
  select max(i.migration_id), pg_catalog.bool_or(i.migration_id is null) into v_newest, v_unknown
    from {DETECT_FUNCTION}() i;
  if v_newest is not distinct from v_expected and not coalesce(v_unknown, false) then
    return;
  end if;
  v_version := coalesce(v_versions[pg_catalog.array_position(v_ids, v_newest)], v_newest);
  if v_newest is null and to_regnamespace('inventory') is not null or v_unknown then
    raise exception 'pyinv: this script is for %, but the schema inventory is there and nothing records its version',
                    {_literal(state)}
      using errcode = '55000',
            hint = 'ALREADY_INSTALLED: restore the inventory_meta schema it was installed with,'
                   ' or see pyinv migrate --status';
  elsif v_newest is null then
    raise exception 'pyinv: this script is for %, but pyinv is not installed in this database', {_literal(state)}
      using errcode = '55000', hint = 'NOT_INSTALLED: install with pyinv sql bundle (or pyinv migrate)';
  elsif v_newest = {_literal(newest.id)} then
    raise exception 'pyinv: this script is for %, but pyinv % is installed, the newest this pyinv knows',
                    {_literal(state)}, v_version || ' (' || v_newest || ')'
      using errcode = '55000', hint = 'ALREADY_INSTALLED: it is up to date, nothing to do';
  elsif v_newest > {_literal(newest.id)} then
    raise exception 'pyinv: this script is for %, but this database has pyinv %, newer than this script',
                    {_literal(state)}, v_newest
      using errcode = '55000', hint = 'ALREADY_INSTALLED: use the pyinv that installed it';
  else
    raise exception 'pyinv: this script is for %, but pyinv % is installed', {_literal(state)},
                    v_version || ' (' || v_newest || ')'
      using errcode = '55000', hint = 'ALREADY_INSTALLED: use pyinv sql upgrade --from ' || v_version;
  end if;
end
$pyinv_guard$;"""


def _script(header: str, expected: Migration | None, body: list[str]) -> str:
    parts = [header, "begin;", detect_function_sql(), _guard_sql(expected), RECORD_TABLE_SQL, *body,
             f"drop function {DETECT_FUNCTION}();", "commit;"]
    return "\n\n".join(part.strip() for part in parts) + "\n"


def bundle() -> str:
    """The whole schema (sql/) as one transaction that records itself as every migration, applied
    by the bundle; refused, changing nothing, on a database that has pyinv already."""
    newest = latest()
    header = (f"-- pyinv {newest.version} ({newest.id}): the whole schema in one transaction, printed by\n"
              "-- `pyinv sql bundle`.\n"
              "-- Refused (SQLSTATE 55000, nothing changed) where pyinv is installed already: its hint names the\n"
              "-- upgrade to run. Recorded in inventory_meta.pyinv_migrations, so `pyinv migrate` recognises it.")
    return _script(header, None, [
        schema_sql(),
        "reset role;",
        *(record_sql(migration, BY_BUNDLE) for migration in migrations()),
    ])


def _migration_body(steps: list[Migration], recorded_by: str, to_newest: bool) -> list[str]:
    body: list[str] = []
    for migration in steps:
        body += [TAKE_OWNER_SQL + ";", f"-- migrations/{migration.path.name}\n{migration.sql}", "reset role;",
                 record_sql(migration, recorded_by)]
    if to_newest:
        body.append("-- the grants of the current schema (post-apply)\n" + "\n\n".join(post_apply_statements()))
    body.append(GIVE_UP_OWNER_SQL + ";")
    return body


def upgrade(from_version: str | None, to_version: str | None = None) -> str:
    """The migrations from `from_version` (None: an empty database) to `to_version` (default: the
    newest) as one transaction that records each; refused, changing nothing, unless the database is
    at from_version."""
    steps = _between(from_version, to_version)
    start = resolve(from_version) if from_version is not None else None
    target = steps[-1]
    origin = f"pyinv {start.version} ({start.id})" if start else "an empty database"
    header = (f"-- pyinv: upgrade from {origin} to {target.version} ({target.id}), printed by `pyinv sql upgrade`.\n"
              f"-- Applies {', '.join(m.id for m in steps)} in one transaction, recorded in\n"
              "-- inventory_meta.pyinv_migrations. Refused (SQLSTATE 55000, nothing changed) unless the database\n"
              f"-- is at {origin}.")
    return _script(header, start, _migration_body(steps, BY_UPGRADE, target == latest()))


MIGRATION_FILE = re.compile(r"^(\d{14})_pyinv_(\d{4}_[a-z0-9_]+)\.sql$")


def migration_files(from_version: str | None = None, to_version: str | None = None,
                    now: datetime | None = None) -> list[tuple[str, str]]:
    """One plain-SQL file per migration (name, text), for migration tools that run files in name
    order (the Supabase CLI: supabase/migrations/<UTC timestamp>_pyinv_<id>.sql). Each is one
    transaction that refuses unless the database is at the previous migration, and records itself."""
    steps = _between(from_version, to_version)
    every = migrations()
    start = now or datetime.now(timezone.utc)
    files = []
    for n, migration in enumerate(steps):
        index = every.index(migration)
        previous = every[index - 1] if index > 0 else None
        name = f"{(start + timedelta(seconds=n)).strftime('%Y%m%d%H%M%S')}_pyinv_{migration.id}.sql"
        header = (f"-- pyinv {migration.version}: migration {migration.id}, written by `pyinv sql migrations`.\n"
                  f"-- Refused (SQLSTATE 55000, nothing changed) unless the database is at "
                  f"{'no pyinv' if previous is None else previous.version + ' (' + previous.id + ')'};\n"
                  "-- recorded in inventory_meta.pyinv_migrations, so `pyinv migrate` recognises it.")
        files.append((name, _script(header, previous,
                                    _migration_body([migration], BY_SQL_FILE, migration == latest()))))
    return files


def migrations_in(directory: Path) -> list[str]:
    """Ids of the pyinv migration files already in `directory`, in order."""
    if not directory.is_dir():
        return []
    found = (MIGRATION_FILE.match(path.name) for path in directory.iterdir())
    return sorted(match.group(2) for match in found if match)


def write_migration_files(directory: Path, from_version: str | None = None, to_version: str | None = None,
                          now: datetime | None = None) -> list[Path]:
    """Writes the files of migration_files() into `directory` (created when missing). Without
    from_version, continues after the newest pyinv file already there; returns the paths written
    (none when the directory has them all)."""
    if from_version is None:
        present = migrations_in(directory)
        if present:
            if present[-1] == latest().id and to_version is None:
                return []
            from_version = present[-1]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in migration_files(from_version, to_version, now):
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written

