"""A Jepsen-style history of pyinv calls, and the checker that holds the database to it.

Every call carries a unique idempotency key and is logged with the outcome of each attempt:

- acknowledged: it returned a result;
- refused: a business error (InsufficientStock, NoReservation, QuantityMismatch): nothing changed;
- failed: the server answered with a retryable error (57014, 55P03, 40001, 40P01): nothing changed
  (README: "A call that raises changes nothing");
- unknown: the connection died (terminated backend, crashed server): the effect is unknown.

`check_history` compares the log with what the database holds and returns every discrepancy (an
empty list: the history is explained), so a test asserts `== []` and a self-test can show that each
kind of discrepancy is caught.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

import pyinv
from pyinv import Inventory

ACK, REFUSED, FAILED, UNKNOWN, ANOMALY = "acknowledged", "refused", "failed", "unknown", "anomaly"
REFUSALS = (pyinv.InsufficientStock, pyinv.NoReservation, pyinv.QuantityMismatch)
EFFECT_TYPES = {"reserve_stock": "RESERVE", "reserve_order": "RESERVE", "fulfill_order": "SHIP",
                "cancel_reservation": "RELEASE", "receive_stock": "RECEIVE"}


@dataclass
class Attempt:
    outcome: str
    detail: str = ""
    result: Any = None
    at: float = field(default_factory=time.monotonic)  # when the attempt ended


@dataclass
class Op:
    """One logical call (one idempotency key) and its attempts: the first and every retry."""

    key: str
    name: str
    args: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        outcomes = [attempt.outcome for attempt in self.attempts]
        if ACK in outcomes:
            return ACK
        if UNKNOWN not in outcomes and ANOMALY not in outcomes:
            return REFUSED if REFUSED in outcomes else FAILED
        # Every refusal comes after the call claimed its key (which waits for an earlier attempt still
        # in the database), so an attempt refused after an unknown one proves that one left nothing.
        return REFUSED if outcomes[-1] == REFUSED else UNKNOWN

    def results(self) -> list[Any]:
        return [attempt.result for attempt in self.attempts if attempt.outcome == ACK]


def classify(error: BaseException) -> str:
    if isinstance(error, REFUSALS):
        return REFUSED
    if isinstance(error, pyinv.Retryable):
        return FAILED
    cause = error.__cause__ if isinstance(error, pyinv.InventoryError) else error
    if isinstance(cause, psycopg.OperationalError):
        return UNKNOWN
    return ANOMALY


def describe(error: BaseException) -> str:
    sqlstate = getattr(error, "actual_sqlstate", None) or getattr(error, "sqlstate", None) or "-"
    return f"{type(error).__name__}:{sqlstate}:{str(error).splitlines()[0][:120] if str(error) else ''}"


class History:
    """The log of every call of a run (thread-safe)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._count = 0

    def new(self, name: str, **args: Any) -> Op:
        with self._lock:
            self._count += 1
            op = Op(f"{self.prefix}-{self._count}", name, args)
            self.ops.append(op)
        return op

    def attempt(self, inv: Inventory, op: Op) -> str:
        """One attempt of `op` on `inv`, logged; returns its outcome."""
        try:
            result = getattr(inv, op.name)(**op.args, idempotency_key=op.key)
        except Exception as error:
            outcome = classify(error)
            op.attempts.append(Attempt(outcome, describe(error)))
            return outcome
        op.attempts.append(Attempt(ACK, result=result))
        return ACK

    def counts(self) -> dict[str, Any]:
        attempts = [attempt for op in self.ops for attempt in op.attempts]
        return {
            "calls": len(self.ops),
            "attempts": len(attempts),
            "retries": len(attempts) - len([op for op in self.ops if op.attempts]),
            "outcomes": dict(Counter(op.outcome for op in self.ops if op.attempts)),
            "attempt_outcomes": dict(Counter(attempt.outcome for attempt in attempts)),
            "errors": dict(Counter(attempt.detail.split(":")[1] for attempt in attempts if attempt.detail)),
            "by_function": dict(Counter(op.name for op in self.ops)),
        }


@dataclass(frozen=True)
class Baseline:
    """What the database held before the run: the history must explain everything after it."""

    movement_id: int
    reservation_id: int
    on_hand: dict[tuple[str, str], Decimal]

    @classmethod
    def take(cls, db: psycopg.Connection[Any]) -> Baseline:
        active = db.execute("select count(*) from inventory.reservations where status = 'ACTIVE'").fetchone()[0]
        assert active == 0, "the history checker assumes the run starts without active holds"
        levels = db.execute("""select i.sku, l.code, s.on_hand from inventory.stock_levels s
                               join inventory.items i using (item_id) join inventory.locations l using (location_id)
                            """).fetchall()
        return cls(
            movement_id=db.execute("select coalesce(max(movement_id), 0) from inventory.ledger").fetchone()[0],
            reservation_id=db.execute("select coalesce(max(reservation_id), 0) from inventory.reservations"
                                      ).fetchone()[0],
            on_hand={(sku, location): on_hand for sku, location, on_hand in levels},
        )


def _location(args: dict[str, Any]) -> str:
    return args.get("location") or "main"


def _effect_problems(op: Op, rows: list[dict[str, Any]], key_row: dict[str, Any],
                     holds: dict[int, dict[str, Any]]) -> list[str]:
    """What is wrong with the effect recorded under op's key (given that there is one)."""
    problems: list[str] = []
    args, name = op.args, op.name
    if key_row["operation"] != name:
        problems.append(f"key used by {key_row['operation']}")
    if len({row["transaction_id"] for row in rows}) > 1:
        problems.append(f"more than one effect: movements from {len({r['transaction_id'] for r in rows})} transactions")
    response = key_row["response"]
    if response is None:  # stored with the effect, in the same transaction: never missing
        return [f"{op.key} {name}({args}) [{op.outcome}]: key stored without a response"] + [
            f"{op.key} {name}({args}) [{op.outcome}]: {problem}" for problem in problems]
    results = op.results()
    if name in ("reserve_stock", "reserve_order"):
        if name == "reserve_stock":
            expected = {(args["sku"], _location(args)): Decimal(args["quantity"])}
        else:
            expected = defaultdict(Decimal)
            for line in args["lines"]:
                expected[(line["sku"], _location(line))] += Decimal(line["quantity"])
        got = {(row["sku"], row["location"]): row["reserved_delta"] for row in rows}
        if len(got) != len(rows) or got != dict(expected):
            problems.append(f"holds {got} instead of {dict(expected)} ({len(rows)} movements)")
        for row in rows:
            hold = holds.get(row["reservation_id"] or -1)
            if (row["movement_type"], row["on_hand_delta"], row["reference"]) != ("RESERVE", 0, args["order_ref"]):
                problems.append(f"movement {row['movement_id']} is not a RESERVE for {args['order_ref']}")
            if hold is None or (hold["order_ref"], hold["sku"], hold["location"], hold["quantity"]) != (
                    args["order_ref"], row["sku"], row["location"], row["reserved_delta"]):
                problems.append(f"movement {row['movement_id']} names hold {row['reservation_id']}, which is {hold}")
        ids = sorted(row["reservation_id"] for row in rows)
        stored = response if isinstance(response, list) else [response]
        if sorted(item["reservation_id"] for item in stored) != ids:
            problems.append(f"stored response names holds {stored}, the ledger {ids}")
        for result in results:
            returned = result if isinstance(result, list) else [result]
            if sorted(hold.reservation_id for hold in returned) != ids:
                problems.append(f"acknowledged holds {[hold.reservation_id for hold in returned]}, the ledger {ids}")
    elif name in ("fulfill_order", "cancel_reservation"):
        kind = EFFECT_TYPES[name]
        for row in rows:
            hold = holds.get(row["reservation_id"] or -1)
            if (row["movement_type"] != kind or row["reference"] != args["order_ref"] or row["reserved_delta"] >= 0
                    or row["on_hand_delta"] != (row["reserved_delta"] if kind == "SHIP" else 0)):
                problems.append(f"movement {row['movement_id']} is not a {kind} of order {args['order_ref']}: {row}")
            if hold is None or hold["order_ref"] != args["order_ref"]:
                problems.append(f"movement {row['movement_id']} names hold {row['reservation_id']}, which is {hold}")
            if args.get("sku") is not None and row["sku"] != args["sku"]:
                problems.append(f"movement {row['movement_id']} moves {row['sku']}, the call named {args['sku']}")
        moved = sorted((row["reservation_id"], kind, -row["reserved_delta"]) for row in rows)
        if args.get("quantity") is not None and sum(quantity for *_, quantity in moved) != Decimal(args["quantity"]):
            problems.append(f"shipped {moved} for a call of quantity {args['quantity']}")
        stored = sorted((item["reservation_id"], item["movement_type"], Decimal(str(item["quantity"])))
                        for item in response or [])
        if stored != moved:
            problems.append(f"stored response says {stored}, the ledger {moved}")
        for result in results:
            if sorted((change.reservation_id, change.movement_type, change.quantity) for change in result) != moved:
                problems.append(f"acknowledged {result}, the ledger {moved}")
    elif name == "receive_stock":
        shape = [(row["movement_type"], row["sku"], row["location"], row["on_hand_delta"], row["reserved_delta"])
                 for row in rows]
        if shape != [("RECEIVE", args["sku"], _location(args), Decimal(args["quantity"]), 0)]:
            problems.append(f"receipt recorded as {shape}")
        elif Decimal(str(response["on_hand"])) != rows[0]["on_hand_after"]:
            problems.append(f"stored response on_hand {response['on_hand']}, the ledger {rows[0]['on_hand_after']}")
        problems += [f"acknowledged on_hand {result.on_hand}, the ledger {rows[0]['on_hand_after']}"
                     for result in results if rows and result.on_hand != rows[0]["on_hand_after"]]
    elif name == "transfer_stock":
        quantity = Decimal(args["quantity"])
        shape = sorted((row["movement_type"], row["sku"], row["location"], row["on_hand_delta"], row["reserved_delta"])
                       for row in rows)
        if shape != [("TRANSFER_IN", args["sku"], args["to_location"], quantity, 0),
                     ("TRANSFER_OUT", args["sku"], args["from_location"], -quantity, 0)]:
            problems.append(f"transfer recorded as {shape}")
        else:
            out, into = sorted(rows, key=lambda row: row["movement_type"] == "TRANSFER_IN")
            if into["related_movement_id"] != out["movement_id"]:
                problems.append(f"TRANSFER_IN {into['movement_id']} is not linked to {out['movement_id']}")
            ids = (out["movement_id"], into["movement_id"])
            if (response["out_movement_id"], response["in_movement_id"]) != ids:
                problems.append(f"stored response names movements {response}, the ledger {ids}")
            problems += [f"acknowledged movements {result.out_movement_id, result.in_movement_id}, the ledger {ids}"
                         for result in results if (result.out_movement_id, result.in_movement_id) != ids]
    else:
        problems.append(f"the checker does not know {name}")
    return [f"{op.key} {name}({args}) [{op.outcome}]: {problem}" for problem in problems]


def check_history(db: psycopg.Connection[Any], history: History, baseline: Baseline) -> list[str]:
    """Every way in which the database disagrees with the history (none: it is explained).

    (a) every acknowledged call has exactly its effect, and the result it returned is that effect;
    (b) every refused or failed call left nothing: no key, no movement;
    (c) every key has at most one effect, whole: its key row and all its movements, from one transaction,
        shaped as its arguments say (so an unknown call took effect completely or not at all);
    (d) nothing else moved; the holds, the stock levels and the ledger agree with each other and with the
        history's arithmetic; no level is oversold; verify_inventory() finds nothing.
    """
    problems: list[str] = []
    with db.cursor(row_factory=dict_row) as cursor:
        ledger = cursor.execute(
            """select g.movement_id, g.movement_type::text as movement_type, i.sku, l.code as location,
                      g.on_hand_delta, g.reserved_delta, g.on_hand_after, g.reference, g.idempotency_key,
                      g.reservation_id, g.related_movement_id, g.transaction_id::text as transaction_id
                 from inventory.ledger g join inventory.items i using (item_id)
                 join inventory.locations l using (location_id)
                where g.movement_id > %s
                  -- hot mode's moves between a level and its buckets change no total and answer no call
                  and g.movement_type <> 'REBALANCE'
                order by g.movement_id""", (baseline.movement_id,)).fetchall()
        keys = {row["idempotency_key"]: row for row in cursor.execute(
            "select idempotency_key, operation, response from inventory.idempotency_keys").fetchall()}
        holds = {row["reservation_id"]: row for row in cursor.execute(
            """select r.reservation_id, r.order_ref, i.sku, l.code as location, r.quantity, r.quantity_fulfilled,
                      r.status
                 from inventory.reservations r join inventory.items i using (item_id)
                 join inventory.locations l using (location_id)
                where r.reservation_id > %s""", (baseline.reservation_id,)).fetchall()}
        levels = {(row["sku"], row["location"]): row for row in cursor.execute(
            # A hot level's row counts the free units parked in its buckets as reserved; its ledger says
            # so too (a bucket's movements carry its parked units as on_hand_*, its held ones as
            # reserved_*): the truth is the row, or the level's own movements, less the parked free units.
            """select i.sku, l.code as location, s.on_hand,
                      s.reserved - (select coalesce(sum(b.free), 0) from inventory.hot_buckets b
                                     where (b.item_id, b.location_id) = (s.item_id, s.location_id)) as reserved,
                      (select coalesce(sum(g.on_hand_delta), 0) from inventory.ledger g
                        where (g.item_id, g.location_id) = (s.item_id, s.location_id) and g.bucket is null
                      ) as ledger_on_hand,
                      (select coalesce(sum(case when g.bucket is null then g.reserved_delta
                                                else g.reserved_delta - g.on_hand_delta end), 0)
                         from inventory.ledger g
                        where (g.item_id, g.location_id) = (s.item_id, s.location_id)) as ledger_reserved
                 from inventory.stock_levels s join inventory.items i using (item_id)
                 join inventory.locations l using (location_id)""").fetchall()}
        violations = cursor.execute("select * from inventory_api.verify_inventory()").fetchall()

    by_key: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in ledger:
        by_key[row["idempotency_key"]].append(row)
    effective: set[str] = set()
    for op in history.ops:
        if not op.attempts:
            continue
        rows = by_key.pop(op.key, [])
        key_row = keys.pop(op.key, None)
        label = f"{op.key} {op.name}({op.args}) [{op.outcome}: {[a.outcome for a in op.attempts]}]"
        if ANOMALY in (attempt.outcome for attempt in op.attempts):
            problems.append(f"{label}: unexpected errors {[a.detail for a in op.attempts if a.outcome == ANOMALY]}")
        if bool(rows) != (key_row is not None):
            problems.append(f"{label}: partial effect: key row {key_row is not None}, {len(rows)} movements")
        if key_row is None and not rows:
            if op.outcome == ACK:
                problems.append(f"{label}: acknowledged, but nothing is recorded (lost)")
            continue
        effective.add(op.key)
        if op.outcome in (REFUSED, FAILED):
            problems.append(f"{label}: left an effect: {len(rows)} movements, key row {key_row is not None}")
        if key_row is not None:
            problems += _effect_problems(op, rows, key_row, holds)
    problems += [f"movement {row['movement_id']} ({row['movement_type']}, key {key}) explained by no call"
                 for key, rows in by_key.items() for row in rows]
    problems += [f"idempotency key {key} ({row['operation']}) explained by no call" for key, row in keys.items()]

    # Holds against the ledger: every hold made by a RESERVE, and its state equals its movements.
    moved: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for row in ledger:
        if row["reservation_id"] is not None:
            moved[(row["reservation_id"], row["movement_type"])] += abs(row["reserved_delta"])
    for hold_id, hold in holds.items():
        reserved, shipped, released = (moved[(hold_id, kind)] for kind in ("RESERVE", "SHIP", "RELEASE"))
        open_quantity = hold["quantity"] - hold["quantity_fulfilled"]
        if (reserved != hold["quantity"] or shipped != hold["quantity_fulfilled"]
                or released != (open_quantity if hold["status"] == "CANCELLED" else 0)
                or (hold["status"] == "FULFILLED") != (open_quantity == 0)
                or hold["status"] not in ("ACTIVE", "FULFILLED", "CANCELLED")):
            problems.append(f"hold {hold_id} {hold} disagrees with its movements: reserved {reserved},"
                            f" shipped {shipped}, released {released}")

    # The history's arithmetic: on hand = initial + receipts + transfers in - out - shipped; reserved =
    # the open quantity of active holds. Receipts and transfers count when their key took effect.
    expected_on_hand: dict[tuple[str, str], Decimal] = defaultdict(Decimal, baseline.on_hand)
    expected_reserved: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for op in history.ops:
        if op.key not in effective:
            continue
        if op.name == "receive_stock":
            expected_on_hand[(op.args["sku"], _location(op.args))] += Decimal(op.args["quantity"])
        elif op.name == "transfer_stock":
            expected_on_hand[(op.args["sku"], op.args["from_location"])] -= Decimal(op.args["quantity"])
            expected_on_hand[(op.args["sku"], op.args["to_location"])] += Decimal(op.args["quantity"])
    for hold in holds.values():
        expected_on_hand[(hold["sku"], hold["location"])] -= hold["quantity_fulfilled"]
        if hold["status"] == "ACTIVE":
            expected_reserved[(hold["sku"], hold["location"])] += hold["quantity"] - hold["quantity_fulfilled"]
    for level in sorted(set(levels) | set(expected_on_hand) | set(expected_reserved)):
        row = levels.get(level) or {"on_hand": 0, "reserved": 0, "ledger_on_hand": 0, "ledger_reserved": 0}
        if (row["on_hand"], row["reserved"]) != (expected_on_hand[level], expected_reserved[level]):
            problems.append(f"level {level} holds on_hand {row['on_hand']}, reserved {row['reserved']}; the history"
                            f" says {expected_on_hand[level]}, {expected_reserved[level]}")
        if (row["on_hand"], row["reserved"]) != (row["ledger_on_hand"], row["ledger_reserved"]):
            problems.append(f"level {level} is not the sum of its ledger deltas: {row}")
        if row["reserved"] > row["on_hand"] or row["on_hand"] < 0:
            problems.append(f"level {level} is oversold: {row}")
    problems += [f"verify_inventory: {violation}" for violation in violations]
    return problems


def effective_keys(db: psycopg.Connection[Any]) -> set[str]:
    return {key for (key,) in db.execute("select idempotency_key from inventory.idempotency_keys").fetchall()}
