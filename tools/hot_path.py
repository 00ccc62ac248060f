"""Backend CPU and WAL per call of the reservation path, beside the bare function and the bare UPDATE.

    python tools/hot_path.py [--dsn DSN] [--calls 5000] [--skus 10000] [--rounds 3] [--released]

One connection makes CALLS calls of each variant, each call its own transaction with asynchronous
commit (the flush is priced by `pyinv bench`, not here), over SKUS stock levels at random. Measured
on the server: the backend's CPU time (/proc/<pid>/schedstat, so the server must run on this machine)
and the WAL written (pg_current_wal_lsn). Variants: B0 the bare conditional UPDATE, Bfn a bare
PL/pgSQL function making reserve_stock's three writes, B3 inventory_api.reserve_stock, B3k the same
with an idempotency key, B3lot the same over lot-tracked items (three lots each, FEFO; not with
--released before 0.4.0). Rounds are interleaved; the median round is reported. Uses a scratch
database `pyinv_hot_path` (dropped first) with the bench's seed. With --released the schema is the
released one (the migrations listed in migrations/CHECKSUMS) instead of sql/: before and after a change,
on the same machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyinv import server  # noqa: E402
from pyinv.bench.harness import seed, seed_lots  # noqa: E402
from pyinv.resources import schema_sql  # noqa: E402

CALLS = {
    "B0": "update bench_floor.stock set reserved = reserved + 1 where id = %(id)s and on_hand - reserved >= 1",
    "Bfn": "select bench_floor.reserve(%(id)s, 1, %(order)s)",
    "B3": "select * from inventory_api.reserve_stock(sku => %(sku)s, quantity => 1, order_ref => %(order)s)",
    "B3k": "select * from inventory_api.reserve_stock(sku => %(sku)s, quantity => 1, order_ref => %(order)s,"
           " idempotency_key => %(key)s)",
    "B3lot": "select * from inventory_api.reserve_stock(sku => %(lot_sku)s, quantity => 1, order_ref => %(order)s)",
}


def backend_cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def measure(connection: psycopg.Connection, variant: str, calls: int, skus: int,
            rng: random.Random) -> tuple[float, float]:
    pid = connection.info.backend_pid
    query = CALLS[variant]
    for n in range(50):  # warm the plan caches
        params = {"id": 1 + n, "sku": f"S{1 + n}", "lot_sku": f"L{1 + n}", "order": f"W-{n}",
                  "key": f"w-{variant}-{n}-{rng.random()}"}
        connection.execute(query, params, prepare=True)
    wal_before = connection.execute("select pg_current_wal_lsn()").fetchone()[0]
    cpu_before = backend_cpu_ns(pid)
    for n in range(calls):
        sku = rng.randint(1, skus)
        params = {"id": sku, "sku": f"S{sku}", "lot_sku": f"L{sku}", "order": f"O-{n}",
                  "key": f"k-{variant}-{n}-{rng.random()}"}
        connection.execute(query, params, prepare=True)
    cpu = (backend_cpu_ns(pid) - cpu_before) / calls / 1000
    wal = connection.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (wal_before,)).fetchone()[0]
    return cpu, float(wal) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="server (default: the embedded one); a scratch database is made there")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--released", action="store_true", help="the released migrations' schema, not sql/")
    args = parser.parse_args()
    base = args.dsn or server.resolve_dsn(None)
    with psycopg.connect(make_conninfo(base, dbname="postgres"), autocommit=True) as admin:
        admin.execute("drop database if exists pyinv_hot_path with (force)")
        admin.execute("create database pyinv_hot_path")
    dsn = make_conninfo(base, dbname="pyinv_hot_path")
    with psycopg.connect(dsn) as connection:
        if args.released:
            for line in (ROOT / "migrations" / "CHECKSUMS").read_text().splitlines():
                if not line.split()[1].endswith(".rollback.sql"):
                    connection.execute((ROOT / "migrations" / line.split()[1]).read_text())
                    connection.execute("reset role")
        else:
            connection.execute(schema_sql())
    seed(dsn, args.skus)
    variants = list(CALLS)
    with psycopg.connect(dsn) as connection:
        lots = connection.execute("select exists (select from pg_attribute where attrelid = 'inventory.items'::regclass"
                                  " and attname = 'requires_qc')").fetchone()[0]
    if lots:
        seed_lots(dsn, args.skus)
    else:
        variants.remove("B3lot")
    rng = random.Random(7)
    results: dict[str, list[tuple[float, float]]] = {variant: [] for variant in variants}
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("set synchronous_commit = off")
        for _ in range(args.rounds):
            for variant in rng.sample(variants, len(variants)):
                results[variant].append(measure(connection, variant, args.calls, args.skus, rng))
                time.sleep(0.2)
    print(f"{'variant':8} {'cpu us/call':>12} {'WAL B/call':>11}   (median of {args.rounds} rounds of {args.calls})")
    for variant, rounds in results.items():
        cpu = statistics.median(r[0] for r in rounds)
        wal = statistics.median(r[1] for r in rounds)
        print(f"{variant:8} {cpu:12.1f} {wal:11.0f}")
    with psycopg.connect(make_conninfo(base, dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier("pyinv_hot_path")))


if __name__ == "__main__":
    main()
