"""The audit log: one row per change by anyone, append-only even in replica mode, and a hash chain
that concurrent writers never fork and that reveals tampering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import TEST_ROLES
from helpers import raises_db_error
from psycopg.conninfo import make_conninfo

from pyinv import Busy, Inventory, migrate, server


def audit_rows(db, table: str | None = None) -> list[tuple]:
    return db.execute(
        "select table_name, operation, actor, db_role, login, request_path, request_id,"
        " old_row is not null, new_row is not null from inventory.audit_log"
        " where %(table)s::text is null or table_name = %(table)s order by audit_id", {"table": table}).fetchall()


def seal_all(db) -> int:
    total = 0
    while (sealed := db.execute("select inventory_api.seal_audit_log(batch_size => 500)").fetchone()[0]) > 0:
        total += sealed
    return total


def test_every_change_is_recorded_once(catalogue: Inventory, db) -> None:
    before = len(audit_rows(db))
    hold = catalogue.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1")
    # The hold, the key and the stock level's change are one fact: the ledger movement names them all.
    assert audit_rows(db)[before:] == []
    user = db.info.user
    [movement] = db.execute(
        "select l.movement_type::text, l.actor, l.reserved_before, l.reserved_after, l.reservation_id,"
        " l.idempotency_key from inventory.ledger l where l.reference = 'SO-1'").fetchall()
    assert movement == ("RESERVE", user, 0, 2, hold.reservation_id, "k-1")
    # Anyone else's change of a hold or a key is audited, row by row.
    db.execute("update inventory.reservations set expires_at = now() + interval '1 day' where order_ref = 'SO-1'")
    db.execute("delete from inventory.idempotency_keys where idempotency_key = 'k-1'")
    rows = audit_rows(db)[before:]
    assert [(table, op, actor) for table, op, actor, *_ in rows] == [
        ("reservations", "UPDATE", user), ("idempotency_keys", "DELETE", user)]


def test_stock_level_changes_outside_the_ledger_are_audited(catalogue: Inventory, db) -> None:
    before = len(audit_rows(db))
    db.execute("update inventory.stock_levels set updated_at = updated_at - interval '1 day'")
    db.execute("update inventory.stock_levels set on_hand = on_hand + 1")
    rows = audit_rows(db)[before:]
    levels = db.execute("select count(*) from inventory.stock_levels").fetchone()[0]
    assert levels > 1
    assert [(table, op) for table, op, *_ in rows] == [("stock_levels", "UPDATE")] * levels
    assert db.execute("select count(*) from inventory.ledger where reason = 'direct change of inventory.stock_levels'"
                      ).fetchone()[0] == levels


def test_a_multi_row_statement_pairs_each_old_row_with_its_new_row(catalogue: Inventory, db) -> None:
    items = db.execute("select item_id, name from inventory.items order by item_id").fetchall()
    assert len(items) > 1
    before = db.execute("select coalesce(max(audit_id), 0) from inventory.audit_log").fetchone()[0]
    db.execute("update inventory.items set name = name || ' #' || item_id")
    rows = db.execute("select old_row, new_row from inventory.audit_log where audit_id > %s and table_name = 'items'"
                      " order by audit_id", (before,)).fetchall()
    assert len(rows) == len(items)
    names = dict(items)
    for old_row, new_row in rows:
        assert set(old_row) == {"name", "version"}  # the changed columns' old values (version counts every change)
        assert old_row["name"] == names[new_row["item_id"]]
        assert new_row["name"] == f"{names[new_row['item_id']]} #{new_row['item_id']}"
    db.execute("delete from inventory.user_roles")
    db.execute("select inventory_api.grant_user_role(user_id => 'u-1', role => 'viewer')")
    db.execute("select inventory_api.revoke_user_role(user_id => 'u-1', role => 'viewer')")
    [deleted] = db.execute("select old_row ->> 'user_id', new_row from inventory.audit_log"
                           " where table_name = 'user_roles' and operation = 'DELETE'").fetchall()
    assert deleted == ("u-1", None)


def test_a_manual_update_in_psql_is_audited_with_before_and_after(catalogue: Inventory, db) -> None:
    db.execute("update inventory.items set name = 'Widget (renamed)' where sku = 'A1'")
    [row] = db.execute("select operation, old_row ->> 'name', new_row ->> 'name', actor from inventory.audit_log"
                       " where table_name = 'items' order by audit_id desc limit 1").fetchall()
    assert row == ("UPDATE", "Widget", "Widget (renamed)", db.info.user)


def test_a_rolled_back_call_leaves_no_audit_row(catalogue: Inventory, db) -> None:
    before = len(audit_rows(db))
    with pytest.raises(psycopg.Error):
        db.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 99, order_ref => 'SO-1')")
    assert len(audit_rows(db)) == before


def test_postgrest_calls_are_attributed_to_the_jwt_subject(catalogue: Inventory, db, login_dsn, connect) -> None:
    db.execute("select inventory_api.grant_user_role(user_id => 'u-42', role => 'operator')")
    gateway = connect(conninfo=login_dsn("authenticator"), autocommit=False)
    gateway.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true),"
                    " set_config('request.path', '/rpc/reserve_stock', true),"
                    " set_config('request.headers', '{\"x-request-id\": \"req-7\"}', true)",
                    (json.dumps({"sub": "u-42", "role": "authenticated"}),))
    gateway.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-API')")
    gateway.execute("select inventory_api.record_count(sku => 'A1', location => 'main', counted_quantity => 11)")
    gateway.commit()
    # The hold is recorded by its movement, which keeps the request; the count by its audit row.
    [movement] = catalogue.movements(reference="SO-API")
    assert movement.actor == "u-42"
    assert movement.metadata == {"request_path": "/rpc/reserve_stock", "request_id": "req-7"}
    rows = [row for row in audit_rows(db) if row[0] == "cycle_counts"]
    assert rows[-1][2:7] == ("u-42", "authenticated", "authenticator", "/rpc/reserve_stock", "req-7")


@pytest.mark.parametrize("table", ["audit_log", "audit_chain"])
@pytest.mark.parametrize("replica", [False, True])
def test_audit_tables_are_append_only_even_in_replica_mode(catalogue: Inventory, db, table: str,
                                                           replica: bool) -> None:
    seal_all(db)
    if replica:
        db.execute("set session_replication_role = replica")
    column = {"audit_log": "actor", "audit_chain": "hash"}[table]
    for statement in (f"update inventory.{table} set {column} = {column}",
                      f"delete from inventory.{table}", f"truncate inventory.{table}"):
        with pytest.raises(psycopg.Error) as caught:
            db.execute(statement)
        assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("42501", "APPEND_ONLY")
    assert db.execute(f"select count(*) from inventory.{table}").fetchone()[0] > 0
    enabled = db.execute("select tgname, tgenabled from pg_trigger where tgrelid = %s::regclass and not tgisinternal",
                         (f"inventory.{table}",)).fetchall()
    assert enabled and all(state == "A" for _, state in enabled)


def test_concurrent_writers_give_one_linear_chain(catalogue: Inventory, db, dsn: str) -> None:
    for n in range(8):
        catalogue.create_item(f"W{n}", f"Writer {n}")
        catalogue.receive_stock(f"W{n}", 200)
    barrier = threading.Barrier(9)
    sealed: list[int] = []

    def write(n: int) -> None:
        with Inventory.connect(dsn) as client:
            barrier.wait()
            for i in range(200):  # catalogue rows: each write is an audit row
                client.create_item(f"W{n}-{i}", f"Writer {n} item {i}")

    def seal_while_writing() -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            barrier.wait()
            for _ in range(20):
                sealed.append(
                    connection.execute("select inventory_api.seal_audit_log(batch_size => 300)").fetchone()[0])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=seal_while_writing))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seal_all(db)
    total = db.execute("select count(*) from inventory.audit_log").fetchone()[0]
    chain = db.execute("select count(*), min(seq), max(seq), count(distinct prev_hash), count(distinct audit_id)"
                       " from inventory.audit_chain").fetchone()
    assert total >= 8 * 200
    assert chain == (total, 1, total, total - 1, total)
    assert db.execute("select * from inventory_api.verify_audit_chain()").fetchall() == []


def test_concurrent_sealers_never_fork_the_chain(catalogue: Inventory, db, dsn: str) -> None:
    db.execute("select inventory_api.receive_stock(sku => 'A1', quantity => 1) from generate_series(1, 300)")
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def seal() -> None:
        with psycopg.connect(dsn, autocommit=True) as connection:
            barrier.wait()
            counts.append(connection.execute("select inventory_api.seal_audit_log(batch_size => 100000)").fetchone()[0])

    threads = [threading.Thread(target=seal) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = db.execute("select count(*) from inventory.audit_log").fetchone()[0]
    # One sealer works; the others find it busy (None) or, once it is done, nothing to seal (0).
    assert sorted(count or 0 for count in counts) == [0, 0, 0, total]
    assert db.execute("select count(*), max(seq) from inventory.audit_chain").fetchone() == (total, total)


def test_tampering_is_reported_at_the_first_broken_link(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 1, "SO-1")
    seal_all(db)
    assert db.execute("select * from inventory_api.verify_audit_chain()").fetchall() == []
    victim = db.execute("select audit_id, seq from inventory.audit_chain order by seq offset 3 limit 1").fetchone()
    db.execute("alter table inventory.audit_log disable trigger audit_log_forbid_change")
    db.execute("update inventory.audit_log set actor = 'someone else' where audit_id = %s", (victim[0],))
    db.execute("alter table inventory.audit_log enable always trigger audit_log_forbid_change")
    assert db.execute("select seq, audit_id, problem from inventory_api.verify_audit_chain()").fetchall() == [
        (victim[1], victim[0], "audit row changed after sealing")]


def test_a_deleted_audit_row_is_reported(catalogue: Inventory, db) -> None:
    seal_all(db)
    victim = db.execute("select audit_id, seq from inventory.audit_chain order by seq desc limit 1").fetchone()
    db.execute("alter table inventory.audit_log disable trigger audit_log_forbid_change")
    db.execute("delete from inventory.audit_log where audit_id = %s", (victim[0],))
    db.execute("alter table inventory.audit_log enable always trigger audit_log_forbid_change")
    assert db.execute("select seq, problem from inventory_api.verify_audit_chain()").fetchall() == [
        (victim[1], "audit row deleted")]


def test_audit_hashes_do_not_depend_on_the_session_time_zone(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 1, "SO-1")
    db.execute("set timezone = 'Pacific/Chatham'")
    db.execute("set datestyle = 'Postgres, DMY'")
    seal_all(db)
    for zone, style in (("UTC", "ISO, MDY"), ("Asia/Kathmandu", "SQL, DMY"), ("America/St_Johns", "German")):
        db.execute(f"set timezone = '{zone}'")
        db.execute(f"set datestyle = '{style}'")
        assert db.execute("select * from inventory_api.verify_audit_chain()").fetchall() == []


def test_a_long_transaction_in_another_database_does_not_hold_sealing_back(catalogue: Inventory, db,
                                                                           empty_database) -> None:
    elsewhere = psycopg.connect(empty_database())
    try:
        elsewhere.execute("select pg_current_xact_id()")  # holds a transaction id, open
        catalogue.reserve_stock("A1", 1, "SO-1")
        assert seal_all(db) == db.execute("select count(*) from inventory.audit_log").fetchone()[0]
    finally:
        elsewhere.close()


def test_an_open_writer_here_delays_sealing_until_it_ends(catalogue: Inventory, db, connect) -> None:
    seal_all(db)
    writer = connect(autocommit=False)
    writer.execute("select inventory_api.create_item(sku => 'EARLY', name => 'Written first')")
    catalogue.create_item("LATER", "Written later")
    assert seal_all(db) == 0  # the writer's rows could still come before the later ones
    writer.commit()
    assert seal_all(db) > 0
    assert db.execute("select * from inventory_api.verify_audit_chain()").fetchall() == []
    unsealed = db.execute("select count(*) from inventory.audit_log a"
                          " where not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)")
    assert unsealed.fetchone() == (0,)


def test_audit_table_refuses_a_key_it_cannot_pair_rows_by(db) -> None:
    db.execute("create table inventory.wide_key (a int, b int, c int, d int, primary key (a, b, c, d))")
    with raises_db_error(db, "22023", "INVALID_ARGUMENT"):
        db.execute("select inventory.audit_table('wide_key')")
    triggers = db.execute("select count(*) from pg_trigger where tgrelid = 'inventory.wide_key'::regclass")
    assert triggers.fetchone() == (0,)


# -- request context, busy sealers, locks nobody else can take -------------------------------------------


def test_a_direct_login_cannot_forge_request_context(catalogue: Inventory, db, login_dsn, connect) -> None:
    clerk = connect(conninfo=login_dsn("pyinv_clerk"))
    clerk.execute("select set_config('request.path', '/rpc/forged', false),"
                  " set_config('request.headers', '{\"x-request-id\": \"forged\"}', false),"
                  " set_config('request.jwt.claims', '{\"sub\": \"someone-else\"}', false)")
    clerk.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-F')")
    clerk.execute("select inventory_api.record_count(sku => 'A1', location => 'main', counted_quantity => 11)")
    [movement] = catalogue.movements(reference="SO-F")
    assert (movement.actor, movement.metadata) == ("pyinv_clerk", {})
    assert audit_rows(db, "cycle_counts")[-1][2:7] == ("pyinv_clerk", "pyinv_clerk", "pyinv_clerk", None, None)


def test_a_busy_sealer_is_told_apart_from_nothing_to_seal(catalogue: Inventory, db, connect) -> None:
    seal_all(db)
    assert db.execute("select inventory_api.seal_audit_log()").fetchone() == (0,)  # nothing to seal
    catalogue.create_item("Z9", "Zed")
    running = connect(autocommit=False)
    assert running.execute("select inventory_api.seal_audit_log()").fetchone()[0] > 0
    assert db.execute("select inventory_api.seal_audit_log()").fetchone() == (None,)  # busy
    running.rollback()


def test_advisory_lock_keys_taken_by_any_login_stop_nothing(catalogue: Inventory, db, login_dsn, connect) -> None:
    attacker = connect(conninfo=login_dsn("pyinv_attacker"))
    for key in ("inventory.seal_audit_log", "inventory.check_reorder_points", "pyinv.migrate"):
        attacker.execute("select pg_advisory_lock(hashtext(%s))", (key,))
    catalogue.set_stock_policy("A1", "main", reorder_point=20, safety_stock=5)
    db.execute("set statement_timeout = '10s'")
    assert db.execute("select inventory_api.seal_audit_log()").fetchone()[0] > 0
    assert catalogue.check_reorder_points().levels_checked == 1


# -- anchors: what a superuser rewrites between anchors, and what an anchor reveals -----------------------


@pytest.fixture
def anchored(catalogue: Inventory, db) -> dict:
    catalogue.reserve_stock("A1", 2, "SO-A")
    catalogue.fulfill_order("SO-A")
    seal_all(db)
    anchor = catalogue.audit_anchor()
    assert anchor["format"] == "pyinv-anchor/1" and anchor["audit"]["seq"] > 0
    assert set(anchor["ledger"]["locations"]) == {"main"}
    assert catalogue.verify_audit_chain(anchor) == [] and catalogue.verify_inventory(anchor) == []
    return anchor


@pytest.mark.breaks_invariants
def test_an_anchor_reveals_deleted_sealed_audit_rows(catalogue: Inventory, db, anchored: dict) -> None:
    last = anchored["audit"]["seq"]
    with db.transaction():
        db.execute("alter table inventory.audit_chain disable trigger audit_chain_forbid_change;"
                   " alter table inventory.audit_log disable trigger audit_log_forbid_change")
        db.execute("delete from inventory.audit_log where audit_id in"
                   " (select audit_id from inventory.audit_chain where seq > %s - 3)", (last,))
        db.execute("delete from inventory.audit_chain where seq > %s - 3", (last,))
        db.execute("alter table inventory.audit_chain enable always trigger audit_chain_forbid_change;"
                   " alter table inventory.audit_log enable always trigger audit_log_forbid_change")
    assert catalogue.verify_audit_chain() == []  # what remains is a consistent chain
    [problem] = catalogue.verify_audit_chain(anchored)
    assert f"no longer reaches link {last}" in problem.problem


@pytest.mark.breaks_invariants
def test_an_anchor_reveals_a_rewritten_ledger_with_recomputed_hashes(catalogue: Inventory, db,
                                                                     anchored: dict) -> None:
    with db.transaction():
        db.execute("alter table inventory.ledger disable trigger ledger_forbid_change;"
                   " alter table inventory.stock_levels disable trigger stock_levels_record_change")
        db.execute("update inventory.ledger set reason = 'nothing happened' where movement_type = 'SHIP'")
        # A careful superuser recomputes the level's whole chain and its head.
        db.execute("""
            do $$
            declare g inventory.ledger; v_prev bytea;
            begin
              for g in select * from inventory.ledger where item_id = 1 and location_id = 1 order by movement_id loop
                g.prev_hash := v_prev;
                g.hash := sha256(coalesce(v_prev, '') || inventory.ledger_entry_bytes(g));
                update inventory.ledger set prev_hash = g.prev_hash, hash = g.hash where movement_id = g.movement_id;
                v_prev := g.hash;
              end loop;
              update inventory.stock_levels set ledger_hash = v_prev where item_id = 1 and location_id = 1;
            end $$""")
        db.execute("alter table inventory.ledger enable always trigger ledger_forbid_change;"
                   " alter table inventory.stock_levels enable always trigger stock_levels_record_change")
    assert catalogue.verify_inventory() == []  # consistent again without the anchor
    [violation] = catalogue.verify_inventory(anchored)
    assert (violation.invariant, violation.location) == ("ledger_matches_anchor", "main")
    assert "rewritten" in violation.detail


def test_movements_after_the_anchor_are_fine(catalogue: Inventory, anchored: dict) -> None:
    catalogue.receive_stock("A1", 5)
    catalogue.receive_stock("A1", 5, location="east")
    assert catalogue.verify_inventory(anchored) == [] and catalogue.verify_audit_chain(anchored) == []


def test_an_anchor_waits_for_writers_below_its_cut(catalogue: Inventory, connect) -> None:
    writer = connect(autocommit=False)
    writer.execute("select inventory_api.receive_stock(sku => 'A1', quantity => 1)")  # open: holds a movement id
    with pytest.raises(Busy) as caught:
        catalogue.audit_anchor(wait_seconds=Decimal("0.2"))
    assert (caught.value.actual_sqlstate, caught.value.hint) == ("55P03", "BUSY")
    writer.commit()
    assert catalogue.audit_anchor(wait_seconds=1)["ledger"]["through_movement"] > 0


@pytest.mark.parametrize("anchor", [{}, {"format": "pyinv-anchor/1"}, {"format": "pyinv-anchor/1", "audit": {
    "seq": 1, "hash": "zz"}, "ledger": {"through_movement": 1, "locations": {}}}, [1, 2], "anchor"])
def test_a_malformed_anchor_is_refused(catalogue: Inventory, db, anchor) -> None:
    with raises_db_error(db, "22023", "INVALID_ARGUMENT"):
        db.execute("select * from inventory_api.verify_inventory(anchor => %s::jsonb)", (json.dumps(anchor),))


def test_an_anchor_needs_read_committed(catalogue: Inventory, connect) -> None:
    connection = connect(autocommit=False)
    connection.execute("set transaction isolation level repeatable read")
    with pytest.raises(psycopg.Error) as caught:
        connection.execute("select inventory_api.audit_anchor()")
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("PT409", "INVALID_STATE")


def test_audit_anchor_and_verify_commands(catalogue: Inventory, db, run, tmp_path) -> None:
    anchor_file = tmp_path / "anchor.json"
    assert json.loads(run("--json", "audit", "seal").stdout)["sealed"] > 0
    run("audit", "anchor", "-o", str(anchor_file))
    again = run("audit", "anchor", "-o", str(anchor_file), exit_code=3)
    assert "never overwritten" in again.stderr and "new file" in again.stderr
    ok = run("audit", "verify", "--anchor", str(anchor_file))
    assert ok.stdout.strip() == "audit chain and ledger intact and match the anchor"
    db.execute("alter table inventory.audit_chain disable trigger audit_chain_forbid_change")
    db.execute("delete from inventory.audit_chain where seq = (select max(seq) from inventory.audit_chain)")
    db.execute("alter table inventory.audit_chain enable always trigger audit_chain_forbid_change")
    broken = run("--json", "audit", "verify", "--anchor", str(anchor_file), exit_code=1)
    assert json.loads(broken.stdout)["intact"] is False


# -- sealing survives moving the database to another cluster, and reports a sealer that is not running ----


def test_committed_rows_left_unsealed_too_long_are_reported(catalogue: Inventory, db) -> None:
    seal_all(db)
    db.execute("update inventory.settings set audit_seal_max_lag = interval '1 millisecond'")
    catalogue.receive_stock("A1", 1)
    time.sleep(0.01)
    [problem] = catalogue.verify_audit_chain()
    assert problem.seq is None and "not sealed" in problem.problem
    seal_all(db)
    assert catalogue.verify_audit_chain() == []


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A data directory for a throw-away cluster, beside the test cluster's (the server may run as
    another system user, who cannot enter pytest's private temporary directories)."""
    import platformdirs

    path = platformdirs.user_cache_path("pyinv") / f"cluster-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    yield path
    server.stop(path)
    shutil.rmtree(path, ignore_errors=True)


def test_sealing_continues_after_pg_dump_and_restore_into_a_new_cluster(catalogue: Inventory, db, dsn: str,
                                                                        tmp_path: Path, cluster_dir: Path) -> None:
    catalogue.reserve_stock("A1", 1, "SO-D")
    seal_all(db)
    # The fresh cluster's own install (every migration) uses transaction ids too: put this cluster's
    # clearly ahead, so that the moved rows do come from the new cluster's future.
    db.execute("do $burn$ begin for n in 1 .. 5000 loop perform pg_current_xact_id(); commit; end loop; end $burn$")
    catalogue.create_item("MOVED", "Moved before sealing")  # committed, not sealed yet: it moves with the dump
    # A plain dump, without the pg_attver column options Debian's PostgreSQL 15.20 adds (other servers
    # refuse them).
    dumped = subprocess.run([str(server.bin_dir() / "pg_dump"), "--dbname", dsn], check=True, capture_output=True,
                            text=True).stdout
    dump = tmp_path / "pyinv.sql"
    dump.write_text("\n".join(line for line in dumped.splitlines() if "SET (pg_attver=" not in line))
    fresh = server.start(cluster_dir, settings={"fsync": "off"})
    # Roles are cluster-wide: the test roles, and pyinv's from installing it once in the new cluster.
    with psycopg.connect(make_conninfo(fresh, dbname="postgres"), autocommit=True) as admin:
        admin.execute(TEST_ROLES)
        admin.execute("create database moved")
    migrate.apply(make_conninfo(fresh, dbname="postgres"))
    moved = make_conninfo(fresh, dbname="moved")
    subprocess.run([str(server.bin_dir() / "psql"), "--quiet", "--set", "ON_ERROR_STOP=1", "--file", str(dump),
                    "--dbname", moved], check=True, capture_output=True)
    with Inventory.connect(moved) as inv, psycopg.connect(moved, autocommit=True) as conn:
        newest = conn.execute("select max(transaction_id) from inventory.audit_log").fetchone()[0]
        assert conn.execute("select pg_current_xact_id() < %s", (newest,)).fetchone() == (True,)
        inv.receive_stock("A1", 2)
        while inv.seal_audit_log(100):
            pass
        assert conn.execute("select count(*) from inventory.audit_log a where not exists"
                            " (select from inventory.audit_chain c where c.audit_id = a.audit_id)"
                            ).fetchone() == (0,)
        assert inv.verify_audit_chain() == [] and inv.verify_inventory() == []
