"""The maintenance runner (`pyinv maintain`) and its pg_cron twin (`pyinv schedule --pg-cron`).

Every job is an inventory_api function; this module only decides when to call it. Any number of
runners, on any number of machines, may run at once: each renews a lease
(inventory_api.claim_maintenance_lease) every `renew` seconds on a connection of its own, and only
the runner the database answers true runs jobs. A runner that dies stops renewing, and another takes
over once its lease runs out (or at once, when the server sees its session gone). When it gains the
lead, a runner reads each job's last start from inventory_api.maintenance_status, so a job is not run
again just because the lead changed hands.

A job runs when its interval has passed since its last start (by anyone: a manual `pyinv audit seal`
counts). Jobs that do not record themselves (expire_reservations, audit_anchor), runs of several
batches, and failures are recorded with inventory_api.record_maintenance_run. Each run is one log
line (text, or a JSON object per line), with its counts and duration.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import psycopg
import tomllib

from .client import Inventory
from .errors import Busy, InventoryError, translate
from .signals import on_stop_signals

# The jobs, in the order a runner runs those due at the same time, with their default intervals.
DEFAULT_INTERVALS: dict[str, timedelta] = {
    "expire_reservations": timedelta(minutes=1),
    "seal_audit_log": timedelta(minutes=1),
    "refresh_inventory_views": timedelta(minutes=5),
    "check_reorder_points": timedelta(hours=1),
    "expire_inventory_lots": timedelta(days=1),
    "purge_events": timedelta(days=1),
    "audit_anchor": timedelta(days=1),
}
JOBS = tuple(DEFAULT_INTERVALS)

# The function each job calls: a job whose function the database lacks (an older schema) is skipped.
JOB_FUNCTIONS: dict[str, str] = {
    "expire_reservations": "inventory_api.expire_reservations(integer)",
    "seal_audit_log": "inventory_api.seal_audit_log(integer)",
    "refresh_inventory_views": "inventory_api.refresh_inventory_views()",
    "check_reorder_points": "inventory_api.check_reorder_points()",
    "expire_inventory_lots": "inventory_api.expire_inventory_lots()",
    "purge_events": "inventory_api.purge_events(interval)",
    "audit_anchor": "inventory_api.audit_anchor(numeric)",
}


@dataclass(frozen=True)
class Settings:
    """How a runner runs: each job's interval, the lease, batch sizes, where anchors go (audit_anchor
    runs only when anchor_dir is set)."""

    intervals: Mapping[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))
    lease_seconds: int = 5
    renew_seconds: float = 1.0
    expire_batch_size: int = 1000
    seal_batch_size: int = 10000
    anchor_dir: Path | None = None
    anchor_wait_seconds: float = 10.0

    def jobs(self) -> list[str]:
        """The jobs this runner runs, in order (audit_anchor only with an anchor directory)."""
        return [job for job in JOBS if job in self.intervals and (job != "audit_anchor" or self.anchor_dir)]


def load_settings(path: Path | None = None, intervals: Mapping[str, timedelta | None] | None = None,
                  **overrides: Any) -> Settings:
    """Settings from a TOML file (its [maintain] table, or the whole file), then the given intervals and
    overrides (None values ignored). In the file: lease_seconds, renew_seconds, expire_batch_size,
    seal_batch_size, anchor_dir, anchor_wait_seconds, and an [maintain.intervals] table of job =
    "90s" / "5m" / "1h" / "1d" or seconds; an interval of 0 or "off" turns a job off."""
    settings = Settings()
    merged: dict[str, timedelta | None] = {}
    if path is not None:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        table = document.get("maintain", document)
        for name, value in table.get("intervals", {}).items():
            merged[_job_name(name)] = parse_interval(value)
        options = {key: value for key, value in table.items() if key != "intervals"}
        unknown = set(options) - {f for f in Settings.__dataclass_fields__ if f != "intervals"}
        if unknown:
            raise ValueError(f"unknown maintenance settings in {path}: {', '.join(sorted(unknown))}")
        if "anchor_dir" in options:
            options["anchor_dir"] = Path(options["anchor_dir"])
        settings = replace(settings, **options)
    for name, given in (intervals or {}).items():
        merged[_job_name(name)] = given if given else None  # None or 0: off
    chosen = dict(settings.intervals)
    for name, wanted in merged.items():
        if wanted is None:
            chosen.pop(name, None)
        else:
            chosen[name] = wanted
    settings = replace(settings, intervals=chosen, **{k: v for k, v in overrides.items() if v is not None})
    if not 1 <= settings.lease_seconds <= 3600:
        raise ValueError("lease_seconds must be between 1 and 3600")
    if not 0 < settings.renew_seconds < settings.lease_seconds:
        raise ValueError("renew_seconds must be more than 0 and less than lease_seconds")
    return settings


def _job_name(name: str) -> str:
    if name not in DEFAULT_INTERVALS:
        raise ValueError(f"unknown maintenance job {name!r}; the jobs are {', '.join(JOBS)}")
    return name


def parse_interval(value: object) -> timedelta | None:
    """90, "90s", "5m", "1h", "1d" (None for 0 or "off": the job does not run)."""
    if isinstance(value, timedelta):
        return value or None
    text = str(value).strip().lower()
    if text in ("off", "never", "0"):
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an interval like 90, 90s, 5m, 1h or 1d") from None
    if seconds < 0:
        raise ValueError(f"{value!r} is not an interval like 90, 90s, 5m, 1h or 1d")
    return timedelta(seconds=seconds) if seconds else None


def new_runner_id() -> str:
    """host:pid:random, unique among the runners of a database."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"{socket.gethostname()}:{os.getpid()}:{suffix}"


# -- one run of one job ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """One run of a job, as logged: result ok, busy (another session was running it), skipped (the
    database lacks its function) or error; rows touched; how long it took; what else it reported."""

    job: str
    result: str
    rows: int
    seconds: float
    started_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


def _expire_reservations(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    total, batches = 0, 0
    while True:
        expired = inv.expire_reservations(settings.expire_batch_size)
        total, batches = total + expired, batches + 1
        if expired < settings.expire_batch_size:
            return "ok", total, {"batches": batches}, True


def _seal_audit_log(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    total, batches = 0, 0
    while True:
        sealed = inv.seal_audit_log(settings.seal_batch_size)
        if sealed is None:  # another sealer holds the job's lock: it seals the rest
            return "busy", total, {"batches": batches}, batches > 0
        total, batches = total + sealed, batches + 1
        if sealed < settings.seal_batch_size:
            return "ok", total, {"batches": batches}, batches > 1  # one batch recorded itself


def _refresh_inventory_views(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    refresh = inv.refresh_inventory_views()
    if not refresh.refreshed:
        return "busy", 0, {"message": refresh.message}, False
    return "ok", int(refresh.rows or 0), {"views": list(refresh.views or [])}, False


def _check_reorder_points(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    check = inv.check_reorder_points()
    return "ok", check.levels_checked, {"opened": check.opened, "escalated": check.escalated,
                                        "resolved": check.resolved}, False


def _expire_inventory_lots(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    try:
        expiry = inv.expire_inventory_lots()
    except Busy:
        return "busy", 0, {}, False
    return "ok", expiry.lots_expired, {"units_written_off": str(expiry.units_written_off),
                                       "holds_reallocated": expiry.holds_reallocated,
                                       "holds_released": expiry.holds_released}, False


def _purge_events(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    return "ok", inv.purge_events(), {}, False  # records itself (the retention is a database setting)


def _audit_anchor(inv: Inventory, settings: Settings) -> tuple[str, int, dict[str, Any], bool]:
    assert settings.anchor_dir is not None
    anchor = inv.audit_anchor(settings.anchor_wait_seconds)
    settings.anchor_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = settings.anchor_dir / f"anchor-{stamp}.json"
    with open(path, "x", encoding="utf-8") as handle:  # an anchor file is never overwritten
        handle.write(json.dumps(anchor, indent=2, sort_keys=True) + "\n")
    return "ok", 1, {"file": str(path)}, True


# job -> function returning (result, rows, detail, record): record says the runner records the run.
RUNNERS: dict[str, Callable[[Inventory, Settings], tuple[str, int, dict[str, Any], bool]]] = {
    "expire_reservations": _expire_reservations,
    "seal_audit_log": _seal_audit_log,
    "refresh_inventory_views": _refresh_inventory_views,
    "check_reorder_points": _check_reorder_points,
    "expire_inventory_lots": _expire_inventory_lots,
    "purge_events": _purge_events,
    "audit_anchor": _audit_anchor,
}


def run_job(inv: Inventory, job: str, settings: Settings) -> JobRun:
    """Run one job now and record it; never raises for a failure of the job itself (it is logged and
    recorded as result error)."""
    started_at, started = datetime.now(timezone.utc), time.perf_counter()
    record = True
    try:
        result, rows, detail, record = RUNNERS[job](inv, settings)
    except InventoryError as error:
        result, rows, detail = "error", 0, {"code": error.code, "sqlstate": error.actual_sqlstate,
                                            "message": error.message}
    except OSError as error:  # the anchor file could not be written
        result, rows, detail = "error", 0, {"code": "ANCHOR_NOT_WRITTEN", "message": str(error)}
    seconds = time.perf_counter() - started
    if record:
        outcome = result if result != "error" else f"error: {detail['code']}: {detail['message']}"[:200]
        try:
            inv.record_maintenance_run(job, rows, timedelta(seconds=seconds), outcome)
        except InventoryError as error:
            detail = {**detail, "not_recorded": f"{error.code}: {error.message}"}
    return JobRun(job, result, rows, round(seconds, 3), started_at, detail)


# -- logging --------------------------------------------------------------------------------------------------


class Log:
    """One line per event on `stream`: text, or (as_json) one JSON object per line."""

    def __init__(self, stream: TextIO | None = None, as_json: bool = False, runner_id: str = "") -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.runner_id = runner_id
        self.lock = threading.Lock()

    def event(self, event: str, message: str, **fields: Any) -> None:
        now = datetime.now(timezone.utc)
        with self.lock:
            if self.as_json:
                record = {"time": now.isoformat(timespec="milliseconds"), "event": event,
                          "runner": self.runner_id, **fields, "message": message}
                self.stream.write(json.dumps(record, default=str) + "\n")
            else:
                self.stream.write(f"{now.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {message}\n")
            self.stream.flush()

    def job(self, run: JobRun) -> None:
        extra = " ".join(f"{key}={value}" for key, value in run.detail.items())
        self.event("job", f"{run.job} {run.result} rows={run.rows} {run.seconds:.3f}s" + (f" {extra}" if extra else ""),
                   job=run.job, result=run.result, rows=run.rows, seconds=run.seconds,
                   started_at=run.started_at.isoformat(timespec="milliseconds"), detail=run.detail)


# -- the runner -----------------------------------------------------------------------------------------------


class Runner:
    """Runs the maintenance jobs while this runner leads. `connect()` opens a new client (one for the
    lease, one for the jobs). stop() (or SIGTERM/SIGINT within signals_stop()) ends run() after the job
    under way: the lease is released so that another runner takes over at once."""

    def __init__(self, connect: Callable[[], Inventory], settings: Settings | None = None, *,
                 runner_id: str | None = None, log: Log | None = None) -> None:
        self.connect = connect
        self.settings = settings or Settings()
        self.runner_id = runner_id or new_runner_id()
        self.log = log or Log(runner_id=self.runner_id)
        self.log.runner_id = self.runner_id
        self.stopping = threading.Event()
        self._lease_valid_until = 0.0  # time.monotonic() until which this runner surely leads
        self._lease_lock = threading.Lock()
        self._next_due: dict[str, float] = {}  # job -> time.monotonic() when it is next due
        self._lease_client: Inventory | None = None
        self._was_leading: bool | None = None  # None: not asked yet
        self._reseed = threading.Event()  # set by the lease thread when this runner gains the lead

    # the lease ---------------------------------------------------------------------------------------------

    def leading(self) -> bool:
        with self._lease_lock:
            return time.monotonic() < self._lease_valid_until

    def claim(self) -> bool:
        """Claim or renew the lease once; whether this runner leads now."""
        asked = time.monotonic()
        try:
            if self._lease_client is None:
                self._lease_client = self.connect()
                self._lease_client.retry = None  # a late answer is worse than none: ask again next time
            leads = self._lease_client.claim_maintenance_lease(self.runner_id, self.settings.lease_seconds)
        except InventoryError as error:
            if error.actual_sqlstate == "42501":
                raise
            self.log.event("lease", f"cannot renew the lease: {error.code}: {error.message}", result="error",
                           code=error.code)
            leads = False
        except Exception as error:  # the connection failed: try a new one next time
            self.log.event("lease", f"cannot renew the lease: {translate_message(error)}", result="error")
            self._drop_lease_client()
            leads = False
        with self._lease_lock:
            # The lease runs from when it was asked for, so it ends here no later than on the server.
            self._lease_valid_until = asked + self.settings.lease_seconds - 0.5 if leads else 0.0
        if leads != self._was_leading:
            self._was_leading = leads
            if leads:
                self._reseed.set()  # read the jobs' last runs again: another runner may have run them
                self.log.event("lead", f"runner {self.runner_id} leads: running maintenance jobs", leading=True)
            else:
                self.log.event("lead", f"runner {self.runner_id} does not lead", leading=False)
        return leads

    def release(self) -> None:
        with self._lease_lock:
            self._lease_valid_until = 0.0
        if self._lease_client is None or not self._was_leading:
            return
        try:
            if self._lease_client.release_maintenance_lease(self.runner_id):
                self.log.event("lead", f"runner {self.runner_id} released the lead", leading=False)
        except Exception as error:  # the lease runs out by itself
            self.log.event("lead", f"cannot release the lead: {translate_message(error)}", result="error")
        self._was_leading = False

    def _drop_lease_client(self) -> None:
        if self._lease_client is not None:
            with suppress(Exception):
                self._lease_client.close()
            self._lease_client = None

    def _renew_until_stopped(self, done: threading.Event) -> None:
        while not done.wait(self.settings.renew_seconds):
            try:
                self.claim()
            except InventoryError:  # 42501: reported by the main thread's first claim
                return

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renews the lease every renew_seconds in a thread of its own while the block runs."""
        done = threading.Event()
        thread = threading.Thread(target=self._renew_until_stopped, args=(done,), name="pyinv-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    # the jobs ----------------------------------------------------------------------------------------------

    def _seed_schedule(self, inv: Inventory) -> None:
        """When each job is next due, from its last start recorded in the database (by any runner)."""
        since_start: dict[str, float] = {}
        for status in inv.maintenance_status():
            if status.last_started_at and status.last_finished_at and status.lag is not None:
                since_start[status.job] = (status.lag + (status.last_finished_at - status.last_started_at)
                                           ).total_seconds()
        now = time.monotonic()
        for job in self.settings.jobs():
            interval = self.settings.intervals[job].total_seconds()
            if job not in since_start:
                self._next_due[job] = now
            else:
                since = since_start[job]
                # A little early rather than a whole interval late (e.g. cron's minute against a 60 s job).
                self._next_due[job] = now + max(0.0, interval - since - min(interval * 0.1, 10.0))

    def due_jobs(self, inv: Inventory) -> list[str]:
        if self._reseed.is_set() or not self._next_due:
            self._reseed.clear()
            self._next_due.clear()
            self._seed_schedule(inv)
        now = time.monotonic()
        return [job for job in self.settings.jobs() if self._next_due.get(job, now) <= now]

    def run_due(self, inv: Inventory, available: set[str]) -> list[JobRun]:
        runs = []
        for job in self.due_jobs(inv):
            if self.stopping.is_set() or not self.leading():
                break
            started = time.monotonic()
            if job in available:
                run = run_job(inv, job, self.settings)
            else:
                run = JobRun(job, "skipped", 0, 0.0, datetime.now(timezone.utc),
                             {"reason": f"this database has no {JOB_FUNCTIONS[job]}"})
            self._next_due[job] = started + self.settings.intervals[job].total_seconds()
            self.log.job(run)
            runs.append(run)
        return runs

    def available_jobs(self, inv: Inventory) -> set[str]:
        """The jobs whose function this database has."""
        rows = inv.connection.execute(
            "select job from unnest(%s::text[], %s::text[]) as j (job, function)"
            " where to_regprocedure(j.function) is not null",
            (list(JOB_FUNCTIONS), list(JOB_FUNCTIONS.values()))).fetchall()
        return {job for (job,) in rows}

    def run(self, once: bool = False) -> list[JobRun]:
        """Run jobs while leading until stop() (with once: claim once, run what is due if leading, and
        return). Returns the runs made (all of them with once)."""
        runs: list[JobRun] = []
        inv = self.connect()
        try:
            available = self.available_jobs(inv)
            self.log.event("start", f"runner {self.runner_id} started: "
                           + ", ".join(f"{job} every {human(self.settings.intervals[job])}"
                                       for job in self.settings.jobs()),
                           jobs={job: self.settings.intervals[job].total_seconds() for job in self.settings.jobs()},
                           once=once)
            self.claim()
            with self.heartbeat():
                if once:
                    if self.leading():
                        runs = self.run_due(inv, available)
                    else:
                        self.log.event("stop", "another runner leads: nothing run", leading=False)
                    return runs
                while not self.stopping.is_set():
                    if self.leading():
                        try:
                            runs.extend(self.run_due(inv, available))
                        except InventoryError as error:  # e.g. the connection broke: try again shortly
                            self.log.event("error", f"cannot run jobs: {error.code}: {error.message}",
                                           result="error", code=error.code)
                        now = time.monotonic()
                        wait = min([*(due - now for due in self._next_due.values()), self.settings.renew_seconds])
                    else:
                        self._next_due.clear()
                        wait = self.settings.renew_seconds
                    self.stopping.wait(max(wait, 0.05))
                    if len(runs) > 1000:
                        del runs[:-100]
        finally:
            self.release()
            self._drop_lease_client()
            inv.close()
            self.log.event("stop", f"runner {self.runner_id} stopped", leading=False)
        return runs

    def stop(self) -> None:
        self.stopping.set()

    def signals_stop(self) -> AbstractContextManager[None]:
        """While the block runs, SIGTERM and SIGINT stop the runner after the job under way (the main
        thread only); the previous handlers are restored after it."""

        def stop(received: signal.Signals) -> None:
            self.log.event("signal", f"{received.name}: stopping after the job under way", signal=received.name)
            self.stop()

        return on_stop_signals(stop)


def translate_message(error: BaseException) -> str:
    translated = translate(error) if isinstance(error, psycopg.Error) else error
    if isinstance(translated, InventoryError):
        return f"{translated.code}: {translated.message}"
    return f"{type(error).__name__}: {error}"


def human(interval: timedelta) -> str:
    seconds = interval.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- pg_cron --------------------------------------------------------------------------------------------------

CRON_PREFIX = "pyinv_"


def cron_commands(settings: Settings) -> dict[str, tuple[str, str]]:
    """pg_cron job name -> (schedule, command) for the jobs pg_cron can run (every job but
    audit_anchor, whose file must be written outside the database). pg_cron schedules in whole
    minutes: an interval is rounded up to a minute, and written as */N of its unit."""
    commands: dict[str, tuple[str, str]] = {}
    for job in settings.jobs():
        if job == "audit_anchor":
            continue
        minutes = max(1, -(-int(settings.intervals[job].total_seconds()) // 60))
        if job == "expire_reservations":
            command = (f"select inventory_api.record_maintenance_run('expire_reservations', "
                       f"inventory_api.expire_reservations({settings.expire_batch_size}))")
        elif job == "seal_audit_log":
            command = f"select inventory_api.seal_audit_log({settings.seal_batch_size})"
        else:
            command = f"select inventory_api.{job}()"
        commands[CRON_PREFIX + job] = (_cron_schedule(minutes), command)
    return commands


def _cron_schedule(minutes: int) -> str:
    if minutes < 60:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes < 1440:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    days = minutes // 1440
    return "30 3 * * *" if days == 1 else f"30 3 */{days} * *"


class PgCronUnavailable(Exception):
    """pg_cron is not installed in this database and cannot be (advice says what to do)."""

    def __init__(self, message: str, advice: str) -> None:
        super().__init__(message)
        self.message = message
        self.advice = advice


def ensure_pg_cron(connection: psycopg.Connection[Any]) -> None:
    """Make sure the pg_cron extension is in this database (creating it when the server can)."""
    if connection.execute("select exists (select from pg_extension where extname = 'pg_cron')").fetchone()[0]:  # type: ignore[index]
        return
    if not connection.execute(
            "select exists (select from pg_available_extensions where name = 'pg_cron')").fetchone()[0]:  # type: ignore[index]
        raise PgCronUnavailable("pg_cron is not available on this PostgreSQL server",
                                "Install it (Debian: apt-get install postgresql-15-cron; Supabase has it), or run "
                                "`pyinv maintain` as a service instead.")
    try:
        with connection.transaction():
            connection.execute("create extension pg_cron")
    except psycopg.Error as error:
        raise PgCronUnavailable(
            f"cannot create the pg_cron extension here: {str(error).strip().splitlines()[0]}",
            "pg_cron needs shared_preload_libraries = 'pg_cron' and cron.database_name = this database in "
            "postgresql.conf (then a restart), and a superuser to run `create extension pg_cron` once.") from error


def schedule_pg_cron(connection: psycopg.Connection[Any], settings: Settings) -> list[tuple[str, str, str]]:
    """Register the jobs with pg_cron (cron.schedule, which replaces a job of the same name) and
    unregister pyinv's jobs no longer wanted; returns (name, schedule, command) of each."""
    ensure_pg_cron(connection)
    wanted = cron_commands(settings)
    with connection.transaction():
        for name, (schedule, command) in wanted.items():
            connection.execute("select cron.schedule(%s, %s, %s)", (name, schedule, command))
        for (name,) in connection.execute(
                "select jobname from cron.job where jobname like %s and username = current_user",
                (CRON_PREFIX.replace("_", r"\_") + "%",)).fetchall():
            if name not in wanted:
                connection.execute("select cron.unschedule(%s)", (name,))
    return [(name, schedule, command) for name, (schedule, command) in wanted.items()]


def unschedule_pg_cron(connection: psycopg.Connection[Any]) -> list[str]:
    """Unregister every pyinv job from pg_cron; returns their names (none when pg_cron is absent)."""
    if not connection.execute("select exists (select from pg_extension where extname = 'pg_cron')").fetchone()[0]:  # type: ignore[index]
        return []
    with connection.transaction():
        names = [name for (name,) in connection.execute(
            "select jobname from cron.job where jobname like %s and username = current_user order by jobname",
            (CRON_PREFIX.replace("_", r"\_") + "%",)).fetchall()]
        for name in names:
            connection.execute("select cron.unschedule(%s)", (name,))
    return names
