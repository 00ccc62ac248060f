"""Every write function is correct under READ COMMITTED, REPEATABLE READ and SERIALIZABLE.

A client or a pool may choose any isolation level. A check that reads a total must conflict with a
concurrent writer of that total (the loser gets 40001 and, retried, sees the winner's effect), never
rely on a fresh snapshot. Each test races two transactions at one level, step by step: both take
their snapshot, the first writes and commits, then the second runs the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from helpers import worker_role
from psycopg import IsolationLevel

import pyinv
from pyinv import Inventory

LEVELS = [IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE]


@pytest.fixture(params=LEVELS, ids=lambda level: level.name.lower())
def level(request: pytest.FixtureRequest) -> IsolationLevel:
    return request.param


@pytest.fixture
def pair(dsn: str, connect, level: IsolationLevel) -> tuple[Inventory, Inventory]:
    """Two clients whose calls run in explicit transactions at `level`."""
    return at_level(connect(dsn, autocommit=False), level), at_level(connect(dsn, autocommit=False), level)


def at_level(connection: psycopg.Connection[Any], level: IsolationLevel) -> Inventory:
    connection.isolation_level = level
    return Inventory(connection)


def interleave(first: Inventory, second: Inventory, call: Callable[[Inventory], Any]) -> list[Any]:
    """Both transactions take their snapshot; the first calls and commits; then the second calls.
    Returns the two outcomes (a result or the exception); a retryable loser is retried once in a new
    transaction, as a client following the README would."""
    outcomes: list[Any] = []
    for client in (first, second):
        client.connection.execute("select 1")  # the snapshot of REPEATABLE READ / SERIALIZABLE
    for client in (first, second):
        try:
            outcomes.append(call(client))
            client.connection.commit()
        except pyinv.InventoryError as error:
            client.connection.rollback()
            if error.retryable:
                try:
                    outcomes.append(call(client))
                    client.connection.commit()
                except pyinv.InventoryError as again:
                    client.connection.rollback()
                    outcomes.append(again)
            else:
                outcomes.append(error)
    return outcomes


def names(outcomes: list[Any]) -> list[str]:
    return [type(outcome).__name__ for outcome in outcomes]


@pytest.mark.parametrize("restock", [True, False], ids=["restock", "no_restock"])
def test_two_returns_of_one_shipment_count_once(catalogue: Inventory, pair, db, restock: bool) -> None:
    catalogue.reserve_stock("B2", 5, "SO-R")
    catalogue.fulfill_order("SO-R")
    outcomes = interleave(*pair, lambda client: client.process_return("SO-R", "B2", 5, "unwanted", restock=restock))
    assert names(outcomes) == ["StockReturn", "QuantityMismatch"]
    assert catalogue.stock_levels("B2")[0].on_hand == (5 if restock else 0)
    assert db.execute("select sum(quantity) from inventory.returns").fetchone() == (5,)


def test_two_holds_for_the_last_units_hold_them_once(catalogue: Inventory, pair) -> None:
    outcomes = interleave(*pair, lambda client: client.reserve_stock("B2", 5, "SO-LAST"))
    assert names(outcomes) == ["Reservation", "InsufficientStock"]
    assert catalogue.stock_levels("B2")[0].reserved == 5


def test_two_shipments_of_one_order_ship_it_once(catalogue: Inventory, pair) -> None:
    catalogue.reserve_stock("B2", 3, "SO-F")
    outcomes = interleave(*pair, lambda client: client.fulfill_order("SO-F"))
    assert names(outcomes) == ["list", "NoReservation"]
    assert catalogue.stock_levels("B2")[0].on_hand == 2


def test_two_transfers_of_the_last_units_move_them_once(catalogue: Inventory, pair) -> None:
    outcomes = interleave(*pair, lambda client: client.transfer_stock("B2", 5, "main", "east"))
    assert names(outcomes) == ["StockTransfer", "InsufficientStock"]
    assert [row.on_hand for row in catalogue.stock_levels("B2")] == [5, 0]  # east, main


def test_two_write_offs_never_take_on_hand_below_reserved(catalogue: Inventory, pair) -> None:
    catalogue.reserve_stock("B2", 2, "SO-W")
    outcomes = interleave(*pair, lambda client: client.create_adjustment("B2", -3, "damage", "damaged"))
    assert names(outcomes) == ["Adjustment", "InsufficientStock"]
    [row] = catalogue.stock_levels("B2")
    assert (row.on_hand, row.reserved) == (2, 2)


def test_one_idempotency_key_takes_effect_once(catalogue: Inventory, pair) -> None:
    outcomes = interleave(*pair, lambda client: client.reserve_stock("A1", 1, "SO-K", idempotency_key="k-1"))
    assert names(outcomes) == ["Reservation", "Reservation"]
    assert outcomes[0] == outcomes[1]
    assert catalogue.stock_levels("A1")[0].reserved == 1


def test_an_adjustment_is_decided_once(catalogue: Inventory, pair, db, login_dsn, connect) -> None:
    boss_role = worker_role("pyinv_boss")  # roles are cluster-wide: one per test worker
    db.execute(f"create role {boss_role} login password 'pyinv-test' in role inventory_admin")
    boss = Inventory(connect(login_dsn(boss_role)))
    try:
        request = boss.create_adjustment("A1", -8, "write_off", "theft")
        outcomes = interleave(*pair, lambda client: client.approve_adjustment(request.adjustment_id))
        assert names(outcomes) == ["Adjustment", "InvalidState"]
        assert catalogue.stock_levels("A1")[0].on_hand == 2
    finally:
        boss.close()
        db.execute(f"drop owned by {boss_role}; drop role {boss_role}")


def test_one_order_is_fulfilled_or_cancelled_not_both(catalogue: Inventory, pair) -> None:
    catalogue.reserve_stock("B2", 2, "SO-FC")
    first, second = pair
    for client in pair:
        client.connection.execute("select 1")
    first.fulfill_order("SO-FC")
    first.connection.commit()
    with pytest.raises((pyinv.Retryable, pyinv.NoReservation)):
        second.cancel_reservation("SO-FC")
    second.connection.rollback()
    [row] = catalogue.stock_levels("B2")
    assert (row.on_hand, row.reserved) == (3, 0)


def test_the_client_runs_each_call_in_its_own_transaction(dsn: str, catalogue: Inventory, connect,
                                                          level: IsolationLevel) -> None:
    client = at_level(connect(dsn, autocommit=False), level)
    with pytest.raises(pyinv.InsufficientStock):
        client.reserve_stock("A1", 1000, "SO-BIG")
    assert client.reserve_stock("A1", 1, "SO-SMALL").quantity == 1  # no 25P02 after the error
    assert client.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert catalogue.stock_levels("A1")[0].reserved == 1


# -- lots (issue 12) -----------------------------------------------------------------------------------------


@pytest.fixture
def lot_item(catalogue: Inventory) -> str:
    """Lot-tracked YOG at main: lot SOON (3 units, expires in 10 days), lot LATER (5 units, in 40)."""
    catalogue.connection.execute("""
        select inventory_api.create_item(sku => 'YOG', name => 'Yoghurt', track_lots => true);
        select inventory_api.receive_stock(sku => 'YOG', quantity => 3, lot_number => 'SOON',
                                           expires_on => current_date + 10);
        select inventory_api.receive_stock(sku => 'YOG', quantity => 5, lot_number => 'LATER',
                                           expires_on => current_date + 40);""")
    return "YOG"


def lot_quantities(db: psycopg.Connection[Any]) -> list[tuple[str, Any, Any]]:
    return db.execute("select lot_number, on_hand, reserved from inventory_api.lots order by expires_on").fetchall()


def test_two_holds_for_the_last_lot_units_hold_them_once(lot_item: str, pair, db) -> None:
    outcomes = interleave(*pair, lambda client: client.reserve_stock(lot_item, 8, "SO-LOTS"))
    assert names(outcomes) == ["Reservation", "InsufficientStock"]
    assert lot_quantities(db) == [("SOON", 3, 3), ("LATER", 5, 5)]


def test_a_hold_never_takes_a_lot_quarantined_since_its_snapshot(lot_item: str, pair, db) -> None:
    first, second = pair
    for client in pair:
        client.connection.execute("select 1")  # both snapshots show SOON sellable
    first.connection.execute("select inventory_api.set_lot_status(sku => 'YOG', lot_number => 'SOON',"
                             " quarantined => true)")
    first.connection.commit()
    try:
        second.reserve_stock(lot_item, 3, "SO-Q")  # RR / SERIALIZABLE: 40001 (it would take SOON), retried below
    except pyinv.Retryable:
        second.connection.rollback()
        second.reserve_stock(lot_item, 3, "SO-Q")
    second.connection.commit()
    assert db.execute("select lot_number, quantity from inventory_api.lot_allocations").fetchall() == [("LATER", 3)]
    assert lot_quantities(db) == [("SOON", 3, 0), ("LATER", 5, 3)]
