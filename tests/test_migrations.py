"""Migrations reproduce the authoritative schema in sql/, re-running them is a no-op, concurrent
runs are safe, and released migrations never change."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import MIGRATIONS, run_together
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pyinv import migrate, server
from pyinv.resources import migrations_dir, schema_sql


def schema_dump(dsn: str) -> str:
    """A normalised schema-only dump of pyinv's schemas: tables, columns, constraints, indexes,
    functions, triggers, types, views, grants and comments."""
    result = subprocess.run(
        [str(server.bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--schema=inventory",
         "--schema=inventory_api", "--dbname", dsn],
        check=True, capture_output=True, text=True)
    # Debian's PostgreSQL 15.20 stamps every column with a pg_attver option of its own (a value that
    # differs between two installs of the same schema); it is not part of pyinv's schema.
    lines = [line for line in result.stdout.splitlines()
             if line and not line.startswith("--") and not line.startswith("\\") and "SET (pg_attver=" not in line]
    # pg_dump lists a policy's roles in the order its catalog scan meets them, which other sessions
    # creating and dropping roles in the cluster can change between two dumps: compared as a set.
    return "\n".join(_policy_roles_sorted(line) for line in lines)


def _policy_roles_sorted(line: str) -> str:
    match = re.match(r"(CREATE POLICY .* TO )(.+?)( USING .*| WITH CHECK .*|;)$", line)
    if match is None:
        return line
    return match.group(1) + ", ".join(sorted(match.group(2).split(", "))) + match.group(3)


def install_from_sql(dsn: str) -> None:
    with psycopg.connect(dsn) as connection:
        connection.execute(schema_sql())


def test_migrated_database_equals_the_authoritative_schema(empty_database) -> None:
    from_sql, from_migrations = empty_database(), empty_database()
    install_from_sql(from_sql)
    assert migrate.apply(from_migrations) == MIGRATIONS
    assert schema_dump(from_migrations) == schema_dump(from_sql)
    assert "create function inventory.reserve_stock" in schema_dump(from_sql).lower()
    # The rows sql/ seeds, which a schema dump does not show.
    seeded = ["select * from inventory.error_codes order by 1", "select * from inventory.maintenance_jobs order by 1",
              "select reason_code, description, requires_approval, approval_threshold, direction"
              " from inventory.reason_codes order by 1",
              "select * from inventory.settings"]
    with psycopg.connect(from_sql) as new, psycopg.connect(from_migrations) as migrated:
        for query in seeded:
            assert migrated.execute(query).fetchall() == new.execute(query).fetchall(), query


def test_rerunning_migrations_is_a_no_op(empty_database) -> None:
    dsn = empty_database()
    migrate.apply(dsn)
    before = schema_dump(dsn)
    assert migrate.apply(dsn) == []
    assert schema_dump(dsn) == before
    assert [state.applied for state in migrate.status(dsn)] == [True] * len(migrate.status(dsn))


def test_rollback_and_reapply(empty_database) -> None:
    dsn = empty_database()
    migrate.apply(dsn)
    before = schema_dump(dsn)
    assert migrate.rollback(dsn) == [MIGRATIONS[-1]]
    assert migrate.apply(dsn) == [MIGRATIONS[-1]]
    assert schema_dump(dsn) == before
    assert migrate.rollback(dsn, count=len(MIGRATIONS)) == MIGRATIONS[::-1]
    with psycopg.connect(dsn) as connection:
        assert connection.execute("select to_regnamespace('inventory')").fetchone() == (None,)
    assert migrate.apply(dsn) == MIGRATIONS
    assert schema_dump(dsn) == before


def test_rolling_back_the_newest_migration_restores_the_previous_release(empty_database) -> None:
    """The hand-written rollback gives back the previous release's schema (privileges apart: a database
    migrated only up to an older release has not had the grants layer run, which `pyinv migrate` runs
    after the newest; the rollback restores the privileges the restored objects had)."""
    previous, rolled_back = empty_database(), empty_database()
    assert migrate.apply(previous, up_to=MIGRATIONS[-2]) == MIGRATIONS[:-1]
    migrate.apply(rolled_back)
    assert migrate.rollback(rolled_back) == [MIGRATIONS[-1]]

    def without_privileges(dsn: str) -> str:
        lines = [re.sub(r" TO [a-z_, ]+ USING ", " USING ", line) for line in schema_dump(dsn).splitlines()
                 if not line.startswith(("GRANT ", "REVOKE "))]
        # PostgreSQL cannot remove a value from an enum: rolling 0006 back leaves REBALANCE, unused.
        return "\n".join(lines).replace("'TRANSFER_IN',\n    'REBALANCE'\n);", "'TRANSFER_IN'\n);")

    assert without_privileges(rolled_back) == without_privileges(previous)


def test_concurrent_migrate_runs_are_safe(empty_database) -> None:
    dsn = empty_database()
    results = run_together(4, lambda n: migrate.apply(dsn))
    assert sorted(map(str, results)) == sorted([str(MIGRATIONS), "[]", "[]", "[]"])


def test_bookkeeping_lives_in_inventory_meta_and_nothing_in_public(empty_database) -> None:
    dsn = empty_database()
    migrate.apply(dsn)
    with psycopg.connect(dsn) as connection:
        meta = connection.execute(
            "select count(*) from pg_tables where schemaname = 'inventory_meta' and tablename like '%yoyo%'")
        assert meta.fetchone()[0] >= 3
        ours_in_public = connection.execute("""
            select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'public'
            union all
            select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'
        """).fetchall()
        assert ours_in_public == [(0,), (0,)]


def test_migration_files_are_well_formed() -> None:
    files = sorted(path.name for path in migrations_dir().glob("*.sql") if not path.name.startswith("post-apply"))
    forward = [name for name in files if not name.endswith(".rollback.sql")]
    for number, name in enumerate(forward, start=1):
        assert re.fullmatch(rf"{number:04d}_[a-z0-9_]+\.sql", name), name
        assert name.replace(".sql", ".rollback.sql") in files, f"{name} has no rollback"
        assert "-- depends:" in (migrations_dir() / name).read_text().split("\n\n")[0]


# migrations/CHECKSUMS holds the sha256 of every released migration: a released migration is never
# edited, only followed by a new one.
@pytest.mark.parametrize("line", Path(migrations_dir() / "CHECKSUMS").read_text().splitlines())
def test_released_migrations_are_unchanged(line: str) -> None:
    digest, name = line.split()
    assert hashlib.sha256((migrations_dir() / name).read_bytes()).hexdigest() == digest, (
        f"{name} was released and must not change: add a new migration instead")


def test_upgrading_keeps_each_login_s_access_each_return_and_the_chain(empty_database) -> None:
    """A 0.2.0 database with a login narrowed by a user_roles row, returns and a partly sealed audit
    chain, upgraded: the login keeps exactly its access, returns move onto the holds, sealing resumes."""
    dsn = empty_database()
    assert migrate.apply(dsn, up_to="0002_hot_path") == ["0001_core", "0002_hot_path"]
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("drop role if exists pyinv_narrowed")
        db.execute("create role pyinv_narrowed login password 'pyinv-test' in role inventory_operator")
        try:
            db.execute("""
                select inventory_api.create_item(sku => 'A1', name => 'Widget');
                select inventory_api.create_location(code => 'east', name => 'East');
                select inventory_api.receive_stock(sku => 'A1', quantity => 10, location => l)
                  from unnest(array['main', 'east']) l;
                select inventory_api.grant_user_role(user_id => 'pyinv_narrowed', role => 'operator',
                                                     location => 'east');
                select inventory_api.reserve_stock(sku => 'A1', quantity => 3, order_ref => 'SO-1');
                select inventory_api.reserve_stock(sku => 'A1', quantity => 2, order_ref => 'SO-1');
                select inventory_api.fulfill_order(order_ref => 'SO-1');
                select inventory_api.process_return(order_ref => 'SO-1', sku => 'A1', quantity => 4, reason => 'x');
                select inventory_api.seal_audit_log();
                select inventory_api.receive_stock(sku => 'A1', quantity => 1);""")
            assert migrate.apply(dsn) == MIGRATIONS[2:]
            member = db.execute("select pg_has_role('pyinv_narrowed', r, 'MEMBER') from unnest(array["
                                "'inventory_operator', 'inventory_user']) r").fetchall()
            assert member == [(False,), (True,)]
            narrowed = psycopg.connect(make_conninfo(dsn, user="pyinv_narrowed", password="pyinv-test"),
                                       autocommit=True)
            with narrowed:
                narrowed.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'E',"
                                 " location => 'east')")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    narrowed.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1,"
                                     " order_ref => 'M')")
            assert db.execute("select quantity_fulfilled, quantity_returned from inventory.reservations"
                              " where order_ref = 'SO-1' order by reservation_id").fetchall() == [(3, 3), (2, 1)]
            assert db.execute("select * from inventory_api.verify_inventory()").fetchall() == []
            while db.execute("select inventory_api.seal_audit_log()").fetchone()[0]:
                pass
            assert db.execute("select count(*) from inventory.audit_log a where not exists"
                              " (select from inventory.audit_chain c where c.audit_id = a.audit_id)").fetchone() == (0,)
            assert db.execute("select * from inventory_api.verify_audit_chain()").fetchall() == []
        finally:
            db.execute("drop role pyinv_narrowed")


def test_the_migrating_login_keeps_no_owner_rights(empty_database) -> None:
    """A non-superuser login that owns the database migrates it, then cannot disable the append-only
    triggers, rewrite the ledger, truncate the audit log or become the owner role."""
    dsn = empty_database()
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("drop role if exists pyinv_migrator")
        db.execute("create role pyinv_migrator login createrole password 'pyinv-test'")
        if db.info.server_version >= 160000:
            # What PostgreSQL 16+ gives the login that creates pyinv's roles: ADMIN, nothing more.
            db.execute("grant inventory_owner, inventory_viewer, inventory_operator, inventory_admin,"
                       " inventory_scheduler, inventory_user to pyinv_migrator"
                       " with admin option, inherit false, set false")
        db.execute(sql.SQL("alter database {} owner to pyinv_migrator").format(sql.Identifier(name)))
    migrator = make_conninfo(dsn, user="pyinv_migrator", password="pyinv-test")
    try:
        assert migrate.apply(migrator) == MIGRATIONS
        assert migrate.apply(migrator) == []
        with psycopg.connect(migrator, autocommit=True) as login:
            assert login.execute("select pg_has_role('inventory_owner', 'USAGE')").fetchone() == (False,)
            for statement in ("alter table inventory.ledger disable trigger ledger_forbid_change",
                              "update inventory.ledger set reason = 'rewritten'",
                              "truncate inventory.audit_log",
                              "set role inventory_owner"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    login.execute(statement)
    finally:
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(sql.SQL("alter database {} owner to postgres").format(sql.Identifier(name)))
            db.execute("drop owned by pyinv_migrator")
            db.execute("drop role pyinv_migrator")


def test_upgrading_puts_the_stock_of_lot_tracked_items_into_an_unlotted_lot(empty_database) -> None:
    """Before 0.4.0 an item's track_lots was stored and read by nothing: a 0.3.0 database can hold
    such an item with stock at two locations, an open hold, a shipped and partly returned one, a
    cancelled one and an adjustment awaiting approval, all without lots. Upgraded, one lot UNLOTTED
    holds all of it (levels, history, holds, the adjustment), the books verify, and the item is
    served from the lot like any other."""
    dsn = empty_database()
    assert migrate.apply(dsn, up_to="0003_hardening") == MIGRATIONS[:3]
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("drop role if exists pyinv_lot_clerk")
        db.execute("create role pyinv_lot_clerk login password 'pyinv-test' in role inventory_operator")
        try:
            db.execute("""
                select inventory_api.create_item(sku => 'LOT-1', name => 'Vaccine', track_lots => true);
                select inventory_api.create_item(sku => 'PLAIN-1', name => 'Widget');
                select inventory_api.create_location(code => 'east', name => 'East');
                select inventory_api.receive_stock(sku => 'LOT-1', quantity => 10, location => 'main');
                select inventory_api.receive_stock(sku => 'LOT-1', quantity => 6, location => 'east');
                select inventory_api.receive_stock(sku => 'PLAIN-1', quantity => 5);
                select inventory_api.reserve_stock(sku => 'LOT-1', quantity => 3, order_ref => 'SO-OPEN');
                select inventory_api.reserve_stock(sku => 'LOT-1', quantity => 4, order_ref => 'SO-SHIPPED');
                select inventory_api.fulfill_order(order_ref => 'SO-SHIPPED');
                select inventory_api.process_return(order_ref => 'SO-SHIPPED', sku => 'LOT-1', quantity => 1,
                                                   reason => 'damaged box');
                select inventory_api.reserve_stock(sku => 'LOT-1', quantity => 2, order_ref => 'SO-CANCELLED',
                                                   location => 'east');
                select inventory_api.cancel_reservation(order_ref => 'SO-CANCELLED');""")
            with psycopg.connect(make_conninfo(dsn, user="pyinv_lot_clerk", password="pyinv-test"),
                                 autocommit=True) as clerk:
                pending = clerk.execute(
                    "select adjustment_id, status from inventory_api.create_adjustment(sku => 'LOT-1',"
                    " quantity_delta => -2, adjustment_type => 'damage', reason_code => 'shrinkage',"
                    " location => 'east')").fetchone()
            assert pending[1] == "PENDING"
            movements = db.execute("select count(*) from inventory.ledger l join inventory.items i using (item_id)"
                                   " where i.sku = 'LOT-1'").fetchone()[0]

            assert migrate.apply(dsn)[0] == "0004_lots"  # and every later migration

            assert db.execute("select * from inventory_api.verify_inventory()").fetchall() == []
            lots = ("select sku, lot_number, location, on_hand, reserved, available, expires_on, qc_status, sellable"
                    " from inventory_api.lots order by location")
            assert db.execute(lots).fetchall() == [
                ("LOT-1", "UNLOTTED", "east", 6, 0, 6, None, "PASSED", True),
                ("LOT-1", "UNLOTTED", "main", 7, 3, 4, None, "PASSED", True)]
            assert db.execute(
                "select t.received_at = (select min(g.created_at) from inventory.ledger g where g.item_id = t.item_id)"
                " from inventory.lots t").fetchall() == [(True,)]
            # Every ledger movement of the item has its lot movement; the other item has no lots.
            assert db.execute("select count(*), count(distinct movement_id) from inventory.lot_movements"
                              " where reason = 'migrated to lot tracking'").fetchone() == (movements, movements)
            assert db.execute("select i.sku, s.track_lots from inventory.stock_levels s"
                              " join inventory.items i using (item_id) order by 1, s.location_id").fetchall() == [
                ("LOT-1", True), ("LOT-1", True), ("PLAIN-1", False)]
            assert db.execute("select order_ref, lot_number, quantity, fulfilled, released, returned"
                              " from inventory_api.lot_allocations order by reservation_id").fetchall() == [
                ("SO-OPEN", "UNLOTTED", 3, 0, 0, 0), ("SO-SHIPPED", "UNLOTTED", 4, 4, 0, 1),
                ("SO-CANCELLED", "UNLOTTED", 2, 0, 2, 0)]
            assert db.execute("select lot_number from inventory_api.adjustments where adjustment_id = %s",
                              (pending[0],)).fetchone() == ("UNLOTTED",)

            # The item is now served from its lot: shipping the open hold, a new hold, the adjustment.
            db.execute("select inventory_api.fulfill_order(order_ref => 'SO-OPEN')")
            db.execute("select inventory_api.reserve_stock(sku => 'LOT-1', quantity => 2, order_ref => 'SO-NEW',"
                       " location => 'east')")
            assert db.execute("select status from inventory_api.approve_adjustment(adjustment_id => %s,"
                              " decision => 'approved')", (pending[0],)).fetchone() == ("APPROVED",)
            assert db.execute(lots).fetchall() == [
                ("LOT-1", "UNLOTTED", "east", 4, 2, 2, None, "PASSED", True),
                ("LOT-1", "UNLOTTED", "main", 4, 0, 4, None, "PASSED", True)]
            assert db.execute("select lots from inventory_api.stock_movements"
                              " order by movement_id desc limit 1").fetchone() == (
                [{"lot_number": "UNLOTTED", "on_hand_delta": -2, "reserved_delta": 0}],)
            assert db.execute("select order_ref, allocated, fulfilled, returned, released, hold_status"
                              " from inventory_api.trace_lot(sku => 'LOT-1', lot_number => 'UNLOTTED')"
                              " order by reservation_id").fetchall() == [
                ("SO-OPEN", 3, 3, 0, 0, "FULFILLED"), ("SO-SHIPPED", 4, 4, 1, 0, "FULFILLED"),
                ("SO-CANCELLED", 2, 0, 0, 2, "CANCELLED"), ("SO-NEW", 2, 0, 0, 0, "ACTIVE")]
            assert db.execute("select * from inventory_api.verify_inventory()").fetchall() == []
        finally:
            db.execute("drop owned by pyinv_lot_clerk")
            db.execute("drop role pyinv_lot_clerk")
