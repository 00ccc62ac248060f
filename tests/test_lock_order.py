"""Our calls cannot deadlock each other: every pair of functions that lock more than one row, stepped
through fixed interleavings (no thread race left to chance).

For a pair (first, second) and a stock level R that both touch, a third transaction holds R; the
first call starts and runs until it waits for R (holding whatever it locked before R); then the
second call starts and runs until it finishes or waits; then R is released and both must finish
without a deadlock (40P01). Every pair is tried in both orders and at every shared level. Each call
runs in a transaction that is rolled back right after the call returns, so every interleaving starts
from the same data: item A1 at main and east, with overdue holds in the way at both levels (so lazy
expiry runs), an order holding both levels, a pending count adjustment and stock policies.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from helpers import worker_role
from psycopg.conninfo import make_conninfo

CALLS: dict[str, str] = {
    "reserve_order": """select inventory_api.reserve_order(order_ref => 'LO-NEW', lines =>
                          '[{"sku": "A1", "quantity": 1}, {"sku": "A1", "quantity": 1, "location": "east"}]')""",
    "reserve_stock_east": "select inventory_api.reserve_stock(sku => 'A1', quantity => 5, order_ref => 'LO-R',"
                          " location => 'east')",
    "transfer_main_east": "select inventory_api.transfer_stock(sku => 'A1', quantity => 5, from_location => 'main',"
                          " to_location => 'east')",
    "transfer_east_main": "select inventory_api.transfer_stock(sku => 'A1', quantity => 5, from_location => 'east',"
                          " to_location => 'main')",
    "fulfill_order": "select inventory_api.fulfill_order(order_ref => 'LO-BOTH')",
    "cancel_reservation": "select inventory_api.cancel_reservation(order_ref => 'LO-BOTH')",
    "expire_reservations": "select inventory_api.expire_reservations(batch_size => 100)",
    "write_off_east": "select inventory_api.create_adjustment(sku => 'A1', quantity_delta => -5,"
                      " adjustment_type => 'correction', reason_code => 'correction', location => 'east')",
    "record_count_main": "select inventory_api.record_count(sku => 'A1', counted_quantity => 150)",
    "approve_count_main": "select inventory_api.approve_adjustment(adjustment_id => %(pending)s,"
                          " decision => 'approved')",
    "check_reorder_points": "select inventory_api.check_reorder_points()",
    # requests east before main (against the lock order), one needing lazy expiry, one with a key
    "reserve_many": """select inventory_api.reserve_many(requests =>
                         '[{"order_ref": "LO-M1", "sku": "A1", "quantity": 5, "location": "east"},
                           {"order_ref": "LO-M2", "sku": "A1", "quantity": 1, "idempotency_key": "lo-many"}]')""",
}
LEVELS = {"main": 1, "east": 2}


@pytest.fixture(scope="module")
def world(module_dsn: str) -> Iterator[dict[str, Any]]:
    """The shared data every interleaving starts from (each call is rolled back)."""
    with psycopg.connect(module_dsn, autocommit=True) as db:
        db.execute("""
            select inventory_api.create_item(sku => 'A1', name => 'Widget');
            select inventory_api.create_location(code => 'east', name => 'East');
            select inventory_api.receive_stock(sku => 'A1', quantity => 100);
            select inventory_api.receive_stock(sku => 'A1', quantity => 10, location => 'east');
            select inventory_api.reserve_order(order_ref => 'LO-BOTH', lines =>
                     '[{"sku": "A1", "quantity": 2}, {"sku": "A1", "quantity": 2, "location": "east"}]');
            select inventory_api.reserve_stock(sku => 'A1', quantity => 98, order_ref => 'LO-OLD-MAIN');
            select inventory_api.reserve_stock(sku => 'A1', quantity => 8, order_ref => 'LO-OLD-EAST',
                                               location => 'east');
            update inventory.reservations set expires_at = now() - interval '1 minute'
             where order_ref like 'LO-OLD-%';
            select inventory_api.set_stock_policy(sku => 'A1', location => l, reorder_point => 5, safety_stock => 1)
              from unnest(array['main', 'east']) l;""")
        counter_role = worker_role("pyinv_counter")  # roles are cluster-wide: one per test worker
        db.execute(f"create role {counter_role} login password 'pyinv-test' in role inventory_operator")
        try:
            with psycopg.connect(make_conninfo(module_dsn, user=counter_role, password="pyinv-test"),
                                 autocommit=True) as counter:
                [[pending]] = counter.execute(
                    "select adjustment_id from inventory_api.record_count(sku => 'A1', counted_quantity => 80)")
        finally:
            db.execute(f"drop role {counter_role}")
        levels = db.execute("select l.code, s.location_id from inventory.stock_levels s"
                            " join inventory.locations l using (location_id) order by 1").fetchall()
        assert dict(levels) == LEVELS
        yield {"dsn": module_dsn, "pending": pending}


def waiting_for_a_lock(db: psycopg.Connection[Any], pid: int) -> bool:
    return db.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", (pid,)
                      ).fetchone() == (True,)


class Caller(threading.Thread):
    """Runs one call in a transaction of its own connection, then rolls it back."""

    def __init__(self, dsn: str, statement: str, parameters: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.connection = psycopg.connect(dsn)
        self.connection.execute("set deadlock_timeout = '50ms'")  # report a deadlock fast, if there is one
        self.connection.commit()
        self.pid = self.connection.info.backend_pid
        self.statement, self.parameters = statement, parameters
        self.outcome: Any = None

    def run(self) -> None:
        try:
            self.connection.execute(self.statement, self.parameters).fetchall()
            self.outcome = "ok"
        except psycopg.Error as error:
            self.outcome = error
        finally:
            self.connection.rollback()

    def settled(self, db: psycopg.Connection[Any], seconds: float) -> None:
        """Waits until the call finished or is waiting for a lock."""
        deadline = time.monotonic() + seconds
        while self.is_alive() and not waiting_for_a_lock(db, self.pid) and time.monotonic() < deadline:
            time.sleep(0.005)


def interleave_calls(dsn: str, statements: list[str], parameters: dict[str, Any], item_id: int,
                     location_id: int) -> tuple[Any, Any]:
    """A third transaction holds the stock level; each call runs until it finishes or waits; then the
    level is released and both calls must end. Returns their two outcomes."""
    with psycopg.connect(dsn, autocommit=True) as db, psycopg.connect(dsn) as blocker:
        blocker.execute("select from inventory.stock_levels where item_id = %s and location_id = %s for update",
                        (item_id, location_id))
        callers = [Caller(dsn, statement, parameters) for statement in statements]
        try:
            for caller in callers:
                caller.start()
                caller.settled(db, seconds=3)
            blocker.rollback()
            for caller in callers:
                caller.join(timeout=30)
                assert not caller.is_alive(), f"{caller.statement} hangs"
        finally:
            for caller in callers:
                caller.connection.close()
    return callers[0].outcome, callers[1].outcome


def interleave(world: dict[str, Any], first: str, second: str, level: str) -> tuple[Any, Any]:
    return interleave_calls(world["dsn"], [CALLS[first], CALLS[second]], world, 1, LEVELS[level])


PAIRS = [(first, second, level) for first, second in itertools.permutations(CALLS, 2) for level in LEVELS]


@pytest.mark.parametrize(("first", "second", "level"), PAIRS, ids=["-".join(pair) for pair in PAIRS])
def test_no_two_calls_deadlock(world: dict[str, Any], first: str, second: str, level: str) -> None:
    outcomes = interleave(world, first, second, level)
    deadlocks = [outcome for outcome in outcomes if getattr(outcome, "sqlstate", None) == "40P01"]
    assert deadlocks == [], outcomes
    # Every call here is meant to succeed from the shared data (each sees it unchanged, or one waits for the
    # other's rollback): anything else means the interleaving tested something other than what it says.
    assert outcomes == ("ok", "ok"), outcomes


def test_the_shared_data_is_untouched(world: dict[str, Any]) -> None:
    with psycopg.connect(world["dsn"], autocommit=True) as db:
        assert db.execute("select location_id, on_hand, reserved from inventory.stock_levels order by 1"
                          ).fetchall() == [(1, 100, 100), (2, 10, 10)]
        assert db.execute("select count(*) from inventory.ledger").fetchone() == (6,)  # 2 receipts, 4 holds

