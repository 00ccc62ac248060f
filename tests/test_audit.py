"""The audit log: one row per change by anyone, append-only even in replica mode, and a hash chain
that concurrent writers never fork and that reveals tampering."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from helpers import raises_db_error

from pyinv import Inventory


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


def test_every_change_leaves_one_audit_row(catalogue: Inventory, db) -> None:
    before = len(audit_rows(db))
    catalogue.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1")
    rows = audit_rows(db)[before:]
    assert sorted((table, op) for table, op, *_ in rows) == [("idempotency_keys", "INSERT"), ("reservations", "INSERT")]
    user = db.info.user
    assert {(actor, role, login) for _, _, actor, role, login, *_ in rows} == {(user, user, user)}
    # The stock level's change is recorded once, by its ledger movement, in the same transaction.
    [movement] = db.execute(
        "select l.movement_type::text, l.actor, l.reserved_before, l.reserved_after from inventory.ledger l"
        " where l.reference = 'SO-1' and l.transaction_id = (select a.transaction_id from inventory.audit_log a"
        " where a.table_name = 'reservations' order by a.audit_id desc limit 1)").fetchall()
    assert movement == ("RESERVE", user, 0, 2)


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
        assert set(old_row) == {"name", "updated_at"} or set(old_row) == {"name"}
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
    gateway.commit()
    rows = [row for row in audit_rows(db) if row[0] == "reservations"]
    assert rows[-1][2:7] == ("u-42", "authenticated", "authenticator", "/rpc/reserve_stock", "req-7")
    [movement] = catalogue.movements(reference="SO-API")
    assert movement.actor == "u-42"


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
            for i in range(200):
                client.reserve_stock(f"W{n}", 1, f"SO-{n}-{i}")

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
    writer.execute("select inventory_api.receive_stock(sku => 'B2', quantity => 1)")
    catalogue.reserve_stock("A1", 1, "SO-LATER")
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
