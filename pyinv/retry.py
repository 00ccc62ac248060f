"""Automatic retry of retryable errors: RetryPolicy, and the rule of which calls may be retried."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AUTOMATIC_RETRY_SQLSTATES, ConfigurationError, ConnectionFailed, InventoryError, Retryable

OnRetry = Callable[[InventoryError, int, float], None]
"""on_retry(error, attempt that failed (1 = the first), seconds until the next attempt)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries a call that failed with a retryable error: a serialization failure
    (40001), a deadlock (40P01), a lock not available (55P03, BUSY), or a connection failure.

    Only calls that are safe to repeat are retried: read-only calls, maintenance sweeps, and calls
    that carry an idempotency key (a repeat replays the first outcome). A call that joined the
    caller's open transaction is never retried (the caller's transaction is what failed).
    `retry_writes=True` also retries writes without a key after the errors that guarantee nothing
    was done (40001, 40P01, 55P03), never after a connection failure, whose outcome is unknown.

    The delay before attempt n+1 is exponential with jitter: between half and all of
    min(max_delay, base_delay * 2**(n-1)) seconds. `attempts` counts the first try (1: no retry).
    `on_retry(error, attempt, delay)` is called before each wait (for logging or metrics)."""

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0
    retry_writes: bool = False
    on_retry: OnRetry | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigurationError(f"RetryPolicy.attempts must be an integer of at least 1, not {self.attempts!r}")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ConfigurationError("RetryPolicy needs 0 <= base_delay <= max_delay "
                                     f"(got base_delay={self.base_delay!r}, max_delay={self.max_delay!r})")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 = the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def next_delay(self, error: InventoryError, attempt: int, *, idempotent: bool, can_reconnect: bool) -> float | None:
        """The wait before retrying a call whose attempt number `attempt` failed with `error`, or
        None when it must not be retried. `idempotent`: the call is safe to repeat; `can_reconnect`:
        the client can get a new connection (it opened its own, or borrows from a pool)."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, ConnectionFailed):
            if not (error.retryable and idempotent and can_reconnect):
                return None
        elif isinstance(error, Retryable):
            if error.actual_sqlstate not in AUTOMATIC_RETRY_SQLSTATES or not (idempotent or self.retry_writes):
                return None
        else:
            return None
        delay = self.delay(attempt)
        if self.on_retry is not None:
            self.on_retry(error, attempt, delay)
        return delay


DEFAULT_RETRY = RetryPolicy()
"""The policy clients use unless told otherwise: 4 attempts, 50 ms doubling up to 2 s."""
