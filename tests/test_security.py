"""Roles, row level security, privileges and the PostgREST surface.

Every API call here is made exactly as PostgREST makes it: log in as the gateway role
(authenticator), start a transaction, set role / request.jwt.claims / request.path /
request.headers with set_config(..., true), call the function in named notation, commit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from helpers import PostgREST
from psycopg import sql

from pyinv import Inventory, PermissionDenied


@pytest.fixture
def gateway(gateway: Callable[..., PostgREST], catalogue: Inventory) -> Callable[..., PostgREST]:
    """The shared PostgREST clients, with something in every state for them to act on."""
    catalogue.create_item("C3", "Status toy")
    catalogue.create_adjustment("B2", -1, "write_off", "theft")  # pending adjustment 1, requested by the DBA
    catalogue.set_stock_policy("B2", "main", reorder_point=10, safety_stock=1)  # opens reorder alert 1
    catalogue.reserve_stock("B2", 1, "M-FULFIL")
    catalogue.reserve_stock("B2", 1, "M-CANCEL")
    catalogue.reserve_stock("B2", 1, "M-RETURN")
    catalogue.fulfill_order("M-RETURN")
    return gateway


def denied(call: Callable[[], Any], hint: str | None = "PERMISSION_DENIED") -> None:
    with pytest.raises(psycopg.Error) as caught:
        call()
    assert caught.value.sqlstate == "42501", caught.value.diag.message_primary
    if hint is not None:
        assert caught.value.diag.message_hint == hint


# -- who may call what: the role x function matrix -------------------------------------------------

CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (function, arguments) -- all against location main unless the name says east
    "create_item": ("create_item", {"sku": "NEW-1", "name": "New"}),
    "set_item_status": ("set_item_status", {"sku": "C3", "status": "on_hold"}),
    "create_location": ("create_location", {"code": "north", "name": "North"}),
    "receive_main": ("receive_stock", {"sku": "A1", "quantity": 1}),
    "receive_east": ("receive_stock", {"sku": "A1", "quantity": 1, "location": "east"}),
    "reserve_main": ("reserve_stock", {"sku": "A1", "quantity": 1, "order_ref": "W-1"}),
    "reserve_east": ("reserve_stock", {"sku": "A1", "quantity": 1, "order_ref": "W-2", "location": "east"}),
    "reserve_order_main": ("reserve_order", {"order_ref": "W-3", "lines": json.dumps([{"sku": "B2", "quantity": 1}])}),
    # reserve_many (issue 14): authorised per request, so a clerk of another location gets a row saying
    # PERMISSION_DENIED, not an error; only a caller who may reserve nowhere is refused as a whole
    "reserve_many_main": ("reserve_many", {"requests": json.dumps([{"order_ref": "W-5", "sku": "B2", "quantity": 1}])}),
    "set_hot_mode_main": ("set_hot_mode", {"sku": "A1", "buckets": 2}),
    "fulfill_main": ("fulfill_order", {"order_ref": "M-FULFIL"}),
    "cancel_main": ("cancel_reservation", {"order_ref": "M-CANCEL"}),
    "return_main": ("process_return", {"order_ref": "M-RETURN", "sku": "B2", "quantity": 1, "reason": "unused"}),
    "validate_main": ("validate_stock", {"sku": "A1", "quantity": 1}),
    "validate_east": ("validate_stock", {"sku": "A1", "quantity": 1, "location": "east"}),
    "verify_inventory": ("verify_inventory", {}),
    "grant_user_role": ("grant_user_role", {"user_id": "u-new", "role": "viewer"}),
    "revoke_user_role": ("revoke_user_role", {"user_id": "u-new", "role": "viewer"}),
    "verify_audit_chain": ("verify_audit_chain", {}),
    "expire_reservations": ("expire_reservations", {}),
    "seal_audit_log": ("seal_audit_log", {}),
    # stock control (issue 5); the gateway fixture adds pending adjustment 1 and reorder alert 1 at main
    "adjust_main": ("create_adjustment", {"sku": "A1", "quantity_delta": -1, "adjustment_type": "correction",
                                          "reason_code": "correction"}),
    "adjust_east": ("create_adjustment", {"sku": "A1", "quantity_delta": -1, "adjustment_type": "correction",
                                          "reason_code": "correction", "location": "east"}),
    "approve_adjustment": ("approve_adjustment", {"adjustment_id": 1, "decision": "approved"}),
    "count_main": ("record_count", {"sku": "A1", "counted_quantity": 9}),
    "transfer_main_east": ("transfer_stock", {"sku": "A1", "quantity": 1, "from_location": "main",
                                              "to_location": "east"}),
    "set_stock_policy": ("set_stock_policy", {"sku": "A1", "location": "main", "reorder_point": 1,
                                              "safety_stock": 0}),
    "alert_main": ("update_reorder_alert", {"alert_id": 1, "status": "ACKNOWLEDGED"}),
    "check_reorder_points": ("check_reorder_points", {}),
    "import_items": ("import_items", {"rows": json.dumps([{"sku": "IMP-1", "name": "Imported"}])}),
    "import_policies": ("import_stock_policies", {"rows": json.dumps(
        [{"sku": "A1", "location": "main", "reorder_point": "2", "safety_stock": "0"}])}),
    "set_reason_code": ("set_reason_code", {"code": "damaged", "requires_approval": True, "approval_threshold": 3}),
    "audit_anchor": ("audit_anchor", {"wait_seconds": 1}),
    # items (issue 11): IMP-1 comes from import_items above and has no stock
    "update_item": ("update_item", {"sku": "A1", "name": "Widget (renamed)"}),
    "delete_item": ("delete_item", {"sku": "IMP-1"}),
    "restore_item": ("restore_item", {"sku": "IMP-1"}),
    # which pyinv is installed: public to every API user, with or without a business role
    "schema_version": ("schema_version", {}),
    # lots (issue 12): the gateway fixture adds lot-tracked LOT-1 with lot L1 at main
    "trace_lot": ("trace_lot", {"sku": "LOT-1", "lot_number": "L1"}),
    "set_lot_status": ("set_lot_status", {"sku": "LOT-1", "lot_number": "L1", "quarantined": True}),
    "expire_inventory_lots": ("expire_inventory_lots", {}),
    # the maintenance runners' lead and their record of runs (issue 13)
    "claim_maintenance_lease": ("claim_maintenance_lease", {"runner_id": "matrix", "lease_seconds": 5}),
    "maintenance_leader": ("maintenance_leader", {}),
    "release_maintenance_lease": ("release_maintenance_lease", {"runner_id": "matrix"}),
    "record_maintenance_run": ("record_maintenance_run", {"job": "expire_reservations", "rows_touched": 0}),
    # reporting (issue 13, branch i13-reporting)
    "stock_as_of_main": ("stock_as_of", {"sku": "A1"}),
    "stock_as_of_east": ("stock_as_of", {"sku": "A1", "location": "east"}),
    "refresh_inventory_views": ("refresh_inventory_views", {}),
    # events (issue 13, branch i13-events): anyone with a business role reads and acknowledges their
    # own consumers' events (of their locations); purging is maintenance
    "read_events": ("read_events", {"consumer": "matrix"}),
    "ack_events": ("ack_events", {"consumer": "matrix", "up_to_id": 0}),
    "purge_events": ("purge_events", {}),
}
# Maintenance (what inventory_scheduler may run) is never exposed to PostgREST's users.
MAINTENANCE = {"expire_reservations", "seal_audit_log", "check_reorder_points", "audit_anchor",
               "expire_inventory_lots", "claim_maintenance_lease", "maintenance_leader", "release_maintenance_lease",
               "record_maintenance_run", "refresh_inventory_views", "purge_events"}
ALLOWED = {
    # (db role, sub): calls that succeed; every other call fails with 42501
    ("authenticated", "u-admin"): set(CALLS) - MAINTENANCE,
    ("authenticated", "u-clerk-main"): {"schema_version", "receive_main", "reserve_main", "reserve_order_main",
                                        "reserve_many_main",
                                        "fulfill_main", "cancel_main", "return_main", "validate_main",
                                        "adjust_main", "count_main", "alert_main", "trace_lot", "stock_as_of_main",
                                        "read_events", "ack_events"},
    ("authenticated", "u-clerk-east"): {"schema_version", "receive_east", "reserve_east", "validate_east",
                                        "reserve_many_main",
                                        "adjust_east", "trace_lot", "stock_as_of_east", "read_events", "ack_events"},
    ("authenticated", "u-reader"): {"schema_version", "validate_main", "validate_east", "verify_inventory",
                                    "trace_lot", "stock_as_of_main", "stock_as_of_east", "read_events", "ack_events"},
    ("authenticated", "u-nobody"): {"schema_version"},
    ("anon", None): set(),
    ("service_role", None): set(CALLS),
}


@pytest.mark.parametrize(("role", "sub"), list(ALLOWED))
def test_role_by_function_matrix(gateway, role: str, sub: str | None, db) -> None:
    api_functions = {name for (name,) in db.execute(
        "select proname from pg_proc where pronamespace = 'inventory_api'::regnamespace")}
    assert api_functions == {function for function, _ in CALLS.values()}, "every API function is in the matrix"
    client = gateway(role, sub)
    for name, (function, arguments) in CALLS.items():
        read_only = function in ("validate_stock", "verify_inventory", "verify_audit_chain", "schema_version",
                                 "trace_lot", "maintenance_leader", "stock_as_of", "read_events")
        if name in ALLOWED[(role, sub)]:
            client.rpc(function, read_only=read_only, **arguments)
        else:
            # Without an EXECUTE grant PostgreSQL itself refuses (no hint); with one, our check does.
            hint = None if role in ("anon",) or name in MAINTENANCE else "PERMISSION_DENIED"
            denied(lambda f=function, a=arguments, r=read_only: client.rpc(f, read_only=r, **a), hint)


def test_location_scoped_clerk_cannot_touch_other_locations(gateway, catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 1, "SO-EAST", location="east")
    east_clerk, main_clerk = gateway("authenticated", "u-clerk-east"), gateway("authenticated", "u-clerk-main")
    denied(lambda: main_clerk.rpc("fulfill_order", order_ref="SO-EAST"))
    denied(lambda: main_clerk.rpc("cancel_reservation", order_ref="SO-EAST"))
    denied(lambda: main_clerk.rpc("reserve_order", order_ref="MIX", lines=json.dumps(
        [{"sku": "A1", "quantity": 1}, {"sku": "A1", "quantity": 1, "location": "east"}])))
    [[_, _, sku, *_]] = east_clerk.rpc("fulfill_order", order_ref="SO-EAST")
    assert sku == "A1"
    denied(lambda: main_clerk.rpc("process_return", order_ref="SO-EAST", sku="A1", quantity=1, reason="x",
                                  location="east"))
    east_clerk.rpc("process_return", order_ref="SO-EAST", sku="A1", quantity=1, reason="x", location="east")


def test_a_replay_never_hands_over_another_location_s_result(gateway, catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 1, "SO-SHIP")
    catalogue.reserve_stock("A1", 1, "SO-DROP")
    main_clerk, east_clerk = gateway("authenticated", "u-clerk-main"), gateway("authenticated", "u-clerk-east")
    main_clerk.rpc("fulfill_order", order_ref="SO-SHIP", idempotency_key="ship-1")
    main_clerk.rpc("cancel_reservation", order_ref="SO-DROP", idempotency_key="drop-1")
    denied(lambda: east_clerk.rpc("fulfill_order", order_ref="SO-SHIP", idempotency_key="ship-1"))
    denied(lambda: east_clerk.rpc("cancel_reservation", order_ref="SO-DROP", idempotency_key="drop-1"))
    assert main_clerk.rpc("fulfill_order", order_ref="SO-SHIP", idempotency_key="ship-1")[0][4] == "SHIP"


def test_a_return_elsewhere_neither_reveals_nor_consumes_another_location_s_shipment(gateway, catalogue: Inventory,
                                                                                      db) -> None:
    catalogue.reserve_stock("A1", 3, "SO-FAR")
    catalogue.fulfill_order("SO-FAR")  # shipped from main
    east_clerk = gateway("authenticated", "u-clerk-east")
    for quantity in (1, 100):
        with pytest.raises(psycopg.Error) as caught:
            east_clerk.rpc("process_return", order_ref="SO-FAR", sku="A1", quantity=quantity, reason="x",
                           location="east")
        assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("42501", "PERMISSION_DENIED")
        assert not {"shipped", "returned"} & set(json.loads(caught.value.diag.message_detail))
    assert db.execute("select (select count(*) from inventory.returns),"
                      " (select sum(quantity_returned) from inventory.reservations)").fetchone() == (0, 0)


VIEWS = ["items", "locations", "stock_levels", "reservations", "stock_movements", "returns", "error_codes"]


def test_rows_are_scoped_by_location(gateway, catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 1, "SO-MAIN")
    catalogue.reserve_stock("A1", 1, "SO-EAST", location="east")

    def locations(client: PostgREST, view: str) -> set[str]:
        column = {"locations": 0, "reservations": 3}.get(view, 1)
        return {row[column] for row in client.select(view)}

    east, main, reader = (gateway("authenticated", u) for u in ("u-clerk-east", "u-clerk-main", "u-reader"))
    for view in ("stock_levels", "reservations"):
        assert locations(east, view) == {"east"}
        assert locations(main, view) == {"main"}
        assert locations(reader, view) == {"main", "east"}
    assert {row[3] for row in east.select("stock_movements")} == {"east"}
    assert {row[0] for row in east.select("locations")} == {"east"}
    for nobody in (gateway("authenticated", "u-nobody"), gateway("authenticated", None)):
        for view in VIEWS[:-1]:
            assert nobody.select(view) == [], view
    denied(lambda: gateway("anon").select("stock_levels"), hint=None)


@pytest.mark.parametrize("statement", [
    "insert into inventory.items (sku, name, created_by) values ('HACK', 'x', 'x')",
    "update inventory.stock_levels set on_hand = on_hand + 100",
    "delete from inventory.reservations",
    "update inventory.user_roles set role = 'admin'",
    "update inventory.audit_log set actor = 'x'",
    "select * from inventory.idempotency_keys",
    "select * from inventory.settings",
    "insert into inventory.ledger (movement_type) values ('RECEIVE')",
])
@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_api_roles_cannot_touch_tables_directly(gateway, statement: str, role: str) -> None:
    denied(lambda: gateway(role, "u-admin").execute(statement), hint=None)


def test_a_clerk_login_acts_through_functions_only(login_dsn, catalogue: Inventory, connect) -> None:
    clerk = connect(conninfo=login_dsn("pyinv_clerk"))
    clerk.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 2, order_ref => 'SO-C')")
    assert clerk.execute("select actor from inventory_api.stock_movements order by movement_id desc limit 1"
                         ).fetchone() == ("pyinv_clerk",)
    for statement in ("update inventory.stock_levels set on_hand = 0",
                      "select * from inventory_api.create_item(sku => 'X', name => 'X')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            clerk.execute(statement)


def test_user_roles_limit_an_inventory_user_login_to_one_location(login_dsn, catalogue: Inventory, connect,
                                                                  db) -> None:
    db.execute("create role pyinv_store login password 'pyinv-test' in role inventory_user")
    try:
        catalogue.connection.execute(
            "select inventory_api.grant_user_role(user_id => 'pyinv_store', role => 'operator', location => 'east')")
        store = connect(conninfo=login_dsn("pyinv_store"))
        with pytest.raises(psycopg.Error) as caught:
            store.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'X')")
        assert caught.value.diag.message_hint == "PERMISSION_DENIED"
        catalogue.receive_stock("A1", 3, location="east")
        store.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'X',"
                      " location => 'east')")
        assert {row[0] for row in store.execute("select location from inventory_api.stock_levels")} == {"east"}
        # Revoking the row removes the access; it never falls back to anything wider.
        catalogue.connection.execute(
            "select inventory_api.revoke_user_role(user_id => 'pyinv_store', role => 'operator', location => 'east')")
        for location in ("east", "main"):
            with pytest.raises(psycopg.Error) as caught:
                store.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1,"
                              " order_ref => 'Y', location => %s)", (location,))
            assert caught.value.diag.message_hint == "PERMISSION_DENIED"
        assert store.execute("select * from inventory_api.stock_levels").fetchall() == []
    finally:
        db.execute("drop owned by pyinv_store; drop role pyinv_store")


def test_granting_a_row_never_narrows_a_group_member(login_dsn, catalogue: Inventory, connect) -> None:
    clerk = connect(conninfo=login_dsn("pyinv_clerk"))  # a member of inventory_operator: everywhere
    catalogue.receive_stock("A1", 3, location="east")
    catalogue.connection.execute(
        "select inventory_api.grant_user_role(user_id => 'pyinv_clerk', role => 'viewer', location => 'east')")
    for location in ("main", "east"):
        clerk.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'G',"
                      " location => %s)", (location,))
    catalogue.connection.execute(
        "select inventory_api.revoke_user_role(user_id => 'pyinv_clerk', role => 'viewer', location => 'east')")
    clerk.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'H',"
                  " location => 'east')")


def test_a_row_never_gives_a_login_privileges_it_lacks(login_dsn, catalogue: Inventory, connect) -> None:
    clerk = Inventory(connect(conninfo=login_dsn("pyinv_clerk")))
    with pytest.raises(PermissionDenied):
        clerk.create_location("north", "North")
    catalogue.connection.execute("select inventory_api.grant_user_role(user_id => 'pyinv_clerk', role => 'admin')")
    with pytest.raises(PermissionDenied):  # no EXECUTE: an operator's login cannot run admin functions
        clerk.create_location("north", "North")
    catalogue.connection.execute("select inventory_api.revoke_user_role(user_id => 'pyinv_clerk', role => 'admin')")
    clerk.reserve_stock("A1", 1, "SO-STILL")  # its group membership is untouched


# -- identity: claims are trusted only from the gateway -------------------------------------------

def test_claims_set_by_another_login_are_ignored(login_dsn, gateway, connect) -> None:
    attacker = connect(conninfo=login_dsn("pyinv_clerk"))
    attacker.execute("select set_config('request.jwt.claims', %s, false)",
                     (json.dumps({"sub": "u-admin", "role": "authenticated"}),))
    assert attacker.execute("select inventory.current_actor()").fetchone() == ("pyinv_clerk",)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attacker.execute("select * from inventory_api.create_item(sku => 'EVIL', name => 'Evil')")
    # The same claims through the gateway do identify the admin (the rule works both ways).
    admin = gateway("authenticated", "u-admin")
    admin.rpc("create_item", sku="GOOD", name="Good")


def test_empty_claims_never_error(gateway, login_dsn, connect) -> None:
    connection = connect(conninfo=login_dsn("authenticator"), autocommit=False)
    with connection.transaction():
        connection.execute("select set_config('request.jwt.claims', '{\"sub\": \"u-admin\"}', true)")
    assert connection.execute("select current_setting('request.jwt.claims', true)").fetchone() == ("",)
    connection.execute("select set_config('role', 'authenticated', true)")
    assert connection.execute("select * from inventory_api.stock_levels").fetchall() == []
    with pytest.raises(psycopg.Error) as caught:
        connection.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'E')")
    assert caught.value.diag.message_hint == "PERMISSION_DENIED"
    connection.rollback()


# -- catalog checks ------------------------------------------------------------------------------

def test_nothing_is_executable_or_readable_by_public(db) -> None:
    functions = db.execute("""
        select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
           and (p.proacl is null or exists (select from aclexplode(p.proacl) a where a.grantee = 0))""").fetchall()
    assert functions == []
    relations = db.execute("""
        select c.oid::regclass::text from pg_class c
         where c.relnamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
           and c.relkind in ('r', 'v', 'm', 'S')
           and exists (select from aclexplode(c.relacl) a where a.grantee = 0)""").fetchall()
    assert relations == []


def test_definer_functions_are_pinned_private_and_owned_by_the_owner_role(db) -> None:
    rows = db.execute("""
        select p.oid::regprocedure::text, n.nspname, pg_get_userbyid(p.proowner),
               exists (select from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%'),
               has_function_privilege('anon', p.oid, 'EXECUTE')
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where p.prosecdef and n.nspname in ('inventory', 'inventory_api')""").fetchall()
    assert len(rows) > 20
    for name, schema, owner, pinned, anon_executes in rows:
        assert (schema, owner, pinned, anon_executes) == ("inventory", "inventory_owner", True, False), name
    owner = db.execute("select rolcanlogin, rolsuper, rolbypassrls from pg_roles where rolname = 'inventory_owner'")
    assert owner.fetchone() == (False, False, False)


def test_every_function_pins_search_path(db) -> None:
    unpinned = db.execute("""
        select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
           and not exists (select from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
        """).fetchall()
    assert unpinned == []


def test_every_table_has_rls_and_views_are_security_invoker(db) -> None:
    tables = db.execute("""
        select c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (select count(*) from pg_policies p where p.schemaname = 'inventory' and p.tablename = c.relname),
               exists (select from aclexplode(c.relacl) a
                        where a.grantee in (select oid from pg_roles where rolname in
                          ('inventory_viewer', 'inventory_operator', 'inventory_admin', 'authenticated', 'anon')))
          from pg_class c where c.relnamespace = 'inventory'::regnamespace and c.relkind = 'r'""").fetchall()
    assert len(tables) == 28  # 24 + maintenance_leader, events, event_consumers (issue 13), hot_buckets (14)
    for name, rls, forced, policies, granted in tables:
        assert rls and not forced, name
        assert policies > 0 or not granted, f"{name}: granted to an API role without a policy"
    views = db.execute("""
        select c.relname, coalesce(c.reloptions, '{}') from pg_class c
         where c.relnamespace = 'inventory_api'::regnamespace and c.relkind in ('v', 'm')""").fetchall()
    assert views and all("security_invoker=true" in options for _, options in views)


def test_policies_call_identity_functions_once_per_statement(db) -> None:
    for name, qual, roles in db.execute("select policyname, qual, roles::text from pg_policies"
                                        " where schemaname = 'inventory'"):
        assert "inventory." not in qual or "( SELECT inventory." in qual, name
        assert roles != "{public}", name


def test_functions_created_later_inherit_no_grants(db) -> None:
    for creator in ("inventory_owner", db.info.user):
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("set local role {}").format(sql.Identifier(creator)))
            for schema in ("inventory_api", "inventory"):
                db.execute(f"create function {schema}.later() returns int language sql set search_path = ''"
                           " as 'select 1'")
                for grantee in ("anon", "authenticated", "inventory_viewer", "inventory_operator"):
                    assert not db.execute("select has_function_privilege(%s, %s, 'EXECUTE')",
                                          (grantee, f"{schema}.later()")).fetchone()[0], (creator, schema, grantee)


def test_readers_run_read_only_and_writers_are_volatile(db, catalogue: Inventory) -> None:
    rows = db.execute("""
        select p.proname, p.provolatile from pg_proc p
         where p.pronamespace = 'inventory_api'::regnamespace""").fetchall()
    readers = {name for name, volatility in rows if volatility == "s"}
    assert readers == {"validate_stock", "verify_inventory", "verify_audit_chain", "schema_version", "trace_lot",
                       "maintenance_leader", "stock_as_of", "read_events"}
    with db.transaction(force_rollback=True):
        db.execute("set transaction read only")
        db.execute("select * from inventory_api.schema_version()")
        db.execute("select * from inventory_api.stock_as_of(sku => 'A1')")
        db.execute("select * from inventory_api.validate_stock(sku => 'A1', quantity => 1)")
        db.execute("select * from inventory_api.verify_inventory()")
        db.execute("select * from inventory_api.verify_audit_chain()")
        db.execute("select * from inventory_api.maintenance_leader()")
        db.execute("select * from inventory_api.read_events(consumer => 'ro')")
    with db.transaction(force_rollback=True):
        db.execute("set transaction read only")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            db.execute("select * from inventory_api.create_item(sku => 'RO', name => 'Read only')")


def test_temp_table_hijack_has_no_effect(login_dsn, catalogue: Inventory, connect) -> None:
    catalogue.connection.execute("grant inventory_admin to pyinv_attacker")
    try:
        attacker = connect(conninfo=login_dsn("pyinv_attacker"))
        for table in ("items", "locations", "stock_levels", "reservations", "ledger", "settings", "user_roles",
                      "error_codes", "idempotency_keys"):
            attacker.execute(f"create temp table {table} (item_id bigint, sku text, status text, on_hand numeric,"
                             " reserved numeric, available numeric, location_id bigint, code text)")
            attacker.execute(f"insert into pg_temp.{table} values (666, 'A1', 'active', 1e9, 0, 1e9, 1, 'main')")
        attacker.execute("set search_path = pg_temp, inventory_api, inventory")
        check = attacker.execute("select * from inventory_api.validate_stock(sku => 'A1', quantity => 11)").fetchone()
        assert check == (False, 10, "INSUFFICIENT_STOCK")
        attacker.execute("select * from inventory_api.reserve_stock(sku => 'A1', quantity => 2, order_ref => 'T')")
        assert attacker.execute("select count(*) from pg_temp.reservations").fetchone() == (1,)
    finally:
        catalogue.connection.execute("revoke inventory_admin from pyinv_attacker")
    assert catalogue.stock_levels("A1")[0].reserved == 2


def test_plpgsql_check_finds_nothing(db) -> None:
    if not db.execute("select exists (select from pg_available_extensions where name = 'plpgsql_check')").fetchone()[0]:
        if os.environ.get("PYINV_REQUIRE_PLPGSQL_CHECK"):
            pytest.fail("PYINV_REQUIRE_PLPGSQL_CHECK is set but this server has no plpgsql_check")
        pytest.skip("plpgsql_check is not installed on this server (CI runs it on Debian PostgreSQL 15)")
    db.execute("create extension if not exists plpgsql_check")
    findings = db.execute("""
        select (pcf).functionid::regprocedure::text, (pcf).lineno, (pcf).sqlstate, (pcf).message, (pcf).level
          from (select plpgsql_check_function_tb(p.oid, coalesce(t.tgrelid, 0), fatal_errors => false,
                                                 extra_warnings => true, security_warnings => true,
                                                 oldtable => t.tgoldtable, newtable => t.tgnewtable) as pcf
                  from pg_proc p
                  join pg_language l on l.oid = p.prolang and l.lanname = 'plpgsql'
                  left join pg_trigger t on t.tgfoid = p.oid
                 where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
                   and (p.prorettype <> 'trigger'::regtype or t.tgfoid is not null)
                offset 0) s
         where (pcf).level in ('error', 'warning', 'warning extra', 'security')""").fetchall()
    checked = db.execute("select count(*) from pg_proc p join pg_language l on l.oid = p.prolang"
                         " where l.lanname = 'plpgsql' and p.pronamespace = 'inventory'::regnamespace").fetchone()[0]
    assert checked > 25
    assert findings == []


@pytest.mark.parametrize("view", ["reason_codes", "adjustments", "cycle_counts", "stock_policies", "reorder_alerts",
                                  "reorder_recommendations", "inventory_valuation", "movement_summary",
                                  "active_reservations_summary", "low_stock_items", "alert_statistics",
                                  "maintenance_status", "inventory_metrics", "daily_movements"])
def test_gateway_users_read_the_stock_control_views(gateway, view: str) -> None:
    admin, nobody = gateway("authenticated", "u-admin"), gateway("authenticated", "u-nobody")
    assert isinstance(admin.select(view), list)
    if view != "reason_codes":
        assert nobody.select(view) == []
