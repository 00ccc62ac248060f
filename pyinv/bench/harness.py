"""The benchmark suite: its own database, interleaved cells, invariant checks, the JSON result.

A cell is (workload, variant, clients) run for a fixed duration. After every cell the books are
checked (`verify_inventory()` must return no rows, and the floor table must not be oversold); a cell
that fails the check is kept in the results and marked invalid.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import __version__, migrate, server
from .drivers import FLOOR, PGBENCH_SCRIPTS, DriverResult, PythonLoad, run_pgbench

ALL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "SCALE", "REPORTS")
THROUGHPUT_WORKLOADS = ("W1", "W2", "W3")
VARIANTS = ("B0", "B1", "B2", "B3")
# Reference variants run on the throughput workloads only: B3 with asynchronous commit (what the
# flush inside the hot row's lock costs), and Bfn, a bare PL/pgSQL function making the same three
# writes as reserve_stock (hold row, conditional UPDATE, ledger row) with none of its checks, audit,
# authorisation or hash chain (what the design costs before pyinv's guarantees).
REFERENCE_VARIANTS = ("B3a", "Bfn")
# W2 over lot-tracked items (L1..Ln, three lots each with different expiry): what FEFO allocation
# inside the reservation costs beside the same call on an item without lots.
LOT_VARIANT = "B3lot"
LOTS_PER_SKU = 3
# W2 with event writing switched off for the cell (inventory.settings.events_enabled): what the events
# cost the reservation path, measured against B3 in the same run.
NO_EVENTS_VARIANT = "B3noev"
HOT_VARIANT = "B3hot"  # reserve_stock with the level in hot mode (issue 14): W1 and W4
COALESCED_VARIANT = "B3co"  # reserve_stock through pyinv's Coalescer (issue 14): W1 and W4
HOT_MODE_VARIANTS = (HOT_VARIANT, COALESCED_VARIANT)
PYINV_FLASH_VARIANTS = ("B3", *HOT_MODE_VARIANTS)
PGBENCH_VARIANTS = ("B0", "B3", "B3a", "Bfn", LOT_VARIANT, NO_EVENTS_VARIANT, HOT_VARIANT)
ALL_VARIANTS = VARIANTS + REFERENCE_VARIANTS + (LOT_VARIANT, NO_EVENTS_VARIANT) + HOT_MODE_VARIANTS
KEY_KINDS = {"W1": ("hot", 1), "W2": ("uniform", 10_000), "W3": ("zipf", 100_000)}
FLASH_UNITS = 1000
FLASH_CLIENTS = 64
W6_FOREGROUND_CLIENTS = 4
W6_WORKERS = (1, 2, 4)
W7_SKUS = 50
# REPORTS: the reporting views over a catalogue of report_levels stock levels at REPORT_LOCATIONS
# locations, timed as an unscoped admin and as a viewer of one location through the gateway path.
REPORT_LOCATIONS = 10
REPORT_QUERIES = {
    "refresh_inventory_views": "select * from inventory_api.refresh_inventory_views()",
    "low_stock_items_first_page": "select * from inventory_api.low_stock_items order by sku, location limit 50",
    "low_stock_items_count": "select count(*) from inventory_api.low_stock_items",
    "dashboard": "select * from inventory_api.dashboard",
}
STOCK_PER_SKU = 1_000_000_000


@dataclass
class BenchConfig:
    dsn: str | None = None
    database: str = "pyinv_bench"
    workloads: tuple[str, ...] = ALL_WORKLOADS
    clients: tuple[int, ...] = (1, 8, 32, 64)
    duration: float = 10.0
    repetitions: int = 3
    w6_backlog: int = 1_000_000
    w6_repetitions: int | None = None
    scale_ledger_rows: int = 10_000_000
    report_levels: int = 1_000_000  # REPORTS: stock levels (REPORT_LOCATIONS locations x items)
    flash_clients: int = FLASH_CLIENTS
    uniform_skus: int = 10_000  # W2, W5, W6 (smaller only in the test's minimal mode)
    quick: bool = False
    reference_variants: bool = True  # B3a and Bfn on W1-W3 (--quick leaves them out to stay under 2 minutes)
    lot_cells: bool = True  # W2 over lot-tracked items (--quick leaves it out: seeding the lots takes a while)
    event_cells: bool = True  # W2 with event writing off (B3noev), beside B3 with it on
    hot_cells: bool = True  # W1 and W4 with hot mode (B3hot) and through the coalescer (B3co)
    hot_buckets: int = 16  # set_hot_mode's buckets in the B3hot cells
    coalescer_processes: int = 2  # application server processes in the B3co cells (one per core), each one Coalescer
    variants: tuple[str, ...] | None = None  # only these variants' cells (None: all); e.g. B3,B3noev to compare two
    seed: int | None = None
    keep_database: bool = False
    progress: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))

    @classmethod
    def quick_config(cls, **overrides: Any) -> BenchConfig:
        values: dict[str, Any] = {"workloads": ("W1", "W2", "W4", "W6"), "clients": (32,), "duration": 2.0,
                                  "repetitions": 3, "w6_backlog": 3000, "w6_repetitions": 1,
                                  "scale_ledger_rows": 100_000, "report_levels": 20_000, "quick": True,
                                  "reference_variants": False, "lot_cells": False,
                                  "event_cells": False}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


# -- statistics ------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float | None]) -> dict[str, float | None]:
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}


# -- the bench database ---------------------------------------------------------------------------------


def _database_dsn(base: str, name: str) -> str:
    return make_conninfo(base, dbname=name)


def _maintenance_dsn(base: str) -> str:
    return make_conninfo(base, dbname="postgres")


def recreate_database(base_dsn: str, name: str) -> str:
    if not name.startswith("pyinv_bench"):
        raise ValueError("the bench database name must start with pyinv_bench (it is dropped and recreated)")
    with psycopg.connect(_maintenance_dsn(base_dsn), autocommit=True) as connection:
        connection.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = _database_dsn(base_dsn, name)
    migrate.apply(dsn)
    return dsn


def drop_database(base_dsn: str, name: str) -> None:
    with psycopg.connect(_maintenance_dsn(base_dsn), autocommit=True) as connection:
        connection.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def seed(dsn: str, skus: int, floor: bool = True) -> None:
    """SKUs S1..Sn at location main with effectively unlimited stock, and the same rows in the floor table."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        # Items first, then statistics, then stock in 2,000-SKU transactions: receive_stock slows down per
        # call in big transactions and on unanalysed tables (measured at HEAD 495ed3c).
        for low in range(1, skus + 1, 20_000):
            connection.execute("select count(inventory_api.create_item(sku => 'S' || g, name => 'bench item'))"
                               " from generate_series(%s::int, %s::int) g", (low, min(skus, low + 19_999)))
        connection.execute("analyze")
        for low in range(1, skus + 1, 2_000):
            connection.execute("select count(inventory_api.receive_stock(sku => 'S' || g, quantity => %s, "
                               "reference => 'bench seed')) from generate_series(%s::int, %s::int) g",
                               (STOCK_PER_SKU, low, min(skus, low + 1_999)))
        if floor:
            connection.execute(f"""
                create schema {FLOOR};
                create table {FLOOR}.stock (
                  id integer primary key, on_hand numeric(19, 4) not null, reserved numeric(19, 4) not null default 0,
                  version bigint not null default 1) with (fillfactor = 70);
                create table {FLOOR}.holds (
                  hold_id bigint generated always as identity primary key, stock_id integer not null,
                  quantity numeric(19, 4) not null, order_ref text not null,
                  created_at timestamptz not null default now());
                create sequence {FLOOR}.flash_id start 100000000;
                create table {FLOOR}.ledger (
                  movement_id bigint generated always as identity primary key, stock_id integer not null,
                  reserved_delta numeric(19, 4) not null, reserved_before numeric(19, 4) not null,
                  reserved_after numeric(19, 4) not null, reference text, hold_id bigint,
                  created_at timestamptz not null default now());
                create index on {FLOOR}.ledger (stock_id, movement_id);
                create function {FLOOR}.reserve(stock_id integer, quantity numeric, order_ref text)
                returns bigint language plpgsql set search_path = '' as $$
                declare
                  v_hold bigint;
                  v_reserved numeric;
                begin
                  insert into {FLOOR}.holds (stock_id, quantity, order_ref)
                  values (reserve.stock_id, reserve.quantity, reserve.order_ref) returning hold_id into v_hold;
                  update {FLOOR}.stock s set reserved = s.reserved + reserve.quantity
                   where s.id = reserve.stock_id and s.on_hand - s.reserved >= reserve.quantity
                  returning s.reserved into v_reserved;
                  if not found then
                    raise exception 'insufficient stock' using errcode = 'P0001';
                  end if;
                  insert into {FLOOR}.ledger (stock_id, reserved_delta, reserved_before, reserved_after, reference,
                                             hold_id)
                  values (reserve.stock_id, reserve.quantity, v_reserved - reserve.quantity, v_reserved,
                          reserve.order_ref, v_hold);
                  return v_hold;
                end
                $$;""")
            connection.execute(f"insert into {FLOOR}.stock (id, on_hand) select g, %s from generate_series(1, %s) g",
                               (STOCK_PER_SKU, skus))
        connection.execute("vacuum analyze")


def seed_lots(dsn: str, skus: int) -> None:
    """Lot-tracked SKUs L1..Ln at main, each with LOTS_PER_SKU lots expiring 30, 60 and 90 days out and
    effectively unlimited stock; FEFO takes the first of them."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("select count(inventory_api.create_item(sku => 'L' || g, name => 'bench lot item',"
                           " track_lots => true)) from generate_series(1, %s) g", (skus,))
        connection.execute("analyze")
        for lot in range(1, LOTS_PER_SKU + 1):
            for low in range(1, skus + 1, 2_000):
                connection.execute(
                    "select count(inventory_api.receive_stock(sku => 'L' || g, quantity => %s,"
                    " reference => 'bench seed', lot_number => 'LOT-' || %s, expires_on => current_date + 30 * %s))"
                    " from generate_series(%s::int, %s::int) g",
                    (STOCK_PER_SKU // LOTS_PER_SKU, lot, lot, low, min(skus, low + 1_999)))
        connection.execute("vacuum analyze")


def seed_report_scene(dsn: str, items: int) -> None:
    """R1..Rn at REPORT_LOCATIONS locations (X01..): every level received as a direct change (one ledger row
    each, as a DBA's bulk load would write), a stock policy on every level, stock spread so that about a
    tenth of the levels are at or below their reorder point, and a hold on one level in a hundred."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for low in range(1, items + 1, 20_000):
            connection.execute("select count(inventory_api.create_item(sku => 'R' || g, name => 'report item',"
                               " unit_cost => 2.5)) from generate_series(%s::int, %s::int) g",
                               (low, min(items, low + 19_999)))
        connection.execute("select count(inventory_api.create_location('X' || lpad(g::text, 2, '0'), 'report site'))"
                           " from generate_series(1, %s) g", (REPORT_LOCATIONS,))
        # Levels and policies in one set each; the quantities then arrive as one direct change per level.
        connection.execute("""
            insert into inventory.stock_levels (item_id, location_id)
            select i.item_id, l.location_id from inventory.items i cross join inventory.locations l
             where i.sku like 'R%' and l.code like 'X%'""")
        connection.execute("""
            insert into inventory.stock_policies (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                                  updated_by)
            select s.item_id, s.location_id, 20, 5, 100, 'bench'
              from inventory.stock_levels s join inventory.locations l using (location_id) where l.code like 'X%'""")
        connection.execute("analyze")
        connection.execute("""
            update inventory.stock_levels s set on_hand = (s.item_id * 7 + s.location_id * 13) % 200
              from inventory.locations l where l.location_id = s.location_id and l.code like 'X%'""")
        connection.execute("analyze")
        connection.execute("""
            select count(inventory_api.reserve_stock(sku => i.sku, quantity => 1, order_ref => 'bench-' || i.sku,
                                                     location => 'X01', expires_in => interval '30 minutes'))
              from inventory.items i join inventory.stock_levels s using (item_id)
             where i.sku like 'R%' and s.location_id = (select location_id from inventory.locations where code = 'X01')
               and s.on_hand > 1 and i.item_id % 10 = 0""")
        connection.execute("vacuum analyze")


class _gateway_viewer:
    """A connection that reads as PostgREST would for a viewer of location X01: a gateway login, the
    request role set per transaction, the user named by the JWT's sub."""

    def __init__(self, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("""
                do $$ begin
                  if not exists (select from pg_roles where rolname = 'pyinv_bench_api') then
                    create role pyinv_bench_api nologin noinherit;
                  end if;
                  if not exists (select from pg_roles where rolname = 'pyinv_bench_gateway') then
                    create role pyinv_bench_gateway login noinherit;
                  end if;
                end $$""")
            admin.execute("grant pyinv_bench_api to pyinv_bench_gateway")
            admin.execute("select inventory.grant_api_access('pyinv_bench_api')")
            admin.execute("update inventory.settings set gateway_roles = gateway_roles || 'pyinv_bench_gateway'::text")
            admin.execute("select inventory_api.grant_user_role(user_id => 'bench-viewer', role => 'viewer',"
                          " location => 'X01')")
        self.connection = psycopg.connect(make_conninfo(dsn, user="pyinv_bench_gateway"), autocommit=True)

    def fetchall(self, query: str) -> list[Any]:
        with self.connection.transaction():
            self.connection.execute("set local role pyinv_bench_api")
            self.connection.execute("""select set_config('request.jwt.claims', '{"sub": "bench-viewer"}', true)""")
            return self.connection.execute(query).fetchall()

    def __enter__(self) -> _gateway_viewer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.connection.close()


def _drop_gateway_roles(base_dsn: str) -> None:
    with psycopg.connect(_maintenance_dsn(base_dsn), autocommit=True) as admin:
        for role in ("pyinv_bench_gateway", "pyinv_bench_api"):
            if admin.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def verify(connection: psycopg.Connection[Any]) -> tuple[int, int]:
    """(violations from verify_inventory(), oversold floor rows)."""
    violations = connection.execute("select count(*) from inventory_api.verify_inventory()").fetchone()[0]
    floor_bad = connection.execute(
        f"select count(*) from {FLOOR}.stock where reserved > on_hand or reserved < 0").fetchone()[0]
    return int(violations), int(floor_bad)


def wal_lsn(connection: psycopg.Connection[Any]) -> str:
    return connection.execute("select pg_current_wal_lsn()::text").fetchone()[0]


def wal_bytes(connection: psycopg.Connection[Any], start: str) -> int:
    return int(connection.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (start,)).fetchone()[0])


# -- cells -----------------------------------------------------------------------------------------------------


def cell_record(workload: str, variant: str, clients: int, repetition: int, result: DriverResult,
                wal: int, checks: tuple[int, int], verify_s: float, driver: str) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    seconds = result.duration or 1.0
    latencies = result.latencies_ms
    violations, floor_bad = checks
    extra = {key: value for key, value in result.extra.items() if key != "last_success"}
    return {
        "workload": workload, "variant": variant, "clients": clients, "repetition": repetition, "driver": driver,
        "duration_s": round(seconds, 3), "successes": result.successes, "attempts": result.attempts,
        "ops_per_s": result.successes / seconds, "attempts_per_s": result.attempts / seconds,
        "p50_ms": percentile(latencies, 0.50), "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99), "errors": dict(result.errors),
        "generator_cpu_share": result.generator_cpu_s / (seconds * cores),
        "wal_bytes": wal, "wal_bytes_per_op": wal / result.successes if result.successes else None,
        "verify_violations": violations, "floor_violations": floor_bad, "verify_s": round(verify_s, 3),
        "valid": violations == 0 and floor_bad == 0, "extra": extra,
    }


class Suite:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.base_dsn = server.resolve_dsn(config.dsn)
        self.dsn = ""
        self.cells: list[dict[str, Any]] = []
        self.special: dict[str, Any] = {}
        self.log = config.progress

    def keys_of(self, workload: str) -> tuple[str, int]:
        kind, n = KEY_KINDS[workload]
        return (kind, self.config.uniform_skus) if workload == "W2" else (kind, n)

    # The W1-W3 throughput cells, W4 sell-out, W5 lifecycle and W7 orders, interleaved per repetition.
    def cell_specs(self) -> list[tuple[str, str, int]]:
        specs: list[tuple[str, str, int]] = []
        for workload in self.config.workloads:
            if workload in THROUGHPUT_WORKLOADS:
                variants = VARIANTS + (REFERENCE_VARIANTS if self.config.reference_variants else ())
                if workload == "W1" and self.config.hot_cells:
                    variants += HOT_MODE_VARIANTS
                specs += [(workload, variant, c) for variant in variants for c in self.config.clients]
                if workload == "W2" and self.config.lot_cells:
                    specs += [(workload, LOT_VARIANT, c) for c in self.config.clients]
                if workload == "W2" and self.config.event_cells:
                    specs += [(workload, NO_EVENTS_VARIANT, c) for c in self.config.clients]
            elif workload == "W4":
                specs += [("W4", variant, self.config.flash_clients)
                          for variant in VARIANTS + (HOT_MODE_VARIANTS if self.config.hot_cells else ())]
            elif workload in ("W5", "W7"):
                specs += [(workload, "B3", c) for c in self.config.clients if c > 1 or len(self.config.clients) == 1]
        if self.config.variants is not None:
            specs = [spec for spec in specs if spec[1] in self.config.variants]
        return specs

    def run_cell(self, admin: psycopg.Connection[Any], workload: str, variant: str, clients: int,
                 repetition: int) -> dict[str, Any]:
        duration = self.config.duration
        tag = f"{workload}-{variant}-{repetition}-{uuid.uuid4().hex[:6]}"
        flash: dict[str, Any] = {}
        if workload == "W4":
            flash = self.prepare_flash(admin, variant, tag)
        start = wal_lsn(admin)
        if workload in THROUGHPUT_WORKLOADS and variant in PGBENCH_VARIANTS:
            kind, n = self.keys_of(workload)
            key = {"hot": "1", "uniform": f"random(1, {n})", "zipf": f"random_zipfian(1, {n}, 1.01)"}[kind]
            script = PGBENCH_SCRIPTS[variant].format(key=key, tag=tag)
            options = "-c synchronous_commit=off" if variant == "B3a" else None
            if variant == NO_EVENTS_VARIANT:
                admin.execute("update inventory.settings set events_enabled = false")
            if variant == HOT_VARIANT:  # every key of the workload hot, for this cell only
                self.set_hot_mode(admin, [f"S{k}" for k in range(1, min(n, 16) + 1)], self.config.hot_buckets)
            try:
                result, driver = run_pgbench(self.dsn, script, clients, duration, options=options), "pgbench"
            finally:
                if variant == NO_EVENTS_VARIANT:
                    admin.execute("update inventory.settings set events_enabled = true")
                if variant == HOT_VARIANT:
                    self.set_hot_mode(admin, [f"S{k}" for k in range(1, min(n, 16) + 1)], 1)
        elif workload in THROUGHPUT_WORKLOADS:
            kind, n = self.keys_of(workload)
            result = PythonLoad(variant, self.dsn, clients, {"key_kind": kind, "nskus": n, "tag": tag}, duration,
                                seed=self.rng.randrange(1 << 30),
                                processes=self.config.coalescer_processes if variant == COALESCED_VARIANT else None
                                ).run()
            driver = "python"
        elif workload == "W7":
            script = PGBENCH_SCRIPTS["W7"].format(nskus=W7_SKUS, tag=tag)
            result, driver = run_pgbench(self.dsn, script, clients, duration), "pgbench"
        elif workload == "W5":
            result, driver = self.run_lifecycle(clients, duration, tag), "python"
        else:
            result, driver = self.run_flash(admin, variant, flash), "python"
        wal = wal_bytes(admin, start)
        checked = time.monotonic()
        checks = verify(admin)
        record = cell_record(workload, variant, clients, repetition, result, wal, checks,
                             time.monotonic() - checked, driver)
        if workload == "W4":
            record.update(self.flash_outcome(admin, variant, flash, result))
            record["valid"] = record["valid"] and record["oversold"] == 0
        return record

    # -- W4 ---------------------------------------------------------------------------------------------------

    @staticmethod
    def set_hot_mode(admin: psycopg.Connection[Any], skus: list[str], buckets: int) -> None:
        for sku in skus:
            admin.execute("select inventory_api.set_hot_mode(sku => %s, buckets => %s)", (sku, buckets))

    def prepare_flash(self, admin: psycopg.Connection[Any], variant: str, tag: str) -> dict[str, Any]:
        if variant in PYINV_FLASH_VARIANTS:
            sku = f"FLASH-{tag}"
            admin.execute("select inventory_api.create_item(sku => %s, name => 'flash sale')", (sku,))
            admin.execute("select inventory_api.receive_stock(sku => %s, quantity => %s)", (sku, FLASH_UNITS))
            if variant == HOT_VARIANT:
                self.set_hot_mode(admin, [sku], self.config.hot_buckets)
            return {"sku": sku, "stock_id": 0, "tag": tag}
        stock_id = admin.execute(f"insert into {FLOOR}.stock (id, on_hand) values (nextval('{FLOOR}.flash_id'), %s)"
                                 " returning id", (FLASH_UNITS,)).fetchone()[0]
        return {"sku": "", "stock_id": stock_id, "tag": tag}

    def run_flash(self, admin: psycopg.Connection[Any], variant: str, flash: dict[str, Any]) -> DriverResult:
        coalesced = variant == COALESCED_VARIANT
        load = PythonLoad("W4co" if coalesced else "W4", self.dsn, self.config.flash_clients,
                          {"variant": variant, **flash}, duration=120.0, seed=self.rng.randrange(1 << 30),
                          processes=self.config.coalescer_processes if coalesced else None)
        load.start()
        result = load.join()
        result.extra["sell_out_s"] = max(0.0, result.extra.get("last_success", 0) - load.started)
        return result

    def flash_outcome(self, admin: psycopg.Connection[Any], variant: str, flash: dict[str, Any],
                      result: DriverResult) -> dict[str, Any]:
        if variant in PYINV_FLASH_VARIANTS:
            on_hand, reserved = admin.execute("select on_hand, reserved from inventory_api.stock_levels where sku = %s",
                                              (flash["sku"],)).fetchone()
            holds = admin.execute("select coalesce(sum(quantity), 0) from inventory_api.reservations where sku = %s"
                                  " and status = 'ACTIVE'", (flash["sku"],)).fetchone()[0]
        else:
            on_hand, reserved = admin.execute(f"select on_hand, reserved from {FLOOR}.stock where id = %s",
                                              (flash["stock_id"],)).fetchone()
            holds = reserved
        granted = int(result.extra.get("granted", 0))
        sold = int(reserved)
        return {"units": FLASH_UNITS, "granted_to_clients": granted, "sold_in_db": sold, "holds_in_db": int(holds),
                "oversold": max(0, sold - int(on_hand), granted - FLASH_UNITS, granted - sold, int(holds) - sold),
                "undersold": max(0, FLASH_UNITS - sold), "sell_out_s": result.extra.get("sell_out_s")}

    # -- W5 -------------------------------------------------------------------------------------------------------

    def run_lifecycle(self, clients: int, duration: float, tag: str) -> DriverResult:
        params = {"key_kind": "uniform", "nskus": self.config.uniform_skus, "ttl": "2 seconds", "tag": tag}
        load = PythonLoad("W5", self.dsn, clients, params, duration, seed=self.rng.randrange(1 << 30))
        load.start()
        expired = 0
        sweeps = 0
        with psycopg.connect(self.dsn, autocommit=True) as sweeper:
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                count = sweeper.execute("select inventory_api.expire_reservations(1000)").fetchone()[0]
                expired += count
                sweeps += 1
                if count < 1000:
                    time.sleep(0.5)
        result = load.join()
        result.extra["expired_by_sweeper"] = expired
        result.extra["sweeps"] = sweeps
        return result

    # -- W6 --------------------------------------------------------------------------------------------------------

    def build_backlog(self, holds: int, tag: str) -> float:
        """Active holds on S1..S10000, made by reserve_stock in a few big transactions, two sessions at once."""
        started = time.monotonic()
        chunk = 50_000
        ranges = [(low, min(holds, low + chunk - 1)) for low in range(1, holds + 1, chunk)]

        def build(part: list[tuple[int, int]]) -> None:
            with psycopg.connect(self.dsn, autocommit=True) as connection:
                for low, high in part:
                    with connection.transaction():
                        connection.execute(
                            "select count(inventory_api.reserve_stock(sku => 'S' || (1 + mod(g, %s)),"
                            " quantity => 1, order_ref => %s || g)) from generate_series(%s::int, %s::int) g",
                            (self.config.uniform_skus, tag, low, high))

        import threading

        threads = [threading.Thread(target=build, args=(ranges[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    def foreground(self, duration: float, tag: str) -> PythonLoad:
        return PythonLoad("B3py", self.dsn, W6_FOREGROUND_CLIENTS,
                          {"key_kind": "uniform", "nskus": self.config.uniform_skus, "tag": tag}, duration,
                          seed=self.rng.randrange(1 << 30))

    def run_backlog(self, admin: psycopg.Connection[Any], workers: int, repetition: int) -> dict[str, Any]:
        holds = self.config.w6_backlog
        tag = f"W6-{workers}-{repetition}-"
        build_s = self.build_backlog(holds, tag)
        admin.execute("vacuum analyze inventory.reservations")
        baseline_duration = max(2.0, min(self.config.duration, 5.0))
        baseline = self.foreground(baseline_duration, f"W6fg-{workers}-{repetition}-0").run()
        admin.execute("update inventory.reservations set expires_at = now() - interval '1 second' "
                      "where status = 'ACTIVE' and order_ref like %s", (tag + "%",))
        start = wal_lsn(admin)
        load = self.foreground(3600.0, f"W6fg-{workers}-{repetition}-1")
        load.start()
        drained = Counter()
        sweep_start = time.monotonic()

        def sweep(index: int) -> None:
            with psycopg.connect(self.dsn, autocommit=True) as connection:
                while True:
                    count = connection.execute("select inventory_api.expire_reservations(1000)").fetchone()[0]
                    drained[index] += count
                    if count == 0:
                        break

        import threading

        threads = [threading.Thread(target=sweep, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sweep_s = time.monotonic() - sweep_start
        load.stop()
        during = load.join()
        wal = wal_bytes(admin, start)
        left = admin.execute("select count(*) from inventory.reservations where status = 'ACTIVE' and "
                             "expires_at <= now() and order_ref like %s", (tag + "%",)).fetchone()[0]
        checked = time.monotonic()
        violations, floor_bad = verify(admin)
        base_p99, during_p99 = percentile(baseline.latencies_ms, 0.99), percentile(during.latencies_ms, 0.99)
        return {
            "workload": "W6", "variant": "B3", "workers": workers, "repetition": repetition, "backlog": holds,
            "build_s": round(build_s, 2), "expired": sum(drained.values()), "left_overdue": left,
            "sweep_s": round(sweep_s, 3), "expired_per_s": sum(drained.values()) / sweep_s if sweep_s else None,
            "wal_bytes_per_hold": wal / max(1, sum(drained.values())),
            "foreground_clients": W6_FOREGROUND_CLIENTS,
            "p99_without_ms": base_p99, "p99_during_ms": during_p99,
            "p50_without_ms": percentile(baseline.latencies_ms, 0.5),
            "p50_during_ms": percentile(during.latencies_ms, 0.5),
            "foreground_ops_per_s_without": baseline.successes / baseline.duration,
            "foreground_ops_per_s_during": during.successes / during.duration,
            "foreground_errors": dict(during.errors + baseline.errors),
            "p99_ratio": during_p99 / base_p99 if base_p99 and during_p99 else None,
            "verify_violations": violations, "verify_s": round(time.monotonic() - checked, 3),
            "valid": violations == 0 and floor_bad == 0 and left == 0,
        }

    # -- scale check --------------------------------------------------------------------------------------------------

    def run_scale(self) -> dict[str, Any]:
        name = self.config.database + "_scale"
        dsn = recreate_database(self.base_dsn, name)
        seed(dsn, 10_000, floor=False)
        script = PGBENCH_SCRIPTS["B3"].format(key="random(1, 10000)", tag="SCALE")
        duration = self.config.duration
        result: dict[str, Any] = {"workload": "SCALE", "variant": "B3", "clients": 1, "target_ledger_rows": None}
        try:
            with psycopg.connect(dsn, autocommit=True) as admin:
                rows_small = admin.execute("select count(*) from inventory.ledger").fetchone()[0]
                small = [run_pgbench(dsn, script, 1, duration) for _ in range(self.config.repetitions)]
                self.log(f"  scale: small ledger ({rows_small} rows) p50 "
                         f"{[round(percentile(r.latencies_ms, 0.5) or 0, 3) for r in small]} ms")
                target = self.config.scale_ledger_rows
                result["target_ledger_rows"] = target
                started = time.monotonic()
                current = admin.execute("select count(*) from inventory.ledger").fetchone()[0]
                passes = 0
                while current < target:
                    # One ledger row (and one audit row) per stock level and pass, written by the trigger.
                    admin.execute("update inventory.stock_levels set on_hand = on_hand + 1")
                    current += 10_000
                    passes += 1
                    if passes % 50 == 0:
                        self.log(f"  scale: ledger {current:,} / {target:,} rows "
                                 f"({time.monotonic() - started:.0f} s)")
                grow_s = time.monotonic() - started
                admin.execute("vacuum analyze")
                rows_large = admin.execute("select count(*) from inventory.ledger").fetchone()[0]
                large = [run_pgbench(dsn, script, 1, duration) for _ in range(self.config.repetitions)]
                violations = admin.execute("select count(*) from inventory_api.verify_inventory()").fetchone()[0]
        finally:
            if not self.config.keep_database:
                drop_database(self.base_dsn, name)
        p50_small = summary([percentile(r.latencies_ms, 0.5) for r in small])
        p50_large = summary([percentile(r.latencies_ms, 0.5) for r in large])
        result.update({
            "ledger_rows_small": rows_small, "ledger_rows_large": rows_large, "grow_s": round(grow_s, 1),
            "ledger_rows_per_s_grow": (rows_large - rows_small) / grow_s if grow_s else None,
            "p50_small_ms": p50_small, "p50_large_ms": p50_large,
            "p99_small_ms": summary([percentile(r.latencies_ms, 0.99) for r in small]),
            "p99_large_ms": summary([percentile(r.latencies_ms, 0.99) for r in large]),
            "ops_per_s_small": summary([r.successes / r.duration for r in small]),
            "ops_per_s_large": summary([r.successes / r.duration for r in large]),
            "p50_ratio": (p50_large["median"] / p50_small["median"]) if p50_small["median"] else None,
            "verify_violations": int(violations), "valid": int(violations) == 0,
        })
        return result

    # -- reports over a large catalogue -------------------------------------------------------------------------

    def run_reports(self) -> dict[str, Any]:
        name = self.config.database + "_reports"
        dsn = recreate_database(self.base_dsn, name)
        levels = self.config.report_levels
        items = max(1, levels // REPORT_LOCATIONS)
        started = time.monotonic()
        result: dict[str, Any] = {"workload": "REPORTS", "stock_levels": items * REPORT_LOCATIONS}
        try:
            seed_report_scene(dsn, items)
            result["seed_s"] = round(time.monotonic() - started, 1)
            self.log(f"  reports: {items * REPORT_LOCATIONS:,} stock levels seeded in {result['seed_s']} s")
            timings: dict[str, dict[str, list[float]]] = {}
            with psycopg.connect(dsn, autocommit=True) as admin, _gateway_viewer(dsn) as viewer:
                callers: dict[str, Callable[[str], list[Any]]] = {
                    "admin": lambda query: admin.execute(query).fetchall(), "viewer_one_location": viewer.fetchall}
                for repetition in range(self.config.repetitions):
                    for query_name, query in REPORT_QUERIES.items():
                        for caller, fetchall in callers.items():
                            if query_name == "refresh_inventory_views" and caller != "admin":
                                continue  # maintenance work: the scheduler or an unscoped admin runs it
                            began = time.perf_counter()
                            rows = fetchall(query)
                            elapsed = time.perf_counter() - began
                            timings.setdefault(query_name, {}).setdefault(caller, []).append(elapsed)
                            if repetition == 0:
                                result.setdefault("rows", {})[f"{query_name}/{caller}"] = len(rows)
                result["low_stock_levels"] = admin.execute(
                    "select count(*) from inventory.mv_low_stock_items").fetchone()[0]
                result["ledger_rows"] = admin.execute("select count(*) from inventory.ledger").fetchone()[0]
                result["database_size_bytes"] = admin.execute(
                    "select pg_database_size(current_database())").fetchone()[0]
                violations = admin.execute("select count(*) from inventory_api.verify_inventory()").fetchone()[0]
        finally:
            if not self.config.keep_database:
                drop_database(self.base_dsn, name)
                _drop_gateway_roles(self.base_dsn)  # their privileges went with the database
        result["seconds"] = {query_name: {caller: summary(values) for caller, values in by_caller.items()}
                             for query_name, by_caller in timings.items()}
        result.update({"verify_violations": int(violations), "valid": int(violations) == 0})
        for query_name, by_caller in result["seconds"].items():
            self.log("  reports: " + query_name + " " + ", ".join(
                f"{caller} {_fmt(values['median'])} s" for caller, values in by_caller.items()))
        return result

    # -- the whole run --------------------------------------------------------------------------------------------

    def environment(self, admin: psycopg.Connection[Any]) -> dict[str, Any]:
        settings = admin.execute("select name, current_setting(name), source from pg_settings "
                                 "where source not in ('default', 'override') order by name").fetchall()
        params = conninfo_to_dict(self.dsn)
        params.pop("password", None)
        return {
            "server_version": admin.execute("select version()").fetchone()[0],
            "settings": {name: value for name, value, _ in settings},
            "synchronous_commit": admin.execute("show synchronous_commit").fetchone()[0],
            "fsync": admin.execute("show fsync").fetchone()[0],
            "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "pyinv_version": __version__, "psycopg_version": psycopg.__version__,
            "load_generator_shares_machine": _same_machine(params),
            "connection": {key: value for key, value in params.items() if key in ("host", "port", "dbname", "user")},
            "wal_flush_us_fdatasync_8k": fsync_time(admin),
            "mem_gib": _memory_gib(),
            "git_head": _git_head(),
        }

    def run(self) -> dict[str, Any]:
        config = self.config
        started = time.monotonic()
        started_at = datetime.now(timezone.utc)
        skus = max(KEY_KINDS["W3"][1] if "W3" in config.workloads else 0, config.uniform_skus)
        self.log(f"bench: creating database {config.database} ({skus:,} SKUs)")
        self.dsn = recreate_database(self.base_dsn, config.database)
        seed(self.dsn, skus)
        if config.lot_cells and "W2" in config.workloads:
            seed_lots(self.dsn, config.uniform_skus)
        self.log(f"bench: seeded in {time.monotonic() - started:.1f} s")
        results: dict[str, Any] = {"started_at": started_at.isoformat(), "config": _config_dict(config)}
        try:
            with psycopg.connect(self.dsn, autocommit=True) as admin:
                results["environment"] = self.environment(admin)
                specs = self.cell_specs()
                total = len(specs) * config.repetitions
                done = 0
                for repetition in range(1, config.repetitions + 1):
                    order = specs[:]
                    self.rng.shuffle(order)
                    for workload, variant, clients in order:
                        record = self.run_cell(admin, workload, variant, clients, repetition)
                        self.cells.append(record)
                        done += 1
                        self.log(_progress_line(done, total, record, time.monotonic() - started))
                if "W6" in config.workloads:
                    reps = config.w6_repetitions or config.repetitions
                    w6 = []
                    for repetition in range(1, reps + 1):
                        for workers in self.rng.sample(W6_WORKERS, len(W6_WORKERS)):
                            record = self.run_backlog(admin, workers, repetition)
                            w6.append(record)
                            self.log(f"  W6 workers={workers} rep {repetition}: {record['expired']:,} holds in "
                                     f"{record['sweep_s']:.1f} s = {record['expired_per_s']:,.0f}/s, p99 "
                                     f"{_fmt(record['p99_without_ms'])} -> {_fmt(record['p99_during_ms'])} ms "
                                     f"(build {record['build_s']:.0f} s){'' if record['valid'] else ' INVALID'}")
                    self.special["W6"] = w6
                results["database_size_bytes"] = admin.execute(
                    "select pg_database_size(current_database())").fetchone()[0]
                results["ledger_rows"] = admin.execute("select count(*) from inventory.ledger").fetchone()[0]
            if "SCALE" in config.workloads:
                self.log("bench: scale check (reserve latency, c=1, small vs large ledger)")
                self.special["SCALE"] = self.run_scale()
            if "REPORTS" in config.workloads:
                self.log(f"bench: reports over {config.report_levels:,} stock levels")
                self.special["REPORTS"] = self.run_reports()
        finally:
            if not config.keep_database:
                drop_database(self.base_dsn, config.database)
        results["cells"] = self.cells
        results.update(self.special)
        from .report import aggregate, targets

        results["summary"] = aggregate(self.cells)
        results["targets"] = targets(results)
        results["wall_s"] = round(time.monotonic() - started, 1)
        return results


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _progress_line(done: int, total: int, record: dict[str, Any], elapsed: float) -> str:
    text = (f"[{done}/{total} {elapsed:5.0f}s] {record['workload']} {record['variant']} c={record['clients']} "
            f"rep {record['repetition']}: {record['ops_per_s']:,.0f} ops/s, p99 {_fmt(record['p99_ms'])} ms")
    if record["workload"] == "W4":
        text += (f", oversold {record['oversold']}, undersold {record['undersold']}, "
                 f"sell-out {record['sell_out_s']:.2f} s")
    if record["errors"]:
        text += f", errors {record['errors']}"
    return text + ("" if record["valid"] else "  INVALID")


def _config_dict(config: BenchConfig) -> dict[str, Any]:
    return {"database": config.database, "workloads": list(config.workloads), "clients": list(config.clients),
            "duration_s": config.duration, "repetitions": config.repetitions, "w6_backlog": config.w6_backlog,
            "w6_repetitions": config.w6_repetitions or config.repetitions,
            "scale_ledger_rows": config.scale_ledger_rows, "report_levels": config.report_levels,
            "quick": config.quick,
            "reference_variants": config.reference_variants, "lot_cells": config.lot_cells,
            "event_cells": config.event_cells, "variants": list(config.variants) if config.variants else None,
            "seed": config.seed,
            "flash_units": FLASH_UNITS, "flash_clients": config.flash_clients,
            "w6_foreground_clients": W6_FOREGROUND_CLIENTS,
            "w7_skus": W7_SKUS, "uniform_skus": config.uniform_skus, "zipf_s": 1.01}


def _same_machine(params: dict[str, Any]) -> bool:
    host = params.get("host") or ""
    return host == "" or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1", platform.node())


def _git_head() -> str | None:
    """The checkout's commit (and whether it has local changes) when run from a git work tree."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "sql", "migrations"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' + local SQL changes' if dirty else ''}" if head else None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def fsync_time(admin: psycopg.Connection[Any], seconds: float = 0.5) -> float | None:
    """Microseconds for one 8 kB write + fdatasync (pg_test_fsync's single-flush figure), measured in the
    server's data directory when it is on this machine; None when it is not reachable."""
    try:
        directory = admin.execute("show data_directory").fetchone()[0]
    except psycopg.Error:
        return None
    if not directory or not os.access(directory, os.W_OK) or not hasattr(os, "fdatasync"):
        return None
    path = os.path.join(directory, f"pyinv_bench_fsync.{os.getpid()}")
    block = os.urandom(8192)
    count = 0
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                os.pwrite(descriptor, block, 0)
                os.fdatasync(descriptor)
                count += 1
            elapsed = time.perf_counter() - started
        finally:
            os.close(descriptor)
    except OSError:
        return None
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return round(elapsed / count * 1e6, 1) if count else None
