"""Idempotency keys: stored with the effect, replayed with the original result, conflicting when the
arguments differ, not burned by a rejected call."""

from __future__ import annotations

import psycopg
import pytest
from helpers import raises_inventory_error, run_together

import pyinv
from pyinv import Inventory


def test_replay_returns_the_original_and_moves_nothing(catalogue: Inventory, ledger_rows) -> None:
    first = catalogue.reserve_stock("A1", 3, "SO-1", idempotency_key="k-1")
    rows = ledger_rows()
    again = catalogue.reserve_stock("A1", 3, "SO-1", idempotency_key="k-1")
    assert again == first
    assert ledger_rows() == rows
    assert catalogue.stock_levels("A1")[0].reserved == 3


def test_same_key_other_arguments_is_a_conflict(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 3, "SO-1", idempotency_key="k-1")
    with raises_inventory_error(db, pyinv.IdempotencyConflict):
        catalogue.reserve_stock("A1", 4, "SO-1", idempotency_key="k-1")
    with raises_inventory_error(db, pyinv.IdempotencyConflict):
        catalogue.receive_stock("A1", 3, idempotency_key="k-1")


def test_every_mutating_function_replays(catalogue: Inventory, ledger_rows) -> None:
    calls = [
        lambda: catalogue.receive_stock("B2", 2, reference="PO-1", idempotency_key="r"),
        lambda: catalogue.reserve_order("SO-2", [{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 1}],
                                        idempotency_key="o"),
        lambda: catalogue.fulfill_order("SO-2", sku="A1", quantity=1, idempotency_key="f"),
        lambda: catalogue.process_return("SO-2", "A1", 1, "unused", idempotency_key="p"),
        lambda: catalogue.cancel_reservation("SO-2", idempotency_key="c"),
    ]
    for call in calls:
        first = call()
        rows = ledger_rows()
        assert call() == first
        assert ledger_rows() == rows


def test_a_rejected_call_does_not_burn_its_key(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.InsufficientStock):
        catalogue.reserve_stock("A1", 15, "SO-1", idempotency_key="k-9")
    catalogue.receive_stock("A1", 5)
    hold = catalogue.reserve_stock("A1", 15, "SO-1", idempotency_key="k-9")
    assert hold.quantity == 15


def test_concurrent_retries_of_one_key_take_effect_once(catalogue: Inventory, dsn: str, db) -> None:
    def attempt(n: int) -> object:
        with Inventory.connect(dsn) as client:
            return client.reserve_stock("A1", 2, "SO-1", idempotency_key="same")

    results = run_together(12, attempt)
    assert not [result for result in results if isinstance(result, Exception)]
    assert len({result.reservation_id for result in results}) == 1  # type: ignore[attr-defined]
    assert db.execute("select count(*) from inventory.reservations").fetchone()[0] == 1
    assert catalogue.stock_levels("A1")[0].reserved == 2


def test_a_retry_replays_even_after_stock_or_status_changed(catalogue: Inventory, ledger_rows) -> None:
    first = catalogue.reserve_stock("A1", 10, "SO-1", idempotency_key="all-of-it")
    order = catalogue.reserve_order("SO-2", [{"sku": "B2", "quantity": 5}], idempotency_key="all-of-b2")
    receipt = catalogue.receive_stock("B2", 1, idempotency_key="late-receipt")
    catalogue.set_item_status("A1", "on_hold")
    catalogue.set_item_status("B2", "discontinued")
    rows = ledger_rows()
    assert catalogue.reserve_stock("A1", 10, "SO-1", idempotency_key="all-of-it") == first
    assert catalogue.reserve_order("SO-2", [{"sku": "B2", "quantity": 5}], idempotency_key="all-of-b2") == order
    assert catalogue.receive_stock("B2", 1, idempotency_key="late-receipt") == receipt
    assert ledger_rows() == rows


@pytest.mark.parametrize("style", ["iso_8601", "sql_standard", "postgres_verbose"])
def test_a_retry_from_a_connection_with_another_interval_style_replays(catalogue: Inventory, connect,
                                                                      style: str) -> None:
    call = ("select reservation_id from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-I',"
            " expires_in => %s::interval, idempotency_key => 'iv-1')")
    first = connect()
    first.execute("set intervalstyle = 'postgres'")
    original = first.execute(call, ("1 day 02:03:04.5",)).fetchone()
    retry = connect()
    retry.execute(f"set intervalstyle = '{style}'")
    assert retry.execute(call, ("1 day 02:03:04.5",)).fetchone() == original
    with pytest.raises(psycopg.Error) as caught:
        retry.execute(call, ("1 day 02:03:05",))
    assert caught.value.diag.message_hint == "IDEMPOTENCY_CONFLICT"
    assert catalogue.stock_levels("A1")[0].reserved == 1
