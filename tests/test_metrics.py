"""Metrics (issue 13): every figure of inventory_api.inventory_metrics against a hand-computed scene, what
location-scoped users see, the Prometheus text exposition parsed back line by line, and `pyinv metrics
serve` scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import PostgREST

from pyinv import AsyncInventory, Inventory, PermissionDenied
from pyinv.maintenance import DEFAULT_INTERVALS
from pyinv.metrics import CONTENT_TYPE, prometheus_text
from pyinv.models import Metric

D = Decimal
ROOT = Path(__file__).resolve().parent.parent
METRICS = ["audit_rows_unsealed", "holds_expired_last_day", "inventory_accuracy", "inventory_turnover",
           "items_at_or_below_reorder_point", "lot_expiration_waste_units", "lot_expiration_waste_value",
           "maintenance_jobs_never_run", "maintenance_lag_seconds", "out_of_stock_levels", "reservation_fill_rate",
           "stock_out_rate"]


def figures(inv: Inventory) -> dict[str, Decimal | None]:
    return {metric.metric: metric.value for metric in inv.inventory_metrics()}


@pytest.fixture
def scene(catalogue: Inventory, db: psycopg.Connection[Any]) -> Inventory:
    """A hand-built inventory whose every metric is computed by hand in the tests below.

    From the catalogue (A1: 10 at main, B2: 5 at main, location east), all of it today:
      A1   main: SO-F 3 held and shipped (FULFILLED), SO-P 2 held, 1 shipped, then cancelled -> on hand 6,
           available 6; counted 6 (exact). east: 4 received, SO-O 1 lapsed (overdue, not swept) ->
           on hand 4, available 4; counted 4 (exact).
      B2   main: SO-X 1 held and cancelled, SO-E 2 held and expired (swept), counted 4 (1 missing: applied),
           then SO-A 4 held -> on hand 4, reserved 4, available 0 (out of stock). Policy 1/0.
      C3   main: cost 10, 2 received, 1 written off with reason expired -> on hand 1, available 1. Policy 1/0.
      LT   lot-tracked, cost 1.5; main: lot L1 3 at cost 4 and L2 2 without a cost, both expired and
           written off by expire_inventory_lots -> on hand 0, available 0 (out of stock).
    Levels: A1 main, A1 east, B2 main, C3 main, LT main; policies: A1 main 2/1, B2 main 1/0, C3 main 1/0.
    """
    inv = catalogue
    inv.update_item("A1", unit_cost=2)
    inv.receive_stock("A1", 4, location="east")
    inv.reserve_stock("A1", 3, "SO-F")
    inv.fulfill_order("SO-F")
    inv.reserve_stock("A1", 2, "SO-P")
    inv.fulfill_order("SO-P", "A1", 1)
    inv.cancel_reservation("SO-P")
    inv.reserve_stock("B2", 1, "SO-X")
    inv.cancel_reservation("SO-X")
    inv.reserve_stock("B2", 2, "SO-E", expires_in=timedelta(seconds=1))
    inv.reserve_stock("A1", 1, "SO-O", location="east", expires_in=timedelta(seconds=1))
    time.sleep(1.1)
    assert inv.expire_reservations(batch_size=1) == 1  # the oldest overdue hold: SO-E; SO-O stays unswept
    assert inv.record_count("A1", 6).difference == 0
    assert inv.record_count("A1", 4, location="east").difference == 0
    assert inv.record_count("B2", 4).difference == -1
    inv.reserve_stock("B2", 4, "SO-A")
    inv.create_item("C3", "Gizmo", unit_cost=10)
    inv.receive_stock("C3", 2)
    assert inv.create_adjustment("C3", -1, "write_off", "expired").status == "APPLIED"
    inv.create_item("LT", "Lotted", track_lots=True)
    inv.receive_stock("LT", 3, lot_number="L1", unit_cost=4, expires_on=date.today() + timedelta(days=5))
    inv.receive_stock("LT", 2, lot_number="L2", expires_on=date.today() + timedelta(days=9))
    inv.update_item("LT", unit_cost=D("1.5"))
    db.execute("update inventory.lots set expires_on = (now() at time zone 'UTC')::date - 1"
               " where item_id = (select item_id from inventory.items where sku = 'LT')")
    assert inv.expire_inventory_lots().units_written_off == 5
    inv.set_stock_policy("A1", "main", reorder_point=2, safety_stock=1)
    inv.set_stock_policy("B2", "main", reorder_point=1, safety_stock=0)
    inv.set_stock_policy("C3", "main", reorder_point=1, safety_stock=0)
    levels = {(s.sku, s.location): (s.on_hand, s.reserved, s.available) for s in inv.stock_levels()}
    assert levels == {("A1", "main"): (6, 0, 6), ("A1", "east"): (4, 1, 4), ("B2", "main"): (4, 4, 0),
                      ("C3", "main"): (1, 0, 1), ("LT", "main"): (0, 0, 0)}
    return inv


def test_every_metric_against_the_hand_computed_scene(scene: Inventory) -> None:
    rows = scene.inventory_metrics()
    assert [row.metric for row in rows] == METRICS  # by name
    assert all(isinstance(row, Metric) and row.description for row in rows)
    got = figures(scene)
    assert got["stock_out_rate"] == D("0.4")  # B2 main and LT main of 5 levels
    assert got["out_of_stock_levels"] == 2
    assert got["items_at_or_below_reorder_point"] == 2  # B2 (0 <= 1) and C3 (1 <= 1); A1 main 6 > 2
    # Closed in 30 days: SO-F 3 of 3 shipped, SO-P 1 of 2, SO-X 0 of 1, SO-E 0 of 2 -> 4 / 8.
    assert got["reservation_fill_rate"] == D("0.5")
    # Shipped 4; on hand now 6 + 4 + 4 + 1 + 0 = 15, a year ago 0 (all of it moved today): 4 / 7.5.
    assert got["inventory_turnover"] == D("0.533333")
    assert got["inventory_accuracy"] == D("0.666667")  # 2 of 3 counts found what the books said
    assert got["lot_expiration_waste_units"] == 6  # L1 3 + L2 2 + C3 1
    assert got["lot_expiration_waste_value"] == D(25)  # 3 x 4 (the lot's cost) + 2 x 1.5 (the item's) + 1 x 10
    assert got["holds_expired_last_day"] == 2  # SO-E (swept) and SO-O (overdue)
    units = {row.metric: (row.unit, row.period) for row in rows}
    assert units["reservation_fill_rate"] == ("ratio", timedelta(days=30))
    assert units["inventory_turnover"] == ("per year", timedelta(days=365))
    assert units["holds_expired_last_day"] == ("count", timedelta(days=1))
    assert units["stock_out_rate"] == ("ratio", None)
    assert units["maintenance_lag_seconds"] == ("seconds", None)


def test_rates_are_undefined_without_anything_to_count(inv: Inventory) -> None:
    got = figures(inv)
    assert [got[name] for name in ("stock_out_rate", "reservation_fill_rate", "inventory_turnover",
                                   "inventory_accuracy", "maintenance_lag_seconds")] == [None] * 5
    assert [got[name] for name in ("out_of_stock_levels", "items_at_or_below_reorder_point", "holds_expired_last_day",
                                   "lot_expiration_waste_units", "lot_expiration_waste_value")] == [0] * 5
    assert got["maintenance_jobs_never_run"] == 6  # with purge_events; audit_anchor runs only where configured


def test_windows_leave_older_rows_out(scene: Inventory, db: psycopg.Connection[Any]) -> None:
    """Closed holds and counts older than 30 days, lapses older than a day: out of their figures."""
    db.execute("update inventory.reservations set closed_at = now() - interval '31 days',"
               " created_at = now() - interval '32 days' where order_ref in ('SO-F', 'SO-X')")
    db.execute("update inventory.cycle_counts set counted_at = now() - interval '31 days'"
               " where location_id = (select location_id from inventory.locations where code = 'east')")
    db.execute("update inventory.reservations set expires_at = now() - interval '25 hours'"
               " where order_ref = 'SO-O'")
    got = figures(scene)
    assert got["reservation_fill_rate"] == D("0.25")  # SO-P 1 of 2, SO-E 0 of 2
    assert got["inventory_accuracy"] == D("0.5")
    assert got["holds_expired_last_day"] == 1


def test_maintenance_lag_is_lateness_against_each_job_s_default_interval(inv: Inventory,
                                                                         db: psycopg.Connection[Any]) -> None:
    jobs = [job for job in DEFAULT_INTERVALS if job != "audit_anchor"]
    assert db.execute("select job, inventory.maintenance_default_interval(job) from inventory.maintenance_jobs"
                      " where inventory.maintenance_default_interval(job) is not null order by job").fetchall() == (
        sorted((job, DEFAULT_INTERVALS[job]) for job in jobs))  # the SQL schedule is pyinv maintain's
    for late in jobs:
        db.execute("update inventory.maintenance_jobs set last_started_at = now(), last_finished_at = now()")
        db.execute("update inventory.maintenance_jobs set last_started_at = now() - %s - interval '100 seconds'"
                   " where job = %s", (DEFAULT_INTERVALS[late], late))
        lag = figures(inv)["maintenance_lag_seconds"]
        assert lag is not None and D(100) <= lag < D(110), late
    db.execute("update inventory.maintenance_jobs set last_started_at = now(), last_finished_at = now()")
    got = figures(inv)
    assert (got["maintenance_lag_seconds"], got["maintenance_jobs_never_run"]) == (0, 0)  # none is late
    db.execute("update inventory.maintenance_jobs set last_started_at = null, last_finished_at = null"
               " where job in ('check_reorder_points', 'audit_anchor')")
    assert figures(inv)["maintenance_jobs_never_run"] == 1


def test_the_audit_backlog_is_what_the_sealer_has_not_sealed(scene: Inventory, db: psycopg.Connection[Any]) -> None:
    unsealed = db.execute("select count(*) from inventory.audit_log a"
                          " where not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)"
                          ).fetchone()[0]
    assert unsealed > 0
    assert figures(scene)["audit_rows_unsealed"] == unsealed
    sealed = scene.seal_audit_log(batch_size=3)
    assert sealed == 3 and figures(scene)["audit_rows_unsealed"] == unsealed - 3
    while scene.seal_audit_log():
        pass
    assert figures(scene)["audit_rows_unsealed"] == 0
    scene.create_item("Z9", "Later")  # one audited insert
    assert figures(scene)["audit_rows_unsealed"] == 1


# -- who sees what ----------------------------------------------------------------------------------------


def test_stock_figures_cover_the_caller_s_locations_and_the_rest_is_global(
        gateway: Callable[..., PostgREST], catalogue: Inventory) -> None:
    """The gateway's stock: A1 10 at main and 5 at east, B2 5 at main, LOT-1 lot L1 5 at main."""
    catalogue.reserve_stock("A1", 2, "SO-M")
    catalogue.fulfill_order("SO-M")  # main: 2 of 2 shipped
    catalogue.reserve_stock("A1", 2, "SO-E1", location="east")
    catalogue.cancel_reservation("SO-E1")  # east: 0 of 2 shipped
    catalogue.record_count("A1", 8)  # main: exact
    catalogue.record_count("A1", 4, location="east")  # east: one missing
    catalogue.reserve_stock("A1", 4, "SO-E2", location="east")  # east: nothing available
    east, main, reader, nobody = (gateway("authenticated", user)
                                  for user in ("u-clerk-east", "u-clerk-main", "u-reader", "u-nobody"))

    def seen(client: PostgREST) -> dict[str, Any]:
        return dict(client.query("select metric, value from inventory_api.inventory_metrics"))

    everything, at_main, at_east = seen(reader), seen(main), seen(east)
    assert (everything["stock_out_rate"], at_main["stock_out_rate"], at_east["stock_out_rate"]) == (
        D("0.25"), 0, 1)  # A1 east among 4 levels; none of main's 3; east's only one
    assert (everything["reservation_fill_rate"], at_main["reservation_fill_rate"],
            at_east["reservation_fill_rate"]) == (D("0.5"), 1, 0)
    assert (everything["inventory_accuracy"], at_main["inventory_accuracy"], at_east["inventory_accuracy"]) == (
        D("0.5"), 1, 0)
    assert at_main["inventory_turnover"] == D("0.222222")  # 2 shipped / ((8 + 5 + 5 now + 0 a year ago) / 2)
    for name in ("audit_rows_unsealed", "maintenance_jobs_never_run"):  # the whole database's
        assert everything[name] == at_main[name] == at_east[name] and everything[name] is not None, name
    assert nobody.query("select * from inventory_api.inventory_metrics") == []
    assert nobody.query("select * from inventory_api.daily_movements where movements > 0") == []


def test_a_login_without_a_business_role_sees_no_metrics(catalogue: Inventory, login_dsn, connect, db) -> None:
    db.execute("create role pyinv_cron login password 'pyinv-test' in role inventory_scheduler")
    try:
        cron = Inventory(connect(conninfo=login_dsn("pyinv_cron")))
        with pytest.raises(PermissionDenied):  # the scheduler reads maintenance_status, not the stock figures
            cron.inventory_metrics()
    finally:
        db.execute("drop owned by pyinv_cron; drop role pyinv_cron")


def test_the_async_client_reads_the_metrics(dsn: str, scene: Inventory) -> None:
    async def read() -> tuple[list[Metric], list[Any]]:
        async with await AsyncInventory.connect(dsn) as client:
            return await client.inventory_metrics(), await client.daily_movements()

    metrics, days = asyncio.run(read())
    assert {metric.metric: metric.value for metric in metrics} == figures(scene)
    assert len(days) == 30 and days[-1].day == scene.connection.execute(
        "select (now() at time zone 'UTC')::date").fetchone()[0]
    assert (days[-1].received, days[-1].shipped) == (D(26), D(4))  # 10 + 5 + 4 + 2 + 3 + 2; SO-F 3 + SO-P 1
    assert all(day.movements == 0 for day in days[:-1])


# -- Prometheus -------------------------------------------------------------------------------------------

SAMPLE = re.compile(r"^(pyinv_[a-z_]+) (NaN|[+-]Inf|-?[0-9]+(\.[0-9]+)?)$")


def parse_exposition(text: str) -> dict[str, tuple[str, str, float]]:
    """The text format 0.0.4, line by line: per metric, HELP then TYPE then one sample; -> (help, type, value)."""
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(lines) % 3 == 0
    parsed: dict[str, tuple[str, str, float]] = {}
    for help_line, type_line, sample in zip(lines[0::3], lines[1::3], lines[2::3], strict=True):
        help_match = re.fullmatch(r"# HELP (pyinv_[a-z_]+) (\S.*)", help_line)
        type_match = re.fullmatch(r"# TYPE (pyinv_[a-z_]+) (gauge)", type_line)
        sample_match = SAMPLE.fullmatch(sample)
        assert help_match and type_match and sample_match, (help_line, type_line, sample)
        name = help_match.group(1)
        assert type_match.group(1) == sample_match.group(1) == name and name not in parsed
        assert "\n" not in help_match.group(2)
        parsed[name] = (help_match.group(2), type_match.group(2), float(sample_match.group(2)))
    return parsed


def same_values(parsed: dict[str, tuple[str, str, float]], metrics: list[Metric]) -> None:
    assert sorted(parsed) == sorted("pyinv_" + metric.metric for metric in metrics)
    for metric in metrics:
        value = parsed["pyinv_" + metric.metric][2]
        if metric.value is None:
            assert math.isnan(value), metric.metric
        else:
            assert value == float(metric.value), metric.metric


def test_prometheus_text_parses_back_to_the_view_s_values(scene: Inventory) -> None:
    metrics = scene.inventory_metrics()
    parsed = parse_exposition(prometheus_text(metrics))
    same_values(parsed, metrics)
    assert parsed["pyinv_stock_out_rate"][0].startswith("Share of stock levels")
    assert "(ratio, over the last 30 days)." in parsed["pyinv_reservation_fill_rate"][0]
    # Undefined figures are NaN; HELP text escapes backslashes and line feeds.
    odd = Metric("odd", None, "count", None, "a \\ b\nc")
    assert prometheus_text([odd]) == "# HELP pyinv_odd a \\\\ b\\nc (count).\n# TYPE pyinv_odd gauge\npyinv_odd NaN\n"
    assert prometheus_text([Metric("tiny", D("1E-7"), "ratio", None, "x")]).endswith("pyinv_tiny 0.0000001\n")


# -- the CLI ----------------------------------------------------------------------------------------------


def test_cli_metrics_table_json_and_prometheus(run, scene: Inventory) -> None:
    table = run("metrics").stdout.splitlines()
    assert table[0].split()[:4] == ["metric", "value", "unit", "period"]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert rows["stock_out_rate"][1:3] == ["0.4", "ratio"]
    assert rows["reservation_fill_rate"][1:5] == ["0.5", "ratio", "30", "days"]
    as_json = json.loads(run("metrics", "--json").stdout)
    assert [row["metric"] for row in as_json] == METRICS
    assert {row["metric"]: row["value"] for row in as_json}["lot_expiration_waste_value"] == "25"
    same_values(parse_exposition(run("metrics", "--prometheus").stdout), scene.inventory_metrics())


def test_cli_metrics_for_a_user_without_a_role(run, catalogue: Inventory, login_dsn, db) -> None:
    """inventory_user: may use the API, but its users hold only the roles user_roles grants them (none)."""
    db.execute("create role pyinv_nobody login password 'pyinv-test' in role inventory_user")
    try:
        result = run("metrics", dsn_=login_dsn("pyinv_nobody"))
        assert result.stdout == "no metrics: you hold no business role (ask an admin for one)\n"
    finally:
        db.execute("drop owned by pyinv_nobody; drop role pyinv_nobody")


def start_server(dsn: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`pyinv metrics serve --port 0` in a subprocess; returns it and its URL (from its first stderr line)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PGAPPNAME": "pyinv-metrics-test"}
    process = subprocess.Popen([sys.executable, "-m", "pyinv.cli", "--dsn", dsn, "metrics", "serve", "--port", "0",
                                *args], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    match = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
    if not match:
        process.kill()
        raise AssertionError(line + process.stderr.read())
    return process, match.group(1)


def scrape(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_metrics_serve_answers_scrapes_with_fresh_values(dsn: str, scene: Inventory, db) -> None:
    process, url = start_server(dsn)
    try:
        status, content_type, body = scrape(url)
        assert (status, content_type) == (200, CONTENT_TYPE)
        assert content_type.startswith("text/plain; version=0.0.4")
        same_values(parse_exposition(body), scene.inventory_metrics())
        # Each scrape reads the database again.
        scene.reserve_stock("A1", 6, "SO-ALL")
        after = parse_exposition(scrape(url)[2])
        assert after["pyinv_stock_out_rate"][2] == 0.6
        same_values(after, scene.inventory_metrics())
        # Its connection is killed: the scrape after is answered on a new one.
        killed = db.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                            " where application_name = 'pyinv-metrics-test'").fetchall()
        assert killed == [(True,)]
        statuses = [scrape(url)[0] for _ in range(2)]
        assert statuses[-1] == 200 and statuses[0] in (200, 503)
        assert scrape(url.replace("/metrics", "/nothing"))[0] == 404
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert re.search(r"stopped after \d+ scrape\(s\)", stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_metrics_serve_fails_at_once_without_a_database(empty_database: Callable[[], str]) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pyinv.cli", "--dsn", empty_database(), "metrics", "serve",
                             "--port", "0"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 6, result.stderr  # no pyinv schema there: run pyinv migrate
    assert "serving metrics" not in result.stderr


def test_metrics_serve_on_a_port_in_use_says_so(run, catalogue: Inventory) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("metrics", "serve", "--port", str(port), exit_code=6)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "LISTEN_FAILED" in result.stderr
    assert "Choose another --port" in result.stderr
