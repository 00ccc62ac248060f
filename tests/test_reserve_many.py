"""reserve_many: many independent orders' holds in one call (issue 14, item 2).

Each request's outcome must be exactly what reserve_stock would have returned or raised had the
requests been made one after another in array order: the tests run that sequence on the same
database (each call in a savepoint of a transaction that is then rolled back) and compare.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import IsolationLevel
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pyinv import InsufficientStock, InvalidArgument, Inventory
from pyinv.models import ReserveManyResult
from pyinv.retry import RetryPolicy
from tests.helpers import raises_db_error, run_together, snapshot

RESERVATION_FIELDS = ("order_ref", "sku", "location", "quantity", "quantity_fulfilled", "quantity_open", "status",
                      "reference_type", "notes")


def begin(connection: psycopg.Connection[Any], sub: str | None) -> None:
    """Starts a transaction as the superuser (sub None) or as a PostgREST user (role authenticated)."""
    connection.execute("begin")
    if sub is not None:
        connection.execute(
            "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "sub": sub}),))


def outcome_of_error(error: psycopg.Error) -> dict[str, Any]:
    return {"ok": False, "sqlstate": error.sqlstate, "error_code": error.diag.message_hint,
            "message": error.diag.message_primary, "detail": json.loads(error.diag.message_detail or "null")}


def sequential(connection: psycopg.Connection[Any], requests: list[dict[str, Any]], sub: str | None = None
               ) -> list[dict[str, Any]]:
    """What reserve_stock called once per request, in order, would give (then rolled back)."""
    outcomes = []
    begin(connection, sub)
    try:
        for request in requests:
            arguments = {"location": "main"} | request
            connection.execute("savepoint one")
            try:
                row = connection.cursor(row_factory=dict_row).execute(
                    "select * from inventory_api.reserve_stock(sku => %(sku)s, quantity => %(quantity)s::numeric,"
                    " order_ref => %(order_ref)s, location => %(location)s,"
                    " expires_in => %(expires_in)s::interval, idempotency_key => %(idempotency_key)s)",
                    {"expires_in": None, "idempotency_key": None} | arguments).fetchone()
                connection.execute("release savepoint one")
                assert row is not None
                outcomes.append({"ok": True, **{k: row[k] for k in RESERVATION_FIELDS},
                                 "reservation_id": row["reservation_id"]})
            except psycopg.Error as error:
                connection.execute("rollback to savepoint one")
                outcomes.append(outcome_of_error(error))
    finally:
        connection.execute("rollback")
    return outcomes


def many(connection: psycopg.Connection[Any], requests: Any, sub: str | None = None) -> list[dict[str, Any]]:
    """reserve_many, committed; one dict per request."""
    begin(connection, sub)
    try:
        rows = connection.cursor(row_factory=dict_row).execute(
            "select * from inventory_api.reserve_many(%s)", (Jsonb(requests),)).fetchall()
    except psycopg.Error:
        connection.execute("rollback")
        raise
    connection.execute("commit")
    return rows


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """reserve_many rows in the shape of sequential()'s outcomes, without ids and times."""
    shaped = []
    for n, row in enumerate(rows, start=1):
        assert row["ordinal"] == n
        if row["ok"]:
            reservation = row["reservation"]
            assert row["reservation_id"] == reservation["reservation_id"]
            assert row["quantity"] == pytest.approx(reservation["quantity"])
            shaped.append({"ok": True, **{k: reservation[k] for k in RESERVATION_FIELDS}})
        else:
            shaped.append({k: row[k] for k in ("ok", "sqlstate", "error_code", "message", "detail")})
    return shaped


def without_ids(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "reservation_id"} for o in outcomes]


def assert_same_as_sequential(connection: psycopg.Connection[Any], requests: list[dict[str, Any]],
                              sub: str | None = None) -> list[dict[str, Any]]:
    expected = without_ids(sequential(connection, requests, sub))
    rows = many(connection, requests, sub)
    assert comparable(rows) == expected
    return rows


@pytest.fixture
def shop(catalogue: Inventory, db) -> Inventory:
    """The catalogue (A1: 10 at main, B2: 5 at main, location east) plus C3 on hold, A1: 4 at east and
    lot-tracked LOT-1 with 5 units at main."""
    catalogue.create_item("C3", "Paused")
    catalogue.receive_stock("C3", 3)
    catalogue.set_item_status("C3", "on_hold")
    catalogue.receive_stock("A1", 4, location="east")
    db.execute("select inventory_api.create_item('LOT-1', 'Lot-tracked', track_lots => true)")
    db.execute("select inventory_api.receive_stock('LOT-1', 5, lot_number => 'L1')")
    return catalogue


def level(db, sku: str, location: str = "main") -> tuple[Any, ...]:
    return db.execute(
        "select on_hand, reserved from inventory_api.stock_levels where sku = %s and location = %s",
        (sku, location)).fetchone()


def test_a_mixed_batch_gives_each_request_what_reserve_stock_would(shop: Inventory, db) -> None:
    requests = [
        {"order_ref": "SO-1", "sku": "A1", "quantity": 3},
        {"order_ref": "SO-2", "sku": "NOPE", "quantity": 1},
        {"order_ref": "SO-3", "sku": "A1", "quantity": 0},
        {"order_ref": "SO-4", "sku": "A1", "quantity": 1.00001},
        {"order_ref": "SO-5", "sku": "B2", "quantity": 6},
        {"order_ref": "SO-6", "sku": "B2", "quantity": 5, "expires_in": "2 hours"},
        {"order_ref": "", "sku": "A1", "quantity": 1},
        {"order_ref": "SO-8", "sku": "A1", "quantity": 1, "location": "nowhere"},
        {"order_ref": "SO-9", "sku": "A1", "quantity": 1, "expires_in": "-1 hour"},
        {"order_ref": "SO-10", "sku": "C3", "quantity": 1},
        {"order_ref": "SO-11", "sku": "A1", "quantity": 7},
        {"order_ref": "SO-12", "sku": "A1", "quantity": 1},
        {"order_ref": "SO-13", "sku": "A1", "quantity": 4, "location": "east", "idempotency_key": "mix-1"},
        {"order_ref": "SO-14", "sku": "A1", "quantity": 1, "idempotency_key": " bad key"},
        {"order_ref": "SO-15", "sku": "B2", "quantity": 1},
    ]
    rows = assert_same_as_sequential(db, requests)
    assert [r["ok"] for r in rows] == [True, False, False, False, False, True, False, False, False, False, True,
                                       False, True, False, False]
    assert [r["error_code"] for r in rows if not r["ok"]] == [
        "PRODUCT_NOT_FOUND", "INVALID_QUANTITY", "INVALID_QUANTITY", "INSUFFICIENT_STOCK", "INVALID_ARGUMENT",
        "LOCATION_NOT_FOUND", "INVALID_ARGUMENT", "PRODUCT_UNAVAILABLE", "INSUFFICIENT_STOCK", "INVALID_ARGUMENT",
        "INSUFFICIENT_STOCK"]
    assert rows[11]["detail"] == {"sku": "A1", "location": "main", "requested": 1, "available": 0, "on_hand": 10,
                                  "reserved": 10}
    assert level(db, "A1") == (10, 10) and level(db, "B2") == (5, 5) and level(db, "A1", "east") == (4, 4)
    held = db.execute("select order_ref, quantity from inventory.reservations order by reservation_id").fetchall()
    assert held == [("SO-1", 3), ("SO-6", 5), ("SO-11", 7), ("SO-13", 4)]
    assert db.execute("select idempotency_key from inventory.idempotency_keys").fetchall() == [("mix-1",)]


def test_one_level_takes_requests_exactly_up_to_what_is_available(shop: Inventory, db) -> None:
    requests = [{"order_ref": f"SO-{n}", "sku": "A1", "quantity": q} for n, q in enumerate([2, 3, 6, 4, 1, 1])]
    rows = assert_same_as_sequential(db, requests)
    assert [r["ok"] for r in rows] == [True, True, False, True, True, False]
    assert level(db, "A1") == (10, 10)
    # One ledger movement for the level, naming every hold of the call.
    [(kind, delta, reservation_id, reference, metadata)] = db.execute(
        "select movement_type::text, reserved_delta, reservation_id, reference, metadata from inventory.ledger"
        " where movement_type = 'RESERVE'").fetchall()
    assert (kind, delta, reservation_id, reference) == ("RESERVE", 10, None, None)
    assert metadata["reservation_ids"] == [r["reservation_id"] for r in rows if r["ok"]]
    assert metadata["order_refs"] == ["SO-0", "SO-1", "SO-3", "SO-4"]
    assert "idempotency_keys" not in metadata


def test_a_level_with_one_hold_is_recorded_as_reserve_stock_records_it(shop: Inventory, db) -> None:
    [row] = many(db, [{"order_ref": "SO-1", "sku": "B2", "quantity": 2, "idempotency_key": "one-1"}])
    [(reservation_id, reference, key, metadata)] = db.execute(
        "select reservation_id, reference, idempotency_key, metadata from inventory.ledger"
        " where movement_type = 'RESERVE'").fetchall()
    assert (reservation_id, reference, key, metadata) == (row["reservation_id"], "SO-1", "one-1", {})


def test_overdue_holds_are_expired_only_when_they_stand_in_the_way(shop: Inventory, db) -> None:
    shop.reserve_stock("A1", 6, "SO-OLD")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second' where order_ref = 'SO-OLD'")
    requests = [{"order_ref": "SO-1", "sku": "A1", "quantity": 3}, {"order_ref": "SO-2", "sku": "A1", "quantity": 8},
                {"order_ref": "SO-3", "sku": "A1", "quantity": 1}]
    rows = assert_same_as_sequential(db, requests)
    assert [r["ok"] for r in rows] == [True, False, True]
    assert rows[1]["detail"] == {"sku": "A1", "location": "main", "requested": 8, "available": 7, "on_hand": 10,
                                 "reserved": 9}
    # 3 + 1 fit without the overdue hold: it is not expired (as reserve_stock would not).
    assert db.execute("select status from inventory.reservations where order_ref = 'SO-OLD'").fetchone() == ("ACTIVE",)
    rows = assert_same_as_sequential(db, [{"order_ref": "SO-5", "sku": "A1", "quantity": 6},
                                          {"order_ref": "SO-6", "sku": "A1", "quantity": 1}])
    assert [r["ok"] for r in rows] == [True, False]
    assert db.execute("select status from inventory.reservations where order_ref = 'SO-OLD'").fetchone() == ("EXPIRED",)
    assert rows[1]["detail"]["available"] == 0
    assert level(db, "A1") == (10, 10)


def test_an_idempotency_key_replays_across_calls_and_across_functions(shop: Inventory, db) -> None:
    request = {"order_ref": "SO-1", "sku": "A1", "quantity": 2, "idempotency_key": "k-1"}
    [first] = many(db, [request])
    before = snapshot(db)
    [again] = many(db, [request])
    assert again["reservation"] == first["reservation"] and again["ok"]
    replayed = shop.reserve_stock("A1", 2, "SO-1", idempotency_key="k-1")
    assert replayed.reservation_id == first["reservation_id"]
    assert snapshot(db) == before
    # A key made by reserve_stock replays through reserve_many too.
    made = shop.reserve_stock("B2", 1, "SO-2", idempotency_key="k-2")
    [row] = many(db, [{"order_ref": "SO-2", "sku": "B2", "quantity": 1, "idempotency_key": "k-2"}])
    assert row["reservation_id"] == made.reservation_id
    # Different arguments: IDEMPOTENCY_CONFLICT for that request alone, as reserve_stock says it.
    requests = [{"order_ref": "SO-1", "sku": "A1", "quantity": 3, "idempotency_key": "k-1"},
                {"order_ref": "SO-3", "sku": "A1", "quantity": 1}]
    rows = assert_same_as_sequential(db, requests)
    assert [(r["ok"], r["error_code"]) for r in rows] == [(False, "IDEMPOTENCY_CONFLICT"), (True, None)]


def test_a_key_used_twice_in_one_call_behaves_as_two_sequential_calls(shop: Inventory, db) -> None:
    requests = [
        {"order_ref": "SO-1", "sku": "B2", "quantity": 9, "idempotency_key": "d-1"},  # fails: key not kept
        {"order_ref": "SO-2", "sku": "B2", "quantity": 2, "idempotency_key": "d-1"},  # new, holds
        {"order_ref": "SO-2", "sku": "B2", "quantity": 2, "idempotency_key": "d-1"},  # replays the hold above
        {"order_ref": "SO-3", "sku": "B2", "quantity": 1, "idempotency_key": "d-1"},  # conflict
        {"order_ref": "SO-4", "sku": "NOPE", "quantity": 1, "idempotency_key": "d-2"},  # never reaches the key
        {"order_ref": "SO-5", "sku": "A1", "quantity": 1, "idempotency_key": "d-2"},  # new, holds
    ]
    rows = assert_same_as_sequential(db, requests)
    assert [(r["ok"], r["error_code"]) for r in rows] == [
        (False, "INSUFFICIENT_STOCK"), (True, None), (True, None), (False, "IDEMPOTENCY_CONFLICT"),
        (False, "PRODUCT_NOT_FOUND"), (True, None)]
    assert rows[2]["reservation"] == rows[1]["reservation"]
    assert level(db, "B2") == (5, 2)
    stored = dict(db.execute("select idempotency_key, response from inventory.idempotency_keys").fetchall())
    assert stored == {"d-1": rows[1]["reservation"], "d-2": rows[5]["reservation"]}
    # Both keys now replay through reserve_stock.
    assert shop.reserve_stock("B2", 2, "SO-2", idempotency_key="d-1").reservation_id == rows[1]["reservation_id"]


def test_each_request_is_authorised_for_its_own_location(gateway, login_dsn, connect, db) -> None:
    authenticator = connect(conninfo=login_dsn("authenticator"))
    requests = [{"order_ref": "SO-1", "sku": "A1", "quantity": 1},
                {"order_ref": "SO-2", "sku": "A1", "quantity": 1, "location": "east", "idempotency_key": "a-1"},
                {"order_ref": "SO-3", "sku": "B2", "quantity": 1}]
    rows = assert_same_as_sequential(authenticator, requests, sub="u-clerk-main")
    assert [(r["ok"], r["sqlstate"], r["error_code"]) for r in rows] == [
        (True, None, None), (False, "42501", "PERMISSION_DENIED"), (True, None, None)]
    assert level(db, "A1", "east") == (5, 0)  # the gateway fixture received 5 there
    assert db.execute("select count(*) from inventory.idempotency_keys").fetchone() == (0,)
    # Someone who may reserve nowhere is refused as a whole.
    with raises_db_error(db, "42501", "PERMISSION_DENIED"):
        many(authenticator, requests, sub="u-reader")


def test_lot_tracked_items_are_refused_per_request(shop: Inventory, db) -> None:
    rows = many(db, [{"order_ref": "SO-1", "sku": "LOT-1", "quantity": 1}, {"order_ref": "SO-2", "sku": "A1",
                                                                           "quantity": 1}])
    assert [(r["ok"], r["sqlstate"], r["error_code"]) for r in rows] == [
        (False, "22023", "INVALID_ARGUMENT"), (True, None, None)]
    assert rows[0]["detail"]["argument"] == "requests[0].sku"
    assert level(db, "LOT-1") == (5, 0)


@pytest.mark.parametrize("requests", [None, {"order_ref": "SO-1"}, [], "x",
                                      [{"order_ref": "SO-1", "sku": "A1", "quantity": 1}] * 10001])
def test_a_batch_that_is_not_1_to_10000_requests_changes_nothing(shop: Inventory, db, requests: Any) -> None:
    with raises_db_error(db, "22023", "INVALID_ARGUMENT") as caught:
        db.execute("select * from inventory_api.reserve_many(%s)", (None if requests is None else Jsonb(requests),))
    assert json.loads(caught.value.diag.message_detail or "{}")["argument"] == "requests"


def test_malformed_requests_fail_alone(shop: Inventory, db) -> None:
    rows = many(db, [5, {"order_ref": "SO-1", "sku": "A1", "quantity": "1"},
                     {"order_ref": "SO-2", "sku": "A1", "quantity": 1, "notes": "x"},
                     {"order_ref": "SO-3", "sku": "A1", "quantity": 1, "expires_in": "soon"},
                     {"order_ref": "SO-4", "sku": "A1", "quantity": 1}])
    assert [(r["ok"], r["error_code"]) for r in rows] == [(False, "INVALID_ARGUMENT")] * 4 + [(True, None)]
    assert [r["detail"]["argument"] for r in rows[:4]] == [
        "requests[0]", "requests[1]", "requests[2]", "requests[3].expires_in"]
    assert level(db, "A1") == (10, 1)


def test_concurrent_batches_in_opposite_orders_never_deadlock_nor_oversell(shop: Inventory, connect, db) -> None:
    places = [("A1", "main"), ("B2", "main"), ("A1", "east")]  # 10, 5 and 4 available
    connections = [connect() for _ in range(4)]

    def work(n: int) -> list[bool]:
        order = places if n % 2 == 0 else list(reversed(places))
        taken = []
        for round_ in range(4):
            requests = [{"order_ref": f"W{n}-{round_}-{i}", "sku": sku, "quantity": 1, "location": location}
                        for i, (sku, location) in enumerate(order * 2)]
            taken += [r["ok"] for r in many(connections[n], requests)]
        return taken

    outcomes = run_together(4, work)
    for outcome in outcomes:
        assert isinstance(outcome, list), outcome
    assert sum(sum(o) for o in outcomes) == 19  # 4 x 4 x 6 = 96 requests for 19 units
    assert [level(db, sku, location) for sku, location in places] == [(10, 10), (5, 5), (4, 4)]


def test_the_python_client_returns_typed_results_and_shares_keys_with_reserve_stock(shop: Inventory, db) -> None:
    held = shop.reserve_stock("A1", 2, "SO-1", expires_in=timedelta(hours=2), idempotency_key="py-1")
    results = shop.reserve_many([
        {"order_ref": "SO-1", "sku": "A1", "quantity": 2, "expires_in": timedelta(hours=2), "idempotency_key": "py-1"},
        {"order_ref": "SO-2", "sku": "B2", "quantity": Decimal("1.5")},
        {"order_ref": "SO-3", "sku": "B2", "quantity": 4},
    ])
    assert all(isinstance(r, ReserveManyResult) for r in results)
    assert [(r.ordinal, r.ok, r.error_code) for r in results] == [
        (1, True, None), (2, True, None), (3, False, "INSUFFICIENT_STOCK")]
    assert results[0].reservation_id == held.reservation_id  # replayed, not held twice
    assert results[1].quantity == Decimal("1.5") and results[2].detail is not None
    assert results[2].detail["available"] == 3.5
    assert level(db, "A1") == (10, 2) and level(db, "B2") == (5, Decimal("1.5"))
    with pytest.raises(InvalidArgument):
        shop.reserve_many([])


def test_a_concurrent_reserve_stock_with_the_same_key_waits_then_replays_or_goes_ahead(shop: Inventory, connect,
                                                                                       db) -> None:
    first, second = connect(), connect()

    def hold_then_commit(requests: list[dict[str, Any]], sku: str, quantity: int, order_ref: str,
                         key: str) -> tuple[dict[str, Any], Any]:
        begin(first, None)
        [row] = first.cursor(row_factory=dict_row).execute(
            "select * from inventory_api.reserve_many(%s)", (Jsonb(requests),)).fetchall()
        outcome: dict[str, Any] = {}

        def waiter() -> None:
            try:
                outcome["result"] = Inventory(second).reserve_stock(sku, quantity, order_ref, idempotency_key=key)
            except Exception as error:  # reported by the assertion below
                outcome["result"] = error

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "reserve_stock waits for the key reserve_many claimed"
        first.execute("commit")
        thread.join(10)
        return row, outcome["result"]

    # The request fails after claiming its key: the key was never used, the waiter goes ahead.
    row, held = hold_then_commit([{"order_ref": "SO-1", "sku": "B2", "quantity": 9, "idempotency_key": "w-1"}],
                                 "B2", 2, "SO-2", "w-1")
    assert row["error_code"] == "INSUFFICIENT_STOCK"
    assert held.order_ref == "SO-2" and level(db, "B2") == (5, 2)
    # The request holds: the waiter replays it.
    row, held = hold_then_commit([{"order_ref": "SO-3", "sku": "A1", "quantity": 1, "idempotency_key": "w-2"}],
                                 "A1", 1, "SO-3", "w-2")
    assert row["ok"] and held.reservation_id == row["reservation_id"] and level(db, "A1") == (10, 1)
    assert dict(db.execute("select idempotency_key, request ->> 'order_ref' from inventory.idempotency_keys")
                .fetchall()) == {"w-1": "SO-2", "w-2": "SO-3"}


def test_random_batches_match_sequential_reserve_stock(shop: Inventory, db) -> None:
    """Random batches (seeded) over a few levels, keys reused within and across batches, overdue holds
    appearing between batches: every outcome matches sequential reserve_stock calls."""
    chance = random.Random(14)
    seen: set[str] = set()
    for round_ in range(12):
        requests = []
        for n in range(chance.randint(1, 16)):
            request: dict[str, Any] = {
                "order_ref": f"R{round_}-{n % 5}",
                "sku": chance.choice(["A1", "A1", "B2", "C3", "NOPE"]),
                "quantity": chance.choice([1, 1, 2, 3, 5, 0]),
            }
            if chance.random() < 0.3:
                request["location"] = chance.choice(["east", "east", "nowhere"])
            if chance.random() < 0.2:
                request["expires_in"] = chance.choice(["1 hour", "2 days", "-5 minutes"])
            if chance.random() < 0.4:
                request["idempotency_key"] = f"rk-{chance.randint(0, 6)}"
                request["order_ref"] = f"K-{request['idempotency_key']}"
            requests.append(request)
        seen.update(r["error_code"] or "ok" for r in assert_same_as_sequential(db, requests))
        if round_ % 3 == 1:
            db.execute("update inventory.reservations set expires_at = now() - interval '1 second'"
                       " where reservation_id in (select reservation_id from inventory.reservations"
                       " where status = 'ACTIVE' order by reservation_id limit 3 offset %s)", (chance.randint(0, 3),))
        if round_ % 4 == 3:
            shop.receive_stock("A1", 5)
            shop.receive_stock("B2", 3)
    assert db.execute("select count(*) from inventory.reservations").fetchone()[0] > 10
    assert db.execute("select count(*) from inventory.reservations where status = 'EXPIRED'").fetchone()[0] > 0
    assert {"ok", "INSUFFICIENT_STOCK", "IDEMPOTENCY_CONFLICT", "PRODUCT_UNAVAILABLE", "PRODUCT_NOT_FOUND",
            "LOCATION_NOT_FOUND", "INVALID_QUANTITY", "INVALID_ARGUMENT"} <= seen


@pytest.mark.parametrize("isolation", [IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ,
                                       IsolationLevel.SERIALIZABLE])
def test_batches_and_single_holds_together_at_every_isolation_level(shop: Inventory, connect, db,
                                                                    isolation: IsolationLevel) -> None:
    """reserve_many (through the client, retrying serialization failures) beside reserve_stock
    callers on the same levels: no deadlock, no oversell, every unit accounted for."""
    places = [("A1", "main"), ("B2", "main"), ("A1", "east")]  # 10, 5 and 4 available
    clients = []
    for _ in range(4):
        connection = connect(autocommit=False)
        connection.isolation_level = isolation
        clients.append(Inventory(connection, retry=RetryPolicy(attempts=50, base_delay=0.01, retry_writes=True)))

    def work(n: int) -> int:
        order = places if n % 2 == 0 else list(reversed(places))
        taken = 0
        for round_ in range(3):
            if n < 2:
                results = clients[n].reserve_many([
                    {"order_ref": f"W{n}-{round_}-{i}", "sku": sku, "quantity": 1, "location": location,
                     "idempotency_key": f"iso-{n}-{round_}-{i}"}
                    for i, (sku, location) in enumerate(order * 2)])
                taken += sum(r.ok for r in results)
                assert {r.error_code for r in results} <= {None, "INSUFFICIENT_STOCK"}
            else:
                for i, (sku, location) in enumerate(order * 2):
                    try:
                        clients[n].reserve_stock(sku, 1, f"S{n}-{round_}-{i}", location=location)
                        taken += 1
                    except InsufficientStock:
                        pass
        return taken

    outcomes = run_together(4, work)
    for outcome in outcomes:
        assert isinstance(outcome, int), outcome
    assert sum(outcomes) == 19  # 4 x 3 x 6 = 72 requests for 19 units
    assert [level(db, sku, location) for sku, location in places] == [(10, 10), (5, 5), (4, 4)]
