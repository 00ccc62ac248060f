"""How the long-running commands (`pyinv maintain`, `events --follow`/`deliver`, `metrics serve`) stop:
while a block runs, SIGTERM and SIGINT call the command's stop function (in the main thread), and the
previous handlers come back afterwards."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def on_stop_signals(stop: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Calls stop(the signal) on SIGTERM or SIGINT while the block runs."""

    def handler(signum: int, _frame: object) -> None:
        stop(signal.Signals(signum))

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
