"""The ledger: written by the stock-level trigger for every change, append-only, and the proof
that verify_inventory() checks."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from pyinv import Inventory


def test_direct_update_in_sql_writes_an_adjust_movement(catalogue: Inventory, db) -> None:
    db.execute("update inventory.stock_levels set on_hand = on_hand - 3"
               " where item_id = (select item_id from inventory.items where sku = 'A1')")
    [last] = catalogue.movements(sku="A1")[-1:]
    assert (last.movement_type, last.on_hand_delta, last.on_hand_before, last.on_hand_after) == ("ADJUST", -3, 10, 7)
    assert last.reason == "direct change of inventory.stock_levels"
    assert last.actor == db.info.user


def test_a_direct_update_cannot_oversell(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 8, "SO-1")
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        db.execute("update inventory.stock_levels set on_hand = 5"
                   " where item_id = (select item_id from inventory.items where sku = 'A1')")
    assert caught.value.diag.constraint_name == "stock_levels_quantities_check"


def test_levels_are_born_empty(catalogue: Inventory, db) -> None:
    with pytest.raises(psycopg.Error) as caught:
        db.execute("insert into inventory.stock_levels (item_id, location_id, on_hand)"
                   " select item_id, 1, 5 from inventory.items where sku = 'A1' and false"
                   " union all select i.item_id, l.location_id, 5 from inventory.items i, inventory.locations l"
                   " where i.sku = 'A1' and l.code = 'east'")
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("22023", "INVALID_ARGUMENT")


@pytest.mark.parametrize("statement", [
    "update inventory.ledger set reason = 'rewritten'",
    "delete from inventory.ledger",
    "truncate inventory.ledger",
])
def test_ledger_rejects_update_delete_truncate(catalogue: Inventory, db, statement: str) -> None:
    before = db.execute("select count(*) from inventory.ledger").fetchone()
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("42501", "APPEND_ONLY")
    assert db.execute("select count(*) from inventory.ledger").fetchone() == before


@pytest.mark.parametrize("statement", [
    "update inventory.ledger set reason = 'rewritten'",
    "delete from inventory.ledger",
])
def test_ledger_is_append_only_even_in_replica_mode(catalogue: Inventory, db, statement: str) -> None:
    db.execute("set session_replication_role = replica")
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement)
    assert caught.value.diag.message_hint == "APPEND_ONLY"


def test_stock_levels_holding_stock_cannot_be_deleted(catalogue: Inventory, db) -> None:
    for statement in ("delete from inventory.stock_levels", "truncate inventory.stock_levels cascade"):
        with pytest.raises(psycopg.Error) as caught:
            db.execute(statement)
        assert caught.value.diag.message_hint == "APPEND_ONLY"


def test_every_movement_chains_before_to_after(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 3, "SO-1")
    catalogue.fulfill_order("SO-1", sku="A1", quantity=1)
    catalogue.cancel_reservation("SO-1")
    catalogue.process_return("SO-1", "A1", 1, "unused")
    rows = catalogue.movements(sku="A1")
    assert [m.movement_type for m in rows] == ["RECEIVE", "RESERVE", "SHIP", "RELEASE", "RETURN"]
    for previous, current in itertools.pairwise(rows):
        assert (current.on_hand_before, current.reserved_before) == (previous.on_hand_after, previous.reserved_after)
    assert all(m.reference == "SO-1" for m in rows[1:])
    assert rows[1].reservation_id is not None


def test_version_increments_with_every_movement(catalogue: Inventory) -> None:
    [before] = catalogue.stock_levels("A1")
    catalogue.reserve_stock("A1", 1, "SO-1")
    [after] = catalogue.stock_levels("A1")
    assert after.version == before.version + 1


@pytest.mark.breaks_invariants
def test_verify_inventory_reports_tampering(catalogue: Inventory, db) -> None:
    assert catalogue.verify_inventory() == []
    # A superuser who disables the trigger can still corrupt a level: verify must notice.
    db.execute("alter table inventory.stock_levels disable trigger stock_levels_record_change")
    db.execute("update inventory.stock_levels set on_hand = on_hand + 5, reserved = reserved + 1"
               " where item_id = (select item_id from inventory.items where sku = 'A1')")
    db.execute("alter table inventory.stock_levels enable always trigger stock_levels_record_change")
    found = {(v.invariant, v.sku) for v in catalogue.verify_inventory()}
    assert found == {("on_hand_equals_ledger", "A1"), ("reserved_equals_ledger", "A1"),
                     ("reserved_equals_active_holds", "A1")}


@pytest.mark.breaks_invariants
def test_verify_inventory_reports_a_broken_chain_and_orphan_holds(catalogue: Inventory, db) -> None:
    db.execute("alter table inventory.ledger disable trigger ledger_forbid_change")
    db.execute("update inventory.ledger set on_hand_before = on_hand_before + 1, on_hand_after = on_hand_after + 1"
               " where movement_id = (select max(movement_id) from inventory.ledger)")
    db.execute("insert into inventory.reservations (order_ref, item_id, location_id, quantity, created_by)"
               " select 'SO-X', item_id, 1, 1, 'test' from inventory.items where sku = 'B2'")
    found = {v.invariant for v in catalogue.verify_inventory()}
    assert found == {"ledger_is_continuous", "ledger_hash_chain", "reserved_equals_active_holds"}


@pytest.mark.breaks_invariants
def test_ledger_hash_chain_detects_a_rewritten_reason(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    db.execute("alter table inventory.ledger disable trigger ledger_forbid_change")
    db.execute("update inventory.ledger set reason = 'nothing to see' where movement_type = 'RECEIVE'"
               " and item_id = (select item_id from inventory.items where sku = 'A1')")
    [violation] = catalogue.verify_inventory()
    assert (violation.invariant, violation.sku) == ("ledger_hash_chain", "A1")
    assert "hash does not match its contents" in violation.detail


@pytest.mark.breaks_invariants
def test_ledger_hash_head_detects_a_deleted_last_movement(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    db.execute("alter table inventory.ledger disable trigger ledger_forbid_change")
    db.execute("delete from inventory.ledger where movement_id = (select max(movement_id) from inventory.ledger)")
    found = {v.invariant for v in catalogue.verify_inventory()}
    assert "ledger_hash_head" in found


def test_ledger_hashes_do_not_depend_on_the_session_time_zone(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    recompute = ("select array_agg(sha256(coalesce(prev_hash, ''::bytea) || inventory.ledger_entry_bytes(g))"
                 " = hash order by movement_id) from inventory.ledger g")
    for zone, style in (("UTC", "ISO, MDY"), ("Asia/Kathmandu", "SQL, DMY"), ("America/St_Johns", "German")):
        db.execute(f"set timezone = '{zone}'")
        db.execute(f"set datestyle = '{style}'")
        assert set(db.execute(recompute).fetchone()[0]) == {True}


def test_movements_with_a_limit_are_the_latest(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 1, "SO-1")
    catalogue.cancel_reservation("SO-1")
    latest = catalogue.movements(limit=2)
    assert [m.movement_type for m in latest] == ["RESERVE", "RELEASE"]
    assert latest == catalogue.movements()[-2:]
