"""The maintenance runner (`pyinv maintain`), its leader election, `pyinv status` and the pg_cron
registration (`pyinv schedule --pg-cron`), on a real server: runners are real processes, killed for
real."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import migrate_template
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pyinv import Inventory, PermissionDenied
from pyinv.maintenance import JOBS, Settings, cron_commands, load_settings

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--every", "expire_reservations=1s", "--every", "seal_audit_log=1s", "--every", "refresh_inventory_views=1s",
        "--every", "check_reorder_points=1s", "--every", "expire_inventory_lots=1s", "--every", "purge_events=1s"]


@pytest.fixture
def scheduler_dsn(db: psycopg.Connection[Any], login_dsn: Callable[[str], str]) -> str:
    """A login that is a member of inventory_scheduler, as a service running `pyinv maintain` would be."""
    db.execute("""
        do $$ begin
          if not exists (select from pg_roles where rolname = 'pyinv_scheduler') then
            create role pyinv_scheduler login password 'pyinv-test';
          end if;
        end $$""")
    db.execute("grant inventory_scheduler to pyinv_scheduler")
    return login_dsn("pyinv_scheduler")


def job_lines(output: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, output.splitlines()) if line["event"] == "job"]


class RunnerProcess:
    """`pyinv maintain --json ...` in a process of its own; its log lines are collected as they come."""

    def __init__(self, dsn: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyinv.cli", "--dsn", dsn, "--json", "maintain", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), json.loads(line)))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> float:
        """The time of the first log line for which predicate holds (waiting for it up to timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if predicate(line):
                    return at
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        raise AssertionError(f"no such log line in {timeout}s: {[line for _, line in self.lines]} {stderr}")

    def jobs(self) -> list[dict[str, Any]]:
        return [line for _, line in self.lines if line["event"] == "job"]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal it and wait for it to exit; its exit code (0 expected: a failure shows its log)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self.reader.join(5)
        if code != 0:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            print("runner exited", code, [line for _, line in self.lines], stderr)
        return code


@pytest.fixture
def runners() -> Iterator[Callable[..., RunnerProcess]]:
    started: list[RunnerProcess] = []

    def start(dsn: str, *args: str) -> RunnerProcess:
        runner = RunnerProcess(dsn, *args)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait()


def leads(line: dict[str, Any]) -> bool:
    return line["event"] == "lead" and line.get("leading") is True


# -- --once ----------------------------------------------------------------------------------------------------


def test_once_runs_every_due_job_once_and_records_it(catalogue: Inventory, db, run, scheduler_dsn: str,
                                                      tmp_path: Path) -> None:
    catalogue.reserve_stock("A1", 2, "SO-OLD")
    catalogue.reserve_stock("B2", 1, "SO-NEW")
    db.execute("update inventory.reservations set expires_at = now() - interval '1 second' where order_ref = 'SO-OLD'")
    result = run("--json", "maintain", "--once", "--anchor-dir", str(tmp_path), dsn_=scheduler_dsn)
    ran = {line["job"]: line for line in job_lines(result.stdout)}
    assert list(ran) == list(JOBS), "each due job once, in order"
    assert {job: line["result"] for job, line in ran.items()} == dict.fromkeys(JOBS, "ok")
    assert ran["expire_reservations"]["rows"] == 1 and ran["expire_reservations"]["detail"] == {"batches": 1}
    assert ran["seal_audit_log"]["rows"] > 0
    assert ran["check_reorder_points"]["detail"] == {"opened": 0, "escalated": 0, "resolved": 0}
    [anchor] = tmp_path.iterdir()
    assert json.loads(anchor.read_text())["format"] and ran["audit_anchor"]["detail"] == {"file": str(anchor)}
    assert all(isinstance(line["seconds"], float) for line in ran.values())
    # Recorded, as maintenance_status shows it.
    status = {row.job: row for row in catalogue.maintenance_status()}
    for job in JOBS:
        assert status[job].last_finished_at is not None, job
        assert status[job].last_result and not status[job].last_result.startswith("error"), job
    assert status["expire_reservations"].last_rows == 1 and status["audit_anchor"].last_rows == 1
    assert db.execute("select status from inventory.reservations where order_ref = 'SO-OLD'").fetchone() == ("EXPIRED",)
    # The runner released the lead on its way out; run again at once, nothing is due.
    assert catalogue.maintenance_leader() is None
    again = run("--json", "maintain", "--once", "--anchor-dir", str(tmp_path), dsn_=scheduler_dsn)
    assert job_lines(again.stdout) == []
    assert len(list(tmp_path.iterdir())) == 1


def test_once_without_an_anchor_dir_takes_no_anchor_and_intervals_choose_what_is_due(
        catalogue: Inventory, run, scheduler_dsn: str) -> None:
    first = run("--json", "maintain", "--once", "--every", "check_reorder_points=off", dsn_=scheduler_dsn)
    assert [line["job"] for line in job_lines(first.stdout)] == [
        "expire_reservations", "seal_audit_log", "refresh_inventory_views", "expire_inventory_lots", "purge_events"]
    time.sleep(1.2)
    second = run("--json", "maintain", "--once", "--every", "seal_audit_log=1s", dsn_=scheduler_dsn)
    assert [line["job"] for line in job_lines(second.stdout)] == ["seal_audit_log", "check_reorder_points"]


def test_a_job_whose_function_the_schema_lacks_is_skipped(catalogue: Inventory, run, db, scheduler_dsn: str) -> None:
    db.execute("drop function inventory_api.refresh_inventory_views()")  # as on a schema before issue 13
    ran = {line["job"]: line for line in job_lines(run("--json", "maintain", "--once", dsn_=scheduler_dsn).stdout)}
    assert ran["refresh_inventory_views"]["result"] == "skipped"
    assert "inventory_api.refresh_inventory_views()" in ran["refresh_inventory_views"]["detail"]["reason"]
    assert ran["seal_audit_log"]["result"] == ran["check_reorder_points"]["result"] == "ok"


def test_text_log_is_one_line_per_job_with_counts_and_duration(catalogue: Inventory, run, scheduler_dsn: str) -> None:
    result = run("maintain", "--once", "--every", "audit_anchor=off", dsn_=scheduler_dsn)
    lines = [line for line in result.stdout.splitlines() if " rows=" in line]
    assert [line.split()[1] for line in lines] == [job for job in JOBS if job != "audit_anchor"]
    assert all(line.split()[2] == "ok" and line.split()[4].endswith("s") for line in lines)


def test_once_when_another_runner_leads_runs_nothing(catalogue: Inventory, run, scheduler_dsn: str,
                                                     connect) -> None:
    other = Inventory(connect(scheduler_dsn))
    assert other.claim_maintenance_lease("other-runner", 60) is True
    result = run("--json", "maintain", "--once", dsn_=scheduler_dsn)
    assert job_lines(result.stdout) == []
    assert "another runner leads" in result.stdout
    assert all(row.last_started_at is None for row in catalogue.maintenance_status())
    leader = catalogue.maintenance_leader()
    assert leader is not None and leader.runner_id == "other-runner" and leader.is_current


def test_a_failing_job_is_logged_recorded_and_fails_once(catalogue: Inventory, run, scheduler_dsn: str, db,
                                                         tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run("--json", "maintain", "--once", "--anchor-dir", str(tmp_path / "file" / "anchors"), exit_code=1,
                 dsn_=scheduler_dsn)
    ran = {line["job"]: line for line in job_lines(result.stdout)}
    assert ran["audit_anchor"]["result"] == "error"
    assert ran["audit_anchor"]["detail"]["code"] == "ANCHOR_NOT_WRITTEN"
    status = {row.job: row for row in catalogue.maintenance_status()}
    assert status["audit_anchor"].last_result.startswith("error: ANCHOR_NOT_WRITTEN")
    assert status["seal_audit_log"].last_result == "ok"


# -- the lease ---------------------------------------------------------------------------------------------


def test_one_lease_at_a_time_and_a_lapsed_lease_is_taken_over(scheduler_dsn: str, connect) -> None:
    first, second = Inventory(connect(scheduler_dsn)), Inventory(connect(scheduler_dsn))
    assert first.claim_maintenance_lease("a", 2) is True
    assert second.claim_maintenance_lease("b", 2) is False
    assert first.claim_maintenance_lease("a", 2) is True  # renewing
    claimed = first.maintenance_leader()
    assert claimed is not None and claimed.runner_id == "a" and claimed.is_current
    time.sleep(2.2)  # "a" stopped renewing, its session still open
    assert second.claim_maintenance_lease("b", 2) is True
    assert first.claim_maintenance_lease("a", 2) is False
    assert first.release_maintenance_lease("a") is False  # not the leader: releases nothing
    assert second.release_maintenance_lease("b") is True
    assert first.maintenance_leader() is None
    assert first.claim_maintenance_lease("a", 2) is True  # released: the next claim takes it at once


def test_a_leader_whose_session_is_gone_is_replaced_at_once(scheduler_dsn: str, connect) -> None:
    gone = connect(scheduler_dsn)
    assert Inventory(gone).claim_maintenance_lease("gone", 600) is True
    gone.close()
    other = Inventory(connect(scheduler_dsn))
    deadline = time.monotonic() + 5  # the backend exits as soon as it reads the closed socket
    while not other.claim_maintenance_lease("other", 5):
        assert time.monotonic() < deadline, "the lease of a closed session was not taken over"
        time.sleep(0.05)


def test_a_login_without_the_scheduler_role_cannot_claim_the_lease(catalogue: Inventory, clerk: Inventory, db,
                                                                    login_dsn, connect, run) -> None:
    for call in (lambda: clerk.claim_maintenance_lease("clerk"), lambda: clerk.release_maintenance_lease("x"),
                 lambda: clerk.maintenance_leader(), lambda: clerk.record_maintenance_run("seal_audit_log", 1)):
        with pytest.raises(PermissionDenied) as caught:
            call()
        assert caught.value.actual_sqlstate == "42501" and caught.value.hint == "PERMISSION_DENIED"
    attacker = connect(login_dsn("pyinv_attacker"))
    for statement in ("select inventory_api.claim_maintenance_lease('attacker', 3600)",
                      "select inventory.claim_maintenance_lease('attacker', 3600)",
                      "insert into inventory.maintenance_leader (runner_id, leader_pid, claimed_at, renewed_at,"
                      " lease_until) values ('attacker', 1, now(), now(), 'infinity')",
                      "select * from inventory.maintenance_leader for update"):
        with pytest.raises(psycopg.Error) as error:
            attacker.execute(statement)
        assert error.value.sqlstate == "42501", statement
    assert catalogue.maintenance_leader() is None
    # The runner itself stops at once with the permission exit code.
    result = run("--json", "maintain", "--once", exit_code=4, dsn_=login_dsn("pyinv_clerk"))
    assert json.loads(result.stderr.splitlines()[-1])["error"]["sqlstate"] == "42501"


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"runner_id": "", "lease_seconds": 5}, "length"),
    ({"runner_id": " r", "lease_seconds": 5}, "surrounding blanks"),
    ({"runner_id": "r", "lease_seconds": 0}, "out of range"),
    ({"runner_id": "r", "lease_seconds": 3601}, "out of range"),
])
def test_bad_lease_arguments_are_refused(db, arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(psycopg.Error) as caught:
        db.execute("select inventory_api.claim_maintenance_lease(runner_id => %(runner_id)s,"
                   " lease_seconds => %(lease_seconds)s)", arguments)
    assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("22023", "INVALID_ARGUMENT")
    assert json.loads(caught.value.diag.message_detail)["problem"] == problem
    assert db.execute("select count(*) from inventory.maintenance_leader").fetchone() == (0,)


def test_record_maintenance_run_refuses_unknown_jobs_and_bad_counts(db) -> None:
    for statement, argument in (("select inventory_api.record_maintenance_run('no_such_job', 1)", "job"),
                                ("select inventory_api.record_maintenance_run('audit_anchor', -1)", "rows_touched"),
                                ("select inventory_api.record_maintenance_run('audit_anchor', 1, '-1 s')", "duration")):
        with pytest.raises(psycopg.Error) as caught:
            db.execute(statement)
        assert (caught.value.sqlstate, caught.value.diag.message_hint) == ("22023", "INVALID_ARGUMENT")
        assert json.loads(caught.value.diag.message_detail)["argument"] == argument


# -- runners in processes of their own ---------------------------------------------------------------------


def test_two_runners_run_each_job_once_per_interval(catalogue: Inventory, scheduler_dsn: str, runners) -> None:
    first = runners(scheduler_dsn, *FAST, "--lease", "3", "--renew", "0.3")
    second = runners(scheduler_dsn, *FAST, "--lease", "3", "--renew", "0.3")
    deadline = time.monotonic() + 30
    while not any(leads(line) for runner in (first, second) for _, line in runner.lines):
        assert time.monotonic() < deadline, "no runner took the lead"
        time.sleep(0.05)
    time.sleep(6)
    assert first.stop() == 0 and second.stop() == 0
    runs = first.jobs() + second.jobs()
    by_job: dict[str, list[float]] = {}
    for line in runs:
        by_job.setdefault(line["job"], []).append(datetime.fromisoformat(line["started_at"]).timestamp())
    assert set(by_job) == set(JOBS) - {"audit_anchor"}
    for job, starts in by_job.items():
        starts.sort()
        assert len(starts) >= 4, (job, starts)  # about one a second for 6 s (plus start-up)
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert min(gaps) >= 0.85, (job, gaps)  # never twice within an interval, whichever runner ran it


def test_killing_the_leader_hands_over_within_seconds(catalogue: Inventory, scheduler_dsn: str, runners) -> None:
    leader = runners(scheduler_dsn, *FAST)
    leader.wait_for(leads)
    follower = runners(scheduler_dsn, *FAST)
    follower.wait_for(lambda line: line["event"] == "lead" and line.get("leading") is False)
    assert follower.jobs() == [], [line for _, line in leader.lines + follower.lines]
    leader.process.kill()  # SIGKILL: no clean shutdown, no release
    killed = time.monotonic()
    took_over = follower.wait_for(leads, timeout=10)
    assert took_over - killed < 10, took_over - killed
    follower.wait_for(lambda line: line["event"] == "job" and line["job"] == "seal_audit_log")
    assert follower.stop() == 0


def test_sigterm_finishes_the_job_under_way_and_releases_the_lead(catalogue: Inventory, scheduler_dsn: str,
                                                                  runners, db, connect) -> None:
    blocker = connect()
    blocker.autocommit = False
    # check_reorder_points waits for a run in progress: hold its job row as such a run would.
    blocker.execute("select from inventory.maintenance_jobs where job = 'check_reorder_points' for update")
    runner = runners(scheduler_dsn, *FAST)
    runner.wait_for(lambda line: line["event"] == "job" and line["job"] == "refresh_inventory_views")
    time.sleep(0.5)  # now inside check_reorder_points, waiting
    runner.process.send_signal(signal.SIGTERM)
    runner.wait_for(lambda line: line["event"] == "signal")
    time.sleep(1)
    assert runner.process.poll() is None, "it stopped in the middle of a job"
    blocker.rollback()
    assert runner.stop(timeout=20) == 0
    lines = [line for _, line in runner.lines]
    events = [line["event"] for line in lines]
    after_signal = lines[events.index("signal"):]
    assert [line["job"] for line in after_signal if line["event"] == "job"] == ["check_reorder_points"]
    assert any(line["event"] == "lead" and "released" in line["message"] for line in after_signal)
    assert events[-1] == "stop"
    assert Inventory(connect()).maintenance_leader() is None


# -- pyinv status ------------------------------------------------------------------------------------------


def test_status_shows_each_job_and_the_leader(catalogue: Inventory, run, scheduler_dsn: str, connect) -> None:
    before = json.loads(run("--json", "status").stdout)
    assert {job["job"] for job in before["jobs"]} >= set(JOBS)
    assert before["leader"] is None and all(job["last_finished_at"] is None for job in before["jobs"])
    run("maintain", "--once", dsn_=scheduler_dsn)
    assert Inventory(connect(scheduler_dsn)).claim_maintenance_lease("status-test", 60)
    after = json.loads(run("--json", "status").stdout)
    jobs = {job["job"]: job for job in after["jobs"]}
    assert jobs["seal_audit_log"]["last_result"] == "ok" and jobs["seal_audit_log"]["lag"] is not None
    assert jobs["audit_anchor"]["last_finished_at"] is None  # not configured
    assert after["leader"]["runner_id"] == "status-test" and after["leader"]["is_current"] is True
    text = run("status").stdout
    assert "seal_audit_log" in text and "leader: status-test" in text


def test_status_for_a_viewer_leaves_out_the_leader(catalogue: Inventory, run, db, login_dsn) -> None:
    db.execute("grant inventory_viewer to pyinv_attacker")
    try:
        result = json.loads(run("--json", "status", dsn_=login_dsn("pyinv_attacker")).stdout)
    finally:
        db.execute("revoke inventory_viewer from pyinv_attacker")
    assert result["leader"] is None and len(result["jobs"]) >= len(JOBS)


# -- settings ------------------------------------------------------------------------------------------------


def test_settings_from_a_file_and_options(tmp_path: Path) -> None:
    config = tmp_path / "maintain.toml"
    config.write_text('[maintain]\nlease_seconds = 10\nanchor_dir = "/srv/anchors"\n'
                      '[maintain.intervals]\nrefresh_inventory_views = "10m"\nexpire_inventory_lots = "off"\n')
    settings = load_settings(config, {"seal_audit_log": timedelta(seconds=30)})
    assert settings.lease_seconds == 10 and settings.anchor_dir == Path("/srv/anchors")
    assert settings.intervals["refresh_inventory_views"] == timedelta(minutes=10)
    assert settings.intervals["seal_audit_log"] == timedelta(seconds=30)
    assert settings.jobs() == ["expire_reservations", "seal_audit_log", "refresh_inventory_views",
                               "check_reorder_points", "purge_events", "audit_anchor"]
    with pytest.raises(ValueError, match="unknown maintenance job"):
        load_settings(None, {"vacuum": timedelta(seconds=1)})
    with pytest.raises(ValueError, match="renew_seconds"):
        load_settings(None, lease_seconds=1, renew_seconds=2)


def test_bad_options_are_usage_errors(run) -> None:
    result = run("--json", "maintain", "--every", "vacuum=1m", exit_code=2)
    assert json.loads(result.stderr)["error"]["code"] == "USAGE_ERROR"
    run("maintain", "--every", "seal_audit_log=soon", exit_code=2)


# -- pg_cron ---------------------------------------------------------------------------------------------


def test_pg_cron_commands_are_the_same_jobs() -> None:
    commands = cron_commands(Settings())
    assert commands == {
        "pyinv_expire_reservations": ("* * * * *", "select inventory_api.record_maintenance_run("
                                      "'expire_reservations', inventory_api.expire_reservations(1000))"),
        "pyinv_seal_audit_log": ("* * * * *", "select inventory_api.seal_audit_log(10000)"),
        "pyinv_refresh_inventory_views": ("*/5 * * * *", "select inventory_api.refresh_inventory_views()"),
        "pyinv_check_reorder_points": ("0 * * * *", "select inventory_api.check_reorder_points()"),
        "pyinv_expire_inventory_lots": ("30 3 * * *", "select inventory_api.expire_inventory_lots()"),
        "pyinv_purge_events": ("30 3 * * *", "select inventory_api.purge_events()"),
    }


def test_schedule_needs_the_scheduler_role(catalogue: Inventory, run, login_dsn) -> None:
    error = json.loads(run("--json", "schedule", "--pg-cron", exit_code=4, dsn_=login_dsn("pyinv_clerk")).stderr)
    assert (error["error"]["code"], error["error"]["sqlstate"]) == ("PERMISSION_DENIED", "42501")


def test_schedule_without_pg_cron_says_so(run, db) -> None:
    if db.execute("select exists (select from pg_extension where extname = 'pg_cron')").fetchone()[0]:
        pytest.skip("pg_cron is installed in the test database")
    result = run("--json", "schedule", "--pg-cron", exit_code=3)
    assert json.loads(result.stderr)["error"]["code"] == "PG_CRON_UNAVAILABLE"
    assert json.loads(run("--json", "schedule", "--pg-cron", "--remove").stdout) == {"removed": []}


@pytest.fixture
def cron_dsn(db: psycopg.Connection[Any], dsn: str) -> Iterator[str]:
    """A pyinv database in the database pg_cron serves (cron.database_name), where the server preloads
    pg_cron (the CI's PostgreSQL 15 cluster); skipped elsewhere."""
    available = db.execute("select exists (select from pg_available_extensions where name = 'pg_cron')").fetchone()[0]
    preloaded = "pg_cron" in db.execute("select current_setting('shared_preload_libraries')").fetchone()[0]
    if not (available and preloaded):
        if os.environ.get("PYINV_REQUIRE_PG_CRON"):
            pytest.fail("PYINV_REQUIRE_PG_CRON is set but this server does not preload pg_cron")
        pytest.skip("pg_cron is not available and preloaded on this server (CI: Debian PostgreSQL 15 with "
                    "postgresql-15-cron)")
    name = db.execute("select current_setting('cron.database_name')").fetchone()[0]
    drop = sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
    db.execute(drop)
    db.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    cron = make_conninfo(dsn, dbname=name)
    params = conninfo_to_dict(cron)
    migrate_template(params.get("host") or "localhost", int(params.get("port") or 5432),
                     params.get("user") or "postgres", name, params.get("password") or "")
    with psycopg.connect(cron, autocommit=True) as connection:
        connection.execute("create extension if not exists pg_cron")
    yield cron
    db.execute(drop)


def test_schedule_pg_cron_registers_and_removes_the_jobs(cron_dsn: str, run) -> None:
    result = json.loads(run("--json", "schedule", "--pg-cron", "--every", "refresh_inventory_views=10m",
                            dsn_=cron_dsn).stdout)
    scheduled = {row["name"]: (row["schedule"], row["command"]) for row in result["scheduled"]}
    with psycopg.connect(cron_dsn, autocommit=True) as connection:
        jobs = {name: (schedule, command) for name, schedule, command in connection.execute(
            "select jobname, schedule, command from cron.job where jobname like 'pyinv\\_%'")}
        assert jobs == scheduled and jobs["pyinv_refresh_inventory_views"][0] == "*/10 * * * *"
        for _, command in jobs.values():  # what pg_cron will run works here
            connection.execute(command)
        status = {job: result for job, result in connection.execute(
            "select job, last_result from inventory_api.maintenance_status")}
        assert status["expire_reservations"] == "ok" and status["seal_audit_log"] == "ok"
    # Registering again replaces them; an interval turned off is unregistered.
    run("schedule", "--pg-cron", "--every", "check_reorder_points=off", dsn_=cron_dsn)
    with psycopg.connect(cron_dsn, autocommit=True) as connection:
        names = {name for (name,) in connection.execute("select jobname from cron.job")}
        assert names == {f"pyinv_{job}" for job in JOBS} - {"pyinv_check_reorder_points", "pyinv_audit_anchor"}
    removed = json.loads(run("--json", "schedule", "--pg-cron", "--remove", dsn_=cron_dsn).stdout)["removed"]
    assert set(removed) == names
    with psycopg.connect(cron_dsn, autocommit=True) as connection:
        assert connection.execute("select count(*) from cron.job").fetchone() == (0,)
