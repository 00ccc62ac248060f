"""`pyinv demo`: a concurrent order simulation that ends by proving nothing was oversold.

`pyinv demo` runs it in a database of its own (DEMO_DATABASE on the same server, dropped and created
anew by prepare_database()), never in the user's. It applies the migrations, creates a small shop
(apparel and hardware at 'main' and 'store-1', with SKUs unique to the run so it can run again on the
same database), receives stock (a few items only a handful of units, so workers race for the last
ones, and one item recalled), then lets `workers` threads, each with its own connection, place
orders: single holds and all-or-nothing multi-line orders, shipped fully or partly, cancelled, or
abandoned so that their short holds lapse while a sweeper thread expires them; some shipped orders
come back. Some calls carry idempotency keys and are retried to show replays. At the end the books
are checked from the database.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import migrate
from .client import Inventory
from .errors import InventoryError, Retryable

T = TypeVar("T")

DEMO_DATABASE = "pyinv_demo"

SECOND_LOCATION = ("store-1", "Store 1 (high street)")
SHORT_HOLD = timedelta(seconds=1)
CHECKOUT_HOLD = timedelta(minutes=30)
SWEEP_INTERVAL = 0.25
RETURN_REASONS = ("wrong size", "changed mind", "damaged in transit", "not as described", "arrived late")


@dataclass(frozen=True)
class DemoItem:
    code: str
    name: str
    unit_cost: str
    main: int  # units received at main (regular items: per 400 orders, scaled to the run)
    store: int  # units received at store-1
    weight: float  # how often orders pick it
    scarce: bool = False  # a handful of units, never scaled: workers race for the last ones
    recalled: bool = False  # put on hold after receiving: orders for it are refused
    uom: str = "each"


CATALOGUE: tuple[DemoItem, ...] = (
    DemoItem("TEE-BLK-M", "Organic cotton T-shirt, black, M", "12.50", 96, 24, 12),
    DemoItem("TEE-WHT-L", "Organic cotton T-shirt, white, L", "12.50", 72, 18, 9),
    DemoItem("HOODIE-GRY-M", "Zip hoodie, heather grey, M", "34.00", 48, 12, 6),
    DemoItem("JEANS-IND-3232", "Slim jeans, indigo, 32/32", "49.00", 48, 12, 6),
    DemoItem("CAP-NVY", "Baseball cap, navy", "15.00", 48, 12, 6),
    DemoItem("SNEAKER-WHT-42", "Canvas sneaker, white, EU 42 (limited run)", "59.00", 4, 0, 2.5, scarce=True),
    DemoItem("SCREWS-4X40", "Wood screws 4 x 40 mm, box of 200", "7.80", 72, 18, 9, uom="box"),
    DemoItem("TAPE-5M", "Tape measure, 5 m", "9.90", 56, 14, 7),
    DemoItem("HAMMER-16OZ", "Claw hammer, 16 oz, fibreglass handle", "18.90", 40, 10, 5),
    DemoItem("DRILL-18V", "Cordless drill 18 V with 2 batteries", "129.00", 3, 1, 2.5, scarce=True),
    DemoItem("LEVEL-60", "Spirit level, 60 cm", "24.00", 2, 0, 2, scarce=True),
    DemoItem("CORD-10M", "Extension cord, 10 m (recalled)", "21.00", 20, 5, 1.5, recalled=True),
)


@dataclass
class DemoReport:
    run_id: str
    items: int
    locations: list[str]
    workers: int
    orders: int
    orders_reserved: int = 0
    orders_rejected: int = 0
    orders_shipped: int = 0
    orders_partially_shipped: int = 0
    orders_cancelled: int = 0
    orders_abandoned: int = 0
    returns: int = 0
    units_received: int = 0
    units_held: int = 0
    units_shipped: int = 0
    units_released: int = 0
    units_expired: int = 0
    units_returned: int = 0
    units_restocked: int = 0
    idempotent_replays: int = 0
    replay_mismatches: int = 0
    replays_refused: dict[str, int] = field(default_factory=dict)
    holds_expired_by_sweeper: int = 0
    retries: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    setup_seconds: float = 0.0
    simulation_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    throughput: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)
    oversold_levels: int = 0
    oversold_units: int = 0
    overshipped_units: int = 0
    ledger_agrees: bool = True
    migrations_applied: list[str] = field(default_factory=list)

    @property
    def books_balance(self) -> bool:
        return not self.violations

    @property
    def ok(self) -> bool:
        return (self.books_balance and self.oversold_units == 0 and self.oversold_levels == 0
                and self.overshipped_units == 0 and self.replay_mismatches == 0 and self.ledger_agrees)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "books_balance": self.books_balance, "ok": self.ok}


@dataclass
class _Tally:
    """One worker's counts (merged at the end: no shared mutable state between workers)."""

    reserved: int = 0
    rejected: int = 0
    shipped: int = 0
    partial: int = 0
    cancelled: int = 0
    abandoned: int = 0
    returns: int = 0
    units_held: int = 0
    units_shipped: int = 0
    replays: int = 0
    replay_mismatches: int = 0
    retries: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    replays_refused: Counter[str] = field(default_factory=Counter)
    abandoned_orders: list[str] = field(default_factory=list)

    def merge(self, other: _Tally) -> None:
        for name in ("reserved", "rejected", "shipped", "partial", "cancelled", "abandoned", "returns",
                     "units_held", "units_shipped", "replays", "replay_mismatches", "retries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejections.update(other.rejections)
        self.replays_refused.update(other.replays_refused)
        self.abandoned_orders.extend(other.abandoned_orders)


class _Worker:
    def __init__(self, inv: Inventory, skus: dict[str, str], stocked: dict[str, list[str]], tag: str) -> None:
        self.inv = inv
        self.skus = skus  # code -> run-unique SKU
        self.stocked = stocked  # location -> codes with stock there
        self.tag = tag
        self.tally = _Tally()
        self.weights = {item.code: item.weight for item in CATALOGUE}

    def call(self, function: Callable[[], T]) -> T:
        """Retry serialization failures and deadlocks (a failed call changed nothing)."""
        for attempt in range(5):
            try:
                return function()
            except Retryable:
                if attempt == 4:
                    raise
                self.tally.retries += 1
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def rejected(self, error: InventoryError) -> None:
        self.tally.rejections[error.code] += 1

    def pick(self, rng: random.Random, location: str) -> tuple[str, int]:
        codes = self.stocked[location]
        code = rng.choices(codes, weights=[self.weights[c] for c in codes])[0]
        quantity = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
        return self.skus[code], quantity

    def order(self, number: int, rng: random.Random) -> None:
        ref = f"{self.tag}-SO-{number:05d}"
        location = "store-1" if rng.random() < 0.2 else "main"
        fate = rng.choices(("ship", "partial", "cancel", "abandon"), weights=(55, 13, 17, 15))[0]
        expires_in = SHORT_HOLD if fate == "abandon" else CHECKOUT_HOLD
        keyed = rng.random() < 0.35
        hold_key = f"{ref}:hold" if keyed else None

        if rng.random() < 0.35:
            sku, quantity = self.pick(rng, location)

            def place() -> list[Any]:
                return [self.inv.reserve_stock(sku, quantity, ref, location=location, expires_in=expires_in,
                                               idempotency_key=hold_key)]
        else:
            lines = [dict(zip(("sku", "quantity"), self.pick(rng, location), strict=True))
                     for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.25:  # the same SKU twice in one basket: merged into one hold
                lines.append({**rng.choice(lines), "quantity": 1})
            for line in lines:
                line["location"] = location

            def place() -> list[Any]:
                return self.inv.reserve_order(ref, lines, expires_in=expires_in, idempotency_key=hold_key)

        try:
            holds = self.call(place)
        except InventoryError as error:
            self.tally.rejected += 1
            self.rejected(error)
            return
        self.tally.reserved += 1
        self.tally.units_held += sum(int(hold.quantity) for hold in holds)
        if keyed and rng.random() < 0.4:  # the client timed out and retries: same key, same answer
            self.replay(place, [h.reservation_id for h in holds], lambda again: [h.reservation_id for h in again])

        try:
            self.resolve(ref, fate, holds, location, rng, keyed)
        except InventoryError as error:
            self.rejected(error)

    def replay(self, call: Callable[[], T], first: Any, key_of: Callable[[T], Any]) -> None:
        """Repeat a keyed call: it must answer what the first call answered and move nothing."""
        try:
            again = self.call(call)
        except InventoryError as error:
            self.tally.replays_refused[error.code] += 1
            return
        if key_of(again) == first:
            self.tally.replays += 1
        else:
            self.tally.replay_mismatches += 1

    def ship(self, ref: str, key: str | None = None, sku: str | None = None, quantity: int | None = None,
             replay: bool = False) -> dict[str, int]:
        def call() -> list[Any]:
            return self.inv.fulfill_order(ref, sku=sku, quantity=quantity, idempotency_key=key)

        changes = self.call(call)
        if key is not None and replay:
            self.replay(call, [(c.reservation_id, c.quantity) for c in changes],
                        lambda again: [(c.reservation_id, c.quantity) for c in again])
        shipped: dict[str, int] = {}
        for change in changes:
            if change.movement_type == "SHIP":
                shipped[change.sku] = shipped.get(change.sku, 0) + int(change.quantity)
        self.tally.units_shipped += sum(shipped.values())
        return shipped

    def resolve(self, ref: str, fate: str, holds: list[Any], location: str, rng: random.Random,
                keyed: bool) -> None:
        ship_key = f"{ref}:ship" if keyed else None
        if fate == "abandon":
            self.tally.abandoned += 1
            self.tally.abandoned_orders.append(ref)
            return
        if fate == "cancel":
            self.call(lambda: self.inv.cancel_reservation(ref))
            self.tally.cancelled += 1
            return
        if fate == "partial" and (len(holds) > 1 or holds[0].quantity > 1):
            hold = max(holds, key=lambda h: h.quantity)
            first = rng.randint(1, int(hold.quantity) - 1) if hold.quantity > 1 else int(hold.quantity)
            shipped = self.ship(ref, key=ship_key, sku=hold.sku, quantity=first, replay=rng.random() < 0.3)
            if rng.random() < 0.5:
                more = self.ship(ref)  # the back-order arrives: ship the rest
                for sku, units in more.items():
                    shipped[sku] = shipped.get(sku, 0) + units
            else:
                self.call(lambda: self.inv.cancel_reservation(ref))  # the customer drops the rest
            self.tally.partial += 1
        else:
            shipped = self.ship(ref, key=ship_key, replay=rng.random() < 0.3)
        self.tally.shipped += 1
        if shipped and rng.random() < 0.18:
            self.give_back(ref, shipped, location, rng, keyed)

    def give_back(self, ref: str, shipped: dict[str, int], location: str, rng: random.Random, keyed: bool) -> None:
        sku = rng.choice(sorted(shipped))
        # Now and then a customer claims more than was shipped: refused (QUANTITY_MISMATCH).
        quantity = shipped[sku] + 1 if rng.random() < 0.15 else rng.randint(1, shipped[sku])
        reason = rng.choice(RETURN_REASONS)
        restock = reason != "damaged in transit"
        key = f"{ref}:return:{sku}" if keyed else None

        def call() -> Any:
            return self.inv.process_return(ref, sku, quantity, reason, restock=restock, location=location,
                                           idempotency_key=key)

        try:
            result = self.call(call)
        except InventoryError as error:
            self.rejected(error)
            return
        self.tally.returns += 1
        if key is not None and rng.random() < 0.5:
            self.replay(call, result.return_id, lambda again: again.return_id)


def _run_tag() -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    value = uuid.uuid4().int
    return "D" + "".join(alphabet[(value >> (5 * i)) % len(alphabet)] for i in range(5))


def _setup(inv: Inventory, tag: str, orders: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    scale = max(orders / 400, 0.05)
    skus = {item.code: f"{tag}-{item.code}" for item in CATALOGUE}
    inv.create_location(*SECOND_LOCATION)
    stocked: dict[str, list[str]] = {"main": [], SECOND_LOCATION[0]: []}
    for item in CATALOGUE:
        sku = skus[item.code]
        inv.create_item(sku, item.name, unit_of_measure=item.uom, unit_cost=Decimal(item.unit_cost))
        for location, units in (("main", item.main), (SECOND_LOCATION[0], item.store)):
            if not item.scarce and units:
                units = max(2, math.ceil(units * scale))
            if units:
                inv.receive_stock(sku, units, location=location, reference=f"{tag}-PO-{location}",
                                  unit_cost=Decimal(item.unit_cost), idempotency_key=f"{tag}:po:{sku}:{location}")
                stocked[location].append(item.code)
        if item.recalled:
            inv.set_item_status(sku, "on_hold")
    return skus, stocked


def _sweeper(dsn: str, stop: threading.Event, expired: list[int], errors: list[BaseException]) -> None:
    try:
        with Inventory.connect(dsn) as inv:
            while True:
                with contextlib.suppress(Retryable):
                    expired[0] += inv.expire_reservations(500)
                if stop.wait(SWEEP_INTERVAL):
                    return
    except BaseException as error:  # reported by the main thread
        errors.append(error)


def _ledger_figures(inv: Inventory, prefix: str, report: DemoReport) -> None:
    """Units per movement type, oversold levels and over-shipping, from the database alone."""
    connection = inv.connection
    rows = connection.execute(
        "select movement_type, coalesce(sum(on_hand_delta), 0), coalesce(sum(reserved_delta), 0)"
        "  from inventory_api.stock_movements where starts_with(sku, %s) group by movement_type",
        (prefix,)).fetchall()
    moves = {kind: (on_hand, reserved) for kind, on_hand, reserved in rows}
    zero = (Decimal(0), Decimal(0))
    report.units_received = int(moves.get("RECEIVE", zero)[0])
    report.units_held = int(moves.get("RESERVE", zero)[1])
    report.units_shipped = int(-moves.get("SHIP", zero)[0])
    report.units_released = int(-moves.get("RELEASE", zero)[1])
    report.units_expired = int(-moves.get("EXPIRE", zero)[1])
    report.units_restocked = int(moves.get("RETURN", zero)[0])
    report.units_returned = int(connection.execute(
        "select coalesce(sum(quantity), 0) from inventory_api.returns where starts_with(sku, %s)",
        (prefix,)).fetchone()[0])
    levels, units = connection.execute(
        "select count(*), coalesce(sum(greatest(reserved - on_hand, 0) + greatest(-on_hand, 0)), 0)"
        "  from inventory_api.stock_levels"
        " where starts_with(sku, %s) and (reserved > on_hand or on_hand < 0)", (prefix,)).fetchone()
    report.oversold_levels, report.oversold_units = int(levels), int(units)
    # At no point may a level have shipped more than it had received and taken back.
    report.overshipped_units = int(connection.execute(
        """
        with running as (
          select sku, location,
                 sum(case when movement_type = 'SHIP' then -on_hand_delta else 0 end) over w as shipped,
                 sum(case when movement_type in ('RECEIVE', 'RETURN') then on_hand_delta else 0 end) over w
                   as came_in
            from inventory_api.stock_movements
           where starts_with(sku, %s)
          window w as (partition by sku, location order by movement_id)
        )
        select coalesce(sum(worst), 0) from (
          select greatest(max(shipped - came_in), 0) as worst from running group by sku, location) per_level
        """, (prefix,)).fetchone()[0])


def prepare_database(dsn: str, name: str = DEMO_DATABASE) -> str:
    """Drop and create database `name` on the server of `dsn` for the demo; return its DSN. The name
    must start with pyinv_demo and must not be the database `dsn` names (never the user's data)."""
    if not name.startswith(DEMO_DATABASE):
        raise ValueError(f"the demo database's name must start with {DEMO_DATABASE}, not {name!r}")
    with psycopg.connect(dsn, autocommit=True) as connection:
        current = connection.execute("select current_database()").fetchone()
        if current is not None and current[0] == name:
            raise ValueError(f"{name} is the database you named; the demo needs one of its own")
        connection.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return make_conninfo(dsn, dbname=name)


def run_demo(dsn: str, workers: int = 8, orders: int = 400, seed: int | None = None,
             progress: bool = True) -> DemoReport:
    """Run the simulation on `dsn` (migrating it first) and return its figures."""
    started = time.perf_counter()
    applied = migrate.apply(dsn)
    tag = _run_tag()
    report = DemoReport(run_id=tag, items=len(CATALOGUE), locations=["main", SECOND_LOCATION[0]],
                        workers=workers, orders=orders, migrations_applied=applied)
    with Inventory.connect(dsn) as inv:
        skus, stocked = _setup(inv, tag, orders)
    report.setup_seconds = time.perf_counter() - started

    numbers = iter(range(1, orders + 1))
    lock = threading.Lock()
    done = [0]
    errors: list[BaseException] = []
    tallies: list[_Tally] = []
    stop_sweeper = threading.Event()
    swept = [0]

    def next_order() -> int | None:
        with lock:
            return next(numbers, None)

    def work() -> None:
        try:
            with Inventory.connect(dsn) as inv:
                worker = _Worker(inv, skus, stocked, tag)
                tallies.append(worker.tally)
                while not errors and (number := next_order()) is not None:
                    rng = random.Random(f"{seed}:{number}") if seed is not None else random.Random()
                    worker.order(number, rng)
                    with lock:
                        done[0] += 1
        except BaseException as error:
            errors.append(error)

    simulation_started = time.perf_counter()
    sweeper = threading.Thread(target=_sweeper, args=(dsn, stop_sweeper, swept, errors), daemon=True)
    sweeper.start()
    threads = [threading.Thread(target=work, name=f"pyinv-demo-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        with contextlib.ExitStack() as stack:
            update = stack.enter_context(_progress(orders)) if progress and sys.stderr.isatty() else None
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.05)
                if update is not None:
                    update(done[0])
            if update is not None:
                update(done[0])
    finally:
        for thread in threads:
            thread.join()
    report.simulation_seconds = time.perf_counter() - simulation_started

    total = _Tally()
    for tally in tallies:
        total.merge(tally)

    # Late customers: some abandoned carts come back after their hold lapsed, then the sweeper
    # finishes. Holds of this run were made at most SHORT_HOLD ago.
    time.sleep(SHORT_HOLD.total_seconds() + 0.1)
    with Inventory.connect(dsn) as inv:
        late = random.Random(f"{seed}:late") if seed is not None else random.Random()
        for ref in sorted(total.abandoned_orders):
            if late.random() < 0.4:
                try:
                    inv.fulfill_order(ref)
                except InventoryError as error:
                    total.rejections[error.code] += 1
        stop_sweeper.set()
        sweeper.join()
        if errors:
            raise errors[0]
        while (expired := inv.expire_reservations(1000)) > 0:
            swept[0] += expired
            if expired < 1000:
                break

        report.orders_reserved = total.reserved
        report.orders_rejected = total.rejected
        report.orders_shipped = total.shipped
        report.orders_partially_shipped = total.partial
        report.orders_cancelled = total.cancelled
        report.orders_abandoned = total.abandoned
        report.returns = total.returns
        report.idempotent_replays = total.replays
        report.replay_mismatches = total.replay_mismatches
        report.replays_refused = dict(total.replays_refused.most_common())
        report.retries = total.retries
        report.holds_expired_by_sweeper = swept[0]
        report.rejections = dict(total.rejections.most_common())
        report.violations = [violation.to_dict() for violation in inv.verify_inventory()]
        _ledger_figures(inv, f"{tag}-", report)
        report.ledger_agrees = (report.units_held == total.units_held
                                and report.units_shipped == total.units_shipped)
    report.elapsed_seconds = time.perf_counter() - started
    report.throughput = orders / report.simulation_seconds if report.simulation_seconds else 0.0
    return report


@contextlib.contextmanager
def _progress(orders: int) -> Iterator[Callable[[int], None]]:
    """A bar of the orders placed so far, on stderr (rich)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("orders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as display:
        task = display.add_task("orders", total=orders)
        yield lambda completed: display.update(task, completed=completed)


def format_report(report: DemoReport) -> str:
    """The human summary printed by `pyinv demo`."""
    rejections = ", ".join(f"{code} {count}" for code, count in report.rejections.items()) or "none"
    if report.books_balance:
        verdict = "books balance"
    else:
        verdict = f"{len(report.violations)} VIOLATIONS: " + "; ".join(
            f"{v['invariant']} {v.get('sku') or ''} {v.get('location') or ''}".strip() for v in report.violations[:5])
    lines = [
        f"pyinv demo {report.run_id}: {report.items} items at {len(report.locations)} locations "
        f"({', '.join(report.locations)}), {report.workers} workers, {report.orders} orders"
        + (f"; migrations applied: {', '.join(report.migrations_applied)}" if report.migrations_applied else ""),
        "",
        f"orders       {report.orders} placed, {report.orders_reserved} reserved, {report.orders_rejected} rejected",
        f"             {report.orders_shipped} shipped ({report.orders_partially_shipped} partially), "
        f"{report.orders_cancelled} cancelled, {report.orders_abandoned} abandoned (holds left to expire), "
        f"{report.returns} returns",
        f"units        {report.units_received} received, {report.units_held} held, {report.units_shipped} shipped, "
        f"{report.units_released} released, {report.units_expired} expired, "
        f"{report.units_returned} returned ({report.units_restocked} restocked)",
        f"rejections   {rejections} (every refused call: orders, late checkouts, over-returns)",
        f"idempotency  {report.idempotent_replays} retries with the same key replayed the original result"
        + (f", {report.replay_mismatches} DID NOT" if report.replay_mismatches else "")
        + ("; refused instead of replayed: " + ", ".join(
            f"{code} {count}" for code, count in report.replays_refused.items()) if report.replays_refused else ""),
        f"sweeper      {report.holds_expired_by_sweeper} overdue holds expired",
        f"throughput   {report.throughput:.0f} orders/s ({report.simulation_seconds:.2f} s simulation, "
        f"{report.elapsed_seconds:.2f} s in all)",
        f"verify       {verdict}",
        f"oversold     {report.oversold_units} units ({report.oversold_levels} levels with reserved > on_hand "
        f"or on_hand < 0; {report.overshipped_units} units ever shipped beyond received + returned)",
    ]
    if not report.ledger_agrees:
        lines.append("ledger       DISAGREES with what the clients were told")
    if report.retries:
        lines.append(f"retries      {report.retries} serialization failures or deadlocks retried")
    return "\n".join(lines)
