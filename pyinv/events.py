"""Following events (`pyinv events --follow`) and delivering them to a webhook (`pyinv events deliver`).

Both read with inventory_api.read_events in batches and wake when pyinv_events is notified (or every
`poll_seconds`, in case a notification was missed or its event was not readable yet). Only the first
event of each settings.event_notify_interval (100 ms) notifies, so after a notification, or a batch,
they read again `settle_seconds` later before waiting. A named
consumer resumes after its last acknowledged event: the follower acknowledges each batch after
printing it, the deliverer each event after the webhook answered 2xx, so a restart repeats at most
what was handled but not yet acknowledged (at least once) and never loses one.

A webhook request is a POST of the event as JSON (`event_json`), with headers X-Pyinv-Event-Id,
X-Pyinv-Event-Type and X-Pyinv-Signature: sha256=<hex HMAC-SHA256 of the body with the shared
secret>. Anything but a 2xx answer (or no answer) is retried with exponential backoff (capped,
with jitter) until the receiver accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import Any

from .client import Inventory, exact_json
from .models import Event
from .signals import on_stop_signals

SIGNATURE_HEADER = "X-Pyinv-Signature"
EVENT_ID_HEADER = "X-Pyinv-Event-Id"
EVENT_TYPE_HEADER = "X-Pyinv-Event-Type"


def event_json(event: Event) -> str:
    """The event as one line of JSON, numbers exact: id, type, sku, location, payload, created_at."""
    return exact_json({"id": event.id, "type": event.type, "sku": event.sku, "location": event.location,
                       "payload": event.payload, "created_at": event.created_at.isoformat()})


def signature(secret: str, body: bytes) -> str:
    """The X-Pyinv-Signature value of a body: sha256=<hex HMAC-SHA256 with the secret>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class Follower:
    """Reads events in batches for `consumer` (None: from after_id, without saving a position) and
    hands each batch to a handler; stop() (or SIGTERM/SIGINT within signals_stop()) ends run()."""

    client: Inventory
    listener: Inventory | None = None
    consumer: str | None = None
    after_id: int = 0
    batch_size: int = 100
    poll_seconds: float = 5.0
    settle_seconds: float = 0.25

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        if self.listener is not None:
            self.listener.listen_events()

    def stop(self) -> None:
        self.stopping.set()

    def read(self, limit: int | None = None) -> list[Event]:
        """The next batch (at most `limit` events)."""
        size = min(self.batch_size, limit) if limit is not None else self.batch_size
        if self.consumer is not None:  # its acknowledged position
            return self.client.read_events(self.consumer, size)
        return self.client.read_events(self.consumer, size, after_id=self.after_id)

    def acknowledge(self, event: Event) -> None:
        if self.consumer is not None:
            self.client.ack_events(self.consumer, event.id)
        self.after_id = event.id

    def wait(self) -> bool:
        """Until a notification arrives (True), poll_seconds pass, or stop() is called."""
        if self.listener is None:
            self.stopping.wait(self.poll_seconds)
            return False
        waited = 0.0
        while not self.stopping.is_set() and waited < self.poll_seconds:
            step = min(0.5, self.poll_seconds - waited)  # wake for stop() at least twice a second
            if self.listener.wait_for_events(step):
                return True
            waited += step
        return False

    def run(self, handle: Callable[[Event], None], max_events: int | None = None, once: bool = False,
            acknowledge_each: bool = False) -> int:
        """Hand events to `handle` until stopped, max_events were handled, or (once) nothing is left to
        read. Acknowledges after each batch (acknowledge_each: after each event). Returns how many."""
        handled, notified = 0, False
        while not self.stopping.is_set():
            batch = self.read(None if max_events is None else max_events - handled)
            last: Event | None = None
            for event in batch:
                if self.stopping.is_set():
                    break
                handle(event)
                handled += 1
                if acknowledge_each:
                    self.acknowledge(event)
                last = event
            if last is not None and not acknowledge_each:
                self.acknowledge(last)
            if max_events is not None and handled >= max_events:
                break
            if len(batch) < self.batch_size:
                if once:
                    break
                if batch or notified:
                    # Only the first event of each event_notify_interval notifies: after a notification
                    # (or events), look again shortly for the events that came with it.
                    notified = False
                    self.stopping.wait(self.settle_seconds)
                    continue
                notified = self.wait()
        return handled

    def signals_stop(self) -> AbstractContextManager[None]:
        """While the block runs, SIGTERM and SIGINT stop the follower after the event under way."""
        return on_stop_signals(lambda _signal: self.stop())


@dataclass
class Webhook:
    """POSTs events to `url`, signed with `secret`, retrying until a 2xx answer: the delay after
    attempt n is min(max_delay, base_delay * 2**(n-1)) times a random factor in [0.5, 1]."""

    url: str
    secret: str
    timeout: float = 10.0
    base_delay: float = 0.5
    max_delay: float = 60.0
    log: Callable[[str, dict[str, Any]], None] | None = None

    def request(self, event: Event) -> urllib.request.Request:
        body = event_json(event).encode("utf-8")
        return urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "pyinv-events",
            SIGNATURE_HEADER: signature(self.secret, body), EVENT_ID_HEADER: str(event.id),
            EVENT_TYPE_HEADER: event.type})

    def post_once(self, event: Event) -> tuple[bool, str]:
        """One attempt: (accepted, what happened)."""
        try:
            with urllib.request.urlopen(self.request(event), timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            return False, f"no answer: {getattr(error, 'reason', error)}"
        return 200 <= status < 300, f"HTTP {status}"

    def deliver(self, event: Event, stopping: threading.Event) -> int | None:
        """Post until accepted; the number of attempts, or None when stopped first."""
        attempt = 0
        while not stopping.is_set():
            attempt += 1
            accepted, outcome = self.post_once(event)
            if self.log is not None:
                self.log(f"event {event.id} {event.type}: {outcome} (attempt {attempt})",
                         {"event_id": event.id, "attempt": attempt, "outcome": outcome, "accepted": accepted})
            if accepted:
                return attempt
            delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            stopping.wait(delay)
        return None


def deliver(follower: Follower, webhook: Webhook, max_events: int | None = None, once: bool = False) -> int:
    """Deliver events to the webhook, each at least once, acknowledging each after its 2xx (an event
    is posted again after a restart only when it was accepted but not yet acknowledged). Returns how
    many were delivered."""

    delivered = 0

    def handle(event: Event) -> None:
        nonlocal delivered
        if webhook.deliver(event, follower.stopping) is None:
            raise _Stopped
        delivered += 1

    with suppress(_Stopped):
        follower.run(handle, max_events=max_events, once=once, acknowledge_each=True)
    return delivered


class _Stopped(Exception):
    """Stopped while an event was not yet delivered: it is not acknowledged."""
