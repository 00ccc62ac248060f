"""Load generators: pgbench custom scripts (B0, B3, W7) and Python multiprocessing drivers (B1, B2, W4-W6).

Python threads share one interpreter lock, so the Python drivers start several processes, each running
a few threads with their own autocommit psycopg connection (psycopg releases the lock while it waits
on the socket). Every driver reports successes, attempts, latencies, errors by SQLSTATE and its own
CPU time, so a reader can see whether the load generator or the server was the limit.
"""

from __future__ import annotations

import abc
import bisect
import multiprocessing as mp
import os
import random
import re
import resource
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import psycopg

from .. import server

FLOOR = "bench_floor"
MAX_PROCESSES = 4  # the Python drivers never use more processes than this (2 cores here)


@dataclass
class DriverResult:
    """What one load generator run measured (all counts over the whole run)."""

    duration: float
    successes: int = 0
    attempts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    generator_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# -- key distributions -------------------------------------------------------------------------------


class KeyChooser:
    """Picks stock ids 1..n: one hot id, uniform, or Zipf-skewed (like pgbench random_zipfian)."""

    def __init__(self, kind: str, n: int, zipf_s: float = 1.01, rng: random.Random | None = None) -> None:
        self.kind, self.n, self.rng = kind, n, rng or random.Random()
        self.cumulative: list[float] = []
        if kind == "zipf":
            self.cumulative = list(accumulate(1.0 / (k ** zipf_s) for k in range(1, n + 1)))

    def __call__(self) -> int:
        if self.kind == "hot":
            return 1
        if self.kind == "uniform":
            return self.rng.randint(1, self.n)
        point = self.rng.random() * self.cumulative[-1]
        return min(bisect.bisect_left(self.cumulative, point), self.n - 1) + 1

    def pgbench_expression(self) -> str:
        if self.kind == "hot":
            return "1"
        if self.kind == "uniform":
            return f"random(1, {self.n})"
        return f"random_zipfian(1, {self.n}, 1.01)"


# -- pgbench ---------------------------------------------------------------------------------------------


def pgbench_path() -> str:
    return str(server.bin_dir() / "pgbench")


PGBENCH_SCRIPTS = {
    "B0": "\\set id {key}\n"
          "update bench_floor.stock set reserved = reserved + 1 where id = :id and on_hand - reserved >= 1;\n",
    "B3": "\\set id {key}\n"
          "select * from inventory_api.reserve_stock(sku => 'S' || :id, quantity => 1, "
          "order_ref => '{tag}-' || :client_id);\n",
    "B3a": "\\set id {key}\n"
           "select * from inventory_api.reserve_stock(sku => 'S' || :id, quantity => 1, "
           "order_ref => '{tag}-' || :client_id);\n",
    "B3hot": "\\set id {key}\n"
              "select * from inventory_api.reserve_stock(sku => 'S' || :id, quantity => 1, "
              "order_ref => '{tag}-' || :client_id);\n",
    "B3noev": "\\set id {key}\n"
              "select * from inventory_api.reserve_stock(sku => 'S' || :id, quantity => 1, "
              "order_ref => '{tag}-' || :client_id);\n",
    "B3lot": "\\set id {key}\n"
             "select * from inventory_api.reserve_stock(sku => 'L' || :id, quantity => 1, "
             "order_ref => '{tag}-' || :client_id);\n",
    "Bfn": "\\set id {key}\n"
           "select bench_floor.reserve(:id, 1, '{tag}-' || :client_id);\n",
    # W7: 3-5 lines over a small overlapping set of SKUs, in random line order (duplicates are merged).
    "W7": "\\set n random(3, 5)\n"
          "select count(*) from inventory_api.reserve_order(order_ref => '{tag}-' || :client_id, lines => ("
          "select jsonb_agg(jsonb_build_object('sku', 'S' || x, 'quantity', 1) order by random()) "
          "from (select 1 + floor(random() * {nskus})::int as x from generate_series(1, :n)) s));\n",
}


def run_pgbench(dsn: str, script: str, clients: int, duration: float, extra_args: list[str] | None = None,
                options: str | None = None) -> DriverResult:
    """Closed-loop pgbench (-M prepared, -j 2, --no-vacuum, -T) with a per-transaction log for percentiles."""
    with tempfile.TemporaryDirectory(prefix="pyinv-bench-") as tmp:
        script_file = Path(tmp) / "script.sql"
        script_file.write_text(script)
        os.chmod(tmp, 0o755)
        args = [pgbench_path(), "-n", "-M", "prepared", "-j", str(min(2, clients)), "-c", str(clients),
                "-T", str(max(1, round(duration))), "-f", str(script_file), "-l", "--log-prefix",
                str(Path(tmp) / "txlog"), "--failures-detailed", "--max-tries=1", *(extra_args or []), dsn]
        out_file, err_file = Path(tmp) / "out.txt", Path(tmp) / "err.txt"
        started = time.monotonic()
        with out_file.open("w") as out, err_file.open("w") as err:
            env = {**os.environ, "PGOPTIONS": options} if options else None
            process = subprocess.Popen(args, stdout=out, stderr=err, cwd=tmp, env=env)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        stdout, stderr = out_file.read_text(), err_file.read_text()
        latencies, failed = [], Counter()
        for log in Path(tmp).glob("txlog*"):
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) < 3:
                    continue
                if parts[2].isdigit():
                    latencies.append(int(parts[2]) / 1000.0)
                else:
                    failed[parts[2]] += 1
    if "number of transactions actually processed" not in stdout:
        raise RuntimeError(f"pgbench failed ({process.returncode}): {stderr.strip()[-2000:]}")

    def number(pattern: str) -> float:
        match = re.search(pattern, stdout)
        return float(match.group(1)) if match else 0.0

    processed = int(number(r"number of transactions actually processed: (\d+)"))
    measured = float(max(1, round(duration)))
    result = DriverResult(duration=measured, successes=processed, latencies_ms=latencies,
                          generator_cpu_s=usage.ru_utime + usage.ru_stime)
    result.attempts = processed + sum(failed.values())
    sqlstate_of = {"serialization": "40001", "deadlock": "40P01"}
    for kind, count in failed.items():
        result.errors[sqlstate_of.get(kind, kind)] += count
    # Other errors abort the pgbench client; pgbench prints the message, not the SQLSTATE.
    for match in re.finditer(r"client \d+ (?:script \d+ )?aborted in command \d+ .*?: ERROR:\s+(.*)", stderr):
        result.errors[f"aborted: {match.group(1)[:80]}"] += 1
    result.extra = {"tps_reported": number(r"tps = ([\d.]+)"), "latency_avg_ms": number(r"latency average = ([\d.]+)"),
                    "wall_s": wall, "exit_code": process.returncode}
    return result


# -- Python drivers ----------------------------------------------------------------------------------------


def sqlstate_key(error: psycopg.Error) -> str:
    diag = getattr(error, "diag", None)
    hint = diag.message_hint if diag is not None else None
    return f"{error.sqlstate or 'client'}{'/' + hint if hint else ''}"


class Worker(abc.ABC):
    """One connection's loop. Subclasses implement op(); it returns True on success."""

    def __init__(self, dsn: str, params: dict[str, Any], seed: int) -> None:
        self.connection = psycopg.connect(dsn, autocommit=True)
        self.params = params
        self.rng = random.Random(seed)
        self.keys = KeyChooser(params.get("key_kind", "uniform"), params.get("nskus", 1), rng=self.rng)
        self.successes = self.attempts = 0
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.extra: Counter[str] = Counter()
        self.tag = params.get("tag", "py")
        self.done = False

    @abc.abstractmethod
    def op(self) -> bool:
        """One attempt of the variant's reservation; True when it reserved."""

    def loop(self, deadline: float, stop: Any) -> None:
        while not self.done and time.monotonic() < deadline and not stop.is_set():
            started = time.perf_counter()
            try:
                ok = self.op()
            except psycopg.Error as error:
                self.errors[sqlstate_key(error)] += 1
                ok = False
                if self.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.connection.rollback()
            except Exception as error:  # pyinv's exceptions (the coalescer's callers): by SQLSTATE and code
                sqlstate = getattr(error, "actual_sqlstate", None) or type(error).__name__
                code = getattr(error, "code", None)
                self.errors[f"{sqlstate}{'/' + code if code else ''}"] += 1
                ok = False
            if ok:
                self.successes += 1
                self.latencies.append((time.perf_counter() - started) * 1000.0)


class OrmWorker(Worker):
    """B1: read row and version, check in Python, compare-and-set on version, retry with jittered backoff."""

    def op(self) -> bool:
        key, quantity = self.keys(), self.params.get("quantity", 1)
        for attempt in range(10):
            on_hand, reserved, version = self.connection.execute(
                f"select on_hand, reserved, version from {FLOOR}.stock where id = %s", (key,)).fetchone()
            if on_hand - reserved < quantity:
                self.extra["insufficient"] += 1
                return False
            self.attempts += 1
            updated = self.connection.execute(
                f"update {FLOOR}.stock set reserved = %s, version = version + 1 where id = %s and version = %s",
                (reserved + quantity, key, version)).rowcount
            if updated == 1:
                return True
            self.extra["conflicts"] += 1
            time.sleep(self.rng.uniform(0, 0.0005 * (2 ** min(attempt, 5))))
        self.extra["give_ups"] += 1
        return False


class LockWorker(Worker):
    """B2: begin; select ... for update; update; insert hold; commit."""

    def op(self) -> bool:
        key, quantity = self.keys(), self.params.get("quantity", 1)
        self.attempts += 1
        with self.connection.transaction():
            on_hand, reserved = self.connection.execute(
                f"select on_hand, reserved from {FLOOR}.stock where id = %s for update", (key,)).fetchone()
            if on_hand - reserved < quantity:
                self.extra["insufficient"] += 1
                return False
            self.connection.execute(f"update {FLOOR}.stock set reserved = reserved + %s where id = %s",
                                    (quantity, key))
            self.connection.execute(f"insert into {FLOOR}.holds (stock_id, quantity, order_ref) values (%s, %s, %s)",
                                    (key, quantity, self.tag))
        return True


class ReserveWorker(Worker):
    """B3 from Python: one reserve_stock call (used for W6's foreground load)."""

    def op(self) -> bool:
        self.attempts += 1
        self.connection.execute("select * from inventory_api.reserve_stock(sku => %s, quantity => 1, order_ref => %s)",
                                (f"S{self.keys()}", self.tag))
        return True


class FlashWorker(Worker):
    """W4 sell-out: ask 1-3 units until the item is gone; a short request is retried for what is left."""

    def __init__(self, dsn: str, params: dict[str, Any], seed: int) -> None:
        super().__init__(dsn, params, seed)
        self.variant = params["variant"]
        self.granted = 0
        self.last_success = 0.0
        self.wanted = 0

    def available(self) -> int:
        if self.variant in ("B3", "B3hot", "B3co"):
            row = self.connection.execute("select available from inventory_api.stock_levels where sku = %s",
                                          (self.params["sku"],)).fetchone()
        else:
            row = self.connection.execute(f"select on_hand - reserved from {FLOOR}.stock where id = %s",
                                          (self.params["stock_id"],)).fetchone()
        return int(row[0])

    def take(self, quantity: int) -> bool:
        stock_id, variant = self.params["stock_id"], self.variant
        if variant == "B0":
            self.attempts += 1
            return self.connection.execute(
                f"update {FLOOR}.stock set reserved = reserved + %s where id = %s and on_hand - reserved >= %s",
                (quantity, stock_id, quantity)).rowcount == 1
        if variant == "B1":
            self.keys = lambda: stock_id  # type: ignore[assignment,method-assign]
            self.params["quantity"] = quantity
            return OrmWorker.op(self)  # type: ignore[arg-type]
        if variant == "B2":
            self.keys = lambda: stock_id  # type: ignore[assignment,method-assign]
            self.params["quantity"] = quantity
            return LockWorker.op(self)  # type: ignore[arg-type]
        self.attempts += 1
        try:
            self.connection.execute("select * from inventory_api.reserve_stock(sku => %s, quantity => %s, "
                                    "order_ref => %s)", (self.params["sku"], quantity, self.tag))
            return True
        except psycopg.Error as error:
            if error.sqlstate == "PT409":
                self.extra["insufficient"] += 1
                return False
            raise

    def op(self) -> bool:
        quantity = self.wanted or self.rng.randint(1, 3)
        if self.take(quantity):
            self.granted += quantity
            self.last_success = time.monotonic()
            self.wanted = 0
            return True
        left = self.available()
        if left <= 0:
            self.done = True
        else:
            self.wanted = min(quantity, left)
        return False


class LifecycleWorker(Worker):
    """W5: reserve (short TTL) / fulfil / cancel / return mix over uniform SKUs."""

    def __init__(self, dsn: str, params: dict[str, Any], seed: int) -> None:
        super().__init__(dsn, params, seed)
        self.open: list[str] = []
        self.shipped: list[tuple[str, str]] = []
        self.skus: dict[str, str] = {}
        self.counter = 0

    def op(self) -> bool:
        self.attempts += 1
        draw = self.rng.random()
        execute = self.connection.execute
        if draw < 0.65 or not self.open:
            self.counter += 1
            ref, sku = f"{self.tag}-{self.counter}", f"S{self.keys()}"
            execute("select * from inventory_api.reserve_stock(sku => %s, quantity => 1, order_ref => %s, "
                    "expires_in => %s::interval)", (sku, ref, self.params["ttl"]))
            self.open.append(ref)
            self.skus[ref] = sku
            self.extra["reserve"] += 1
            return True
        if draw < 0.85:
            ref = self.open.pop(self.rng.randrange(len(self.open)))
            execute("select count(*) from inventory_api.fulfill_order(order_ref => %s)", (ref,))
            self.shipped.append((ref, self.skus.pop(ref)))
            self.extra["fulfill"] += 1
            return True
        if draw < 0.95:
            ref = self.open.pop(self.rng.randrange(len(self.open)))
            self.skus.pop(ref, None)
            execute("select count(*) from inventory_api.cancel_reservation(order_ref => %s)", (ref,))
            self.extra["cancel"] += 1
            return True
        if not self.shipped:
            return False
        ref, sku = self.shipped.pop(self.rng.randrange(len(self.shipped)))
        execute("select * from inventory_api.process_return(order_ref => %s, sku => %s, quantity => 1, "
                "reason => 'bench')", (ref, sku))
        self.extra["return"] += 1
        return True


_COALESCERS: dict[int, Any] = {}


def process_coalescer(dsn: str, params: dict[str, Any]) -> Any:
    """The one Coalescer of this driver process (an application server with its threads): over one
    connection of its own, as pyinv.coalescer recommends (measured best on 2 cores)."""
    if os.getpid() not in _COALESCERS:
        from ..client import Inventory
        from ..coalescer import Coalescer

        _COALESCERS[os.getpid()] = Coalescer(Inventory(psycopg.connect(dsn, autocommit=True)),
                                             max_batch=params.get("max_batch", 100),
                                             max_wait_ms=params.get("max_wait_ms", 2.0))
    return _COALESCERS[os.getpid()]


class CoalescedWorker(Worker):
    """B3co: reserve_stock through the process's Coalescer (W1-W3 keys, one unit)."""

    def __init__(self, dsn: str, params: dict[str, Any], seed: int) -> None:
        super().__init__(dsn, params, seed)
        self.coalescer = process_coalescer(dsn, params)

    def op(self) -> bool:
        self.attempts += 1
        self.coalescer.reserve_stock(f"S{self.keys()}", 1, self.tag)
        return True


class CoalescedFlashWorker(FlashWorker):
    """W4 sell-out through the process's Coalescer (B3co)."""

    def __init__(self, dsn: str, params: dict[str, Any], seed: int) -> None:
        super().__init__(dsn, params, seed)
        self.coalescer = process_coalescer(dsn, params)

    def take(self, quantity: int) -> bool:
        from ..errors import InsufficientStock

        self.attempts += 1
        try:
            self.coalescer.reserve_stock(self.params["sku"], quantity, self.tag)
            return True
        except InsufficientStock:
            self.extra["insufficient"] += 1
            return False


WORKERS = {"B1": OrmWorker, "B2": LockWorker, "B3py": ReserveWorker, "W4": FlashWorker, "W5": LifecycleWorker,
           "B3co": CoalescedWorker, "W4co": CoalescedFlashWorker}


def _process_main(kind: str, dsn: str, params: dict[str, Any], threads: int, seed: int, duration: float,
                  start: Any, stop: Any, results: Any) -> None:
    workers = [WORKERS[kind](dsn, dict(params, tag=f"{params.get('tag', 'py')}-{os.getpid()}-{i}"), seed * 1000 + i)
               for i in range(threads)]
    coalescer = _COALESCERS.get(os.getpid())
    start.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    deadline = time.monotonic() + duration
    pool = [threading.Thread(target=worker.loop, args=(deadline, stop)) for worker in workers]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    extra: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    for worker in workers:
        extra.update(worker.extra)
        errors.update(worker.errors)
        latencies.extend(worker.latencies)
        if isinstance(worker, FlashWorker):
            extra["granted"] += worker.granted
            extra["last_success"] = max(extra.get("last_success", 0), worker.last_success)  # type: ignore[assignment]
        worker.connection.close()
    if coalescer is not None:
        coalescer.close()
        extra["batches"] += coalescer.stats.batches
        extra["batched_requests"] += coalescer.stats.requests
        extra["largest_batch"] = max(extra.get("largest_batch", 0), coalescer.stats.largest_batch)
    results.put({"successes": sum(w.successes for w in workers), "attempts": sum(w.attempts for w in workers),
                 "latencies": latencies, "errors": dict(errors), "extra": dict(extra),
                 "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)})


class PythonLoad:
    """Starts `clients` connections spread over up to MAX_PROCESSES processes; stop() or the duration ends it."""

    def __init__(self, kind: str, dsn: str, clients: int, params: dict[str, Any], duration: float,
                 seed: int = 0, processes: int | None = None) -> None:
        context = mp.get_context("fork")
        self.processes_n = min(processes or MAX_PROCESSES, clients)
        self.start_event, self.stop_event = context.Event(), context.Event()
        self.results = context.Queue()
        shares = [clients // self.processes_n + (1 if i < clients % self.processes_n else 0)
                  for i in range(self.processes_n)]
        self.processes = [context.Process(target=_process_main, args=(
            kind, dsn, params, share, seed * 100 + i, duration, self.start_event, self.stop_event, self.results))
            for i, share in enumerate(shares)]
        self.duration = duration

    def start(self) -> None:
        for process in self.processes:
            process.start()
        time.sleep(0.3 + 0.01 * len(self.processes))  # let every connection open before the clock starts
        self.started = time.monotonic()
        self.start_event.set()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self) -> DriverResult:
        parts = [self.results.get(timeout=self.duration + 120) for _ in self.processes]
        wall = time.monotonic() - self.started
        for process in self.processes:
            process.join()
        result = DriverResult(duration=wall)
        extra: Counter[str] = Counter()
        for part in parts:
            result.successes += part["successes"]
            result.attempts += part["attempts"]
            result.latencies_ms.extend(part["latencies"])
            result.errors.update(part["errors"])
            result.generator_cpu_s += part["cpu"]
            last = part["extra"].pop("last_success", 0)
            extra.update(part["extra"])
            result.extra["last_success"] = max(result.extra.get("last_success", 0), last)
        result.extra.update(extra)
        return result

    def run(self) -> DriverResult:
        self.start()
        return self.join()
