"""Bad input for every mutating API function, called exactly as psql or PostgREST would call it.

Every case calls ``inventory_api.<fn>(name => value::type, ...)`` with named arguments on the superuser
connection, starting from a valid call of the function and spoiling one argument (or the state). Each
must fail with the catalogued SQLSTATE and HINT token, a JSON object as DETAIL, and change nothing.
Injection strings that are legal values (order references, reasons, names...) must be stored verbatim
and harm nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from helpers import make_catalogue

import pyinv
from pyinv import Inventory

# -- expected errors ---------------------------------------------------------------------------------

INVALID_ARGUMENT = ("22023", "INVALID_ARGUMENT")
INVALID_QUANTITY = ("22023", "INVALID_QUANTITY")
PRODUCT_NOT_FOUND = ("PT404", "PRODUCT_NOT_FOUND")
LOCATION_NOT_FOUND = ("PT404", "LOCATION_NOT_FOUND")
NO_RESERVATION = ("PT404", "NO_RESERVATION")
QUANTITY_MISMATCH = ("PT409", "QUANTITY_MISMATCH")
PRODUCT_UNAVAILABLE = ("PT409", "PRODUCT_UNAVAILABLE")
ALREADY_EXISTS = ("PT409", "ALREADY_EXISTS")
INSUFFICIENT_STOCK = ("PT409", "INSUFFICIENT_STOCK")
IDEMPOTENCY_CONFLICT = ("PT409", "IDEMPOTENCY_CONFLICT")

INJECTIONS = ("'; drop table x; --", "A1'); delete from inventory.items; --")

# SQL type of each argument (everything else is text), so the test, not psycopg, picks the types.
TYPES = {
    "quantity": "numeric",
    "unit_cost": "numeric",
    "expires_in": "interval",
    "lines": "jsonb",
    "batch_size": "integer",
    "restock": "boolean",
    "track_lots": "boolean",
}

ONE_LINE = json.dumps([{"sku": "A1", "quantity": 1}])

# A valid call of each function in the `world` fixture; every case spoils one thing of it.
BASE: dict[str, dict[str, Any]] = {
    "create_item": {"sku": "NEW-1", "name": "New thing"},
    "set_item_status": {"sku": "A1", "status": "on_hold"},
    "create_location": {"code": "west", "name": "West store"},
    "receive_stock": {"sku": "A1", "quantity": "1", "location": "main"},
    "reserve_stock": {"sku": "A1", "quantity": "1", "order_ref": "SO-NEW", "location": "main"},
    "reserve_order": {"order_ref": "SO-NEW", "lines": ONE_LINE},
    "fulfill_order": {"order_ref": "SO-HELD", "sku": "A1", "quantity": "1"},
    "cancel_reservation": {"order_ref": "SO-HELD"},
    "process_return": {"order_ref": "SO-SHIPPED", "sku": "A1", "quantity": "1", "reason": "damaged"},
    "expire_reservations": {"batch_size": 10},
}

OMIT = object()


def call_sql(fn: str, arguments: dict[str, Any]) -> str:
    named = ", ".join(f"{name} => %({name})s::{TYPES.get(name, 'text')}" for name in arguments)
    return f"select * from inventory_api.{fn}({named})"


def arguments_for(fn: str, overrides: dict[str, Any]) -> dict[str, Any]:
    arguments = {**BASE[fn], **overrides}
    return {name: value for name, value in arguments.items() if value is not OMIT}


# -- what must not change ----------------------------------------------------------------------------


def snapshot(db: psycopg.Connection[Any]) -> dict[str, Any]:
    def rows(query: str) -> list[tuple[Any, ...]]:
        return db.execute(query).fetchall()

    return {
        "ledger": rows("select count(*), max(movement_id) from inventory.ledger"),
        "levels": rows("select item_id, location_id, on_hand, reserved, version from inventory.stock_levels"
                       " order by 1, 2"),
        "reservations": rows("select count(*) from inventory.reservations"),
        "reservation_rows": rows("select reservation_id, order_ref, status, quantity, quantity_fulfilled,"
                                 " expires_at, closed_at from inventory.reservations order by 1"),
        "returns": rows("select count(*) from inventory.returns"),
        "idempotency_keys": rows("select count(*) from inventory.idempotency_keys"),
        "items": rows("select count(*) from inventory.items"),
        "item_rows": rows("select item_id, sku, name, unit_of_measure, unit_cost, status, track_lots, updated_at,"
                          " deleted_at from inventory.items order by 1"),
        "locations": rows("select count(*) from inventory.locations"),
        "location_rows": rows("select location_id, code, name from inventory.locations order by 1"),
        "tables": rows("select table_schema, table_name from information_schema.tables"
                       " where table_schema in ('inventory', 'public') order by 1, 2"),
    }


def expect_error(db: psycopg.Connection[Any], query: str, params: dict[str, Any],
                 expected: tuple[str, str]) -> psycopg.Error:
    """Run the call expecting a psycopg error with this SQLSTATE and HINT, a JSON DETAIL, no change."""
    before = snapshot(db)
    with pytest.raises(psycopg.Error) as caught:
        db.execute(query, params)
    error = caught.value
    after = snapshot(db)
    observed = (error.sqlstate, error.diag.message_hint)
    assert observed == expected, f"{observed}: {error.diag.message_primary} / {error.diag.message_detail}"
    assert error.diag.message_detail is not None, "no DETAIL"
    assert isinstance(json.loads(error.diag.message_detail), dict)
    assert after == before
    return error


# -- the world every case starts from ------------------------------------------------------------------


def build_world(inv: Inventory, db: psycopg.Connection[Any]) -> Inventory:
    """The catalogue plus: a canary table public.x; order SO-HELD holds 3 of A1; order SO-SHIPPED
    shipped 2 of A1; C-HOLD (5 on hand) is on hold; D-DISC (5 on hand) is discontinued; idempotency key
    K-USED was used by a receipt of B2."""
    make_catalogue(inv)
    db.execute("create table public.x (id integer)")
    db.execute("insert into public.x values (1)")
    inv.reserve_stock("A1", 3, "SO-HELD")
    inv.reserve_stock("A1", 2, "SO-SHIPPED")
    inv.fulfill_order("SO-SHIPPED")
    for sku, status in (("C-HOLD", "on_hold"), ("D-DISC", "discontinued")):
        inv.create_item(sku, f"{sku} item")
        inv.receive_stock(sku, 5)
        inv.set_item_status(sku, status)
    inv.receive_stock("B2", 1, idempotency_key="K-USED")
    return inv


@pytest.fixture
def world(inv: Inventory, db: psycopg.Connection[Any]) -> Inventory:
    return build_world(inv, db)


@pytest.fixture(scope="module")
def shared_world(module_dsn: str) -> Iterator[tuple[Inventory, psycopg.Connection[Any]]]:
    """One world for every case that must change nothing (each case checks that it did not)."""
    with Inventory.connect(module_dsn) as inv, psycopg.connect(module_dsn, autocommit=True) as db:
        build_world(inv, db)
        yield inv, db
        assert inv.verify_inventory() == []


# -- the cases -------------------------------------------------------------------------------------------

BAD_QUANTITIES = [
    ("zero", "0"),
    ("minus_zero", "-0"),
    ("negative", "-1"),
    ("nan", "NaN"),
    ("infinity", "Infinity"),
    ("minus_infinity", "-Infinity"),
    ("1e20", "1e20"),
    ("above_max", "1000000000000.0001"),
    ("5_decimals", "0.00001"),
    ("5_decimals_large", "1.00001"),
    ("null", None),
]

BAD_TEXT = [("empty", ""), ("leading_space", " X1"), ("trailing_space", "X1 "), ("newline", "X\n1"),
            ("tab", "X\t1")]

# Not ASCII-space padded, not control characters, yet surrounding blanks or invisible characters.
UNICODE_PADDED = [
    ("trailing_nbsp", "SO-1\u00a0"),
    ("trailing_ideographic_space", "SO-1\u3000"),
    ("trailing_line_separator", "SO-1\u2028"),
    ("leading_zero_width_space", "\u200bSO-1"),
    ("leading_bom", "\ufeffSO-1"),
]

# Characters of the Unicode format category (Cf) and fillers, anywhere in the text, and text not in NFC:
# two references (or names) that differ only by one of these look the same to every person.
INVISIBLE = [
    ("bidi_override", "SO-\u202e1"),
    ("bidi_isolate", "SO-\u20661\u2069"),
    ("word_joiner", "SO\u2060-1"),
    ("soft_hyphen", "SO\u00ad-1"),
    ("zero_width_joiner", "SO\u200d-1"),
    ("tag_character", "SO-1\U000e0041"),
    ("hangul_filler", "SO-\u31641"),
    ("hangul_choseong_filler", "\u115fSO-1"),
    ("variation_selector", "SO-1\ufe0f"),
    ("combining_grapheme_joiner", "SO-\u034f1"),
    ("not_nfc", "SO-Cafe\u0301"),
]

CASES: list[Any] = []

def case(_fn: str, _case: str, _expected: tuple[str, str], /, **overrides: Any) -> None:
    """Register a case: call `_fn` with BASE[_fn] updated by `overrides`, expecting `_expected`."""
    CASES.append(pytest.param(_fn, overrides, _expected, id=f"{_fn}-{_case}"))


# Quantities: every function with a quantity argument (fulfill_order: null means "ship everything").
for _fn in ("receive_stock", "reserve_stock", "fulfill_order", "process_return"):
    for _name, _q in BAD_QUANTITIES:
        if _fn == "fulfill_order" and _q is None:
            continue
        case(_fn, f"quantity_{_name}", INVALID_QUANTITY, quantity=_q)

# SKUs: null / malformed -> INVALID_ARGUMENT, unknown or injected -> PRODUCT_NOT_FOUND.
for _fn in ("set_item_status", "receive_stock", "reserve_stock", "fulfill_order", "cancel_reservation",
            "process_return"):
    if _fn not in ("fulfill_order", "cancel_reservation"):  # there sku null means "every hold of the order"
        case(_fn, "sku_null", INVALID_ARGUMENT, sku=None)
    case(_fn, "sku_unknown", PRODUCT_NOT_FOUND, sku="NOPE")
    case(_fn, "sku_case_differs", PRODUCT_NOT_FOUND, sku="a1")
    case(_fn, "sku_too_long", INVALID_ARGUMENT, sku="A" * 65)
    for _name, _text in BAD_TEXT:
        case(_fn, f"sku_{_name}", INVALID_ARGUMENT, sku=_text)
    for _i, _inj in enumerate(INJECTIONS):
        case(_fn, f"sku_injection{_i}", PRODUCT_NOT_FOUND, sku=_inj)

# Locations: null / malformed -> INVALID_ARGUMENT, unknown or injected -> LOCATION_NOT_FOUND.
for _fn in ("receive_stock", "reserve_stock", "process_return"):
    case(_fn, "location_null", INVALID_ARGUMENT, location=None)
    case(_fn, "location_unknown", LOCATION_NOT_FOUND, location="nowhere")
    case(_fn, "location_case_differs", LOCATION_NOT_FOUND, location="MAIN")
    case(_fn, "location_empty", INVALID_ARGUMENT, location="")
    case(_fn, "location_padded", INVALID_ARGUMENT, location=" main")
    for _i, _inj in enumerate(INJECTIONS):
        case(_fn, f"location_injection{_i}", LOCATION_NOT_FOUND, location=_inj)

# Order references: required, 1..200 printable characters without surrounding spaces.
for _fn in ("reserve_stock", "reserve_order", "fulfill_order", "cancel_reservation", "process_return"):
    case(_fn, "order_ref_null", INVALID_ARGUMENT, order_ref=None)
    case(_fn, "order_ref_too_long", INVALID_ARGUMENT, order_ref="S" * 201)
    for _name, _text in BAD_TEXT:
        case(_fn, f"order_ref_{_name}", INVALID_ARGUMENT, order_ref=_text)
# ...and an injected one is a legal reference: nothing holds it (reserve_* succeed, see below).
for _i, _inj in enumerate(INJECTIONS):
    case("fulfill_order", f"order_ref_injection{_i}", NO_RESERVATION, order_ref=_inj, sku=None, quantity=None)
    case("cancel_reservation", f"order_ref_injection{_i}", NO_RESERVATION, order_ref=_inj)
for _i, _inj in enumerate(INJECTIONS):
    case("process_return", f"order_ref_injection{_i}", NO_RESERVATION, order_ref=_inj)

# ...and so are Unicode spaces and invisible characters around it: an order "SO-1\u00a0" looks like "SO-1"
# to every person but is another order, so fulfilling "SO-1" later answers NO_RESERVATION.
for _fn in ("reserve_stock", "reserve_order"):
    for _name, _text in UNICODE_PADDED:
        case(_fn, f"order_ref_{_name}", INVALID_ARGUMENT, order_ref=_text)
case("receive_stock", "idempotency_key_trailing_nbsp", INVALID_ARGUMENT, idempotency_key="K-1\u00a0")
for _name, _text in INVISIBLE:
    for _fn in ("reserve_stock", "reserve_order", "fulfill_order", "cancel_reservation", "process_return"):
        case(_fn, f"order_ref_{_name}", INVALID_ARGUMENT, order_ref=_text)
    case("receive_stock", f"reference_{_name}", INVALID_ARGUMENT, reference=_text)
    case("receive_stock", f"idempotency_key_{_name}", INVALID_ARGUMENT, idempotency_key=_text)
    case("process_return", f"reason_{_name}", INVALID_ARGUMENT, reason=_text)
    case("create_item", f"name_{_name}", INVALID_ARGUMENT, name=_text)
    case("create_location", f"name_{_name}", INVALID_ARGUMENT, name=_text)

# Idempotency keys: 1..200 printable characters; a key used by another call conflicts.
for _fn in ("receive_stock", "reserve_stock", "reserve_order", "fulfill_order", "cancel_reservation",
            "process_return"):
    case(_fn, "idempotency_key_too_long", INVALID_ARGUMENT, idempotency_key="k" * 201)
    for _name, _text in BAD_TEXT:
        case(_fn, f"idempotency_key_{_name}", INVALID_ARGUMENT, idempotency_key=_text)
    case(_fn, "idempotency_key_used_by_other_call", IDEMPOTENCY_CONFLICT, idempotency_key="K-USED")

# Hold lifetimes.
for _fn in ("reserve_stock", "reserve_order"):
    for _name, _interval in (("zero", "0 seconds"), ("negative", "-1 hour"), ("400_days", "400 days"),
                             ("13_months", "13 mons"), ("366_days_1s", "366 days 1 second"),
                             ("mixed_sign", "1 day -25 hours"), ("12_months_6_days", "12 mons 6 days"),
                             ("1_year_2_days", "1 year 2 days"), ("infinity", "infinity"),
                             ("minus_infinity", "-infinity")):
        case(_fn, f"expires_in_{_name}", INVALID_ARGUMENT, expires_in=_interval)

# create_item
case("create_item", "sku_null", INVALID_ARGUMENT, sku=None)
case("create_item", "sku_too_long", INVALID_ARGUMENT, sku="A" * 65)
case("create_item", "sku_starts_with_dash", INVALID_ARGUMENT, sku="-A1")
case("create_item", "sku_inner_space", INVALID_ARGUMENT, sku="A 1")
case("create_item", "sku_non_ascii", INVALID_ARGUMENT, sku="Ä1")
for _name, _text in BAD_TEXT:
    case("create_item", f"sku_{_name}", INVALID_ARGUMENT, sku=_text)
for _i, _inj in enumerate(INJECTIONS):
    case("create_item", f"sku_injection{_i}", INVALID_ARGUMENT, sku=_inj)
case("create_item", "name_null", INVALID_ARGUMENT, name=None)
case("create_item", "name_too_long", INVALID_ARGUMENT, name="n" * 201)
for _name, _text in BAD_TEXT:
    case("create_item", f"name_{_name}", INVALID_ARGUMENT, name=_text)
for _name, _uom in (("null", None), ("upper_case", "Each"), ("empty", ""), ("too_long", "u" * 21),
                    ("injection", INJECTIONS[0])):
    case("create_item", f"unit_of_measure_{_name}", INVALID_ARGUMENT, unit_of_measure=_uom)
for _name, _cost in (("negative", "-1"), ("nan", "NaN"), ("infinity", "Infinity"), ("minus_infinity", "-Infinity"),
                     ("1e20", "1e20"), ("5_decimals", "0.00001")):
    case("create_item", f"unit_cost_{_name}", INVALID_ARGUMENT, unit_cost=_cost)
case("create_item", "track_lots_null", INVALID_ARGUMENT, track_lots=None)
case("create_item", "existing_sku_other_name", ALREADY_EXISTS, sku="A1", name="Another widget")
case("create_item", "existing_sku_other_unit", ALREADY_EXISTS, sku="A1", name="Widget", unit_of_measure="box")
case("create_item", "existing_sku_other_cost", ALREADY_EXISTS, sku="A1", name="Widget", unit_cost="1")
case("create_item", "existing_sku_other_track_lots", ALREADY_EXISTS, sku="A1", name="Widget", track_lots=True)

# set_item_status
for _name, _status in (("null", None), ("empty", ""), ("upper_case", "ACTIVE"), ("padded", " active"),
                       ("unknown", "deleted"), ("injection0", INJECTIONS[0]), ("injection1", INJECTIONS[1]),
                       ("injection_suffix", "active'; --")):
    case("set_item_status", f"status_{_name}", INVALID_ARGUMENT, status=_status)

# create_location
case("create_location", "code_null", INVALID_ARGUMENT, code=None)
case("create_location", "code_too_long", INVALID_ARGUMENT, code="c" * 65)
case("create_location", "code_inner_space", INVALID_ARGUMENT, code="we st")
for _name, _text in BAD_TEXT:
    case("create_location", f"code_{_name}", INVALID_ARGUMENT, code=_text)
for _i, _inj in enumerate(INJECTIONS):
    case("create_location", f"code_injection{_i}", INVALID_ARGUMENT, code=_inj)
case("create_location", "name_null", INVALID_ARGUMENT, name=None)
case("create_location", "name_too_long", INVALID_ARGUMENT, name="n" * 201)
for _name, _text in BAD_TEXT:
    case("create_location", f"name_{_name}", INVALID_ARGUMENT, name=_text)
case("create_location", "existing_code_other_name", ALREADY_EXISTS, code="east", name="Another store")

# receive_stock
case("receive_stock", "discontinued_item", PRODUCT_UNAVAILABLE, sku="D-DISC")
case("receive_stock", "reference_too_long", INVALID_ARGUMENT, reference="r" * 201)
for _name, _text in BAD_TEXT:
    case("receive_stock", f"reference_{_name}", INVALID_ARGUMENT, reference=_text)
for _name, _cost in (("negative", "-1"), ("nan", "NaN"), ("infinity", "Infinity"), ("1e20", "1e20"),
                     ("5_decimals", "0.00001")):
    case("receive_stock", f"unit_cost_{_name}", INVALID_ARGUMENT, unit_cost=_cost)

# reserve_stock
case("reserve_stock", "item_on_hold", PRODUCT_UNAVAILABLE, sku="C-HOLD")
case("reserve_stock", "item_discontinued", PRODUCT_UNAVAILABLE, sku="D-DISC")
case("reserve_stock", "more_than_available", INSUFFICIENT_STOCK, quantity="6")
case("reserve_stock", "nothing_at_location", INSUFFICIENT_STOCK, location="east")


def _lines(value: Any) -> str:
    return json.dumps(value)


# reserve_order: lines
for _name, _value, _expected in (
    ("null", None, INVALID_ARGUMENT),
    ("json_null", "null", INVALID_ARGUMENT),
    ("object", _lines({"sku": "A1", "quantity": 1}), INVALID_ARGUMENT),
    ("string", _lines("A1"), INVALID_ARGUMENT),
    ("number", "1", INVALID_ARGUMENT),
    ("empty_array", "[]", INVALID_ARGUMENT),
    ("1001_lines", _lines([{"sku": "A1", "quantity": 1}] * 1001), INVALID_ARGUMENT),
    ("element_number", "[1]", INVALID_ARGUMENT),
    ("element_string", _lines(["A1"]), INVALID_ARGUMENT),
    ("element_array", _lines([["A1", 1]]), INVALID_ARGUMENT),
    ("element_null", "[null]", INVALID_ARGUMENT),
    ("second_element_not_object", _lines([{"sku": "A1", "quantity": 1}, 7]), INVALID_ARGUMENT),
    ("missing_sku", _lines([{"quantity": 1}]), INVALID_ARGUMENT),
    ("sku_null", _lines([{"sku": None, "quantity": 1}]), INVALID_ARGUMENT),
    ("sku_number", _lines([{"sku": 1, "quantity": 1}]), INVALID_ARGUMENT),
    ("location_number", _lines([{"sku": "A1", "quantity": 1, "location": 1}]), INVALID_ARGUMENT),
    ("unknown_key_qty", _lines([{"sku": "A1", "qty": 1}]), INVALID_ARGUMENT),
    ("extra_key", _lines([{"sku": "A1", "quantity": 1, "price": 3}]), INVALID_ARGUMENT),
    ("missing_quantity", _lines([{"sku": "A1"}]), INVALID_QUANTITY),
    ("quantity_string_abc", _lines([{"sku": "A1", "quantity": "abc"}]), INVALID_QUANTITY),
    ("quantity_numeric_string", _lines([{"sku": "A1", "quantity": "1"}]), INVALID_QUANTITY),
    ("quantity_null", _lines([{"sku": "A1", "quantity": None}]), INVALID_QUANTITY),
    ("quantity_bool", _lines([{"sku": "A1", "quantity": True}]), INVALID_QUANTITY),
    ("quantity_zero", _lines([{"sku": "A1", "quantity": 0}]), INVALID_QUANTITY),
    ("quantity_negative", _lines([{"sku": "A1", "quantity": -1}]), INVALID_QUANTITY),
    ("quantity_5_decimals", '[{"sku": "A1", "quantity": 0.00001}]', INVALID_QUANTITY),
    ("quantity_1e20", '[{"sku": "A1", "quantity": 1e20}]', INVALID_QUANTITY),
    ("quantity_1e1000", '[{"sku": "A1", "quantity": 1e1000}]', INVALID_QUANTITY),
    ("quantity_1e-1000", '[{"sku": "A1", "quantity": 1e-1000}]', INVALID_QUANTITY),
    ("quantity_minus_zero", '[{"sku": "A1", "quantity": -0}]', INVALID_QUANTITY),
    ("quantity_nan_string", _lines([{"sku": "A1", "quantity": "NaN"}]), INVALID_QUANTITY),
    ("second_line_quantity_zero", _lines([{"sku": "A1", "quantity": 1}, {"sku": "B2", "quantity": 0}]),
     INVALID_QUANTITY),
    ("merged_above_max", _lines([{"sku": "A1", "quantity": 10**12}, {"sku": "A1", "quantity": 1}]),
     INVALID_QUANTITY),
    ("unknown_sku", _lines([{"sku": "A1", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]), PRODUCT_NOT_FOUND),
    ("sku_injection0", _lines([{"sku": INJECTIONS[0], "quantity": 1}]), PRODUCT_NOT_FOUND),
    ("sku_injection1", _lines([{"sku": INJECTIONS[1], "quantity": 1}]), PRODUCT_NOT_FOUND),
    ("unknown_location", _lines([{"sku": "A1", "quantity": 1, "location": "nowhere"}]), LOCATION_NOT_FOUND),
    ("location_injection", _lines([{"sku": "A1", "quantity": 1, "location": INJECTIONS[0]}]),
     LOCATION_NOT_FOUND),
    ("item_on_hold", _lines([{"sku": "A1", "quantity": 1}, {"sku": "C-HOLD", "quantity": 1}]),
     PRODUCT_UNAVAILABLE),
    ("item_discontinued", _lines([{"sku": "D-DISC", "quantity": 1}]), PRODUCT_UNAVAILABLE),
    ("one_line_short", _lines([{"sku": "B2", "quantity": 1}, {"sku": "A1", "quantity": 6}]), INSUFFICIENT_STOCK),
    ("merged_lines_short", _lines([{"sku": "A1", "quantity": 3}, {"sku": "A1", "quantity": 3}]),
     INSUFFICIENT_STOCK),
):
    case("reserve_order", f"lines_{_name}", _expected, lines=_value)

# fulfill_order / cancel_reservation: wrong states
case("fulfill_order", "no_hold", NO_RESERVATION, order_ref="SO-NONE", sku=None, quantity=None)
case("fulfill_order", "no_hold_with_sku", NO_RESERVATION, order_ref="SO-NONE")
case("fulfill_order", "already_shipped", NO_RESERVATION, order_ref="SO-SHIPPED", sku=None, quantity=None)
case("fulfill_order", "sku_not_in_order", NO_RESERVATION, sku="B2")
case("fulfill_order", "more_than_held", QUANTITY_MISMATCH, quantity="4")
case("fulfill_order", "more_than_held_by_fraction", QUANTITY_MISMATCH, quantity="3.0001")
case("fulfill_order", "quantity_without_sku", INVALID_ARGUMENT, sku=None)
case("cancel_reservation", "no_hold", NO_RESERVATION, order_ref="SO-NONE")
case("cancel_reservation", "already_shipped", NO_RESERVATION, order_ref="SO-SHIPPED")
case("cancel_reservation", "sku_not_in_order", NO_RESERVATION, sku="B2")

# process_return
case("process_return", "more_than_shipped", QUANTITY_MISMATCH, quantity="3")
case("process_return", "more_than_shipped_by_fraction", QUANTITY_MISMATCH, quantity="2.0001")
case("process_return", "held_not_shipped", QUANTITY_MISMATCH, order_ref="SO-HELD")
case("process_return", "never_ordered", NO_RESERVATION, order_ref="SO-NONE")
case("process_return", "sku_not_in_order", NO_RESERVATION, sku="B2")
case("process_return", "reason_null", INVALID_ARGUMENT, reason=None)
case("process_return", "reason_too_long", INVALID_ARGUMENT, reason="r" * 501)
for _name, _text in BAD_TEXT:
    case("process_return", f"reason_{_name}", INVALID_ARGUMENT, reason=_text)
case("process_return", "restock_null", INVALID_ARGUMENT, restock=None)

# expire_reservations
for _name, _size in (("zero", 0), ("negative", -1), ("null", None), ("1000000", 1000000), ("100001", 100001),
                     ("int_min", -(2**31))):
    case("expire_reservations", f"batch_size_{_name}", INVALID_ARGUMENT, batch_size=_size)


@pytest.mark.parametrize(("fn", "overrides", "expected"), CASES)
def test_bad_input_is_refused(shared_world: tuple[Inventory, psycopg.Connection[Any]], fn: str,
                              overrides: dict[str, Any], expected: tuple[str, str]) -> None:
    _, db = shared_world
    if "infinity" in str(overrides.get("expires_in", "")) and db.info.server_version < 170000:
        pytest.skip("interval 'infinity' exists only from PostgreSQL 17: older servers refuse the cast itself")
    arguments = arguments_for(fn, overrides)
    expect_error(db, call_sql(fn, arguments), arguments, expected)


def test_every_mutating_function_has_cases() -> None:
    covered = {param.values[0] for param in CASES}
    assert covered == set(BASE)


@pytest.mark.parametrize("fn", sorted(BASE))
def test_base_call_is_valid(world: Inventory, db: psycopg.Connection[Any], fn: str) -> None:
    """The starting point of every case succeeds, so each case fails only for what it spoils."""
    arguments = arguments_for(fn, {})
    assert db.execute(call_sql(fn, arguments), arguments).fetchall()


# -- legal values that look like injections ------------------------------------------------------------

# (function, argument, extra overrides, where the value must be stored verbatim)
STORED_VERBATIM = [
    ("reserve_stock", "order_ref", {}, "inventory.reservations", "order_ref"),
    ("reserve_order", "order_ref", {}, "inventory.reservations", "order_ref"),
    ("receive_stock", "reference", {}, "inventory.ledger", "reference"),
    ("receive_stock", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("reserve_stock", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("reserve_order", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("fulfill_order", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("cancel_reservation", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("process_return", "idempotency_key", {}, "inventory.idempotency_keys", "idempotency_key"),
    ("process_return", "reason", {}, "inventory.returns", "reason"),
    ("process_return", "reason", {"restock": True}, "inventory.ledger", "reason"),
    ("create_item", "name", {}, "inventory.items", "name"),
    ("create_location", "name", {}, "inventory.locations", "name"),
]


@pytest.mark.parametrize("injection", INJECTIONS, ids=["drop_table", "delete_items"])
@pytest.mark.parametrize(("fn", "argument", "extra", "table", "column"), STORED_VERBATIM,
                         ids=[f"{fn}-{arg}-{table.split('.')[1]}" for fn, arg, _, table, _ in STORED_VERBATIM])
def test_injection_in_free_text_is_stored_verbatim(world: Inventory, db: psycopg.Connection[Any], fn: str,
                                                   argument: str, extra: dict[str, Any], table: str, column: str,
                                                   injection: str) -> None:
    before = snapshot(db)
    arguments = arguments_for(fn, {**extra, argument: injection})
    db.execute(call_sql(fn, arguments), arguments).fetchall()
    after = snapshot(db)
    assert after["tables"] == before["tables"]
    assert db.execute("select count(*) from public.x").fetchone()[0] == 1
    created = 1 if fn == "create_item" else 0
    assert after["items"][0][0] == before["items"][0][0] + created
    assert [row for row in after["item_rows"] if row[1] != "NEW-1"] == before["item_rows"]
    stored = db.execute(f"select count(*) from {table} where {column} = %s", (injection,)).fetchone()[0]
    assert stored >= 1


# -- numeric overflow of a level -------------------------------------------------------------------------


def test_receipt_overflowing_on_hand_is_refused_with_a_catalogued_error(world: Inventory,
                                                                         db: psycopg.Connection[Any]) -> None:
    """Each receipt is within the 1e12 limit, but on_hand is numeric(19, 4): it cannot pass 1e15."""
    db.execute("select inventory_api.receive_stock(sku => 'B2', quantity => 1e12::numeric)"
               " from generate_series(1, 999)")
    arguments = {"sku": "B2", "quantity": "1000000000000"}
    before = snapshot(db)
    with pytest.raises(psycopg.Error) as caught:
        db.execute(call_sql("receive_stock", arguments), arguments)
    error = caught.value
    catalogue = dict(db.execute("select code, sqlstate from inventory.error_codes").fetchall())
    hint = error.diag.message_hint
    assert hint in catalogue, f"{error.sqlstate} without a catalogued hint: {error.diag.message_primary}"
    assert catalogue[hint] == error.sqlstate
    assert isinstance(json.loads(error.diag.message_detail or "null"), dict)
    assert snapshot(db) == before


# -- through the Python client ---------------------------------------------------------------------------

CLIENT_CASES: list[Any] = [
    pytest.param(lambda inv: inv.reserve_stock("A1", 0, "SO-1"), pyinv.InvalidQuantity, id="reserve_zero"),
    pytest.param(lambda inv: inv.reserve_stock("A1", -1, "SO-1"), pyinv.InvalidQuantity, id="reserve_negative"),
    pytest.param(lambda inv: inv.reserve_stock("A1", float("nan"), "SO-1"), pyinv.InvalidQuantity,
                 id="reserve_float_nan"),
    pytest.param(lambda inv: inv.reserve_stock("A1", Decimal("Infinity"), "SO-1"), pyinv.InvalidQuantity,
                 id="reserve_decimal_infinity"),
    pytest.param(lambda inv: inv.receive_stock("A1", "0.00001"), pyinv.InvalidQuantity, id="receive_5_decimals"),
    pytest.param(lambda inv: inv.receive_stock("A1", 10**20), pyinv.InvalidQuantity, id="receive_1e20"),
    pytest.param(lambda inv: inv.receive_stock("NOPE", 1), pyinv.ProductNotFound, id="receive_unknown_sku"),
    pytest.param(lambda inv: inv.receive_stock(INJECTIONS[1], 1), pyinv.ProductNotFound, id="receive_injected_sku"),
    pytest.param(lambda inv: inv.receive_stock("D-DISC", 1), pyinv.ProductUnavailable, id="receive_discontinued"),
    pytest.param(lambda inv: inv.reserve_stock("A1", 1, "SO-1", location=INJECTIONS[0]), pyinv.LocationNotFound,
                 id="reserve_injected_location"),
    pytest.param(lambda inv: inv.reserve_stock("C-HOLD", 1, "SO-1"), pyinv.ProductUnavailable, id="reserve_on_hold"),
    pytest.param(lambda inv: inv.reserve_stock("A1", 1, "SO-1", expires_in=-timedelta(hours=1)),
                 pyinv.InvalidArgument, id="reserve_negative_ttl"),
    pytest.param(lambda inv: inv.reserve_order("SO-1", []), pyinv.InvalidArgument, id="order_no_lines"),
    pytest.param(lambda inv: inv.reserve_order("SO-1", [{"sku": "A1", "qty": 1}]), pyinv.InvalidArgument,
                 id="order_unknown_key"),
    pytest.param(lambda inv: inv.reserve_order("SO-1", [{"sku": "A1", "quantity": Decimal("NaN")}]),
                 pyinv.InvalidQuantity, id="order_nan_quantity"),
    pytest.param(lambda inv: inv.reserve_order("SO-1", [{"sku": "A1", "quantity": 0}]), pyinv.InvalidQuantity,
                 id="order_zero_quantity"),
    pytest.param(lambda inv: inv.fulfill_order("SO-NONE"), pyinv.NoReservation, id="fulfill_no_hold"),
    pytest.param(lambda inv: inv.fulfill_order("SO-HELD", "A1", 4), pyinv.QuantityMismatch, id="fulfill_too_much"),
    pytest.param(lambda inv: inv.fulfill_order("SO-HELD", quantity=1), pyinv.InvalidArgument,
                 id="fulfill_quantity_without_sku"),
    pytest.param(lambda inv: inv.cancel_reservation(INJECTIONS[0]), pyinv.NoReservation, id="cancel_injected_order"),
    pytest.param(lambda inv: inv.process_return("SO-SHIPPED", "A1", 3, "damaged"), pyinv.QuantityMismatch,
                 id="return_too_much"),
    pytest.param(lambda inv: inv.create_item("A1", "Another widget"), pyinv.AlreadyExists, id="item_exists"),
    pytest.param(lambda inv: inv.create_item(INJECTIONS[0], "x"), pyinv.InvalidArgument, id="item_injected_sku"),
    pytest.param(lambda inv: inv.set_item_status("A1", INJECTIONS[1]), pyinv.InvalidArgument,
                 id="status_injected"),
    pytest.param(lambda inv: inv.create_location("east", "Another store"), pyinv.AlreadyExists,
                 id="location_exists"),
    pytest.param(lambda inv: inv.expire_reservations(0), pyinv.InvalidArgument, id="expire_zero_batch"),
]


@pytest.mark.parametrize(("action", "exception"), CLIENT_CASES)
def test_client_raises_catalogued_exception(shared_world: tuple[Inventory, psycopg.Connection[Any]],
                                            action: Callable[[Inventory], Any],
                                            exception: type[pyinv.InventoryError]) -> None:
    world, db = shared_world
    before = snapshot(db)
    with pytest.raises(pyinv.InventoryError) as caught:
        action(world)
    error = caught.value
    assert type(error) is exception, f"{type(error).__name__} {error.actual_sqlstate} {error.hint}: {error}"
    assert error.actual_sqlstate == exception.sqlstate
    assert error.code == exception.code
    assert error.hint == exception.code
    assert isinstance(error.detail, dict)
    assert isinstance(error.__cause__, psycopg.Error)
    assert error.__cause__.sqlstate == exception.sqlstate
    assert snapshot(db) == before


def test_client_invalid_quantity_attributes(world: Inventory) -> None:
    """The example from the error catalogue, spelled out."""
    with pytest.raises(pyinv.InvalidQuantity) as caught:
        world.reserve_stock("A1", 0, "SO-1")
    assert caught.value.actual_sqlstate == "22023"
    assert caught.value.code == "INVALID_QUANTITY"
    assert caught.value.detail == {"argument": "quantity", "value": "0"}
