"""The Python client as an application uses it: its own transaction per call whatever the
connection's mode, a pool, the async client, automatic retries of real retryable errors, paging,
and a documented, typed surface."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pyinv
from pyinv import AsyncInventory, ConnectionFailed, InvalidArgument, Inventory, Retryable, RetryPolicy
from pyinv.client import _Operation

Retries = list[tuple[type[pyinv.InventoryError], str, int]]


def recording(retries: Retries, attempts: int = 4) -> RetryPolicy:
    """A fast policy that records every retry it decides: (error class, SQLSTATE, failed attempt)."""
    return RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05,
                       on_retry=lambda error, attempt, _delay: retries.append(
                           (type(error), error.actual_sqlstate, attempt)))


# -- one transaction per call ---------------------------------------------------------------------------------


def test_a_refused_call_leaves_a_pooled_connection_usable(dsn: str, catalogue: Inventory) -> None:
    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:  # non-autocommit connections
        client = Inventory.from_pool(pool)
        with pytest.raises(pyinv.InsufficientStock):
            client.reserve_stock("A1", 1000, "SO-BIG")
        assert client.reserve_stock("A1", 1, "SO-SMALL").quantity == 1
        with pool.connection() as connection:
            assert connection.info.transaction_status == TransactionStatus.IDLE
    assert catalogue.stock_levels("A1")[0].reserved == 1


def test_a_call_joins_the_callers_open_transaction_as_a_savepoint(connect, catalogue: Inventory) -> None:
    connection = connect(autocommit=False)
    client = Inventory(connection)
    client.reserve_stock("A1", 1, "SO-T1")
    connection.execute("select 1")  # the caller's transaction is open
    with pytest.raises(pyinv.InsufficientStock):
        client.reserve_stock("A1", 1000, "SO-BIG")
    assert connection.info.transaction_status == TransactionStatus.INTRANS  # not INERROR: still usable
    client.reserve_stock("A1", 2, "SO-T2")
    assert catalogue.stock_levels("A1")[0].reserved == 1  # SO-T2 waits for the caller's commit
    connection.commit()
    assert catalogue.stock_levels("A1")[0].reserved == 3


def test_an_inventory_needs_a_connection_or_a_pool(connect) -> None:
    with pytest.raises(pyinv.ConfigurationError):
        Inventory()
    with pytest.raises(pyinv.ConfigurationError):
        Inventory.from_pool(None, prepared_statements=True)  # type: ignore[arg-type]


# -- automatic retries of real retryable errors ---------------------------------------------------------------


def wait_until_waiting_for_a_lock(db: psycopg.Connection[Any], pid: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = db.execute("select wait_event_type from pg_stat_activity where pid = %s", (pid,)).fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def serialization_failure(db: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]],
                          client: Inventory, call: Callable[[], object]) -> object:
    """Runs `call` on a REPEATABLE READ client while another transaction holds the stock level of A1
    at main; commits that transaction once the call waits for it. The call's first attempt then fails
    with 40001 (its snapshot predates the other commit)."""
    blocker = connect(autocommit=False)
    blocker.execute("select inventory_api.receive_stock(sku => 'A1', quantity => 1)")
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(call)
        wait_until_waiting_for_a_lock(db, client.connection.info.backend_pid)
        blocker.commit()
        try:
            return future.result(timeout=30)
        except Exception as error:  # the outcome is what the test checks
            return error


@pytest.fixture
def repeatable_read(connect: Callable[..., psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    connection = connect(autocommit=False)
    connection.isolation_level = IsolationLevel.REPEATABLE_READ
    return connection


def test_a_serialization_failure_is_retried_when_the_call_carries_an_idempotency_key(
        db, connect, catalogue: Inventory, repeatable_read: psycopg.Connection[Any]) -> None:
    retries: Retries = []
    client = Inventory(repeatable_read, retry=recording(retries))
    level = serialization_failure(db, connect, client,
                                  lambda: client.receive_stock("A1", 2, idempotency_key="rr-receipt"))
    assert retries == [(Retryable, "40001", 1)]
    assert isinstance(level, pyinv.models.StockLevel) and level.on_hand == 13  # 10 + the blocker's 1 + 2
    assert db.execute("select count(*) from inventory.ledger where idempotency_key = 'rr-receipt'").fetchone() == (1,)


def test_a_write_without_a_key_is_not_retried_by_default(db, connect, catalogue: Inventory,
                                                        repeatable_read: psycopg.Connection[Any]) -> None:
    retries: Retries = []
    client = Inventory(repeatable_read, retry=recording(retries))
    error = serialization_failure(db, connect, client, lambda: client.receive_stock("A1", 2))
    assert isinstance(error, Retryable) and error.actual_sqlstate == "40001" and error.retryable
    assert retries == []
    assert catalogue.stock_levels("A1")[0].on_hand == 11  # only the blocker's unit
    assert repeatable_read.info.transaction_status == TransactionStatus.IDLE


def test_retry_writes_retries_a_write_without_a_key_after_a_certain_rollback(
        db, connect, catalogue: Inventory, repeatable_read: psycopg.Connection[Any]) -> None:
    retries: Retries = []
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, retry_writes=True,
                         on_retry=recording(retries).on_retry)
    client = Inventory(repeatable_read, retry=policy)
    level = serialization_failure(db, connect, client, lambda: client.receive_stock("A1", 2))
    assert retries == [(Retryable, "40001", 1)]
    assert isinstance(level, pyinv.models.StockLevel) and level.on_hand == 13


def test_a_broken_connection_is_reopened_and_a_read_retried(dsn: str, db, catalogue: Inventory) -> None:
    retries: Retries = []
    with Inventory.connect(dsn, retry=recording(retries)) as client:
        first_pid = client.connection.info.backend_pid
        db.execute("select pg_terminate_backend(%s)", (first_pid,))
        assert [row.sku for row in client.stock_levels()] == ["A1", "B2"]
        assert [(cls, attempt) for cls, _, attempt in retries] == [(ConnectionFailed, 1)]
        assert client.connection.info.backend_pid != first_pid
        # A write without a key is not repeated: whether it took effect is unknown to the client.
        db.execute("select pg_terminate_backend(%s)", (client.connection.info.backend_pid,))
        with pytest.raises(ConnectionFailed) as failure:
            client.receive_stock("A1", 1)
        assert failure.value.retryable
        assert len(retries) == 1
        assert client.receive_stock("A1", 1).on_hand == 11  # the next call reconnects


def test_a_client_does_not_reopen_a_connection_it_was_given(connect, db, catalogue: Inventory) -> None:
    retries: Retries = []
    client = Inventory(connect(), retry=recording(retries))
    db.execute("select pg_terminate_backend(%s)", (client.connection.info.backend_pid,))
    with pytest.raises(ConnectionFailed):
        client.stock_levels()
    assert retries == []


def test_a_client_closed_on_purpose_stays_closed(dsn: str, catalogue: Inventory) -> None:
    retries: Retries = []
    client = Inventory.connect(dsn, retry=recording(retries))
    client.close()
    with pytest.raises(ConnectionFailed):
        client.stock_levels()
    assert retries == [] and client.connection.closed


def test_retry_none_never_retries(db, connect, catalogue: Inventory, repeatable_read) -> None:
    client = Inventory(repeatable_read, retry=None)
    error = serialization_failure(db, connect, client, lambda: client.receive_stock("A1", 2, idempotency_key="k-1"))
    assert isinstance(error, Retryable)


@pytest.mark.parametrize("arguments", [{"attempts": 0}, {"base_delay": -1}, {"base_delay": 2, "max_delay": 1}])
def test_a_retry_policy_refuses_settings_it_cannot_follow(arguments: dict[str, Any]) -> None:
    with pytest.raises(pyinv.ConfigurationError):
        RetryPolicy(**arguments)


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_ceiling() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered


# -- the async client and pools -------------------------------------------------------------------------------


def test_the_async_client_has_the_same_methods_and_results(dsn: str, catalogue: Inventory) -> None:
    async def scenario() -> None:
        async with await AsyncInventory.connect(dsn) as client:
            hold = await client.reserve_stock("A1", 2, "SO-A1", idempotency_key="async-1")
            assert isinstance(hold, pyinv.models.Reservation) and hold.quantity == 2
            with pytest.raises(pyinv.InsufficientStock):
                await client.reserve_stock("A1", 1000, "SO-BIG")
            [row] = await client.stock_levels(sku="A1")
            assert (row.on_hand, row.reserved) == (10, 2)
        async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
            pooled = AsyncInventory.from_pool(pool)
            await asyncio.gather(*(pooled.reserve_stock("B2", 1, f"SO-P{n}") for n in range(5)))
            with pytest.raises(pyinv.InsufficientStock):
                await pooled.reserve_stock("B2", 1, "SO-P6")
            assert len(await pooled.reservations(sku="B2")) == 5

    asyncio.run(scenario())
    assert catalogue.stock_levels("B2")[0].available == 0


def test_the_async_client_retries_a_serialization_failure_too(dsn: str, db, connect, catalogue: Inventory) -> None:
    retries: Retries = []

    async def scenario() -> object:
        connection = await psycopg.AsyncConnection.connect(dsn)
        await connection.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        client = AsyncInventory(connection, retry=recording(retries))
        blocker = connect(autocommit=False)
        blocker.execute("select inventory_api.receive_stock(sku => 'A1', quantity => 1)")
        call = asyncio.ensure_future(client.receive_stock("A1", 2, idempotency_key="async-rr"))
        pid = connection.info.backend_pid
        for _ in range(1000):  # at most 20 s
            waiting = db.execute("select wait_event_type from pg_stat_activity where pid = %s", (pid,)).fetchone()
            if waiting == ("Lock",):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the async call never waited for the blocker's lock")
        blocker.commit()
        try:
            return await asyncio.wait_for(call, 30)
        finally:
            await client.close()

    level = asyncio.run(scenario())
    assert retries == [(Retryable, "40001", 1)]
    assert isinstance(level, pyinv.models.StockLevel) and level.on_hand == 13


def test_both_clients_offer_the_same_documented_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Inventory) == public(AsyncInventory)
    for name in sorted(public(Inventory)):
        attribute = inspect.getattr_static(Inventory, name)
        documented = attribute.__doc__ if not isinstance(attribute, property) else attribute.fget.__doc__
        assert documented and documented.strip(), f"Inventory.{name} has no docstring"


def test_no_public_method_returns_any_or_an_untyped_collection() -> None:
    for cls in (Inventory, AsyncInventory):
        for name in dir(cls):
            if name.startswith("_"):
                continue
            attribute = inspect.getattr_static(cls, name)
            if isinstance(attribute, _Operation):
                returns = attribute.returns
            elif callable(attribute) or isinstance(attribute, classmethod):
                returns = str(inspect.signature(getattr(cls, name)).return_annotation)
            else:
                continue
            assert "Any" not in returns and returns not in ("dict", "list", "tuple"), (cls.__name__, name, returns)
            assert not returns.startswith(("dict[", "list[dict")), (cls.__name__, name, returns)


def test_every_exception_class_is_exported() -> None:
    from pyinv import errors

    classes = {obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)}
    assert classes <= {getattr(pyinv, name) for name in pyinv.__all__}
    assert {"DatabaseError", "ConnectionFailed", "ConfigurationError", "VersionConflict"} <= set(pyinv.__all__)


# -- paging ---------------------------------------------------------------------------------------------------


def test_lists_page_with_limit_and_offset(catalogue: Inventory) -> None:
    assert [item.sku for item in catalogue.items(limit=1)] == ["A1"]
    assert [item.sku for item in catalogue.items(limit=1, offset=1)] == ["B2"]
    assert catalogue.items(offset=2) == []
    assert [location.code for location in catalogue.locations(limit=5)] == ["east", "main"]
    catalogue.reserve_stock("A1", 1, "SO-1")
    catalogue.reserve_stock("A1", 1, "SO-2")
    catalogue.reserve_stock("A1", 1, "SO-3")
    # History lists count from the newest and come back oldest first.
    assert [r.order_ref for r in catalogue.reservations(limit=2)] == ["SO-2", "SO-3"]
    assert [r.order_ref for r in catalogue.reservations(limit=1, offset=1)] == ["SO-2"]
    everything = catalogue.movements()
    assert catalogue.movements(limit=2) == everything[-2:]
    assert catalogue.movements(limit=2, offset=1) == everything[-3:-1]


@pytest.mark.parametrize("page", [{"limit": -1}, {"offset": -5}, {"limit": True}, {"limit": 2.5}])
def test_a_bad_page_is_refused_before_anything_is_sent(catalogue: Inventory, page: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as refused:
        catalogue.movements(**page)
    assert refused.value.detail["argument"] in ("limit", "offset")
