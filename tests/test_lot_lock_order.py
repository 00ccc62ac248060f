"""Calls on lot-tracked items cannot deadlock each other either: the lock-order test of
tests/test_lock_order.py (a third transaction holds a stock level, the first call runs until it waits
for it, the second runs until it finishes or waits, then the level is released) over the calls that
lock lots, levels and holds together: a lot's status change and the expiry write-off (a lot's row, then
its levels, then their holds), FEFO transfers and orders over two levels, shipping, cancelling,
counting and adjusting a lot.

The shared data: lot-tracked LOT-A at main and east, each level with a lot that expired after holds
were allocated from it (OLD), a sellable lot (GOOD) and a later one (LATER), and an order holding
both levels.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from test_lock_order import interleave_calls

CALLS: dict[str, str] = {
    "reserve_order": """select inventory_api.reserve_order(order_ref => 'LL-NEW', lines =>
                          '[{"sku": "LOT-A", "quantity": 2}, {"sku": "LOT-A", "quantity": 2, "location": "east"}]')""",
    "transfer_main_east_fefo": "select inventory_api.transfer_stock(sku => 'LOT-A', quantity => 3,"
                               " from_location => 'main', to_location => 'east')",
    "transfer_east_main_lot": "select inventory_api.transfer_stock(sku => 'LOT-A', quantity => 3,"
                              " from_location => 'east', to_location => 'main', lot_number => 'LATER')",
    "fulfill_order": "select inventory_api.fulfill_order(order_ref => 'LL-BOTH')",
    "cancel_reservation": "select inventory_api.cancel_reservation(order_ref => 'LL-BOTH')",
    "quarantine_good": "select inventory_api.set_lot_status(sku => 'LOT-A', lot_number => 'GOOD',"
                       " quarantined => true)",
    "expire_inventory_lots": "select inventory_api.expire_inventory_lots()",
    "count_main_good": "select inventory_api.record_count(sku => 'LOT-A', counted_quantity => 12,"
                       " lot_number => 'GOOD')",
    "adjust_east_later": "select inventory_api.create_adjustment(sku => 'LOT-A', quantity_delta => -1,"
                         " adjustment_type => 'correction', reason_code => 'correction', location => 'east',"
                         " lot_number => 'LATER')",
}


@pytest.fixture(scope="module")
def world(module_dsn: str) -> Iterator[dict[str, Any]]:
    with psycopg.connect(module_dsn, autocommit=True) as db:
        db.execute("""
            select inventory_api.create_item(sku => 'LOT-A', name => 'Yoghurt', track_lots => true);
            select inventory_api.create_location(code => 'east', name => 'East');
            select inventory_api.receive_stock(sku => 'LOT-A', quantity => 10, location => l, lot_number => 'OLD',
                                               expires_on => current_date + 1),
                   inventory_api.receive_stock(sku => 'LOT-A', quantity => 10, location => l, lot_number => 'GOOD',
                                               expires_on => current_date + 30),
                   inventory_api.receive_stock(sku => 'LOT-A', quantity => 10, location => l, lot_number => 'LATER',
                                               expires_on => current_date + 60)
              from unnest(array['main', 'east']) l;
            select inventory_api.reserve_order(order_ref => 'LL-BOTH', lines =>
                     '[{"sku": "LOT-A", "quantity": 4}, {"sku": "LOT-A", "quantity": 4, "location": "east"}]');
            select inventory_api.reserve_stock(sku => 'LOT-A', quantity => 8, order_ref => 'LL-GOOD-' || l,
                                               location => l)
              from unnest(array['main', 'east']) l;
            -- OLD now lies in the past, with holds allocated from it (the write-off moves them).
            update inventory.lots set expires_on = current_date - 1 where lot_number = 'OLD';""")
        levels = dict(db.execute("select l.code, s.location_id from inventory.stock_levels s"
                                 " join inventory.locations l using (location_id)").fetchall())
        item_id = db.execute("select item_id from inventory.items where sku = 'LOT-A'").fetchone()[0]
        allocated = db.execute("select t.lot_number, sum(a.quantity) from inventory.lot_allocations a"
                               " join inventory.lots t using (lot_id) group by 1 order by 1").fetchall()
        assert allocated == [("GOOD", 4), ("OLD", 20)]  # FEFO: OLD first (then still sellable), then GOOD
        yield {"dsn": module_dsn, "levels": levels, "item_id": item_id}


def interleave(world: dict[str, Any], first: str, second: str, level: str) -> tuple[Any, Any]:
    return interleave_calls(world["dsn"], [CALLS[first], CALLS[second]], {}, world["item_id"], world["levels"][level])


PAIRS = [(first, second, level) for first, second in itertools.permutations(CALLS, 2) for level in ("main", "east")]


@pytest.mark.parametrize(("first", "second", "level"), PAIRS, ids=["-".join(pair) for pair in PAIRS])
def test_no_two_lot_calls_deadlock(world: dict[str, Any], first: str, second: str, level: str) -> None:
    outcomes = interleave(world, first, second, level)
    assert [o for o in outcomes if getattr(o, "sqlstate", None) == "40P01"] == [], outcomes
    assert outcomes == ("ok", "ok"), outcomes


def test_each_call_works_alone_and_the_shared_data_is_untouched(world: dict[str, Any]) -> None:
    with psycopg.connect(world["dsn"], autocommit=True) as db:
        for name, statement in CALLS.items():
            with db.transaction(force_rollback=True):
                db.execute(statement)
                assert db.execute("select count(*) from inventory_api.verify_inventory()").fetchone() == (0,), name
        assert db.execute("select location_id, on_hand, reserved from inventory.stock_levels order by 1"
                          ).fetchall() == [(1, 30, 12), (2, 30, 12)]
