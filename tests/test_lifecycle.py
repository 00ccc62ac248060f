"""Happy paths and the error contract of every API function, through the Python client."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from helpers import raises_db_error, raises_inventory_error

import pyinv
from pyinv import Inventory


def level(inv: Inventory, sku: str, location: str = "main") -> tuple[Decimal, Decimal, Decimal]:
    [row] = inv.stock_levels(sku, location)
    return row.on_hand, row.reserved, row.available


def movements(inv: Inventory, sku: str) -> list[tuple[str, Decimal, Decimal]]:
    return [(m.movement_type, m.on_hand_delta, m.reserved_delta) for m in inv.movements(sku=sku)]


def test_location_main_exists_after_install(inv: Inventory) -> None:
    assert [loc.code for loc in inv.locations()] == ["main"]


def test_create_item_defaults_and_is_idempotent_by_sku(inv: Inventory, db) -> None:
    item = inv.create_item("SKU-1", "Blue shirt")
    assert (item.sku, item.unit_of_measure, item.unit_cost, item.status, item.track_lots) == (
        "SKU-1", "each", None, "active", False)
    again = inv.create_item("SKU-1", "Blue shirt")
    assert again == item
    with raises_inventory_error(db, pyinv.AlreadyExists):
        inv.create_item("SKU-1", "Red shirt")


def test_create_location_is_idempotent_by_code(inv: Inventory, db) -> None:
    east = inv.create_location("east", "East store")
    assert inv.create_location("east", "East store") == east
    with raises_inventory_error(db, pyinv.AlreadyExists):
        inv.create_location("east", "West store")


def test_receive_creates_level_and_ledger_row(inv: Inventory) -> None:
    inv.create_item("A1", "Widget")
    result = inv.receive_stock("A1", 10, reference="PO-7")
    assert (result.on_hand, result.reserved, result.available) == (10, 0, 10)
    result = inv.receive_stock("A1", Decimal("2.5"))
    assert result.on_hand == Decimal("12.5")
    [first, second] = inv.movements(sku="A1")
    assert (first.movement_type, first.on_hand_before, first.on_hand_after, first.reference) == (
        "RECEIVE", 0, 10, "PO-7")
    assert (second.on_hand_before, second.on_hand_after) == (10, Decimal("12.5"))


def test_receive_with_unit_cost_keeps_a_moving_average(inv: Inventory) -> None:
    inv.create_item("A1", "Widget")
    inv.receive_stock("A1", 10, unit_cost=2)
    inv.receive_stock("A1", 30, unit_cost=4)
    [item] = inv.items()
    assert item.unit_cost == Decimal("3.5")  # (10*2 + 30*4) / 40


def test_reserve_holds_stock_and_returns_the_reservation(catalogue: Inventory) -> None:
    hold = catalogue.reserve_stock("A1", 3, "SO-1", expires_in=timedelta(minutes=15))
    assert (hold.order_ref, hold.sku, hold.location, hold.quantity, hold.quantity_open, hold.status) == (
        "SO-1", "A1", "main", 3, 3, "ACTIVE")
    assert hold.expires_at is not None
    assert level(catalogue, "A1") == (10, 3, 7)
    assert movements(catalogue, "A1")[-1] == ("RESERVE", 0, 3)


def test_reserve_without_expires_in_uses_the_default_ttl(catalogue: Inventory, db) -> None:
    hold = catalogue.reserve_stock("A1", 1, "SO-1")
    ttl = db.execute("select expires_at - created_at from inventory.reservations where reservation_id = %s",
                     (hold.reservation_id,)).fetchone()[0]
    assert ttl == timedelta(hours=24)


def test_reserve_more_than_available_is_insufficient_stock(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 8, "SO-1")
    with raises_inventory_error(db, pyinv.InsufficientStock) as caught:
        catalogue.reserve_stock("A1", 3, "SO-2")
    assert caught.value.detail == {"sku": "A1", "location": "main", "requested": 3, "available": 2,
                                   "on_hand": 10, "reserved": 8}


def test_reserve_at_a_location_without_stock_is_insufficient(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.InsufficientStock) as caught:
        catalogue.reserve_stock("A1", 1, "SO-1", location="east")
    assert caught.value.detail["available"] == 0


@pytest.mark.parametrize("status", ["on_hold", "discontinued"])
def test_items_not_active_cannot_be_reserved(catalogue: Inventory, db, status: str) -> None:
    catalogue.set_item_status("A1", status)
    with raises_inventory_error(db, pyinv.ProductUnavailable):
        catalogue.reserve_stock("A1", 1, "SO-1")
    with raises_inventory_error(db, pyinv.ProductUnavailable):
        catalogue.reserve_order("SO-2", [{"sku": "A1", "quantity": 1}])
    assert catalogue.validate_stock("A1", 1).error_code == "PRODUCT_UNAVAILABLE"


def test_on_hold_items_can_still_be_received_but_discontinued_cannot(catalogue: Inventory, db) -> None:
    catalogue.set_item_status("A1", "on_hold")
    assert catalogue.receive_stock("A1", 1).on_hand == 11
    catalogue.set_item_status("A1", "discontinued")
    with raises_inventory_error(db, pyinv.ProductUnavailable):
        catalogue.receive_stock("A1", 1)


def test_unknown_sku_and_location(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.ProductNotFound):
        catalogue.reserve_stock("NOPE", 1, "SO-1")
    with raises_inventory_error(db, pyinv.LocationNotFound):
        catalogue.reserve_stock("A1", 1, "SO-1", location="nowhere")
    with raises_inventory_error(db, pyinv.ProductNotFound):
        catalogue.set_item_status("NOPE", "active")


def test_soft_deleted_items_are_unknown(catalogue: Inventory, db) -> None:
    db.execute("update inventory.items set deleted_at = now() where sku = 'B2'")
    with raises_inventory_error(db, pyinv.ProductNotFound):
        catalogue.reserve_stock("B2", 1, "SO-1")
    assert [item.sku for item in catalogue.items()] == ["A1"]


def test_reserve_order_merges_duplicate_lines_and_holds_all(catalogue: Inventory) -> None:
    holds = catalogue.reserve_order("SO-1", [
        {"sku": "A1", "quantity": 2}, {"sku": "B2", "quantity": 1}, {"sku": "A1", "quantity": 3}])
    assert sorted((h.sku, h.quantity) for h in holds) == [("A1", 5), ("B2", 1)]
    assert level(catalogue, "A1") == (10, 5, 5)
    assert level(catalogue, "B2") == (5, 1, 4)


def test_reserve_order_duplicate_lines_are_checked_together(catalogue: Inventory, db) -> None:
    # Each line alone fits (6 <= 10) but together they do not: the Medusa bundle bug.
    with raises_inventory_error(db, pyinv.InsufficientStock) as caught:
        catalogue.reserve_order("SO-1", [{"sku": "A1", "quantity": 6}, {"sku": "A1", "quantity": 6}])
    assert caught.value.detail["short_lines"] == [
        {"sku": "A1", "location": "main", "requested": 12, "available": 10, "on_hand": 10, "reserved": 0}]


def test_reserve_order_is_all_or_nothing_and_lists_every_short_line(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.InsufficientStock) as caught:
        catalogue.reserve_order("SO-1", [
            {"sku": "A1", "quantity": 11}, {"sku": "B2", "quantity": 1},
            {"sku": "B2", "quantity": 9, "location": "east"}])
    short = caught.value.detail["short_lines"]
    assert sorted((line["sku"], line["location"]) for line in short) == [("A1", "main"), ("B2", "east")]
    assert level(catalogue, "B2") == (5, 0, 5)


def test_reserve_order_reports_unknown_skus(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.ProductNotFound) as caught:
        catalogue.reserve_order("SO-1", [{"sku": "A1", "quantity": 1}, {"sku": "X9", "quantity": 1}])
    assert caught.value.detail == {"unknown": [{"sku": "X9", "location": "main"}]}
    with raises_inventory_error(db, pyinv.LocationNotFound):
        catalogue.reserve_order("SO-1", [{"sku": "A1", "quantity": 1, "location": "mars"}])


def test_fulfill_whole_order_ships_everything(catalogue: Inventory) -> None:
    catalogue.reserve_order("SO-1", [{"sku": "A1", "quantity": 2}, {"sku": "B2", "quantity": 1}])
    changes = catalogue.fulfill_order("SO-1")
    assert sorted((c.sku, c.movement_type, c.quantity, c.status, c.quantity_open) for c in changes) == [
        ("A1", "SHIP", 2, "FULFILLED", 0), ("B2", "SHIP", 1, "FULFILLED", 0)]
    assert level(catalogue, "A1") == (8, 0, 8)
    assert level(catalogue, "B2") == (4, 0, 4)
    assert movements(catalogue, "A1")[-1] == ("SHIP", -2, -2)


def test_partial_fulfilment_keeps_the_rest_held_fifo(catalogue: Inventory, db) -> None:
    first = catalogue.reserve_stock("A1", 2, "SO-1")
    second = catalogue.reserve_stock("A1", 3, "SO-1")
    [change_a, change_b] = catalogue.fulfill_order("SO-1", sku="A1", quantity=3)
    assert (change_a.reservation_id, change_a.quantity, change_a.status) == (first.reservation_id, 2, "FULFILLED")
    assert (change_b.reservation_id, change_b.quantity, change_b.status, change_b.quantity_open) == (
        second.reservation_id, 1, "ACTIVE", 2)
    assert level(catalogue, "A1") == (7, 2, 5)
    with raises_inventory_error(db, pyinv.QuantityMismatch) as caught:
        catalogue.fulfill_order("SO-1", sku="A1", quantity=3)
    assert caught.value.detail["held"] == 2
    [last] = catalogue.fulfill_order("SO-1", sku="A1")
    assert (last.quantity, last.status) == (2, "FULFILLED")
    with raises_inventory_error(db, pyinv.NoReservation):
        catalogue.fulfill_order("SO-1")


def test_fulfill_with_quantity_needs_a_sku(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 2, "SO-1")
    with raises_inventory_error(db, pyinv.InvalidArgument):
        catalogue.fulfill_order("SO-1", quantity=1)


def test_cancel_releases_holds(catalogue: Inventory, db) -> None:
    catalogue.reserve_order("SO-1", [{"sku": "A1", "quantity": 2}, {"sku": "B2", "quantity": 1}])
    [change] = catalogue.cancel_reservation("SO-1", sku="B2")
    assert (change.sku, change.movement_type, change.quantity, change.status) == ("B2", "RELEASE", 1, "CANCELLED")
    assert level(catalogue, "B2") == (5, 0, 5)
    [change] = catalogue.cancel_reservation("SO-1")
    assert change.sku == "A1"
    assert level(catalogue, "A1") == (10, 0, 10)
    assert movements(catalogue, "A1")[-1] == ("RELEASE", 0, -2)
    with raises_inventory_error(db, pyinv.NoReservation):
        catalogue.cancel_reservation("SO-1")


def test_cancel_after_partial_shipment_releases_only_the_rest(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 5, "SO-1")
    catalogue.fulfill_order("SO-1", sku="A1", quantity=2)
    [change] = catalogue.cancel_reservation("SO-1")
    assert (change.quantity, change.quantity_fulfilled, change.status) == (3, 2, "CANCELLED")
    assert level(catalogue, "A1") == (8, 0, 8)


def test_returns_restock_and_never_exceed_shipped(catalogue: Inventory, db) -> None:
    catalogue.reserve_stock("A1", 4, "SO-1")
    catalogue.fulfill_order("SO-1")
    returned = catalogue.process_return("SO-1", "A1", 1, "wrong size")
    assert (returned.quantity, returned.restocked, returned.reason) == (1, True, "wrong size")
    assert returned.movement_id is not None
    assert level(catalogue, "A1") == (7, 0, 7)
    damaged = catalogue.process_return("SO-1", "A1", 2, "damaged", restock=False)
    assert (damaged.restocked, damaged.movement_id) == (False, None)
    assert level(catalogue, "A1") == (7, 0, 7)
    with raises_inventory_error(db, pyinv.QuantityMismatch) as caught:
        catalogue.process_return("SO-1", "A1", 2, "changed mind")
    assert (caught.value.detail["shipped"], caught.value.detail["returned"]) == (4, 3)
    assert catalogue.process_return("SO-1", "A1", 1, "changed mind", location="east").location == "east"
    assert level(catalogue, "A1", "east") == (1, 0, 1)


def test_return_for_an_order_that_never_held_the_item(catalogue: Inventory, db) -> None:
    with raises_inventory_error(db, pyinv.NoReservation):
        catalogue.process_return("SO-404", "A1", 1, "unknown order")
    catalogue.reserve_stock("A1", 1, "SO-1")
    with raises_inventory_error(db, pyinv.QuantityMismatch):
        catalogue.process_return("SO-1", "A1", 1, "not shipped yet")


def test_validate_stock(catalogue: Inventory) -> None:
    catalogue.reserve_stock("A1", 4, "SO-1")
    assert catalogue.validate_stock("A1", 6).to_dict() == {"can_fulfill": True, "available": 6, "error_code": None}
    assert catalogue.validate_stock("A1", 7).to_dict() == {
        "can_fulfill": False, "available": 6, "error_code": "INSUFFICIENT_STOCK"}
    assert catalogue.validate_stock("NOPE", 1).error_code == "PRODUCT_NOT_FOUND"
    assert catalogue.validate_stock("A1", 1, "mars").error_code == "LOCATION_NOT_FOUND"
    assert catalogue.validate_stock("A1", 0).error_code == "INVALID_QUANTITY"


def test_validate_stock_is_stable_and_runs_read_only(catalogue: Inventory, db) -> None:
    volatility = db.execute("select provolatile from pg_proc where oid = 'inventory_api.validate_stock'::regproc")
    assert volatility.fetchone()[0] == "s"
    with db.transaction():
        db.execute("set transaction read only")
        row = db.execute("select * from inventory_api.validate_stock(sku => 'A1', quantity => 1)").fetchone()
    assert row[0] is True


def test_fractional_quantities(catalogue: Inventory) -> None:
    catalogue.create_item("ROPE", "Rope", unit_of_measure="m")
    catalogue.receive_stock("ROPE", Decimal("12.75"))
    catalogue.reserve_stock("ROPE", Decimal("0.0001"), "SO-1")
    catalogue.reserve_stock("ROPE", Decimal("12.7499"), "SO-2")
    assert level(catalogue, "ROPE") == (Decimal("12.75"), Decimal("12.75"), 0)


@pytest.mark.parametrize("expires_in", ["1 mon -29 days -23 hours", "25 hours -1 day", "1 year", "366 days",
                                        "1 mon -1 second"])
def test_hold_lifetimes_are_checked_on_the_time_they_give(catalogue: Inventory, db, expires_in: str) -> None:
    """Intervals compare as if a month were 30 days; the hold's end is what must lie after now and at
    most 366 days later."""
    [[fits]] = db.execute("select now() + %s::interval > now() and now() + %s::interval <= now() + interval '366 days'",
                          (expires_in, expires_in)).fetchall()
    call = ("select expires_at - now() from inventory_api.reserve_stock(sku => 'A1', quantity => 1,"
            " order_ref => 'SO-L', expires_in => %s::interval)")
    if fits:
        [[lifetime]] = db.execute(call, (expires_in,)).fetchall()
        assert timedelta(0) < lifetime <= timedelta(days=366)
    else:
        with raises_db_error(db, "22023", "INVALID_ARGUMENT"):
            db.execute(call, (expires_in,))


def test_quantities_travel_as_exact_decimals(inv: Inventory) -> None:
    big = Decimal("862478641446.5169")  # a float would make it ...5168
    inv.create_item("BIG", "Bulk")
    inv.receive_stock("BIG", Decimal("999999999999.9999"))
    [hold] = inv.reserve_order("SO-BIG", [{"sku": "BIG", "quantity": big}])
    assert hold.quantity == big
    result = inv.import_batch("policies", [{"sku": "BIG", "location": "main", "reorder_point": Decimal("0.0001"),
                                            "safety_stock": 0}])
    assert result["applied"] == 1 and inv.stock_policies("BIG")[0].reorder_point == Decimal("0.0001")
    assert inv.stock_levels("BIG")[0].available == Decimal("999999999999.9999") - big
