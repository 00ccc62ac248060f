"""Model-based test of the whole order lifecycle and stock control, at every isolation level.

Hypothesis drives random sequences of real API calls (through pyinv.Inventory) over two items, two
locations and four orders: receipts, single holds at either location, multi-line all-or-nothing orders,
whole and partial (FIFO) shipments, cancellations, returns with and without restocking, adjustments
with approval (requested by the superuser or by the pyinv_clerk operator), cycle counts, transfers,
holds lapsing (moved into the past by a DBA's UPDATE) and the sweeper, idempotent replays and refused
input. A pure-Python model predicts every outcome: the returned values, or the exact exception with
its SQLSTATE and HINT token, its DETAIL, and an unmoved ledger. After every step every stock level
(on hand, reserved, available, overdue), every hold and every adjustment must equal the model, and
verify_inventory() must report nothing.

The same machine runs under READ COMMITTED, REPEATABLE READ and SERIALIZABLE: the client under test
runs each call in a transaction of its own at that level (autocommit off).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import IsolationLevel

import pyinv
from pyinv import Inventory
from pyinv.models import Reservation

LEVELS = [IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE]
ITEMS = 2
LOCATIONS = ("main", "east")  # main is seeded; east is created by the test (so its location_id is larger)
ORDERS = ("O0", "O1", "O2", "O3")
REASONS = ("received", "restock", "found", "correction", "cycle_count", "damaged", "shrinkage", "theft", "expired",
           "promotion", "quality_control", "other")
TYPES = {-1: ("damage", "write_off", "correction", "physical_count"), 1: ("found", "correction", "physical_count")}
CLERK = "pyinv_clerk"
ZERO = Decimal(0)

# The error contract from the README's catalogue, written out here so that it is checked, not assumed.
CONTRACT: dict[type[pyinv.InventoryError], tuple[str, str]] = {
    pyinv.InsufficientStock: ("PT409", "INSUFFICIENT_STOCK"),
    pyinv.NoReservation: ("PT404", "NO_RESERVATION"),
    pyinv.QuantityMismatch: ("PT409", "QUANTITY_MISMATCH"),
    pyinv.ReservationExpired: ("PT409", "RESERVATION_EXPIRED"),
    pyinv.IdempotencyConflict: ("PT409", "IDEMPOTENCY_CONFLICT"),
    pyinv.InvalidQuantity: ("22023", "INVALID_QUANTITY"),
    pyinv.InvalidArgument: ("22023", "INVALID_ARGUMENT"),
    pyinv.ProductNotFound: ("PT404", "PRODUCT_NOT_FOUND"),
    pyinv.LocationNotFound: ("PT404", "LOCATION_NOT_FOUND"),
    pyinv.PermissionDenied: ("42501", "PERMISSION_DENIED"),
    pyinv.SelfApprovalForbidden: ("PT409", "SELF_APPROVAL_FORBIDDEN"),
    pyinv.InvalidState: ("PT409", "INVALID_STATE"),
    pyinv.AdjustmentNotFound: ("PT404", "ADJUSTMENT_NOT_FOUND"),
}

SETTINGS = settings(max_examples=30, stateful_step_count=30, deadline=None,
                    suppress_health_check=list(HealthCheck))

_run = itertools.count()

fractional = st.decimals("0.0001", "4", places=4)
quantities = st.one_of(st.integers(1, 8).map(Decimal), fractional)
# Adjustment sizes, with the approval thresholds of the seeded reasons (5, 10, 20) and just above them.
thresholds = st.sampled_from(["5", "5.0001", "10", "10.0001", "20", "20.0001"]).map(Decimal)
magnitudes = st.one_of(st.integers(1, 25).map(Decimal), fractional, thresholds)
# A count: an absolute quantity, or on hand plus an offset (the cycle_count threshold is 10).
counts = st.one_of(
    st.tuples(st.just("at"), st.one_of(st.just(Decimal(0)), quantities, st.integers(0, 30).map(Decimal))),
    st.tuples(st.just("off"), st.sampled_from(["0", "10", "-10", "10.0001", "-10.0001", "-0.0001"]).map(Decimal)))
items = st.integers(0, ITEMS - 1)
locations = st.sampled_from(LOCATIONS)
orders = st.sampled_from(ORDERS)
keyed = st.booleans()
aimed = st.integers(0, 3).map(bool)  # mostly aimed at an order in the state the call needs
order_lines = st.lists(st.tuples(items, st.sampled_from([None, *LOCATIONS]), quantities), min_size=1, max_size=4)


@dataclass
class Hold:
    reservation_id: int
    order_ref: str
    sku: str
    location: str
    quantity: Decimal
    fulfilled: Decimal = ZERO
    returned: Decimal = ZERO
    status: str = "ACTIVE"
    overdue: bool = False

    @property
    def open(self) -> Decimal:
        return self.quantity - self.fulfilled if self.status == "ACTIVE" else ZERO

    @property
    def live(self) -> bool:
        return self.status == "ACTIVE" and not self.overdue

    @property
    def lapsed(self) -> bool:
        return self.status == "ACTIVE" and self.overdue


@dataclass
class Adjustment:
    adjustment_id: int
    sku: str
    location: str
    delta: Decimal
    adjustment_type: str
    requested_by: str
    status: str


@dataclass
class Keyed:
    """A call made with an idempotency key: replaying it must return `result` and move nothing."""

    key: str
    client: Inventory
    operation: str
    arguments: dict[str, Any]
    result: Any


@dataclass
class World:
    inv: Inventory
    clerk: Inventory
    db: psycopg.Connection[Any]
    reasons: dict[str, Any]


class StockMachine(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.inv, self.clerk, self.db, self.reasons = world.inv, world.clerk, world.db, world.reasons
        self.user = self.inv.connection.info.user
        run = next(_run)
        # Every example shares the database: fresh SKUs, order refs and keys keep them apart.
        self.prefix = f"M{run}"
        self.skus = [f"M{run}-{n}" for n in range(ITEMS)]
        for sku in self.skus:
            self.inv.create_item(sku, "Modelled item")
        self.refs = {name: f"M{run}-{name}" for name in ORDERS}
        self.levels: dict[tuple[str, str], Decimal] = {}  # on_hand of every level that exists
        self.holds: list[Hold] = []
        self.adjustments: dict[int, Adjustment] = {}
        self.replays: list[Keyed] = []
        self.spare_key: str | None = None
        self.key_numbers = itertools.count()
        # Overdue holds an earlier example left behind would make the sweeper's counts unpredictable.
        while self.inv.expire_reservations(batch_size=1000):
            pass

    # -- the model's arithmetic ---------------------------------------------------------------------

    def on_hand(self, level: tuple[str, str]) -> Decimal:
        return self.levels.get(level, ZERO)

    def holds_at(self, level: tuple[str, str]) -> list[Hold]:
        return [hold for hold in self.holds if (hold.sku, hold.location) == level]

    def reserved(self, level: tuple[str, str]) -> Decimal:
        """The stored reserved column: every ACTIVE hold, overdue or not, until something expires it."""
        return sum((hold.open for hold in self.holds_at(level)), ZERO)

    def overdue(self, level: tuple[str, str]) -> Decimal:
        return sum((hold.open for hold in self.holds_at(level) if hold.lapsed), ZERO)

    def stored_available(self, level: tuple[str, str]) -> Decimal:
        return self.on_hand(level) - self.reserved(level)

    def effective_available(self, level: tuple[str, str]) -> Decimal:
        """What may be held or taken out: overdue holds no longer count."""
        return self.stored_available(level) + self.overdue(level)

    def expire_level(self, level: tuple[str, str]) -> None:
        for hold in self.holds_at(level):
            if hold.lapsed:
                hold.status = "EXPIRED"

    def take_out(self, level: tuple[str, str], quantity: Decimal) -> None:
        """Removes units that fit the effective availability, expiring the level's overdue holds first
        when they are what stands in the way (lazy expiry)."""
        if quantity > self.stored_available(level):
            self.expire_level(level)
        self.levels[level] = self.on_hand(level) - quantity

    def shortfall(self, sku: str, location: str, requested: Decimal, expired: bool = False) -> dict[str, Any]:
        """DETAIL of INSUFFICIENT_STOCK; `expired`: read after the level's overdue holds were expired."""
        level = (sku, location)
        if level not in self.levels:
            return {"sku": sku, "location": location, "requested": requested, "available": 0, "on_hand": 0,
                    "reserved": 0}
        reserved = self.reserved(level) - (self.overdue(level) if expired else ZERO)
        # available means what inventory_api.stock_levels shows: overdue holds count as released.
        return {"sku": sku, "location": location, "requested": requested,
                "available": self.effective_available(level), "on_hand": self.on_hand(level), "reserved": reserved}

    def active_holds(self, order_ref: str, sku: str | None) -> list[Hold]:
        return sorted((hold for hold in self.holds
                       if hold.order_ref == order_ref and hold.status == "ACTIVE" and sku in (None, hold.sku)),
                      key=lambda hold: hold.reservation_id)

    def aim(self, order: str, item: int | None, aimed: bool,
            wanted: Callable[[str, str | None], bool]) -> tuple[str, str | None]:
        """The drawn order ref and SKU (None: every item); when aimed, a pair for which wanted(ref, sku) holds,
        chosen by the drawn one, so that most calls meet an order in the state they need."""
        skus: list[str | None] = [None] if item is None else list(self.skus)
        candidates = [(self.refs[name], sku) for name in ORDERS for sku in skus if wanted(self.refs[name], sku)]
        if aimed and candidates:
            return candidates[(ORDERS.index(order) * ITEMS + (item or 0)) % len(candidates)]
        return self.refs[order], None if item is None else self.skus[item]

    def returnable(self, order_ref: str, sku: str | None) -> Decimal:
        return sum((hold.fulfilled - hold.returned for hold in self.holds
                    if hold.order_ref == order_ref and hold.sku == sku), ZERO)

    def into_overdue(self, level: tuple[str, str], quantity: Decimal, aimed: bool) -> Decimal:
        """When aimed and overdue holds sit at the level: a quantity that fits only if they no longer count."""
        if aimed and self.overdue(level):
            return min(self.stored_available(level) + quantity, self.effective_available(level))
        return quantity

    def needs_approval(self, reason: str, delta: Decimal) -> bool:
        code = self.reasons[reason]
        return abs(delta) > code.approval_threshold and (delta < 0 or code.requires_approval)

    def add_hold(self, hold: Reservation) -> None:
        newest = max((known.reservation_id for known in self.holds), default=0)
        assert hold.reservation_id > newest, "holds must be numbered in the order they were made (FIFO)"
        self.holds.append(Hold(hold.reservation_id, hold.order_ref, hold.sku, hold.location, hold.quantity))

    # -- calling the engine ---------------------------------------------------------------------------

    def ledger_rows(self) -> int:
        return self.db.execute("select count(*) from inventory.ledger").fetchone()[0]

    def new_key(self, wanted: bool) -> str | None:
        """A fresh idempotency key, or the key of the last refused call: a refused call must not burn it."""
        if not wanted:
            return None
        if self.spare_key is not None:
            key, self.spare_key = self.spare_key, None
            return key
        return f"{self.prefix}-k{next(self.key_numbers)}"

    def call(self, client: Inventory, operation: str, arguments: dict[str, Any]) -> Any:
        result = getattr(client, operation)(**arguments)
        if arguments.get("idempotency_key"):
            self.replays.append(Keyed(arguments["idempotency_key"], client, operation, dict(arguments), result))
        return result

    def refused(self, expected: type[pyinv.InventoryError], call: Callable[[], object], key: str | None = None,
                privilege: bool = False) -> pyinv.InventoryError:
        """The call must raise exactly `expected` with its catalogued SQLSTATE and HINT, and move nothing.
        `privilege`: refused by PostgreSQL's EXECUTE privilege before any pyinv code ran, so the server
        sends 42501 without a HINT (the client still names it PERMISSION_DENIED)."""
        before = self.ledger_rows()
        with pytest.raises(pyinv.InventoryError) as caught:
            call()
        error = caught.value
        assert type(error) is expected, f"expected {expected.__name__}, got {type(error).__name__}: {error}"
        assert (error.actual_sqlstate, error.hint) == CONTRACT[expected]
        server = error.__cause__
        assert isinstance(server, psycopg.Error)
        assert (server.sqlstate, server.diag.message_hint) == (CONTRACT[expected][0],
                                                              None if privilege else CONTRACT[expected][1])
        assert self.ledger_rows() == before
        if key is not None:
            self.spare_key = key
        return error

    # -- rules ----------------------------------------------------------------------------------------

    @initialize(amounts=st.tuples(*[st.integers(0, 20), st.integers(0, 8)] * ITEMS),
                holds=st.lists(st.tuples(orders, items, locations, quantities), max_size=4))
    def stock_up(self, amounts: tuple[int, ...], holds: list[tuple[str, int, str, Decimal]]) -> None:
        """Some stock at every level, and a few holds, so that orders have something to ship from the start."""
        levels = [(sku, location) for sku in self.skus for location in LOCATIONS]
        for (sku, location), amount in zip(levels, amounts, strict=True):
            if amount:
                row = self.inv.receive_stock(sku, amount, location, reference="initial stock")
                self.levels[(sku, location)] = Decimal(amount)
                assert (row.on_hand, row.reserved) == (amount, 0)
        for order, item, location, quantity in holds:
            self.hold(order, item, location, quantity, aimed=False, keyed=False)

    @rule(item=items, location=locations, quantity=quantities, keyed=keyed)
    def receive(self, item: int, location: str, quantity: Decimal, keyed: bool) -> None:
        sku, key = self.skus[item], self.new_key(keyed)
        level = (sku, location)
        row = self.call(self.inv, "receive_stock", {"sku": sku, "quantity": quantity, "location": location,
                                                    "idempotency_key": key})
        self.levels[level] = self.on_hand(level) + quantity
        assert (row.sku, row.location, row.on_hand, row.reserved, row.available) == (
            sku, location, self.on_hand(level), self.reserved(level), self.stored_available(level))

    @rule(order=orders, item=items, location=locations, quantity=quantities, aimed=aimed, keyed=keyed)
    def reserve(self, order: str, item: int, location: str, quantity: Decimal, aimed: bool, keyed: bool) -> None:
        self.hold(order, item, location, quantity, aimed, keyed)

    def hold(self, order: str, item: int, location: str, quantity: Decimal, aimed: bool, keyed: bool) -> None:
        sku, ref, key = self.skus[item], self.refs[order], self.new_key(keyed)
        level = (sku, location)
        quantity = self.into_overdue(level, quantity, aimed)
        arguments = {"sku": sku, "quantity": quantity, "order_ref": ref, "location": location,
                     "idempotency_key": key}
        if quantity > self.effective_available(level):
            # Sold out is answered from a plain read: nothing is expired or written.
            error = self.refused(pyinv.InsufficientStock, lambda: self.inv.reserve_stock(**arguments), key)
            assert error.detail == self.shortfall(sku, location, quantity)
            return
        if quantity > self.stored_available(level):
            self.expire_level(level)
        hold = self.call(self.inv, "reserve_stock", arguments)
        assert (hold.order_ref, hold.sku, hold.location, hold.quantity, hold.quantity_fulfilled, hold.quantity_open,
                hold.status) == (ref, sku, location, quantity, 0, quantity, "ACTIVE")
        self.add_hold(hold)

    @rule(order=orders, lines=order_lines, keyed=keyed)
    def reserve_order(self, order: str, lines: list[tuple[int, str | None, Decimal]], keyed: bool) -> None:
        ref, key = self.refs[order], self.new_key(keyed)
        payload = [{"sku": self.skus[item], "quantity": quantity} | ({"location": location} if location else {})
                   for item, location, quantity in lines]
        merged: dict[tuple[int, int], Decimal] = {}  # (item, location) index: the engine's lock order
        for item, location, quantity in lines:
            index = (item, LOCATIONS.index(location or "main"))
            merged[index] = merged.get(index, ZERO) + quantity
        wanted = [((self.skus[item], LOCATIONS[where]), quantity) for (item, where), quantity in sorted(merged.items())]
        arguments = {"order_ref": ref, "lines": payload, "idempotency_key": key}
        short = [self.shortfall(*level, quantity, expired=True) for level, quantity in wanted
                 if quantity > self.effective_available(level)]
        if short:
            error = self.refused(pyinv.InsufficientStock, lambda: self.inv.reserve_order(**arguments), key)
            assert error.detail == {"order_ref": ref, "short_lines": short}
            return
        for level, quantity in wanted:
            if quantity > self.stored_available(level):
                self.expire_level(level)
        holds = self.call(self.inv, "reserve_order", arguments)
        assert [hold.reservation_id for hold in holds] == sorted(hold.reservation_id for hold in holds)
        assert sorted((hold.sku, hold.location, hold.quantity) for hold in holds) == sorted(
            (*level, quantity) for level, quantity in wanted)
        assert {(hold.order_ref, hold.quantity_fulfilled, hold.quantity_open == hold.quantity, hold.status)
                for hold in holds} == {(ref, 0, True, "ACTIVE")}
        for hold in sorted(holds, key=lambda hold: hold.reservation_id):
            self.add_hold(hold)

    @rule(requests=st.lists(st.tuples(orders, items, locations, quantities, aimed), min_size=1, max_size=6))
    def reserve_many(self, requests: list[tuple[str, int, str, Decimal, bool]]) -> None:
        """Several independent holds in one call: each must fare as reserve_stock would, in order."""
        payload, expected, made = [], [], []
        for order, item, location, quantity, aimed in requests:
            sku, ref = self.skus[item], self.refs[order]
            level = (sku, location)
            quantity = self.into_overdue(level, quantity, aimed)
            payload.append({"order_ref": ref, "sku": sku, "quantity": quantity, "location": location})
            if quantity > self.effective_available(level):
                expected.append(("INSUFFICIENT_STOCK", self.shortfall(sku, location, quantity)))
                continue
            if quantity > self.stored_available(level):
                self.expire_level(level)
            hold = Hold(0, ref, sku, location, quantity)
            self.holds.append(hold)  # numbered below, from the result
            made.append(hold)
            expected.append((None, (ref, sku, location, quantity)))
        newest = max((known.reservation_id for known in self.holds), default=0)
        results = self.inv.reserve_many(payload)
        assert [(r.error_code, r.detail if r.error_code else (r.order_ref, r.sku, r.location, r.quantity))
                for r in results] == expected
        ids = [r.reservation_id for r in results if r.ok]
        assert ids == sorted(ids) and all(i > newest for i in ids)
        for hold, reservation_id in zip(made, ids, strict=True):
            hold.reservation_id = reservation_id

    @precondition(lambda self: any(hold.status == "ACTIVE" for hold in self.holds))
    @rule(order=orders, aimed=aimed, keyed=keyed)
    def ship_order(self, order: str, aimed: bool, keyed: bool) -> None:
        """Ship every live hold of the order."""
        self.fulfil(order, None, aimed, None, keyed)

    @precondition(lambda self: any(hold.status == "ACTIVE" for hold in self.holds))
    @rule(order=orders, item=items, aimed=aimed, keyed=keyed)
    def ship_item(self, order: str, item: int, aimed: bool, keyed: bool) -> None:
        """Ship every live hold of one item of the order."""
        self.fulfil(order, item, aimed, None, keyed)

    @precondition(lambda self: any(hold.status == "ACTIVE" for hold in self.holds))
    @rule(order=orders, item=items, aimed=aimed, quantity=quantities, keyed=keyed)
    def ship_part(self, order: str, item: int, aimed: bool, quantity: Decimal, keyed: bool) -> None:
        """Ship a quantity of one item, first in first out across the order's live holds (at any location)."""
        self.fulfil(order, item, aimed, quantity, keyed)

    def fulfil(self, order: str, item: int | None, aimed: bool, quantity: Decimal | None, keyed: bool) -> None:
        ref, sku = self.aim(order, item, aimed, lambda ref, sku: bool(self.active_holds(ref, sku)))
        key = self.new_key(keyed)
        live = sum((hold.open for hold in self.active_holds(ref, sku) if hold.live), ZERO)
        amount = min(quantity, live) if quantity is not None and aimed and live else quantity  # aimed: one that fits
        arguments = {"order_ref": ref, "sku": sku, "quantity": amount, "idempotency_key": key}

        def call() -> Any:
            return self.inv.fulfill_order(**arguments)

        targets = self.active_holds(ref, sku)
        lapsed = [hold.reservation_id for hold in targets if hold.lapsed]
        if not targets:
            error = self.refused(pyinv.NoReservation, call, key)
            assert error.detail == {"order_ref": ref, "sku": sku}
            return
        if lapsed and (amount is None or amount > live):
            error = self.refused(pyinv.ReservationExpired, call, key)
            assert sorted(error.detail["expired_reservation_ids"]) == lapsed
            return
        if amount is not None and amount > live:
            error = self.refused(pyinv.QuantityMismatch, call, key)
            assert error.detail == {"order_ref": ref, "sku": sku, "requested": amount, "held": live}
            return
        expected = []
        remaining = live if amount is None else amount
        for hold in targets:  # first in, first out; overdue holds are left alone
            take = min(hold.open, remaining) if hold.live else ZERO
            if take == 0:
                continue
            remaining -= take
            hold.fulfilled += take
            if hold.fulfilled == hold.quantity:
                hold.status = "FULFILLED"
            self.levels[(hold.sku, hold.location)] -= take
            expected.append((hold.reservation_id, ref, hold.sku, hold.location, "SHIP", take, hold.fulfilled,
                             hold.open, hold.status))
        changes = self.call(self.inv, "fulfill_order", arguments)
        assert [(c.reservation_id, c.order_ref, c.sku, c.location, c.movement_type, c.quantity, c.quantity_fulfilled,
                 c.quantity_open, c.status) for c in changes] == expected

    @precondition(lambda self: any(hold.status == "ACTIVE" for hold in self.holds))
    @rule(order=orders, aimed=aimed, item=st.none() | items, keyed=keyed)
    def cancel(self, order: str, aimed: bool, item: int | None, keyed: bool) -> None:
        ref, sku = self.aim(order, item, aimed, lambda ref, sku: bool(self.active_holds(ref, sku)))
        key = self.new_key(keyed)
        arguments = {"order_ref": ref, "sku": sku, "idempotency_key": key}
        targets = self.active_holds(ref, sku)
        if not targets:
            error = self.refused(pyinv.NoReservation, lambda: self.inv.cancel_reservation(**arguments), key)
            assert error.detail == {"order_ref": ref, "sku": sku}
            return
        expected = []
        for hold in targets:  # live holds are released; lapsed ones are recorded as expired
            movement, quantity = ("EXPIRE" if hold.lapsed else "RELEASE"), hold.open
            hold.status = "EXPIRED" if hold.lapsed else "CANCELLED"
            expected.append((hold.reservation_id, ref, hold.sku, hold.location, movement, quantity, hold.fulfilled,
                             ZERO, hold.status))
        changes = self.call(self.inv, "cancel_reservation", arguments)
        assert [(c.reservation_id, c.order_ref, c.sku, c.location, c.movement_type, c.quantity, c.quantity_fulfilled,
                 c.quantity_open, c.status) for c in changes] == expected

    @precondition(lambda self: any(hold.fulfilled > hold.returned for hold in self.holds))
    @rule(order=orders, item=items, aimed=aimed, quantity=st.none() | quantities, location=locations, keyed=keyed)
    def return_to_shelf(self, order: str, item: int, aimed: bool, quantity: Decimal | None, location: str,
                        keyed: bool) -> None:
        self.give_back(order, item, aimed, quantity, True, location, keyed)

    @precondition(lambda self: any(hold.fulfilled > hold.returned for hold in self.holds))
    @rule(order=orders, item=items, aimed=aimed, quantity=st.none() | quantities, keyed=keyed)
    def return_damaged(self, order: str, item: int, aimed: bool, quantity: Decimal | None, keyed: bool) -> None:
        self.give_back(order, item, aimed, quantity, False, "main", keyed)

    def give_back(self, order: str, item: int, aimed: bool, quantity: Decimal | None, restock: bool, location: str,
                  keyed: bool) -> None:
        ref, sku = self.aim(order, item, aimed, lambda ref, sku: sku is not None and self.returnable(ref, sku) > 0)
        key = self.new_key(keyed)
        if quantity is None:  # everything still returnable (or 1 when nothing is)
            quantity = self.returnable(ref, sku) or Decimal(1)
        arguments = {"order_ref": ref, "sku": sku, "quantity": quantity, "reason": "model", "restock": restock,
                     "location": location, "idempotency_key": key}

        def call() -> Any:
            return self.inv.process_return(**arguments)

        holds = sorted((hold for hold in self.holds if hold.order_ref == ref and hold.sku == sku),
                       key=lambda hold: hold.reservation_id)
        shipped = sum((hold.fulfilled for hold in holds), ZERO)
        returned = sum((hold.returned for hold in holds), ZERO)
        if not holds:
            error = self.refused(pyinv.NoReservation, call, key)
            assert error.detail == {"order_ref": ref, "sku": sku}
            return
        if quantity > shipped - returned:
            error = self.refused(pyinv.QuantityMismatch, call, key)
            assert error.detail == {"order_ref": ref, "sku": sku, "requested": quantity, "shipped": shipped,
                                    "returned": returned}
            return
        remaining = quantity
        for hold in holds:  # first shipped, first returned
            take = min(hold.fulfilled - hold.returned, remaining)
            hold.returned += take
            remaining -= take
        if restock:
            self.levels[(sku, location)] = self.on_hand((sku, location)) + quantity
        back = self.call(self.inv, "process_return", arguments)
        assert (back.order_ref, back.sku, back.location, back.quantity, back.reason, back.restocked,
                back.movement_id is None) == (ref, sku, location, quantity, "model", restock, not restock)

    @rule(item=items, location=locations, sign=st.sampled_from([-1, 1]), magnitude=magnitudes,
          reason=st.sampled_from(REASONS), kind=st.integers(0, 3), by_clerk=st.booleans(), keyed=keyed)
    def adjust(self, item: int, location: str, sign: int, magnitude: Decimal, reason: str, kind: int,
               by_clerk: bool, keyed: bool) -> None:
        sku, key = self.skus[item], self.new_key(keyed)
        level, delta = (sku, location), sign * magnitude
        adjustment_type = TYPES[sign][kind % len(TYPES[sign])]
        client, requester = (self.clerk, CLERK) if by_clerk else (self.inv, self.user)
        arguments = {"sku": sku, "quantity_delta": delta, "adjustment_type": adjustment_type, "reason_code": reason,
                     "location": location, "idempotency_key": key}

        def call() -> Any:
            return client.create_adjustment(**arguments)

        direction = self.reasons[reason].direction
        if (direction == "add" and delta < 0) or (direction == "remove" and delta > 0):
            error = self.refused(pyinv.InvalidArgument, call, key)
            assert error.detail == {"argument": "quantity_delta", "problem": "wrong direction for the reason",
                                    "reason_code": reason, "direction": direction}
            return
        on_hand = self.on_hand(level)
        pending = self.needs_approval(reason, delta)
        if not pending and delta < 0:
            if -delta > self.effective_available(level):
                error = self.refused(pyinv.InsufficientStock, call, key)
                assert error.detail == self.shortfall(sku, location, -delta)
                return
            self.take_out(level, -delta)
        elif not pending:
            self.levels[level] = on_hand + delta
        result = self.call(client, "create_adjustment", arguments)
        status = "PENDING" if pending else "APPLIED"
        assert (result.sku, result.location, result.quantity_delta, result.adjustment_type, result.reason_code,
                result.status, result.requires_approval, result.requested_by, result.on_hand_at_request,
                result.on_hand_at_apply, result.movement_id is None) == (
            sku, location, delta, adjustment_type, reason, status, pending, requester, on_hand,
            None if pending else on_hand, pending)
        self.adjustments[result.adjustment_id] = Adjustment(result.adjustment_id, sku, location, delta,
                                                            adjustment_type, requester, status)

    @precondition(lambda self: self.adjustments)
    @rule(pick=st.integers(0, 63), prefer_pending=aimed, approve=st.integers(0, 3).map(bool),
          by=st.sampled_from(["superuser", "superuser", "superuser", "clerk"]))
    def decide(self, pick: int, prefer_pending: bool, approve: bool, by: str) -> None:
        pending = [adjustment for adjustment in self.adjustments.values() if adjustment.status == "PENDING"]
        if approve and by != "clerk":  # aimed at requests another user made, which the superuser may approve
            pending = [adjustment for adjustment in pending if adjustment.requested_by != self.user] or pending
        choices = pending if pending and prefer_pending else list(self.adjustments.values())
        adjustment = choices[pick % len(choices)]
        level = (adjustment.sku, adjustment.location)
        decision = "approved" if approve else "rejected"
        client = self.clerk if by == "clerk" else self.inv

        def call() -> Any:
            return client.approve_adjustment(adjustment.adjustment_id, decision)

        if by == "clerk":  # operators may not even execute approve_adjustment
            self.refused(pyinv.PermissionDenied, call, privilege=True)
            return
        if adjustment.status != "PENDING":
            error = self.refused(pyinv.InvalidState, call)
            assert (error.detail["adjustment_id"], error.detail["status"]) == (adjustment.adjustment_id,
                                                                               adjustment.status)
            return
        if approve and adjustment.requested_by == self.user:
            self.refused(pyinv.SelfApprovalForbidden, call)
            return
        on_hand = self.on_hand(level)
        if approve and adjustment.delta < 0 and -adjustment.delta > self.effective_available(level):
            error = self.refused(pyinv.InsufficientStock, call)
            assert error.detail == self.shortfall(*level, -adjustment.delta)
            return
        if approve and adjustment.delta < 0:  # the delta applies to on_hand as it is now
            self.take_out(level, -adjustment.delta)
        elif approve:
            self.levels[level] = on_hand + adjustment.delta
        else:
            self.levels.setdefault(level, ZERO)  # deciding locks the level, creating it empty if need be
        adjustment.status = "APPROVED" if approve else "REJECTED"
        result = call()
        assert (result.adjustment_id, result.status, result.decided_by, result.movement_id is None,
                result.on_hand_at_apply) == (adjustment.adjustment_id, adjustment.status, self.user, not approve,
                                             on_hand if approve else None)

    @rule(item=items, location=locations, how=counts, by_clerk=st.booleans())
    def count(self, item: int, location: str, how: tuple[str, Decimal], by_clerk: bool) -> None:
        sku = self.skus[item]
        level = (sku, location)
        client, counter = (self.clerk, CLERK) if by_clerk else (self.inv, self.user)
        on_hand, reserved = self.on_hand(level), self.reserved(level)
        kind, value = how
        counted = value if kind == "at" else max(on_hand + value, ZERO)
        difference = counted - on_hand
        self.levels.setdefault(level, ZERO)
        for adjustment in self.adjustments.values():  # a new count measures the whole discrepancy again
            if ((adjustment.sku, adjustment.location), adjustment.adjustment_type, adjustment.status) == (
                    level, "physical_count", "PENDING"):
                adjustment.status = "SUPERSEDED"
        status = None
        if difference:
            # Applied at once when small and not below what is reserved (overdue holds included).
            applied = not self.needs_approval("cycle_count", difference) and counted >= reserved
            status = "APPLIED" if applied else "PENDING"
            if applied:
                self.levels[level] = counted
        result = client.record_count(sku, counted, location)
        assert (result.sku, result.location, result.counted_quantity, result.on_hand_at_count,
                result.reserved_at_count, result.difference, result.adjustment_status, result.counted_by) == (
            sku, location, counted, on_hand, reserved, difference, status, counter)
        assert (result.adjustment_id is None) == (status is None)
        if status is not None:
            self.adjustments[result.adjustment_id] = Adjustment(result.adjustment_id, sku, location, difference,
                                                                "physical_count", counter, status)

    @rule(item=items, source=locations, quantity=quantities, aimed=aimed, keyed=keyed)
    def transfer(self, item: int, source: str, quantity: Decimal, aimed: bool, keyed: bool) -> None:
        sku, key = self.skus[item], self.new_key(keyed)
        target = LOCATIONS[1 - LOCATIONS.index(source)]
        origin, destination = (sku, source), (sku, target)
        quantity = self.into_overdue(origin, quantity, aimed)
        arguments = {"sku": sku, "quantity": quantity, "from_location": source, "to_location": target,
                     "idempotency_key": key}
        if quantity > self.effective_available(origin):
            error = self.refused(pyinv.InsufficientStock, lambda: self.inv.transfer_stock(**arguments), key)
            assert error.detail == self.shortfall(sku, source, quantity)
            return
        self.take_out(origin, quantity)
        self.levels[destination] = self.on_hand(destination) + quantity
        moved = self.call(self.inv, "transfer_stock", arguments)
        assert (moved.sku, moved.quantity, moved.from_location, moved.to_location, moved.from_on_hand,
                moved.from_available, moved.to_on_hand, moved.to_available) == (
            sku, quantity, source, target, self.on_hand(origin), self.stored_available(origin),
            self.on_hand(destination), self.stored_available(destination))
        assert moved.in_movement_id > moved.out_movement_id

    @precondition(lambda self: any(hold.live for hold in self.holds))
    @rule(order=orders, aimed=aimed, item=st.none() | items)
    def let_expire(self, order: str, aimed: bool, item: int | None) -> None:
        """A DBA moves the order's active holds into the past instead of the test sleeping."""
        ref, sku = self.aim(order, item, aimed, lambda ref, sku: any(hold.live for hold in self.active_holds(ref, sku)))
        cursor = self.db.execute(
            "update inventory.reservations set expires_at = now() - interval '1 second'"
            " where order_ref = %s and status = 'ACTIVE'"
            " and (%s::text is null or item_id = (select item_id from inventory.items where sku = %s))",
            (ref, sku, sku))
        targets = self.active_holds(ref, sku)
        assert cursor.rowcount == len(targets)
        for hold in targets:
            hold.overdue = True

    @precondition(lambda self: any(hold.lapsed for hold in self.holds))
    @rule(batch_size=st.integers(1, 3))
    def sweep(self, batch_size: int) -> None:
        """The sweeper releases every overdue hold, at most batch_size per call, and 0 means none is left."""
        remaining = sum(1 for hold in self.holds if hold.lapsed)
        while True:
            expired = self.inv.expire_reservations(batch_size=batch_size)
            assert expired == min(batch_size, remaining)
            remaining -= expired
            if not expired:
                break
        for hold in self.holds:
            if hold.lapsed:
                hold.status = "EXPIRED"

    @precondition(lambda self: self.replays)
    @rule(pick=st.integers(0, 63), conflicting=st.booleans())
    def replay(self, pick: int, conflicting: bool) -> None:
        entry = self.replays[pick % len(self.replays)]
        if conflicting:  # the same key with other arguments
            error = self.refused(pyinv.IdempotencyConflict, lambda: self.inv.receive_stock(
                self.skus[0], 1, reference="another request", idempotency_key=entry.key))
            assert error.detail == {"idempotency_key": entry.key, "operation": entry.operation}
            return
        before = self.ledger_rows()
        again = getattr(entry.client, entry.operation)(**entry.arguments)
        assert again == entry.result
        assert self.ledger_rows() == before

    @rule(case=st.integers(0, 15), item=items)
    def refuse_bad_input(self, case: int, item: int) -> None:
        sku, ref, inv = self.skus[item], self.refs["O0"], self.inv
        cases: list[tuple[type[pyinv.InventoryError], Callable[[], object]]] = [
            (pyinv.InvalidQuantity, lambda: inv.receive_stock(sku, Decimal(0))),
            (pyinv.InvalidArgument, lambda: inv.fulfill_order(ref, quantity=1)),  # a quantity needs a sku
            (pyinv.ProductNotFound, lambda: inv.reserve_stock(f"{sku}-missing", 1, ref)),
            (pyinv.InvalidQuantity, lambda: inv.reserve_stock(sku, Decimal("0.00001"), ref)),
            (pyinv.LocationNotFound, lambda: inv.receive_stock(sku, 1, "nowhere")),
            (pyinv.InvalidQuantity, lambda: inv.reserve_order(ref, [{"sku": sku, "quantity": 1},
                                                                    {"sku": sku, "quantity": 0}])),
            (pyinv.InvalidArgument, lambda: inv.transfer_stock(sku, 1, "east", "east")),
            (pyinv.InvalidQuantity, lambda: inv.fulfill_order(ref, sku=sku, quantity=Decimal("1.00001"))),
            (pyinv.ProductNotFound, lambda: inv.reserve_order(ref, [{"sku": sku, "quantity": 1},
                                                                    {"sku": f"{sku}-missing", "quantity": 1}])),
            (pyinv.InvalidQuantity, lambda: inv.process_return(ref, sku, Decimal(0), "model")),
            (pyinv.InvalidArgument, lambda: inv.create_adjustment(sku, 1, "damage", "correction")),  # damage adds
            (pyinv.InvalidQuantity, lambda: inv.transfer_stock(sku, Decimal(-2), "main", "east")),
            (pyinv.AdjustmentNotFound, lambda: inv.approve_adjustment(-1)),
            (pyinv.InvalidQuantity, lambda: inv.create_adjustment(sku, Decimal(0), "correction", "correction")),
            (pyinv.InvalidQuantity, lambda: inv.reserve_stock(sku, Decimal("NaN"), ref, "east")),
            (pyinv.InvalidQuantity, lambda: inv.receive_stock(sku, Decimal("-1"), "east")),
        ]
        expected, call = cases[case]
        self.refused(expected, call)

    # -- after every step -------------------------------------------------------------------------------

    @invariant()
    def database_equals_model(self) -> None:
        levels = {(row.sku, row.location): (row.on_hand, row.reserved, row.available, row.expired_unreleased)
                  for row in self.inv.stock_levels() if row.sku in self.skus}
        assert levels == {level: (on_hand, self.reserved(level), self.effective_available(level), self.overdue(level))
                          for level, on_hand in self.levels.items()}
        holds = self.db.execute(
            "select reservation_id, order_ref, sku, location, quantity, quantity_fulfilled, quantity_returned, status,"
            " is_overdue from inventory_api.reservations where order_ref = any(%s) order by reservation_id",
            (list(self.refs.values()),)).fetchall()
        assert holds == [(hold.reservation_id, hold.order_ref, hold.sku, hold.location, hold.quantity, hold.fulfilled,
                          hold.returned, hold.status, hold.lapsed)
                         for hold in sorted(self.holds, key=lambda hold: hold.reservation_id)]
        adjustments = self.db.execute(
            "select adjustment_id, sku, location, quantity_delta, status from inventory_api.adjustments"
            " where sku = any(%s) order by adjustment_id", (self.skus,)).fetchall()
        assert adjustments == [(a.adjustment_id, a.sku, a.location, a.delta, a.status)
                               for _, a in sorted(self.adjustments.items())]
        assert self.inv.verify_inventory() == []
        for client in (self.inv, self.clerk):  # every call ended its own transaction
            assert client.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize("level", LEVELS, ids=lambda level: level.name.lower())
def test_random_operation_sequences_match_the_model(level: IsolationLevel, dsn: str, login_dsn, connect,
                                                    db: psycopg.Connection[Any]) -> None:
    def client(conninfo: str) -> Inventory:
        connection = connect(conninfo, autocommit=False)
        connection.isolation_level = level
        assert connection.execute("show transaction_isolation").fetchone()[0] == level.name.lower().replace("_", " ")
        connection.rollback()
        return Inventory(connection)

    inv = client(dsn)
    inv.create_location("east", "East store")
    reasons = {code.reason_code: code for code in inv.reason_codes()}
    assert set(reasons) == set(REASONS)
    world = World(inv, client(login_dsn(CLERK)), db, reasons)
    run_state_machine_as_test(lambda: StockMachine(world), settings=SETTINGS)
