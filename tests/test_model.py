"""Model-based test: Hypothesis drives random sequences of API calls and a pure-Python model
predicts each result (and each error code); after every step the database must equal the model and
verify_inventory() must be empty."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import pyinv
from pyinv import Inventory

_run = itertools.count()
quantities = st.one_of(st.integers(1, 12).map(Decimal), st.decimals("0.0001", "3", places=4))


@dataclass
class Hold:
    quantity: Decimal
    fulfilled: Decimal = Decimal(0)
    status: str = "ACTIVE"

    @property
    def open(self) -> Decimal:
        return self.quantity - self.fulfilled if self.status == "ACTIVE" else Decimal(0)


@dataclass
class Order:
    holds: list[Hold] = field(default_factory=list)
    returned: Decimal = Decimal(0)

    @property
    def held(self) -> Decimal:
        return sum((hold.open for hold in self.holds), Decimal(0))

    @property
    def shipped(self) -> Decimal:
        return sum((hold.fulfilled for hold in self.holds), Decimal(0))


class StockMachine(RuleBasedStateMachine):
    def __init__(self, inv: Inventory) -> None:
        super().__init__()
        self.inv = inv
        self.sku = f"M-{next(_run)}"
        inv.create_item(self.sku, "Modelled item")
        self.on_hand = Decimal(0)
        self.orders: dict[str, Order] = {f"O{n}": Order() for n in range(4)}

    @property
    def reserved(self) -> Decimal:
        return sum((order.held for order in self.orders.values()), Decimal(0))

    @rule(quantity=quantities)
    def receive(self, quantity: Decimal) -> None:
        self.inv.receive_stock(self.sku, quantity)
        self.on_hand += quantity

    @rule(order=st.sampled_from(["O0", "O1", "O2", "O3"]), quantity=quantities)
    def reserve(self, order: str, quantity: Decimal) -> None:
        if quantity <= self.on_hand - self.reserved:
            hold = self.inv.reserve_stock(self.sku, quantity, order)
            assert hold.quantity == quantity
            self.orders[order].holds.append(Hold(quantity))
        else:
            try:
                self.inv.reserve_stock(self.sku, quantity, order)
                raise AssertionError("oversold")
            except pyinv.InsufficientStock as error:
                assert error.detail["available"] == self.on_hand - self.reserved

    @rule(order=st.sampled_from(["O0", "O1", "O2", "O3"]), quantity=st.none() | quantities)
    def fulfill(self, order: str, quantity: Decimal | None) -> None:
        model = self.orders[order]
        if model.held == 0:
            try:
                self.inv.fulfill_order(order, sku=self.sku, quantity=quantity)
                raise AssertionError("fulfilled an order without holds")
            except pyinv.NoReservation:
                return
        if quantity is not None and quantity > model.held:
            try:
                self.inv.fulfill_order(order, sku=self.sku, quantity=quantity)
                raise AssertionError("shipped more than held")
            except pyinv.QuantityMismatch:
                return
        changes = self.inv.fulfill_order(order, sku=self.sku, quantity=quantity)
        remaining = model.held if quantity is None else quantity
        assert sum(change.quantity for change in changes) == remaining
        for hold in model.holds:
            take = min(hold.open, remaining)
            hold.fulfilled += take
            remaining -= take
            if hold.status == "ACTIVE" and hold.fulfilled == hold.quantity:
                hold.status = "FULFILLED"
        self.on_hand -= sum(change.quantity for change in changes)

    @rule(order=st.sampled_from(["O0", "O1", "O2", "O3"]))
    def cancel(self, order: str) -> None:
        model = self.orders[order]
        if model.held == 0:
            try:
                self.inv.cancel_reservation(order, sku=self.sku)
                raise AssertionError("cancelled an order without holds")
            except pyinv.NoReservation:
                return
        changes = self.inv.cancel_reservation(order, sku=self.sku)
        assert sum(change.quantity for change in changes) == model.held
        for hold in model.holds:
            if hold.status == "ACTIVE":
                hold.status = "CANCELLED"

    @rule(order=st.sampled_from(["O0", "O1", "O2", "O3"]), quantity=quantities, restock=st.booleans())
    def give_back(self, order: str, quantity: Decimal, restock: bool) -> None:
        model = self.orders[order]
        if not model.holds:
            try:
                self.inv.process_return(order, self.sku, quantity, "model", restock=restock)
                raise AssertionError("returned for an order that never held the item")
            except pyinv.NoReservation:
                return
        if quantity > model.shipped - model.returned:
            try:
                self.inv.process_return(order, self.sku, quantity, "model", restock=restock)
                raise AssertionError("returned more than shipped")
            except pyinv.QuantityMismatch:
                return
        self.inv.process_return(order, self.sku, quantity, "model", restock=restock)
        model.returned += quantity
        if restock:
            self.on_hand += quantity

    @rule(order=st.sampled_from(["O0", "O1", "O2", "O3"]))
    def let_expire(self, order: str) -> None:
        self.inv.connection.execute(
            "update inventory.reservations set expires_at = now() - interval '1 second'"
            " where order_ref = %s and item_id = (select item_id from inventory.items where sku = %s)",
            (order, self.sku))
        for hold in self.orders[order].holds:
            if hold.status == "ACTIVE":
                hold.status = "EXPIRED"
        while self.inv.expire_reservations(batch_size=5):
            pass

    @invariant()
    def database_equals_model(self) -> None:
        [level] = self.inv.stock_levels(self.sku) or [None]
        on_hand, reserved = (level.on_hand, level.reserved) if level else (Decimal(0), Decimal(0))
        assert (on_hand, reserved) == (self.on_hand, self.reserved)
        assert self.inv.verify_inventory() == []


def test_random_operation_sequences_match_the_model(inv: Inventory) -> None:
    run_state_machine_as_test(
        lambda: StockMachine(inv),
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)))
