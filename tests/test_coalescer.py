"""The coalescer (issue 14, item 3): concurrent reserve_stock callers sent as one reserve_many, each
caller getting its own hold, or exactly the exception reserve_stock raises for its request alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pyinv import (
    AsyncInventory,
    CoalescerClosed,
    ConnectionFailed,
    IdempotencyConflict,
    InsufficientStock,
    InvalidQuantity,
    Inventory,
    InventoryError,
    LocationNotFound,
    PermissionDenied,
    ProductNotFound,
    ProductUnavailable,
)
from pyinv.coalescer import AsyncCoalescer, Coalescer
from pyinv.errors import error_from_outcome
from pyinv.models import Reservation
from tests.helpers import run_together


def same_error(got: BaseException, alone: BaseException) -> None:
    """What the coalescer raised is what reserve_stock raised alone: class and every attribute."""
    assert type(got) is type(alone)
    assert isinstance(got, InventoryError) and isinstance(alone, InventoryError)
    assert (got.code, got.actual_sqlstate, got.hint, got.message, got.detail) == (
        alone.code, alone.actual_sqlstate, alone.hint, alone.message, alone.detail)


def raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("the call did not raise")


def reserved(db: psycopg.Connection[Any], sku: str, location: str = "main") -> Decimal:
    return db.execute("select reserved from inventory_api.stock_levels where sku = %s and location = %s",
                      (sku, location)).fetchone()[0]


def in_threads(coalescer: Coalescer, calls: list[dict[str, Any]]) -> list[Any]:
    return run_together(len(calls), lambda n: coalescer.reserve_stock(**calls[n]))


def test_many_threads_each_get_their_own_hold_and_no_more_than_is_available(catalogue: Inventory, connect,
                                                                             db) -> None:
    catalogue.create_item("HOT", "Flash sale")
    catalogue.receive_stock("HOT", 25)
    coalescer = Coalescer(Inventory(connect()))
    callers = 40

    outcomes = run_together(callers, lambda n: coalescer.reserve_stock("HOT", 1, f"T-{n}"))

    holds = [(n, o) for n, o in enumerate(outcomes) if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert len(holds) + len(refused) == callers, [o for o in outcomes if not isinstance(o, Reservation)]
    assert len(holds) == 25
    for n, hold in holds:
        assert (hold.order_ref, hold.sku, hold.location, hold.quantity, hold.status) == (f"T-{n}", "HOT", "main", 1,
                                                                                        "ACTIVE")
    assert len({hold.reservation_id for _, hold in holds}) == 25
    assert reserved(db, "HOT") == 25
    held = db.execute("select order_ref, quantity from inventory.reservations where status = 'ACTIVE'"
                      " and item_id = (select item_id from inventory.items where sku = 'HOT')").fetchall()
    assert sorted(held) == sorted((hold.order_ref, hold.quantity) for _, hold in holds)
    stats = coalescer.stats
    assert stats.requests == callers and stats.batches < stats.requests and stats.largest_batch > 1
    assert sum(size * count for size, count in stats.batch_sizes.items()) == callers
    assert stats.direct == stats.resent == stats.failed_batches == 0


def test_a_pool_with_two_batches_in_flight_never_oversells(catalogue: Inventory, dsn: str, db) -> None:
    from psycopg_pool import ConnectionPool

    catalogue.create_item("HOT", "Flash sale")
    catalogue.receive_stock("HOT", 30)
    with ConnectionPool(dsn, min_size=2, max_size=4, kwargs={"autocommit": True}) as pool:
        coalescer = Coalescer(Inventory.from_pool(pool), max_batch=8, max_in_flight=2)
        outcomes = run_together(48, lambda n: coalescer.reserve_stock("HOT", 1, f"P-{n}"))
    assert sum(isinstance(o, Reservation) for o in outcomes) == 30
    assert sum(isinstance(o, InsufficientStock) for o in outcomes) == 18
    assert reserved(db, "HOT") == 30
    assert coalescer.stats.largest_batch <= 8 and coalescer.stats.batches < 48


@pytest.fixture
def shop(catalogue: Inventory, db) -> Inventory:
    """The catalogue plus C3 on hold and lot-tracked LOT-1 with 5 units at main."""
    catalogue.create_item("C3", "Paused")
    catalogue.receive_stock("C3", 3)
    catalogue.set_item_status("C3", "on_hold")
    db.execute("select inventory_api.create_item('LOT-1', 'Lot-tracked', track_lots => true)")
    db.execute("select inventory_api.receive_stock('LOT-1', 5, lot_number => 'L1')")
    return catalogue


def one_batch(inventory: Inventory) -> Coalescer:
    """A coalescer that waits (up to 2 s) for company: concurrent callers land in one batch."""
    return Coalescer(inventory, max_wait_ms=2000, flush_when_idle=False)


def test_each_caller_of_a_mixed_batch_gets_what_reserve_stock_gives_alone(shop: Inventory, connect, db) -> None:
    calls = [
        {"sku": "A1", "quantity": 3, "order_ref": "SO-1"},
        {"sku": "NOPE", "quantity": 1, "order_ref": "SO-2"},
        {"sku": "A1", "quantity": 0, "order_ref": "SO-3"},
        {"sku": "A1", "quantity": Decimal("1.00001"), "order_ref": "SO-4"},
        {"sku": "B2", "quantity": 6, "order_ref": "SO-5"},
        {"sku": "A1", "quantity": 1, "order_ref": "SO-6", "location": "nowhere"},
        {"sku": "C3", "quantity": 1, "order_ref": "SO-7"},
        {"sku": "A1", "quantity": 2.5, "order_ref": "SO-8", "expires_in": timedelta(hours=2)},
        {"sku": "A1", "quantity": 1, "order_ref": "", "location": "east"},
        {"sku": "B2", "quantity": 1, "order_ref": "SO-10", "location": "east"},
        {"sku": "A1", "quantity": 1, "order_ref": "SO-11", "expires_in": timedelta(seconds=-5)},
        {"sku": "A1", "quantity": 1, "order_ref": "x" * 201},
        {"sku": "A1", "quantity": 10**13, "order_ref": "SO-13"},
        {"sku": "A1", "quantity": 1, "order_ref": "SO-14", "idempotency_key": "k" * 201},
        {"sku": "A1", "quantity": -1, "order_ref": "SO-15", "location": "nowhere"},
    ]
    coalescer = one_batch(Inventory(connect()))
    outcomes = in_threads(coalescer, calls)

    assert coalescer.stats.batch_sizes == {len(calls): 1}
    assert isinstance(outcomes[0], Reservation) and outcomes[0].quantity == 3
    assert isinstance(outcomes[7], Reservation) and outcomes[7].quantity == Decimal("2.5")
    assert outcomes[7].expires_at is not None and outcomes[7].reference_type == "order"
    assert [type(o) for o in outcomes[1:7]] == [ProductNotFound, InvalidQuantity, InvalidQuantity,
                                                InsufficientStock, LocationNotFound, ProductUnavailable]
    # reserve_stock alone, now, raises the same (whatever the order the callers joined the batch in).
    for n in (1, 2, 3, 4, 5, 6, *range(8, len(calls))):
        alone = raised(lambda call=calls[n]: shop.reserve_stock(**call))
        same_error(outcomes[n], alone)
    assert reserved(db, "A1") == Decimal("5.5") and reserved(db, "B2") == 0


def test_error_from_outcome_builds_what_translate_builds(shop: Inventory) -> None:
    alone = raised(lambda: shop.reserve_stock("B2", 9, "SO-9"))
    assert isinstance(alone, InsufficientStock)
    same_error(error_from_outcome(alone.actual_sqlstate, alone.hint, alone.message, alone.detail), alone)
    # Outside the catalogue: by SQLSTATE, as translate() does; a DETAIL that is not an object is kept.
    assert type(error_from_outcome("42501", "", "no", None)) is PermissionDenied
    other = error_from_outcome("XX000", None, "boom", [1])
    assert (other.code, other.actual_sqlstate, other.detail) == ("DATABASE_ERROR", "XX000", {"detail": [1]})


def test_an_idempotency_key_replays_through_the_coalescer(shop: Inventory, connect, db) -> None:
    coalescer = Coalescer(Inventory(connect()))
    first = coalescer.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1", expires_in=timedelta(hours=1))
    again = coalescer.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1", expires_in=timedelta(hours=1))
    assert again == first
    assert shop.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1", expires_in=timedelta(hours=1)) == first
    direct = shop.reserve_stock("B2", 1, "SO-2", idempotency_key="k-2")
    assert coalescer.reserve_stock("B2", 1, "SO-2", idempotency_key="k-2") == direct
    # The same key twice in one batch: one hold, both callers get it.
    batch = one_batch(Inventory(connect()))
    twice = in_threads(batch, [{"sku": "A1", "quantity": 1, "order_ref": "SO-3", "idempotency_key": "k-3"}] * 2)
    assert batch.stats.batch_sizes == {2: 1} and twice[0] == twice[1]
    # The hold read from reserve_many's JSON equals the typed row reserve_stock returns (replaying it).
    assert shop.reserve_stock("A1", 1, "SO-3", idempotency_key="k-3") == twice[0]
    assert isinstance(twice[0].quantity, Decimal) and twice[0].created_at.tzinfo is not None
    assert reserved(db, "A1") == 3 and reserved(db, "B2") == 1
    conflict = raised(lambda: coalescer.reserve_stock("A1", 5, "SO-1", idempotency_key="k-1"))
    same_error(conflict, raised(lambda: shop.reserve_stock("A1", 5, "SO-1", idempotency_key="k-1")))
    assert isinstance(conflict, IdempotencyConflict)


def test_a_lot_tracked_item_gets_what_reserve_stock_gives(shop: Inventory, connect, db) -> None:
    coalescer = one_batch(Inventory(connect()))
    calls = [{"sku": "LOT-1", "quantity": 2, "order_ref": "SO-L"}, {"sku": "A1", "quantity": 1, "order_ref": "SO-A"}]
    hold, plain = in_threads(coalescer, calls)
    assert isinstance(hold, Reservation) and (hold.order_ref, hold.sku, hold.quantity) == ("SO-L", "LOT-1", 2)
    assert isinstance(plain, Reservation) and plain.order_ref == "SO-A"
    assert coalescer.stats.resent == 1 and coalescer.stats.batch_sizes == {2: 1}
    assert db.execute("select lot_number, quantity from inventory_api.lot_allocations where order_ref = 'SO-L'"
                      ).fetchall() == [("L1", 2)]
    calls = [{"sku": "LOT-1", "quantity": 9, "order_ref": "SO-X"}, {"sku": "A1", "quantity": 1, "order_ref": "SO-B"}]
    short, _ = in_threads(coalescer, calls)
    same_error(short, raised(lambda: shop.reserve_stock("LOT-1", 9, "SO-X")))
    assert coalescer.stats.resent == 2
    assert coalescer.reserve_stock("LOT-1", 1, "SO-Y").sku == "LOT-1"  # alone: reserve_stock at once
    assert coalescer.stats.resent == 2 and coalescer.stats.batch_sizes == {2: 2, 1: 1}
    assert isinstance(short, InsufficientStock)


def test_calls_reserve_many_cannot_express_go_to_reserve_stock(shop: Inventory, connect, db) -> None:
    coalescer = Coalescer(Inventory(connect()))
    sample = coalescer.reserve_stock("A1", 1, "WO-1", reference_type="sample", notes="for the fair")
    assert (sample.reference_type, sample.notes) == ("sample", "for the fair")
    shelf = coalescer.reserve_stock("LOT-1", 1, "SO-S", min_shelf_life=timedelta(days=0))
    assert shelf.sku == "LOT-1"
    as_text = coalescer.reserve_stock("A1", "1.5", "SO-T", expires_in="30 minutes")
    assert as_text.quantity == Decimal("1.5")
    assert coalescer.stats.direct == 3 and coalescer.stats.batches == 0
    with pytest.raises(TypeError):
        coalescer.reserve_stock("A1", 1, "SO-U", colour="red")
    assert coalescer.reserve_stock("A1", 1, "SO-V", reference_type=None).order_ref == "SO-V"
    assert coalescer.stats.batches == 1
    assert reserved(db, "A1") == Decimal("3.5")


def test_a_whole_batch_refused_reaches_every_caller(shop: Inventory, connect, login_dsn) -> None:
    attacker = Inventory(connect(conninfo=login_dsn("pyinv_attacker")))
    alone = raised(lambda: attacker.reserve_stock("A1", 1, "SO-1"))
    coalescer = one_batch(attacker)
    outcomes = in_threads(coalescer, [{"sku": "A1", "quantity": 1, "order_ref": f"SO-{n}"} for n in range(3)])
    assert coalescer.stats.failed_batches == 1
    for outcome in outcomes:
        assert isinstance(outcome, PermissionDenied) and type(outcome) is type(alone)
        assert outcome.code == alone.code == "PERMISSION_DENIED"
    assert len({id(o) for o in outcomes}) == 3  # each caller raises its own copy


def test_a_broken_connection_resends_keyed_requests_and_fails_the_others(shop: Inventory, dsn: str, db) -> None:
    inventory = Inventory.connect(dsn)
    try:
        coalescer = one_batch(inventory)
        db.execute("select pg_terminate_backend(%s)", (inventory.connection.info.backend_pid,))
        outcomes = in_threads(coalescer, [{"sku": "A1", "quantity": 1, "order_ref": "SO-K", "idempotency_key": "k"},
                                          {"sku": "A1", "quantity": 1, "order_ref": "SO-N"}])
        keyed, unkeyed = outcomes
        assert isinstance(keyed, Reservation) and keyed.order_ref == "SO-K"
        assert isinstance(unkeyed, ConnectionFailed)  # outcome unknown, as for reserve_stock without a key
        assert coalescer.stats.batch_sizes == {2: 1, 1: 1} and coalescer.stats.failed_batches == 1
        db.execute("select pg_terminate_backend(%s)", (inventory.connection.info.backend_pid,))
        assert isinstance(raised(lambda: inventory.reserve_stock("A1", 1, "SO-N")), ConnectionFailed)
        assert reserved(db, "A1") == 1
    finally:
        inventory.close()


def test_close_sends_what_is_queued_then_refuses_new_calls(shop: Inventory, connect) -> None:
    coalescer = Coalescer(Inventory(connect()), max_wait_ms=60_000, flush_when_idle=False)
    got: list[Any] = []
    caller = threading.Thread(target=lambda: got.append(coalescer.reserve_stock("A1", 1, "SO-Q")))
    caller.start()
    while not coalescer._pending:  # queued, waiting a minute for company
        time.sleep(0.005)
    started = time.monotonic()
    coalescer.close()
    caller.join()
    assert time.monotonic() - started < 10
    assert isinstance(got[0], Reservation) and got[0].order_ref == "SO-Q"
    with pytest.raises(CoalescerClosed):
        coalescer.reserve_stock("A1", 1, "SO-R")
    with pytest.raises(CoalescerClosed):
        coalescer.reserve_stock("A1", 1, "SO-R", notes="direct")
    coalescer.close()  # again: nothing to do
    with Coalescer(Inventory(connect())) as scoped:
        scoped.reserve_stock("A1", 1, "SO-S")
    assert scoped.closed


def test_asyncio_callers_gathered_get_their_own_holds(catalogue: Inventory, dsn: str, db) -> None:
    catalogue.create_item("HOT", "Flash sale")
    catalogue.receive_stock("HOT", 30)

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with await AsyncInventory.connect(dsn) as inventory:
            async with AsyncCoalescer(inventory) as coalescer:
                seen["outcomes"] = await asyncio.gather(
                    *(coalescer.reserve_stock("HOT", 1, f"A-{n}") for n in range(50)), return_exceptions=True)
                seen["direct"] = await coalescer.reserve_stock("A1", 1, "A-D", notes="direct")
            seen["stats"] = coalescer.stats
            with pytest.raises(CoalescerClosed):
                await coalescer.reserve_stock("HOT", 1, "late")
            try:
                await inventory.reserve_stock("HOT", 1, "A-49")
            except InventoryError as error:
                seen["alone"] = error
            # close() sends what is queued at once, however long the coalescer would wait.
            waiting = AsyncCoalescer(inventory, max_wait_ms=60_000, flush_when_idle=False)
            queued = asyncio.create_task(waiting.reserve_stock("A1", 1, "A-Q"))
            while not waiting._pending:
                await asyncio.sleep(0.001)
            started = time.monotonic()
            await waiting.close()
            seen["queued"], seen["close_took"] = await queued, time.monotonic() - started
        return seen

    seen = asyncio.run(main())
    outcomes = seen["outcomes"]
    holds = [(n, o) for n, o in enumerate(outcomes) if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert len(holds) == 30 and len(refused) == 20
    assert all(hold.order_ref == f"A-{n}" and hold.quantity == 1 for n, hold in holds)
    same_error(refused[-1], seen["alone"])
    assert reserved(db, "HOT") == 30
    stats = seen["stats"]
    assert stats.batch_sizes == {50: 1}  # one gather: one batch, sent without waiting
    assert stats.batches < stats.requests and stats.requests == 50 and stats.direct == 1
    assert seen["direct"].notes == "direct"
    assert seen["queued"].order_ref == "A-Q" and seen["close_took"] < 10


def test_asyncio_a_whole_batch_refused_reaches_every_caller(shop: Inventory, login_dsn) -> None:
    async def main() -> tuple[list[Any], Any]:
        async with await AsyncInventory.connect(login_dsn("pyinv_attacker")) as inventory:
            coalescer = AsyncCoalescer(inventory)
            outcomes = await asyncio.gather(*(coalescer.reserve_stock("A1", 1, f"SO-{n}") for n in range(3)),
                                            return_exceptions=True)
            await coalescer.close()
            return outcomes, coalescer.stats

    outcomes, stats = asyncio.run(main())
    assert stats.batch_sizes == {3: 1} and stats.failed_batches == 1
    assert all(type(o) is PermissionDenied and o.code == "PERMISSION_DENIED" for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3
