"""Coalescer and AsyncCoalescer: concurrent reserve_stock callers of one process sent as one reserve_many.

A flash sale puts every buyer on one stock row, and PostgreSQL serialises them on its lock and on
the commit flush. An application server that holds one pool can gather the reserve_stock calls its
threads (or tasks) make at the same moment and send them as ONE reserve_many call: one lock, one
aggregated UPDATE and one commit for the whole batch. Each caller still gets its own Reservation, or
raises exactly the exception reserve_stock would have raised for its request alone (reserve_many
gives each request the outcome reserve_stock would have given, in array order; errors.error_from_outcome
builds the same exception errors.translate builds for the same error raised by the database).

How a batch forms (leader/follower, measured in the issue 14 report):

* The first caller to arrive is the head of the queue. When no batch is in flight it sends at once
  (a lone caller pays no wait: `flush_when_idle=True`, the default) unless the last batch had more
  requests than are queued now: then it waits, at most `max_wait_ms` from its arrival, for as many
  as the last batch had (under load, the callers the last batch served come back together and go in
  one batch, instead of a small batch followed by a large one; measured with 32 threads: mean batch
  26-30 instead of 17, 1.85-2.2k instead of 1.15-1.35k held/s). While a batch is in flight, the
  callers that arrive queue up; when it returns, the head sends what is queued (up to `max_batch`).
  A full batch goes at once. So the added wait is at most max_wait_ms, paid only when the previous
  batch suggests company is coming (a lone caller after a burst waits once).
* With `flush_when_idle=False` the head always waits up to max_wait_ms unless the batch is full.
  Over a pool, `max_in_flight=2` lets a second batch go while one is in flight (after max_wait_ms, or
  full); on 2 cores it gave no consistent gain (batches halve, commit flushes double), so the default
  is 1.
* The caller whose request is the head sends the batch from its own thread and hands the results to
  the others; there is no background thread (nothing to start or stop).
* A batch of one request is sent as reserve_stock itself: reserve_many of one request costs about
  twice reserve_stock (measured: 2.1 ms against 1.1 ms per call on one connection), and the caller
  then gets reserve_stock's own result or exception (and its retries), with nothing to translate.

What goes straight to Inventory.reserve_stock instead (the caller gets exactly what reserve_stock
gives): calls with arguments reserve_many cannot express (reference_type, notes, min_shelf_life or any
other keyword), arguments of other types than reserve_many takes as they are (a str quantity or
expires_in, a non-finite quantity, a non-str SKU ...), and requests for lot-tracked items: reserve_many
refuses those per request (INVALID_ARGUMENT on requests[i].sku, problem "lot-tracked item: ..."), and
the coalescer then sends that request to reserve_stock alone, after the batch.

Errors of the whole batch (the connection broke, PERMISSION_DENIED for a caller with no operator role,
a serialization failure the retry policy gave up on, a statement timeout) reach every caller of the
batch, each as its own copy of the exception (same class and attributes, `__cause__` the database's
error). The Inventory's RetryPolicy retries reserve_many only when every request carries an
idempotency key. When a batch mixing keyed and unkeyed requests fails with an error the policy would
have retried for a keyed reserve_stock (a connection failure; a serialization failure, deadlock or
lock timeout), the keyed requests are sent again once, as a batch of their own (which the policy then
retries), and the unkeyed callers get the error: ConnectionFailed when the connection broke, meaning
that whether their hold was made is unknown, exactly as reserve_stock without a key.

One acting user: a coalescer sends every request as the login (and session settings) of its
Inventory. Callers acting as different users (other logins, other JWT claims, other
request.jwt.claims settings) must not share one: each would be authorised as the Inventory's user.

Connections: over one connection (Inventory(connection) or Inventory.connect), the coalescer must be
the only user of that Inventory; it sends one call at a time (batches, direct calls and re-sends take
turns). Over a pool (Inventory.from_pool), direct calls run concurrently and up to `max_in_flight`
batches may be in flight (default 1, see above).
"""

from __future__ import annotations

import asyncio
import copy
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from .client import AsyncInventory, Inventory, Number
from .errors import (
    AUTOMATIC_RETRY_SQLSTATES,
    CoalescerClosed,
    ConfigurationError,
    ConnectionFailed,
    DatabaseError,
    Retryable,
    error_from_outcome,
)
from .models import Reservation, ReserveManyResult, reservation_from_json

MAX_BATCH = 10000
"""The most requests reserve_many takes in one call."""

_OPTIONAL = ("reference_type", "notes", "min_shelf_life")
"""reserve_stock arguments reserve_many does not take: a call giving one (not None) goes direct."""

Request = dict[str, Any]
S = TypeVar("S")


@dataclass
class CoalescerStats:
    """What a coalescer did so far (read it at any time; updated under the coalescer's lock)."""

    batches: int = 0
    """Batches sent: a reserve_many call, or for a batch of one request, a reserve_stock call."""
    requests: int = 0
    """Requests sent in them (a keyed request re-sent after a failed batch counts twice)."""
    largest_batch: int = 0
    failed_batches: int = 0
    """reserve_many calls that raised (every caller of the batch got the exception)."""
    direct: int = 0
    """Calls sent straight to reserve_stock (arguments reserve_many cannot express)."""
    resent: int = 0
    """Requests for lot-tracked items, re-sent to reserve_stock alone after reserve_many refused them."""
    batch_sizes: dict[int, int] = field(default_factory=dict)
    """Batch size -> how many batches had it."""

    def record(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        self.largest_batch = max(self.largest_batch, size)
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1


def as_request(sku: object, quantity: object, order_ref: object, location: object, expires_in: object,
               idempotency_key: object, other: dict[str, Any]) -> Request | None:
    """The reserve_many request of a reserve_stock call, or None when reserve_many would not treat the
    call exactly as reserve_stock does (then the call goes to reserve_stock itself)."""
    if any(name not in _OPTIONAL or value is not None for name, value in other.items()):
        return None
    if not (isinstance(sku, str) and isinstance(order_ref, str) and isinstance(location, str)):
        return None
    if idempotency_key is not None and not isinstance(idempotency_key, str):
        return None
    if expires_in is not None and not isinstance(expires_in, timedelta):
        return None
    if isinstance(quantity, bool) or not isinstance(quantity, int | float | Decimal):
        return None
    exact = quantity if isinstance(quantity, Decimal) else Decimal(str(quantity))
    if not exact.is_finite():
        return None
    request: Request = {"order_ref": order_ref, "sku": sku, "quantity": exact, "location": location}
    if expires_in is not None:
        request["expires_in"] = expires_in
    if idempotency_key is not None:
        request["idempotency_key"] = idempotency_key
    return request


def _lot_tracked(result: ReserveManyResult, index: int) -> bool:
    """reserve_many's per-request refusal of a lot-tracked item (sql/57_reserve_many.sql)."""
    detail = result.detail or {}
    return (result.error_code == "INVALID_ARGUMENT" and detail.get("argument") == f"requests[{index}].sku"
            and str(detail.get("problem", "")).startswith("lot-tracked"))


class _Resend:
    """Outcome of a request reserve_many refused because reserve_stock must take it alone."""


RESEND = _Resend()
Outcome = Reservation | BaseException | _Resend


def outcomes(batch_size: int, results: list[ReserveManyResult]) -> list[Outcome]:
    """Each request's outcome: its Reservation, the exception reserve_stock would raise, or RESEND."""
    if len(results) != batch_size or [r.ordinal for r in results] != list(range(1, batch_size + 1)):
        error = DatabaseError(f"reserve_many answered {len(results)} results for {batch_size} requests")
        return [error] * batch_size
    shaped: list[Outcome] = []
    for index, result in enumerate(results):
        try:
            if result.ok and result.reservation is not None:
                shaped.append(reservation_from_json(result.reservation))
            elif _lot_tracked(result, index):
                shaped.append(RESEND)
            else:
                shaped.append(error_from_outcome(result.sqlstate, result.error_code, result.message, result.detail))
        except Exception as error:  # a result this client cannot read is that caller's error, not the batch's
            shaped.append(error)
    return shaped


def for_caller(error: BaseException) -> BaseException:
    """A caller's own copy of a batch's exception (one instance must not be raised in many threads):
    same class and attributes, and the same cause."""
    try:
        clone = copy.copy(error)
    except Exception:  # an exception that cannot be copied is shared
        return error
    clone.__cause__ = error.__cause__ if error.__cause__ is not None else error
    clone.__traceback__ = None
    return clone


def keyed_again(error: BaseException, requests: list[Request], retry_writes: bool | None) -> list[int]:
    """Which requests of a failed batch to send again: the keyed ones, when the batch mixed keyed and
    unkeyed requests (so the client did not retry it) and the error is one the retry policy retries for
    a keyed call. retry_writes None: the client does not retry at all."""
    if retry_writes is None:
        return []
    keyed = [n for n, request in enumerate(requests) if request.get("idempotency_key")]
    if not keyed or len(keyed) == len(requests):
        return []
    if isinstance(error, ConnectionFailed) and error.retryable:
        return keyed
    if isinstance(error, Retryable) and error.actual_sqlstate in AUTOMATIC_RETRY_SQLSTATES and not retry_writes:
        return keyed
    return []


class _Base(Generic[S]):
    def __init__(self, max_batch: int, max_wait_ms: float, max_in_flight: int, flush_when_idle: bool,
                 over_pool: bool) -> None:
        if not isinstance(max_batch, int) or not 1 <= max_batch <= MAX_BATCH:
            raise ConfigurationError(f"max_batch must be an integer from 1 to {MAX_BATCH}, not {max_batch!r}")
        if not (isinstance(max_wait_ms, int | float) and 0 <= max_wait_ms < math.inf):
            raise ConfigurationError(f"max_wait_ms must be a number of milliseconds >= 0, not {max_wait_ms!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be an integer >= 1, not {max_in_flight!r}")
        if max_in_flight > 1 and not over_pool:
            raise ConfigurationError("max_in_flight > 1 needs an Inventory over a pool (one connection runs one "
                                     "call at a time)")
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_in_flight = max_in_flight
        self.flush_when_idle = flush_when_idle
        self.stats = CoalescerStats()
        self._pending: deque[S] = deque()
        self._in_flight = 0
        self._last_batch = 1
        self._active = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise CoalescerClosed("this coalescer is closed and takes no more calls")

    def _due_in(self, head_arrived: float) -> float:
        """Seconds before the head of the queue should send (0: now, inf: when a batch returns)."""
        if self._in_flight >= self.max_in_flight:
            return math.inf
        if self._closed or len(self._pending) >= self.max_batch:
            return 0.0
        if self.flush_when_idle and self._in_flight == 0 and len(self._pending) >= self._expected():
            return 0.0
        return max(0.0, head_arrived + self.max_wait - time.monotonic())

    def _expected(self) -> int:
        """How many callers to wait for (at most max_wait_ms) before sending when nothing is in flight:
        as many as the last batch had (1 after a lone call), so that under load the callers served by
        the last batch, coming back, go together instead of in a small batch and a large one."""
        return min(self.max_batch, self._last_batch)

    def _sent(self, size: int) -> None:
        self._last_batch = size
        self.stats.record(size)


# -- threads -------------------------------------------------------------------------------------------------


class _Slot:
    __slots__ = ("arrived", "done", "outcome", "request", "wake")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.arrived = time.monotonic()
        self.wake = threading.Event()
        self.done = False
        self.outcome: Outcome | None = None

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done = True
        self.wake.set()


class Coalescer(_Base[_Slot]):
    """Gathers concurrent `reserve_stock` calls of many threads into `reserve_many` calls over one
    Inventory: up to `max_batch` requests per call; see the module's documentation for when a batch
    is sent, what goes direct, errors, and why callers acting as different users must not share one.

    >>> with Coalescer(Inventory.from_pool(pool)) as coalescer:
    ...     hold = coalescer.reserve_stock("MUG", 1, "SO-7", idempotency_key="SO-7/MUG")
    """

    def __init__(self, inventory: Inventory, max_batch: int = 100, max_wait_ms: float = 2.0, *,
                 max_in_flight: int = 1, flush_when_idle: bool = True) -> None:
        super().__init__(max_batch, max_wait_ms, max_in_flight, flush_when_idle, inventory.pool is not None)
        self.inventory = inventory
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._io = threading.Lock() if inventory.pool is None else None

    def reserve_stock(self, sku: str, quantity: Number, order_ref: str, location: str = "main",
                      expires_in: timedelta | None = None, idempotency_key: str | None = None,
                      **other: Any) -> Reservation:
        """Inventory.reserve_stock, coalesced with concurrent callers: returns this call's Reservation
        or raises what reserve_stock would raise for it alone. Raises CoalescerClosed after close()."""
        request = as_request(sku, quantity, order_ref, location, expires_in, idempotency_key, other)
        with self._lock:
            self._refuse_if_closed()
            self._active += 1
            if request is None:
                self.stats.direct += 1
        try:
            if request is None:
                return self._direct(sku, quantity, order_ref, location, expires_in, idempotency_key, **other)
            outcome = self._coalesced(request)
            if isinstance(outcome, _Resend):
                with self._lock:
                    self.stats.resent += 1
                return self._direct(sku, quantity, order_ref, location, expires_in, idempotency_key)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._drained.notify_all()

    def close(self) -> None:
        """Send what is queued, wait for every call already accepted to finish, and refuse new calls
        (CoalescerClosed). The Inventory stays open (it is the caller's). Idempotent."""
        with self._lock:
            self._closed = True
            if self._pending:
                self._pending[0].wake.set()
            while self._active:
                self._drained.wait()

    def __enter__(self) -> Coalescer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _direct(self, *args: Any, **kwargs: Any) -> Reservation:
        if self._io is None:
            return self.inventory.reserve_stock(*args, **kwargs)
        with self._io:
            return self.inventory.reserve_stock(*args, **kwargs)

    def _coalesced(self, request: Request) -> Outcome:
        slot = _Slot(request)
        with self._lock:
            self._pending.append(slot)
            if len(self._pending) == 1 or len(self._pending) >= self._expected():
                self._pending[0].wake.set()
        timeout: float | None = None
        while True:
            slot.wake.wait(timeout)
            with self._lock:
                slot.wake.clear()
                if slot.done:
                    break
                if not self._pending or self._pending[0] is not slot:
                    timeout = None
                    continue
                delay = self._due_in(slot.arrived)
                if delay > 0:
                    timeout = None if delay == math.inf else delay
                    continue
                batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                self._in_flight += 1
                if self._pending:
                    self._pending[0].wake.set()
            try:
                self._send(batch)
            except BaseException as error:  # never leave a caller of the batch waiting
                for waiting in batch:
                    if not waiting.done:
                        waiting.finish(for_caller(error))
                raise
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if self._pending:
                        self._pending[0].wake.set()
            break
        assert slot.outcome is not None
        return slot.outcome

    def _send(self, batch: list[_Slot]) -> None:
        requests = [slot.request for slot in batch]
        with self._lock:
            self._sent(len(batch))
        if len(batch) == 1:  # a batch of one is reserve_stock itself, at half reserve_many's cost
            try:
                batch[0].finish(self._direct(**requests[0]))
            except BaseException as error:
                batch[0].finish(error)
            return
        try:
            if self._io is None:
                results = self.inventory.reserve_many(requests)
            else:
                with self._io:
                    results = self.inventory.reserve_many(requests)
        except BaseException as error:
            with self._lock:
                self.stats.failed_batches += 1
            again = keyed_again(error, requests, self._retry_writes())
            for n, slot in enumerate(batch):
                if n not in again:
                    slot.finish(for_caller(error))
            if again:
                self._send([batch[n] for n in again])
            return
        for slot, outcome in zip(batch, outcomes(len(batch), results), strict=True):
            slot.finish(outcome)

    def _retry_writes(self) -> bool | None:
        policy = self.inventory.retry
        return None if policy is None else policy.retry_writes


# -- asyncio -------------------------------------------------------------------------------------------------


class _AsyncSlot:
    __slots__ = ("arrived", "future", "request")

    def __init__(self, request: Request, future: asyncio.Future[Outcome]) -> None:
        self.request = request
        self.arrived = time.monotonic()
        self.future = future

    def finish(self, outcome: Outcome) -> None:
        if not self.future.done():  # a cancelled caller no longer waits
            self.future.set_result(outcome)


class AsyncCoalescer(_Base[_AsyncSlot]):
    """Coalescer for asyncio: `await coalescer.reserve_stock(...)` from many tasks of one event loop,
    over an AsyncInventory. A batch is sent by a task of its own, started when the batch is due; the
    requests made before that task first runs (all of an asyncio.gather, for one) go in it. A caller
    cancelled before its batch is sent is taken out of it; one cancelled later may still get its hold
    (give a key, and retry with it, to learn the outcome)."""

    def __init__(self, async_inventory: AsyncInventory, max_batch: int = 100, max_wait_ms: float = 2.0, *,
                 max_in_flight: int = 1, flush_when_idle: bool = True) -> None:
        super().__init__(max_batch, max_wait_ms, max_in_flight, flush_when_idle, async_inventory.pool is not None)
        self.inventory = async_inventory
        self._io = asyncio.Lock() if async_inventory.pool is None else None
        self._starting = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()
        self._drained.set()

    async def reserve_stock(self, sku: str, quantity: Number, order_ref: str, location: str = "main",
                            expires_in: timedelta | None = None, idempotency_key: str | None = None,
                            **other: Any) -> Reservation:
        """AsyncInventory.reserve_stock, coalesced with concurrent callers (see Coalescer.reserve_stock)."""
        self._refuse_if_closed()
        request = as_request(sku, quantity, order_ref, location, expires_in, idempotency_key, other)
        self._active += 1
        self._drained.clear()
        try:
            if request is None:
                self.stats.direct += 1
                return await self._direct(sku, quantity, order_ref, location, expires_in, idempotency_key, **other)
            slot = _AsyncSlot(request, asyncio.get_running_loop().create_future())
            self._pending.append(slot)
            self._pump()
            try:
                outcome = await slot.future
            except asyncio.CancelledError:
                if slot in self._pending:
                    self._pending.remove(slot)
                raise
            if isinstance(outcome, _Resend):
                self.stats.resent += 1
                return await self._direct(sku, quantity, order_ref, location, expires_in, idempotency_key)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        finally:
            self._active -= 1
            if not self._active:
                self._drained.set()

    async def close(self) -> None:
        """Send what is queued, wait for every call already accepted to finish, and refuse new calls
        (CoalescerClosed). The AsyncInventory stays open. Idempotent."""
        self._closed = True
        self._pump()
        await self._drained.wait()

    async def __aenter__(self) -> AsyncCoalescer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _direct(self, *args: Any, **kwargs: Any) -> Reservation:
        if self._io is None:
            return await self.inventory.reserve_stock(*args, **kwargs)
        async with self._io:
            return await self.inventory.reserve_stock(*args, **kwargs)

    def _pump(self) -> None:
        """Start a batch's task when one is due (the task takes the queue when it first runs), else
        set a timer for when it will be."""
        if self._starting or not self._pending:
            return
        delay = self._due_in(self._pending[0].arrived)
        if delay == math.inf:
            return
        loop = asyncio.get_running_loop()
        if delay > 0:
            if self._timer is None:
                self._timer = loop.call_later(delay, self._on_timer)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._starting = True
        self._in_flight += 1
        task = loop.create_task(self._run_batch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    async def _run_batch(self) -> None:
        self._starting = False
        batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
        try:
            self._pump()  # more queued than one batch, or room for another batch in flight
            if batch:
                await self._send(batch)
        except BaseException as error:  # never leave a caller of the batch waiting
            for waiting in batch:
                waiting.finish(for_caller(error))
            raise
        finally:
            self._in_flight -= 1
            self._pump()

    async def _send(self, batch: list[_AsyncSlot]) -> None:
        requests = [slot.request for slot in batch]
        self._sent(len(batch))
        if len(batch) == 1:  # a batch of one is reserve_stock itself, at half reserve_many's cost
            try:
                batch[0].finish(await self._direct(**requests[0]))
            except BaseException as error:
                batch[0].finish(error)
                if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                    raise
            return
        try:
            if self._io is None:
                results = await self.inventory.reserve_many(requests)
            else:
                async with self._io:
                    results = await self.inventory.reserve_many(requests)
        except BaseException as error:
            self.stats.failed_batches += 1
            policy = self.inventory.retry
            again = keyed_again(error, requests, None if policy is None else policy.retry_writes)
            for n, slot in enumerate(batch):
                if n not in again:
                    slot.finish(for_caller(error))
            if again:
                await self._send([batch[n] for n in again])
            if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            return
        for slot, outcome in zip(batch, outcomes(len(batch), results), strict=True):
            slot.finish(outcome)
