"""Events (issue 13): every change writes its event in its own transaction, readers never skip one
that committed late, consumers resume exactly where they acknowledged, and the webhook deliverer
retries until the receiver accepts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import psycopg
import pytest
from helpers import raises_db_error, raises_inventory_error

from pyinv import AsyncInventory, InvalidArgument, Inventory, PermissionDenied
from pyinv.events import Follower, Webhook, deliver, event_json, signature
from pyinv.models import Event


def events_since(db: psycopg.Connection[Any], after: int = 0) -> list[tuple[Any, ...]]:
    return db.execute("select type, sku, location, payload from inventory_api.events where id > %s order by id",
                      (after,)).fetchall()


def last_id(db: psycopg.Connection[Any]) -> int:
    return db.execute("select coalesce(max(event_id), 0) from inventory.events").fetchone()[0]


def drain(inv: Inventory, consumer: str | None = None, after_id: int | None = None) -> list[Event]:
    events: list[Event] = []
    while True:
        batch = inv.read_events(consumer, 1000, after_id=after_id if not events else events[-1].id)
        events += batch
        if len(batch) < 1000:
            return events


# -- what emits what ------------------------------------------------------------------------------------------


def test_each_stock_movement_writes_one_event(catalogue: Inventory, db) -> None:
    assert [(t, s, loc) for t, s, loc, _ in events_since(db)] == [
        ("stock.received", "A1", "main"), ("stock.received", "B2", "main")]
    start = last_id(db)
    hold = catalogue.reserve_stock("A1", 3, "SO-1")
    catalogue.fulfill_order("SO-1", "A1", 2)
    catalogue.cancel_reservation("SO-1")
    catalogue.reserve_stock("A1", 1, "SO-2")
    catalogue.fulfill_order("SO-2")
    catalogue.process_return("SO-2", "A1", 1, "unwanted")
    catalogue.create_adjustment("A1", -1, "damage", "damaged")
    catalogue.transfer_stock("B2", 2, "main", "east")
    rows = events_since(db, start)
    assert [(t, s, loc) for t, s, loc, _ in rows] == [
        ("reservation.created", "A1", "main"), ("stock.shipped", "A1", "main"), ("reservation.released", "A1", "main"),
        ("reservation.created", "A1", "main"), ("stock.shipped", "A1", "main"), ("stock.returned", "A1", "main"),
        ("stock.adjusted", "A1", "main"), ("adjustment.applied", "A1", "main"),
        ("stock.transferred_out", "B2", "main"), ("stock.transferred_in", "B2", "east")]
    created, shipped, released = (payload for _, _, _, payload in rows[:3])
    movement_id, reservation_id = db.execute(
        "select movement_id, reservation_id from inventory.ledger where movement_type = 'RESERVE' order by 1 limit 1"
    ).fetchone()
    assert created == {
        "movement_id": movement_id, "movement_type": "RESERVE", "on_hand_before": 10, "on_hand_after": 10,
        "reserved_before": 0, "reserved_after": 3, "reason": "order hold", "reference": "SO-1",
        "actor": db.info.user, "reservation_id": hold.reservation_id, "reservation_ids": None,
        "related_movement_id": None}
    assert reservation_id == hold.reservation_id
    assert (shipped["on_hand_after"], shipped["reserved_after"], shipped["reservation_ids"]) == (
        8, 1, [hold.reservation_id])
    assert (released["reserved_before"], released["reserved_after"], released["reason"]) == (
        1, 0, "reservation cancelled")
    # Exactly one event per ledger movement, in the same transaction.
    assert db.execute("select count(*) from inventory.ledger").fetchone()[0] == db.execute(
        "select count(*) from inventory.events where type like 'stock.%' or type like 'reservation.%'").fetchone()[0]
    assert db.execute("select count(*) from inventory.ledger g join inventory.events e"
                      " on e.movement_id = g.movement_id"
                      " and e.transaction_id = g.transaction_id").fetchone()[0] == 11


def test_expiry_is_an_event_once(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-OLD")
    catalogue.reserve_stock("A1", 1, "SO-OLD-2")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second'")
    start = last_id(db)
    assert catalogue.expire_reservations() == 2
    [(kind, sku, location, payload)] = events_since(db, start)  # one level: one movement, one event
    ids = [r for (r,) in db.execute("select reservation_id from inventory.reservations order by 1").fetchall()]
    assert (kind, sku, location, payload["reservation_ids"], payload["reserved_after"]) == (
        "reservation.expired", "A1", "main", ids, 0)


def test_adjustment_decisions_are_events(catalogue: Inventory, clerk: Inventory, db) -> None:
    start = last_id(db)
    pending = clerk.create_adjustment("A1", -6, "damage", "damaged", description="forklift")
    rejected = clerk.create_adjustment("B2", -1, "correction", "shrinkage")
    catalogue.approve_adjustment(pending.adjustment_id, note="seen it")
    catalogue.approve_adjustment(rejected.adjustment_id, "rejected", note="no")
    rows = events_since(db, start)
    assert [(t, s) for t, s, _, _ in rows] == [
        ("adjustment.pending", "A1"), ("adjustment.pending", "B2"), ("stock.adjusted", "A1"),
        ("adjustment.approved", "A1"), ("adjustment.rejected", "B2")]
    approved = rows[3][3]
    assert (approved["adjustment_id"], approved["previous_status"], approved["requested_by"], approved["decided_by"],
            approved["decision_note"], approved["quantity_delta"], approved["actor"]) == (
        pending.adjustment_id, "PENDING", "pyinv_clerk", db.info.user, "seen it", -6, db.info.user)
    assert approved["movement_id"] == rows[2][3]["movement_id"]


def test_lot_status_changes_are_events(inv: Inventory, db) -> None:
    inv.create_item("LOT-1", "Lot-tracked", track_lots=True)
    inv.receive_stock("LOT-1", 5, lot_number="L1")
    start = last_id(db)
    inv.set_lot_status("LOT-1", "L1", quarantined=True, note="smells odd")
    inv.set_lot_status("LOT-1", "L1", quarantined=False)
    inv.set_lot_status("LOT-1", "L1", qc_status="FAILED")
    inv.set_lot_status("LOT-1", "L1", qc_status="FAILED")  # no change: no event
    rows = events_since(db, start)
    assert [(t, s, loc) for t, s, loc, _ in rows] == [
        ("lot.quarantined", "LOT-1", None), ("lot.quarantine_lifted", "LOT-1", None), ("lot.qc_failed", "LOT-1", None)]
    assert {k: rows[0][3][k] for k in ("lot_number", "quarantined", "previous_quarantined", "note")} == {
        "lot_number": "L1", "quarantined": True, "previous_quarantined": False, "note": "smells odd"}


def test_reorder_alert_changes_are_events(catalogue: Inventory, db) -> None:
    catalogue.set_stock_policy("A1", "main", reorder_point=5, safety_stock=2)
    start = last_id(db)
    catalogue.reserve_stock("A1", 6, "SO-1")  # available 4: REORDER
    [alert] = catalogue.reorder_alerts()
    catalogue.reserve_stock("A1", 3, "SO-2")  # available 1: CRITICAL
    catalogue.update_reorder_alert(alert.alert_id, "ACKNOWLEDGED", note="PO-77")
    catalogue.receive_stock("A1", 20)  # recovered: resolved
    rows = events_since(db, start)
    assert [t for t, _, _, _ in rows] == [
        "reservation.created", "alert.opened", "reservation.created", "alert.escalated", "alert.acknowledged",
        "stock.received", "alert.resolved"]
    assert {k: rows[1][3][k] for k in ("alert_id", "status", "severity", "reorder_point")} == {
        "alert_id": alert.alert_id, "status": "OPEN", "severity": "REORDER", "reorder_point": 5}
    assert rows[4][3]["note"] == "PO-77"


def test_events_can_be_switched_off(catalogue: Inventory, db) -> None:
    start = last_id(db)
    db.execute("update inventory.settings set events_enabled = false")
    catalogue.reserve_stock("A1", 1, "SO-1")
    assert events_since(db, start) == []
    db.execute("update inventory.settings set events_enabled = true")
    catalogue.reserve_stock("A1", 1, "SO-2")
    assert [t for t, _, _, _ in events_since(db, start)] == ["reservation.created"]


# -- rollback, and reading without loss -----------------------------------------------------------------------


def test_a_rolled_back_change_emits_nothing(catalogue: Inventory, db, connect) -> None:
    start = last_id(db)
    listener = connect()
    listener.execute("listen pyinv_events")
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("select inventory_api.reserve_stock('A1', 2, 'SO-1')")
        db.execute("select inventory_api.receive_stock('B2', 2)")
        assert len(events_since(db, start)) == 2  # visible inside the transaction only
        raise RuntimeError("roll back")
    with raises_db_error(db, "PT409", "INSUFFICIENT_STOCK"):  # a failed call: rolled back by itself
        db.execute("select inventory_api.reserve_stock('A1', 99, 'SO-2')")
    assert events_since(db, start) == []
    assert list(listener.notifies(timeout=0.3)) == []  # no notification either
    assert drain(catalogue, after_id=start) == []


def test_listen_receives_the_id_only(catalogue: Inventory, connect, db) -> None:
    listener = Inventory(connect())
    listener.listen_events()
    db.execute("select setval('inventory.event_notify_clock', 0)")  # none notified lately
    catalogue.reserve_stock("A1", 1, "SO-1")
    ids = listener.wait_for_events(5)
    assert ids == [last_id(db)]
    assert listener.wait_for_events(0.1) == []


def test_the_async_client_listens_reads_and_acknowledges(dsn: str, catalogue: Inventory, db) -> None:
    async def scenario() -> None:
        async with await AsyncInventory.connect(dsn) as client:
            await client.listen_events()
            db.execute("select setval('inventory.event_notify_clock', 0)")
            catalogue.reserve_stock("A1", 1, "SO-ASYNC")
            assert await client.wait_for_events(5) == [last_id(db)]
            events = await client.read_events("async", 10)
            assert [e.type for e in events] == ["stock.received", "stock.received", "reservation.created"]
            assert (await client.ack_events("async", events[-1].id)).acknowledged_id == events[-1].id
            assert await client.read_events("async") == []

    asyncio.run(scenario())


def test_notifications_are_rationed_and_followers_still_miss_nothing(catalogue: Inventory, connect, db) -> None:
    listener = Inventory(connect())
    listener.listen_events()
    db.execute("update inventory.settings set event_notify_interval = '1 hour'")
    db.execute("select setval('inventory.event_notify_clock', 0)")
    for n in range(3):
        catalogue.reserve_stock("A1", 1, f"SO-{n}")
    assert listener.wait_for_events(2) == [last_id(db) - 2]  # the first only
    assert listener.wait_for_events(0.3) == []
    db.execute("update inventory.settings set event_notify_interval = '0'")  # every event notifies
    catalogue.reserve_stock("A1", 1, "SO-3")
    catalogue.reserve_stock("A1", 1, "SO-4")
    assert listener.wait_for_events(2) + listener.wait_for_events(1) == [last_id(db) - 1, last_id(db)]
    # A follower woken by the first event of a burst reads the rest shortly after, not a poll later.
    db.execute("update inventory.settings set event_notify_interval = '1 hour'")
    db.execute("select setval('inventory.event_notify_clock', 0)")
    seen: list[Event] = []
    follower = Follower(catalogue, Inventory(connect()), consumer="burst", poll_seconds=60)
    catalogue.ack_events("burst", last_id(db))
    thread = threading.Thread(target=follower.run, args=(seen.append,), kwargs={"max_events": 4})
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    for n in range(4):
        catalogue.reserve_stock("B2", 1, f"SO-B{n}")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert [e.payload["reference"] for e in seen] == ["SO-B0", "SO-B1", "SO-B2", "SO-B3"]


def test_a_reader_never_passes_an_event_that_commits_late(catalogue: Inventory, connect, db) -> None:
    """Ids are drawn before commit: B draws a lower id than A but commits later. A transaction that
    started first (A, with the lower transaction id) commits first; read_events gives A's event and
    never acknowledges past B's, which comes once B commits."""
    start = last_id(db)
    first, second = connect(autocommit=False), connect(autocommit=False)
    first.execute("select pg_current_xact_id()")  # A's transaction id: the older one
    second.execute("select inventory_api.reserve_stock('A1', 1, 'SO-B')")  # B draws the lower event id
    first.execute("select inventory_api.reserve_stock('B2', 1, 'SO-A')")  # A draws a higher one
    b_id, a_id = start + 1, start + 2
    # Neither committed: nothing to read, and nothing that could be acknowledged.
    assert catalogue.read_events("erp") == [] or [e.id for e in catalogue.read_events("erp")][-1] <= start
    first.commit()
    seen = [e.id for e in drain(catalogue, "erp") if e.id > start]
    assert seen == [a_id]  # A's event is final (A is older than every running transaction)
    catalogue.ack_events("erp", a_id)
    assert drain(catalogue, "erp") == []  # B still runs
    second.commit()
    assert [e.id for e in drain(catalogue, "erp")] == [b_id]  # not skipped by the ack of a higher id
    catalogue.ack_events("erp", b_id)
    assert drain(catalogue, "erp") == []


def test_a_long_transaction_holds_back_later_events_until_it_ends(catalogue: Inventory, connect, db) -> None:
    catalogue.ack_events("erp", last_id(db))
    held = connect(autocommit=False)
    held.execute("select inventory_api.reserve_stock('A1', 1, 'SO-HELD')")
    catalogue.reserve_stock("B2", 1, "SO-LATER")  # commits, but after the held transaction began
    assert catalogue.read_events("erp") == []
    with raises_inventory_error(db, InvalidArgument):  # cannot acknowledge past the held one
        catalogue.ack_events("erp", last_id(db))
    held.commit()
    assert [(e.type, e.payload["reference"]) for e in catalogue.read_events("erp")] == [
        ("reservation.created", "SO-HELD"), ("reservation.created", "SO-LATER")]


def test_a_repeatable_read_reader_never_passes_an_event_committed_after_its_snapshot(catalogue: Inventory, connect,
                                                                                    db) -> None:
    """A reader's snapshot may be older than the horizon: T1 (lower xid) writes an event and commits only
    after the reader's snapshot, T2 (higher xid) committed before it. Returning T2's event would move the
    consumer past T1's, which that snapshot cannot see: it must wait."""
    catalogue.ack_events("rr", last_id(db))
    first, second = connect(autocommit=False), connect(autocommit=False)
    first.execute("select inventory_api.reserve_stock(sku => 'A1', quantity => 1, order_ref => 'SO-T1')")
    second.execute("select inventory_api.reserve_stock(sku => 'B2', quantity => 1, order_ref => 'SO-T2')")
    second.commit()
    reader = connect(autocommit=False)
    reader.execute("set transaction isolation level repeatable read")
    reader.execute("select 1")  # the snapshot: T1 running, T2 committed
    first.commit()
    assert reader.execute("select id from inventory_api.read_events('rr')").fetchall() == []
    reader.rollback()
    assert [e.payload["reference"] for e in catalogue.read_events("rr")] == ["SO-T1", "SO-T2"]


def test_a_transaction_in_another_database_holds_nothing_back(catalogue: Inventory, empty_database, db) -> None:
    catalogue.ack_events("erp", last_id(db))
    with psycopg.connect(empty_database()) as elsewhere:  # a transaction open, with an xid, elsewhere
        elsewhere.execute("select pg_current_xact_id()")
        catalogue.reserve_stock("A1", 1, "SO-1")
        assert [e.type for e in catalogue.read_events("erp")] == ["reservation.created"]
        with psycopg.connect(db.info.dsn) as here:  # one open in this database does
            here.execute("select pg_current_xact_id()")
            catalogue.reserve_stock("A1", 1, "SO-2")
            assert [e.payload["reference"] for e in catalogue.read_events("erp")] == ["SO-1"]
            here.rollback()
        assert [e.payload["reference"] for e in catalogue.read_events("erp")] == ["SO-1", "SO-2"]


def test_ack_is_monotonic_and_owned(catalogue: Inventory, clerk: Inventory, db) -> None:
    events = drain(catalogue, "erp")
    assert [e.type for e in events] == ["stock.received", "stock.received"]
    consumer = catalogue.ack_events("erp", events[1].id)
    assert (consumer.consumer, consumer.owner, consumer.acknowledged_id) == ("erp", db.info.user, events[1].id)
    again = catalogue.ack_events("erp", events[0].id)  # a late ack: no move back
    assert (again.acknowledged_id, again.updated_at) == (events[1].id, consumer.updated_at)
    assert catalogue.read_events("erp") == []
    assert catalogue.event_consumers() == [again]
    # Another user's consumer is theirs: the clerk may neither read nor move it.
    with raises_inventory_error(db, PermissionDenied):
        clerk.ack_events("erp", 0)
    with raises_inventory_error(db, PermissionDenied):
        clerk.read_events("erp")
    assert clerk.event_consumers() == []
    assert clerk.ack_events("clerk-feed", events[0].id).owner == "pyinv_clerk"
    assert [e.id for e in clerk.read_events("clerk-feed")] == [events[1].id]


def test_purge_keeps_what_is_recent(catalogue: Inventory, clerk: Inventory, db) -> None:
    db.execute("update inventory.events set created_at = created_at - interval '31 days'"
               " where event_id = (select min(event_id) from inventory.events)")
    assert catalogue.purge_events() == 1  # the 30-day default
    assert catalogue.purge_events(timedelta(days=1)) == 0
    with raises_inventory_error(db, PermissionDenied):
        clerk.purge_events(timedelta(0))
    assert catalogue.purge_events(timedelta(0)) == 1
    assert db.execute("select count(*) from inventory.events").fetchone() == (0,)
    [status] = catalogue.maintenance_status("purge_events")
    assert (status.last_rows, status.last_result) == (1, "ok")
    db.execute("update inventory.settings set event_retention = interval '1 hour'")
    catalogue.reserve_stock("A1", 1, "SO-1")
    db.execute("update inventory.events set created_at = created_at - interval '2 hours'")
    assert catalogue.purge_events() == 1


@pytest.mark.parametrize(("function", "arguments", "argument"), [
    ("read_events", {"consumer": ""}, "consumer"),
    ("read_events", {"consumer": " erp"}, "consumer"),
    ("read_events", {"consumer": None}, "consumer"),
    ("read_events", {"consumer": "erp", "max_events": 0}, "max_events"),
    ("read_events", {"consumer": "erp", "max_events": None}, "max_events"),
    ("read_events", {"after_id": -1}, "up_to_id"),
    ("read_events", {"after_id": 999999}, "up_to_id"),
    ("ack_events", {"consumer": "", "up_to_id": 0}, "consumer"),
    ("ack_events", {"consumer": None, "up_to_id": 0}, "consumer"),
    ("ack_events", {"consumer": "x" * 65, "up_to_id": 0}, "consumer"),
    ("ack_events", {"consumer": "erp", "up_to_id": None}, "up_to_id"),
    ("ack_events", {"consumer": "erp", "up_to_id": -1}, "up_to_id"),
    ("ack_events", {"consumer": "erp", "up_to_id": 999999}, "up_to_id"),
    ("purge_events", {"older_than": timedelta(days=-1)}, "older_than"),
])
def test_bad_input_changes_nothing(catalogue: Inventory, db, function: str, arguments: dict[str, Any],
                                   argument: str) -> None:
    catalogue.ack_events("erp", 1)
    call = ", ".join(f"{name} => %({name})s" for name in arguments)
    with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
        db.execute(f"select * from inventory_api.{function}({call})", arguments)
    assert json.loads(caught.value.diag.message_detail)["argument"] == argument


def test_row_security_by_location(gateway, catalogue: Inventory, db) -> None:
    clerk_main = gateway("authenticated", "u-clerk-main")
    clerk_east = gateway("authenticated", "u-clerk-east")
    main_rows = clerk_main.rpc("read_events", consumer="main-feed", max_events=100)
    east_rows = clerk_east.rpc("read_events", consumer="east-feed", max_events=100)
    assert {(sku, location) for _, _, sku, location, _, _ in main_rows} == {("A1", "main"), ("B2", "main"),
                                                                           ("LOT-1", "main")}
    assert {(sku, location) for _, _, sku, location, _, _ in east_rows} == {("A1", "east")}
    assert {r[3] for r in clerk_main.select("events")} == {"main"}
    assert clerk_main.rpc("ack_events", consumer="main-feed", up_to_id=main_rows[-1][0])[0][2] == main_rows[-1][0]
    assert clerk_main.select("event_consumers") == [("main-feed", "u-clerk-main", main_rows[-1][0],
                                                     clerk_main.select("event_consumers")[0][3])]
    assert clerk_east.select("event_consumers") == []  # not theirs; reading alone creates none
    clerk_east.rpc("ack_events", consumer="east-feed", up_to_id=east_rows[-1][0])
    assert [row[0] for row in clerk_east.select("event_consumers")] == ["east-feed"]
    with pytest.raises(psycopg.Error) as caught:  # purging is maintenance
        clerk_main.rpc("purge_events")
    assert caught.value.sqlstate == "42501"
    with pytest.raises(psycopg.Error) as caught:
        gateway("anon").rpc("read_events", consumer="x")
    assert caught.value.sqlstate == "42501"


# -- following, with a consumer restart -----------------------------------------------------------------------


def test_follow_resumes_after_a_restart_with_nothing_lost_or_repeated(catalogue: Inventory, run, db) -> None:
    first = run("events", "--follow", "--consumer", "erp", "--max-events", "1")
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["stock.received"]
    for n in range(5):
        catalogue.reserve_stock("A1", 1, f"SO-{n}")
    second = run("events", "--follow", "--consumer", "erp", "--once", "--batch", "2")
    lines += [json.loads(line) for line in second.stdout.splitlines()]
    catalogue.cancel_reservation("SO-0")
    third = run("events", "--follow", "--consumer", "erp", "--once")
    lines += [json.loads(line) for line in third.stdout.splitlines()]
    expected = db.execute("select id, type, sku, location from inventory_api.events order by id").fetchall()
    assert [(line["id"], line["type"], line["sku"], line["location"]) for line in lines] == expected
    assert len(expected) == 8
    assert run("events", "--follow", "--consumer", "erp", "--once").stdout == ""
    assert lines[2]["payload"]["reference"] == "SO-0" and lines[2]["payload"]["reserved_after"] == 1


def test_follow_as_a_process_wakes_on_notify_and_stops_on_sigterm(catalogue: Inventory, dsn: str, db) -> None:
    catalogue.ack_events("tail", last_id(db))
    process = subprocess.Popen([sys.executable, "-m", "pyinv.cli", "--dsn", dsn, "events", "--follow", "--consumer",
                                "tail", "--poll", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # listening
        started = time.monotonic()
        catalogue.reserve_stock("A1", 1, "SO-LIVE")
        line = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert time.monotonic() - started < 10  # woken by the notification, not the 60 s poll
        assert (line["type"], line["payload"]["reference"]) == ("reservation.created", "SO-LIVE")
        deadline = time.monotonic() + 5
        while catalogue.read_events("tail") and time.monotonic() < deadline:
            time.sleep(0.1)  # acknowledged after printing
        assert catalogue.read_events("tail") == []
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0, process.stderr.read()  # type: ignore[union-attr]


def test_follow_without_a_consumer_and_the_recent_list(catalogue: Inventory, run) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    lines = run("events", "--follow", "--once").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["stock.received", "stock.received", "reservation.created"]
    assert run("events", "--follow", "--once", "--after-id", str(json.loads(lines[1])["id"])).stdout == lines[2] + "\n"
    listed = json.loads(run("events", "--json", "--limit", "2").stdout)
    assert [row["type"] for row in listed] == ["stock.received", "reservation.created"]
    assert "reservation.created" in run("events", "--type", "reservation.created").stdout
    acked = run("events", "ack", "erp", str(json.loads(lines[2])["id"]), "--json")
    assert json.loads(acked.stdout)["consumer"] == "erp"
    assert "erp" in run("events", "consumers").stdout
    assert run("events", "purge", "--older-than", "0").stdout == "deleted 3 events\n"


# -- the webhook ----------------------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first `failures` requests, then 200; records every request."""

    failures = 2
    requests: ClassVar[list[tuple[dict[str, str], bytes, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 500 if len(self.requests) < self.failures else 200
        self.requests.append((dict(self.headers), body, status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("TestReceiver", (Receiver,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_the_webhook_gets_each_event_signed_retried_until_2xx(catalogue: Inventory, run, receiver, db) -> None:
    url, handler = receiver
    result = run("events", "deliver", "--url", url, "--secret", "s3cret", "--consumer", "hook", "--once",
                 "--max-delay", "0.05")
    assert "delivered 2 events" in result.stderr
    statuses = [status for _, _, status in handler.requests]
    assert statuses == [500, 500, 200, 200]  # the first event retried until accepted, then the second
    ids = [int(headers["X-Pyinv-Event-Id"]) for headers, _, _ in handler.requests]
    expected = [e for (e,) in db.execute("select id from inventory_api.events order by id").fetchall()]
    assert ids == [expected[0]] * 3 + [expected[1]]
    for headers, body, _ in handler.requests:
        assert headers["X-Pyinv-Signature"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert json.loads(body)["id"] == int(headers["X-Pyinv-Event-Id"])
        assert headers["X-Pyinv-Event-Type"] == "stock.received"
    assert catalogue.event_consumers()[0].acknowledged_id == expected[1]
    # A restart delivers only what came since, once.
    catalogue.reserve_stock("A1", 1, "SO-1")
    run("events", "deliver", "--url", url, "--secret", "s3cret", "--consumer", "hook", "--once")
    assert [json.loads(body)["type"] for _, body, _ in handler.requests[4:]] == ["reservation.created"]


def test_an_event_not_accepted_is_not_acknowledged(catalogue: Inventory, connect) -> None:
    follower = Follower(catalogue, consumer="hook", poll_seconds=0.1)
    webhook = Webhook("http://127.0.0.1:9/unreachable", "s", timeout=0.5, base_delay=0.01, max_delay=0.02)
    stopper = threading.Timer(0.5, follower.stop)
    stopper.start()
    assert deliver(follower, webhook, once=True) == 0
    assert catalogue.event_consumers() == []  # nothing acknowledged: delivered again next time
    assert len(catalogue.read_events("hook")) == 2


def test_event_json_and_signature_are_exact() -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    event = Event(7, "stock.received", "A1", "main", {"on_hand_after": Decimal("862478641446.5169")},
                  datetime(2026, 12, 3, tzinfo=timezone.utc))
    body = event_json(event)
    assert '"on_hand_after": 862478641446.5169' in body
    assert json.loads(body)["created_at"] == "2026-12-03T00:00:00+00:00"
    assert signature("k", body.encode()) == "sha256=" + hmac.new(b"k", body.encode(), hashlib.sha256).hexdigest()
