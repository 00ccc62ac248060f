"""Issue 11, item 7: items updated, soft-deleted and restored with optimistic locking; stock policies
with expected_version; what a hold is for (reference_type, notes); the audit log and users' roles
through the API; every API view column described."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest
from helpers import raises_db_error

from pyinv import Inventory


def item(db: psycopg.Connection[Any], sku: str) -> dict[str, Any]:
    row = db.execute("select to_jsonb(i) from inventory_api.items i where sku = %s", (sku,)).fetchone()
    assert row is not None
    return row[0]


def test_update_item_counts_versions_and_refuses_a_stale_one(db, catalogue: Inventory) -> None:
    assert item(db, "A1")["version"] == 1
    updated = db.execute("select name, version from inventory_api.update_item('A1', name => 'Widget XL',"
                         " expected_version => 1)").fetchone()
    assert updated == ("Widget XL", 2)
    assert (item(db, "A1")["name"], item(db, "A1")["version"]) == ("Widget XL", 2)
    # The same values again change nothing, not even the version.
    db.execute("select inventory_api.update_item('A1', name => 'Widget XL')")
    assert item(db, "A1")["version"] == 2
    with raises_db_error(db, "PT409", "VERSION_CONFLICT") as caught:
        db.execute("select inventory_api.update_item('A1', name => 'Lost update', expected_version => 1)")
    detail = json.loads(caught.value.diag.message_detail)
    assert (detail["sku"], detail["expected_version"], detail["version"]) == ("A1", 1, 2)
    assert item(db, "A1")["name"] == "Widget XL"


def test_a_dba_update_also_counts(db, catalogue: Inventory) -> None:
    db.execute("update inventory.items set name = 'By hand' where sku = 'B2'")
    assert item(db, "B2")["version"] == 2
    with raises_db_error(db, "PT409", "VERSION_CONFLICT"):
        db.execute("select inventory_api.delete_item('B2', expected_version => 1)")


@pytest.mark.parametrize(("arguments", "sqlstate", "hint"), [
    ({"name": ""}, "22023", "INVALID_ARGUMENT"),
    ({"name": "bad\u200bname"}, "22023", "INVALID_ARGUMENT"),
    ({"unit_of_measure": "Kilo Grams"}, "22023", "INVALID_ARGUMENT"),
    ({"unit_cost": "NaN"}, "22023", "INVALID_ARGUMENT"),
    ({"unit_cost": -1}, "22023", "INVALID_ARGUMENT"),
    ({"sku": "NOPE"}, "PT404", "PRODUCT_NOT_FOUND"),
    ({"sku": "A1'; drop table inventory.items; --"}, "PT404", "PRODUCT_NOT_FOUND"),
])
def test_update_item_bad_input_changes_nothing(db, catalogue: Inventory, arguments: dict[str, Any], sqlstate: str,
                                               hint: str) -> None:
    arguments = {"sku": "A1"} | arguments
    named = ", ".join(f"{name} => %({name})s" for name in arguments)
    with raises_db_error(db, sqlstate, hint):
        db.execute(f"select inventory_api.update_item({named})", arguments)
    assert item(db, "A1")["version"] == 1


def test_unit_of_measure_changes_only_without_stock(db, catalogue: Inventory) -> None:
    with raises_db_error(db, "PT409", "INVALID_STATE") as caught:
        db.execute("select inventory_api.update_item('A1', unit_of_measure => 'kg')")
    assert json.loads(caught.value.diag.message_detail)["stock"] == [
        {"location": "main", "on_hand": 10, "reserved": 0}]
    catalogue.create_item("C3", "Cable")
    db.execute("select inventory_api.update_item('C3', unit_of_measure => 'm')")
    assert item(db, "C3")["unit_of_measure"] == "m"


def test_delete_is_refused_while_stock_is_on_hand(db, catalogue: Inventory) -> None:
    with raises_db_error(db, "PT409", "INVALID_STATE") as caught:
        db.execute("select inventory_api.delete_item('A1')")
    assert json.loads(caught.value.diag.message_detail)["stock"][0]["location"] == "main"


def test_deleted_items_are_unknown_until_restored(db, catalogue: Inventory, ledger_rows) -> None:
    catalogue.create_item("C3", "Cable")
    catalogue.receive_stock("C3", 1)
    catalogue.reserve_stock("C3", 1, "SO-C3")
    catalogue.fulfill_order("SO-C3")  # the level at main stays, empty
    db.execute("select inventory_api.delete_item('C3', expected_version => 1)")
    deleted = item(db, "C3")
    assert deleted["deleted_at"] is not None and deleted["deleted_by"] == "postgres" and deleted["version"] == 2
    assert db.execute("select item_deleted from inventory.stock_levels s join inventory.items i using (item_id)"
                      " where i.sku = 'C3'").fetchone() == (True,)
    for statement in ("select inventory_api.receive_stock('C3', 1)",
                      "select inventory_api.reserve_stock('C3', 1, 'SO-2')",
                      "select inventory_api.receive_stock('C3', 1, 'east')",
                      "select inventory_api.update_item('C3', name => 'x')",
                      "select inventory_api.delete_item('C3')"):
        with raises_db_error(db, "PT404", "PRODUCT_NOT_FOUND"):
            db.execute(statement)
    with raises_db_error(db, "PT409", "ALREADY_EXISTS"):
        db.execute("select inventory_api.create_item('C3', 'Cable')")
    with raises_db_error(db, "PT404", "PRODUCT_NOT_FOUND"):
        db.execute("select inventory_api.restore_item('A1')")  # not deleted
    db.execute("select inventory_api.restore_item('C3')")
    restored = item(db, "C3")
    assert (restored["deleted_at"], restored["deleted_by"], restored["version"]) == (None, None, 3)
    before = ledger_rows()
    catalogue.receive_stock("C3", 2)
    assert ledger_rows() == before + 1


def test_delete_item_is_refused_at_repeatable_read(db, catalogue: Inventory) -> None:
    catalogue.create_item("C3", "Cable")
    db.execute("begin isolation level repeatable read")
    with pytest.raises(psycopg.Error) as caught:
        db.execute("select inventory_api.delete_item('C3')")
    db.execute("rollback")
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("PT409", "INVALID_STATE")
    db.execute("begin isolation level serializable")
    db.execute("select inventory_api.delete_item('C3')")
    db.execute("commit")
    assert item(db, "C3")["deleted_at"] is not None


@pytest.mark.parametrize("location", ["main", "east"], ids=["existing level", "new level"])
def test_stock_cannot_arrive_under_an_item_being_deleted(db, connect, catalogue: Inventory, location: str) -> None:
    """A receipt that looked the item up before a concurrent delete_item committed is refused, both
    at a level that exists (the trigger sees item_deleted) and at a new one (the trigger's locking read)."""
    catalogue.create_item("C3", "Cable")
    catalogue.receive_stock("C3", 1)
    catalogue.reserve_stock("C3", 1, "SO-C3")
    catalogue.fulfill_order("SO-C3")
    deleter, receiver = connect(autocommit=False), connect()
    deleter.execute("select inventory_api.delete_item('C3')")
    outcome: list[BaseException | None] = []

    def receive() -> None:
        try:
            receiver.execute("select inventory_api.receive_stock('C3', 5, %s)", (location,))
            outcome.append(None)
        except psycopg.Error as error:
            outcome.append(error)

    thread = threading.Thread(target=receive)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the receipt waits for the delete"
    deleter.commit()
    thread.join(10)
    [error] = outcome
    assert isinstance(error, psycopg.Error)
    assert (error.sqlstate, error.diag.message_hint) == ("PT404", "PRODUCT_NOT_FOUND")
    assert db.execute("select coalesce(sum(on_hand), 0) from inventory.stock_levels s join inventory.items i"
                      " using (item_id) where i.sku = 'C3'").fetchone() == (0,)


def test_stock_policy_expected_version(db, catalogue: Inventory) -> None:
    with raises_db_error(db, "PT409", "VERSION_CONFLICT"):
        db.execute("select inventory_api.set_stock_policy('A1', 'main', 5, 1, expected_version => 1)")
    first = db.execute("select (inventory_api.set_stock_policy('A1', 'main', 5, 1, expected_version => 0)).version"
                       ).fetchone()
    assert first == (1,)
    db.execute("select inventory_api.set_stock_policy('A1', 'main', 6, 1, expected_version => 1)")
    with raises_db_error(db, "PT409", "VERSION_CONFLICT"):
        db.execute("select inventory_api.set_stock_policy('A1', 'main', 7, 1, expected_version => 1)")
    assert db.execute("select reorder_point, version from inventory_api.stock_policies where sku = 'A1'"
                      ).fetchone() == (6, 2)


def test_a_hold_says_what_it_is_for(db, catalogue: Inventory) -> None:
    held = db.execute("select reference_type, notes from inventory_api.reserve_stock('A1', 1, 'WO-7',"
                      " reference_type => 'work_order', notes => 'line 3 rework', idempotency_key => 'wo-7')"
                      ).fetchone()
    assert held == ("work_order", "line 3 rework")
    assert db.execute("select reference_type, notes from inventory_api.reservations where order_ref = 'WO-7'"
                      ).fetchone() == held
    # A retry replays; the same key with other notes is another request.
    replay = db.execute("select reservation_id from inventory_api.reserve_stock('A1', 1, 'WO-7',"
                        " reference_type => 'work_order', notes => 'line 3 rework', idempotency_key => 'wo-7')"
                        ).fetchone()
    assert replay is not None
    with raises_db_error(db, "PT409", "IDEMPOTENCY_CONFLICT"):
        db.execute("select inventory_api.reserve_stock('A1', 1, 'WO-7', reference_type => 'work_order',"
                   " notes => 'other', idempotency_key => 'wo-7')")
    order = db.execute("select reference_type, notes from inventory_api.reserve_order('T-1',"
                       " '[{\"sku\": \"B2\", \"quantity\": 1}]', reference_type => 'transfer')").fetchall()
    assert order == [("transfer", None)]
    default = db.execute("select reference_type from inventory_api.reserve_stock('B2', 1, 'SO-1')").fetchone()
    assert default == ("order",)


@pytest.mark.parametrize(("arguments", "argument"), [
    ("reference_type => 'invoice'", "reference_type"),
    ("reference_type => null", "reference_type"),
    ("notes => ''", "notes"),
    ("notes => repeat('x', 1001)", "notes"),
    ("notes => e'tab\\there'", "notes"),
])
def test_bad_hold_descriptions_change_nothing(db, catalogue: Inventory, arguments: str, argument: str) -> None:
    for call in (f"inventory_api.reserve_stock('A1', 1, 'SO-X', {arguments})",
                 f"inventory_api.reserve_order('SO-X', '[{{\"sku\": \"A1\", \"quantity\": 1}}]', {arguments})"):
        with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
            db.execute(f"select * from {call}")
        assert json.loads(caught.value.diag.message_detail)["argument"] == argument


def test_admins_read_the_audit_log_and_others_do_not(db, gateway) -> None:
    db.execute("update inventory.items set name = 'Renamed by a DBA' where sku = 'A1'")
    admin, clerk, service = (gateway("authenticated", "u-admin"), gateway("authenticated", "u-clerk-main"),
                             gateway("service_role"))
    query = ("select table_name, operation, actor, sealed from inventory_api.audit_log"
             " where table_name = 'items' and operation = 'UPDATE'")
    assert admin.query(query) == [("items", "UPDATE", "postgres", False)]
    assert service.query(query) == [("items", "UPDATE", "postgres", False)]
    assert clerk.query(query) == []
    db.execute("select inventory_api.seal_audit_log()")
    [(sealed, chain_seq)] = admin.query("select sealed, chain_seq from inventory_api.audit_log"
                                         " where table_name = 'items' and operation = 'UPDATE'")
    assert sealed and chain_seq >= 1


def test_user_roles_are_readable_by_admins_and_by_their_holder(gateway) -> None:
    admin, clerk = gateway("authenticated", "u-admin"), gateway("authenticated", "u-clerk-east")
    every = admin.query("select user_id, role, location from inventory_api.user_roles order by user_id")
    assert ("u-clerk-east", "operator", "east") in every and len(every) >= 6
    assert clerk.query("select user_id, role, location from inventory_api.user_roles") == [
        ("u-clerk-east", "operator", "east")]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        gateway("anon").query("select * from inventory_api.user_roles")


def test_supabase_roles_are_noinherit_and_service_role_still_works(db, gateway) -> None:
    """Supabase makes anon, authenticated and service_role NOINHERIT: their grants must be direct."""
    roles = db.execute("select rolname, rolinherit from pg_roles where rolname in"
                       " ('anon', 'authenticated', 'service_role', 'authenticator') order by 1").fetchall()
    assert roles == [("anon", False), ("authenticated", False), ("authenticator", False), ("service_role", False)]
    service = gateway("service_role")
    assert service.query("select count(*) from inventory_api.stock_levels") == [(4,)]  # A1 at main and east, B2, LOT-1
    service.rpc("expire_reservations")
    service.rpc("create_item", sku="SR-1", name="Made by service_role")


def test_every_api_view_column_is_described(db) -> None:
    undescribed = db.execute("""
        select c.relname || '.' || a.attname from pg_class c
          join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
         where c.relnamespace = 'inventory_api'::regnamespace and c.relkind = 'v'
           and col_description(c.oid, a.attnum) is null
         order by 1""").fetchall()
    assert undescribed == []
    # Copied from the column each shows, not from a same-named column of another table.
    assert db.execute("select col_description('inventory_api.stock_movements'::regclass, attnum)"
                      " from pg_attribute where attrelid = 'inventory_api.stock_movements'::regclass"
                      " and attname = 'created_at'").fetchone() == (
        db.execute("select col_description('inventory.ledger'::regclass, attnum) from pg_attribute"
                   " where attrelid = 'inventory.ledger'::regclass and attname = 'created_at'").fetchone())
