"""pyinv behind a real PgBouncer in transaction mode (the Debian `pgbouncer` package), as behind
Supavisor or any transaction pooler: consecutive transactions of one client may run on different
server connections, so nothing may rely on session state, and prepared statements must be off.

Skipped when pgbouncer is not installed, unless PYINV_REQUIRE_PGBOUNCER=1 (CI), which fails instead.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import SERVER, Run
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pyinv
from pyinv import AsyncInventory, Inventory
from pyinv.cli import cli
from pyinv.connection import connect_kwargs

SINGLE = f"pyinv_bouncer_single_{os.getpid()}"
"""A database reached through an alias whose pool has one server connection: every client's
transactions run on that same server connection, one after the other."""


@dataclass(frozen=True)
class Bouncer:
    host: str
    port: int

    def dsn(self, dsn: str) -> str:
        """The same database and login as `dsn`, through the bouncer."""
        return make_conninfo(dsn, host=self.host, port=self.port)

    def single(self, user: str = "postgres") -> str:
        return make_conninfo(host=self.host, port=self.port, dbname=SINGLE, user=user,
                             password=SERVER["password"] or None)


def _pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _socket_owner(host: str) -> str:
    if host.startswith("/") and os.path.isdir(host):
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        if owner != "root":
            return owner
    return "postgres"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {port}: {log.read_text() if log.exists() else ''}")


@pytest.fixture(scope="session")
def bouncer(postgresql_template: Any) -> Iterator[Bouncer]:
    """PgBouncer on 127.0.0.1 (a free port) in transaction mode in front of the test server; every
    database of the server is reachable through it under its own name, plus SINGLE."""
    executable = _pgbouncer()
    if executable is None:
        if os.environ.get("PYINV_REQUIRE_PGBOUNCER") == "1":
            pytest.fail("pgbouncer is not installed (apt-get install pgbouncer) and PYINV_REQUIRE_PGBOUNCER=1")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); set PYINV_REQUIRE_PGBOUNCER=1 to fail")
    maintenance = make_conninfo(host=SERVER["host"], port=SERVER["port"], user=SERVER["user"],
                                password=SERVER["password"] or None, dbname=SERVER["maintenance_dbname"])
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'drop database if exists "{SINGLE}" with (force)')
        connection.execute(f'create database "{SINGLE}" template "{postgresql_template.template_dbname}"')
    # PgBouncer refuses to run as root: it then drops (-u) to the OS user that owns the server's
    # socket directory (the only one besides root who may enter it), else postgres; that user must
    # be able to read its files and write its log.
    directory = Path(tempfile.mkdtemp(prefix="pyinv-pgbouncer-"))
    run_as = ["-u", _socket_owner(str(SERVER["host"]))] if os.geteuid() == 0 else []
    port = _free_port()
    backend = f"host={SERVER['host']} port={SERVER['port']}"
    (directory / "pgbouncer.ini").write_text(f"""\
[databases]
{SINGLE} = {backend} dbname={SINGLE} pool_size=1
* = {backend}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = {directory / "userlist.txt"}
admin_users = {SERVER["user"]}
default_pool_size = 20
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
""")
    # The passwords pgbouncer uses to log in to the server, if the server asks for one.
    users = {SERVER["user"]: SERVER["password"] or "", "pyinv_clerk": "pyinv-test"}
    (directory / "userlist.txt").write_text("".join(f'"{user}" "{password}"\n' for user, password in users.items()))
    if run_as:
        account = pwd.getpwnam(run_as[1])
        for path in (directory, *directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    log = directory / "pgbouncer.log"
    process = subprocess.Popen([executable, *run_as, str(directory / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, log)
        yield Bouncer("127.0.0.1", port)
    finally:
        process.send_signal(signal.SIGINT)  # immediate shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(f'drop database if exists "{SINGLE}" with (force)')


@pytest.fixture
def through(bouncer: Bouncer, dsn: str) -> str:
    """The test database's DSN through the bouncer."""
    return bouncer.dsn(dsn)


# -- the client -----------------------------------------------------------------------------------------------


def test_the_client_works_through_pgbouncer_in_transaction_mode(through: str, catalogue: Inventory) -> None:
    with Inventory.connect(through, prepared_statements=False) as client:
        for n in range(8):  # more calls than psycopg's prepare threshold
            client.reserve_stock("A1", 1, f"SO-{n}", idempotency_key=f"SO-{n}/A1")
        with pytest.raises(pyinv.InsufficientStock):
            client.reserve_stock("A1", 5, "SO-BIG")
        assert client.reserve_stock("A1", 2, "SO-LAST").quantity == 2  # the call after an error works
        assert client.fulfill_order("SO-0")[0].status == "FULFILLED"
        assert [row.order_ref for row in client.reservations(status="ACTIVE", limit=2)] == ["SO-7", "SO-LAST"]
    [row] = catalogue.stock_levels("A1")
    assert (row.on_hand, row.reserved) == (9, 9)


def test_a_non_autocommit_connection_through_pgbouncer_survives_a_refused_call(through: str,
                                                                              catalogue: Inventory) -> None:
    connection = psycopg.connect(through, **connect_kwargs(through, prepared_statements=False, autocommit=False))
    with Inventory(connection) as client:
        for n in range(3):
            with pytest.raises(pyinv.InsufficientStock):
                client.reserve_stock("B2", 100, f"SO-BIG-{n}")
            assert client.reserve_stock("B2", 1, f"SO-{n}").quantity == 1
            assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert catalogue.stock_levels("B2")[0].reserved == 3


@pytest.mark.parametrize("buckets", [1, 4], ids=["plain", "hot_mode"])
def test_concurrent_reservations_through_a_pool_and_pgbouncer_never_oversell(through: str, catalogue: Inventory,
                                                                            buckets: int) -> None:
    catalogue.set_hot_mode("A1", buckets=buckets)  # 4: holds in hot buckets, subtransactions behind the pooler
    outcomes: list[str] = []
    lock = threading.Lock()
    kwargs = connect_kwargs(through, prepared_statements=False, autocommit=False)
    with ConnectionPool(through, min_size=4, max_size=8, kwargs=kwargs, open=True) as pool:
        client = Inventory.from_pool(pool)

        def worker(worker_id: int) -> None:
            for n in range(4):
                try:
                    client.reserve_stock("A1", 1, f"W{worker_id}-{n}", idempotency_key=f"W{worker_id}-{n}")
                    outcome = "reserved"
                except pyinv.InsufficientStock:
                    outcome = "refused"
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=worker, args=(worker_id,)) for worker_id in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert client.verify_inventory() == []
    assert (outcomes.count("reserved"), outcomes.count("refused")) == (10, 22)
    [row] = catalogue.stock_levels("A1")
    assert (row.on_hand, row.reserved, row.available, row.hot_buckets) == (10, 10, 0, buckets)
    in_buckets = catalogue.connection.execute("select count(*) from inventory.reservations where bucket is not null")
    assert (in_buckets.fetchone()[0] > 0) == (buckets > 1)


def test_the_async_client_and_pool_work_through_pgbouncer(through: str, catalogue: Inventory) -> None:
    async def scenario() -> list[object]:
        kwargs = connect_kwargs(through, prepared_statements=False)
        async with AsyncConnectionPool(through, min_size=2, max_size=6, kwargs=kwargs, open=False) as pool:
            client = AsyncInventory.from_pool(pool)
            outcomes = await asyncio.gather(*(client.reserve_stock("B2", 1, f"A-{n}") for n in range(12)),
                                            return_exceptions=True)
            assert await client.verify_inventory() == []
        async with await AsyncInventory.connect(through, prepared_statements=False) as single:
            with pytest.raises(pyinv.InsufficientStock):
                await single.reserve_stock("B2", 1, "A-LATE")
            assert len(await single.reservations(sku="B2")) == 5
        return outcomes

    outcomes = asyncio.run(scenario())
    assert sum(1 for outcome in outcomes if isinstance(outcome, pyinv.models.Reservation)) == 5
    assert all(isinstance(outcome, (pyinv.models.Reservation, pyinv.InsufficientStock)) for outcome in outcomes)
    assert catalogue.stock_levels("B2")[0].available == 0


def test_prepared_statements_must_be_off_behind_a_transaction_pooler(bouncer: Bouncer) -> None:
    """Two clients whose transactions share one server connection: with prepared statements on, the
    second prepares a statement under a name the first already used there and fails; with them
    off, nothing is prepared on the server and both work."""
    with Inventory.connect(bouncer.single(), prepared_statements=True) as first, \
            Inventory.connect(bouncer.single(), prepared_statements=True) as second:
        for _ in range(8):
            first.error_codes()
        with pytest.raises(pyinv.DatabaseError) as failure:
            for _ in range(8):
                second.error_codes()
        assert failure.value.actual_sqlstate in ("42P05", "26000")  # already exists / does not exist
    with Inventory.connect(bouncer.single(), prepared_statements=True) as cleaner:  # same server connection
        cleaner.connection.execute("deallocate all")
    with Inventory.connect(bouncer.single(), prepared_statements=False) as first, \
            Inventory.connect(bouncer.single(), prepared_statements=False) as second:
        for _ in range(8):
            assert first.error_codes() == second.error_codes()
        assert first.connection.execute("select count(*) from pg_prepared_statements").fetchone() == (0,)


def test_the_bouncer_shares_server_connections_between_clients(bouncer: Bouncer) -> None:
    """The premise of these tests: in transaction mode, two clients open at once run their
    transactions on one server connection (in session mode the second would wait for the first)."""
    with psycopg.connect(bouncer.single(), autocommit=True) as first, \
            psycopg.connect(bouncer.single(), autocommit=True) as second:
        assert first.execute("select pg_backend_pid()").fetchone() == second.execute(
            "select pg_backend_pid()").fetchone()


# -- the CLI and the maintenance commands -----------------------------------------------------------------


def test_the_cli_works_through_pgbouncer(run: Run, through: str, catalogue: Inventory,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYINV_PREPARED_STATEMENTS", "off")
    run("receive", "A1", "5", dsn_=through)
    run("reserve", "SO-CLI", "A1", "3", dsn_=through)
    refused = CliRunner().invoke(cli, ["--dsn", through, "reserve", "SO-CLI-2", "A1", "100"])
    assert refused.exit_code != 0 and "INSUFFICIENT_STOCK" in refused.stderr, refused.stderr
    run("fulfill", "SO-CLI", dsn_=through)
    assert "A1" in run("stock", dsn_=through).stdout
    [row] = catalogue.stock_levels("A1")
    assert (row.on_hand, row.reserved) == (12, 0)


def test_maintenance_commands_work_through_pgbouncer(run: Run, through: str, catalogue: Inventory, db,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYINV_PREPARED_STATEMENTS", "off")
    for n in range(6):
        catalogue.reserve_stock("A1", 1, f"SO-X{n}")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 minute'"
               " where order_ref like 'SO-X%'")
    assert "6" in run("expire", "--batch-size", "2", dsn_=through).stdout
    assert catalogue.stock_levels("A1")[0].reserved == 0
    sealed = run("audit", "seal", "--batch-size", "3", dsn_=through).stdout
    assert "sealed" in sealed and "busy" not in sealed
    assert db.execute("select count(*) from inventory.audit_log a where not exists "
                      "(select from inventory.audit_chain c where c.audit_id = a.audit_id)").fetchone() == (0,)
    run("audit", "verify", dsn_=through)
    with Inventory.connect(through, prepared_statements=False) as client:
        assert client.expire_reservations() == 0
        assert client.seal_audit_log() == 0
        anchor = client.audit_anchor()
        assert anchor["format"] == "pyinv-anchor/1"
        assert client.verify_audit_chain(anchor) == [] and client.verify_inventory(anchor) == []
