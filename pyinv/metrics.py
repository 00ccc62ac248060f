"""Metrics for Prometheus: inventory_api.inventory_metrics as the text exposition format 0.0.4, and a
small scrape endpoint (`pyinv metrics serve`).

Every figure is computed by the database (inventory_api.inventory_metrics, which defines each one);
this module only writes them out. The endpoint is the standard library's http.server: one thread
answering GET /metrics, each scrape reading fresh values over one connection (the client reopens it
when it broke), so a scrape never sees a cached figure and a database that went away only fails the
scrapes until it is back.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO

from .client import Inventory
from .errors import InventoryError
from .models import Metric
from .signals import on_stop_signals

PREFIX = "pyinv_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _help_text(text: str) -> str:
    """A HELP line's text: backslash and line feed escaped (text format 0.0.4)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _sample_value(value: Decimal | None) -> str:
    """A sample value as Go's ParseFloat reads it: exact decimal text, NaN for an undefined figure."""
    if value is None:
        return "NaN"
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "+Inf" if value > 0 else "-Inf"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def prometheus_text(metrics: Sequence[Metric]) -> str:
    """The metrics as gauges pyinv_<metric>, each with its # HELP (description, unit and window) and
    # TYPE lines; an undefined figure (a rate with nothing to count) is NaN."""
    lines: list[str] = []
    for metric in metrics:
        name = PREFIX + metric.metric
        window = f", over the last {period_text(metric.period)}" if metric.period is not None else ""
        lines.append(f"# HELP {name} {_help_text(f'{metric.description} ({metric.unit}{window}).')}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {_sample_value(metric.value)}")
    return "".join(line + "\n" for line in lines)


def period_text(period: timedelta) -> str:
    """A window as words: 30 days, 1 day, 5 minutes."""
    seconds = int(period.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    timeout = 10  # seconds a client may take to send its request: a stalled one cannot hold the server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body = self.server.scrape()
            except Exception as error:  # the database is unreachable or refused: fail this scrape only
                first_line = (str(error).splitlines() or [""])[0]
                self.server.log(f"scrape failed: {type(error).__name__}: {first_line}")
                self._answer(503, f"pyinv: cannot read the metrics: {error}\n")
                return
            self._answer(200, body, CONTENT_TYPE)
        elif path == "/":
            self._answer(200, '<html><body><a href="/metrics">/metrics</a></body></html>\n',
                         "text/html; charset=utf-8")
        else:
            self._answer(404, "not found: the metrics are at /metrics\n")

    def _answer(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the log; failures are logged by do_GET


class MetricsServer(HTTPServer):
    """An HTTP server answering GET /metrics with fresh figures read through `connect()`'s client,
    one request at a time (so one connection serves every scrape). The connection is opened at the
    first scrape and reopened after a failure."""

    def __init__(self, address: tuple[str, int], connect: Callable[[], Inventory],
                 log: TextIO | None = None) -> None:
        # Set before binding: a failed bind closes the server (server_close) at once.
        self._connect = connect
        self._inventory: Inventory | None = None
        self._log = log if log is not None else sys.stderr
        self.scrapes = 0
        if ":" in address[0]:  # an IPv6 address (::1, ::)
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def log(self, message: str) -> None:
        print(f"pyinv metrics: {message}", file=self._log, flush=True)

    def scrape(self) -> str:
        if self._inventory is None:
            self._inventory = self._connect()
        try:
            metrics = self._inventory.inventory_metrics()
        except InventoryError:
            # A broken connection is reopened by the client on the next call; a client that cannot
            # (it was closed) is replaced.
            if self._inventory.connection.closed:
                self._inventory = None
            raise
        self.scrapes += 1
        return prometheus_text(metrics)

    def server_close(self) -> None:
        super().server_close()
        if self._inventory is not None:
            self._inventory.close()
            self._inventory = None


def stopping_on_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """While the block runs, SIGTERM and SIGINT set `stop` (the previous handlers come back after)."""
    return on_stop_signals(lambda _signal: stop.set())


def serve(server: MetricsServer, stop: threading.Event) -> None:
    """Answer scrapes until `stop` is set, then close the socket and the connection."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="pyinv-metrics",
                              daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
