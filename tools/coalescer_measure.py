"""Units held per second and latency: 32 threads through a Coalescer vs 32 threads calling reserve_stock.

    python tools/coalescer_measure.py [--dsn DSN] [--threads 32] [--seconds 8] [--variants direct,c1,...]

Not a benchmark cell (those are `pyinv bench`'s): a quick look, on one hot level with plenty of stock
(W1's shape), synchronous commit as the server has it. Without --dsn it starts an embedded server in
/tmp/pyinv-coal-bench (the embedded defaults: durable, synchronous commit on) and uses a scratch
database `pyinv_coalescer` (dropped first) with the schema from sql/. Each thread reserves 1 unit per
call for SECONDS; reported: units held per second, p50/p99/max latency of a call, and the batch sizes.

Variants: direct (each thread calls Inventory.reserve_stock over a pool of THREADS connections), c1
(Coalescer over a pool, one batch in flight, flush when idle: the default), c2 (two batches in flight),
cwait (flush_when_idle=False: the head waits up to max_wait_ms=2 unless the batch is full), cconn (the
default Coalescer over one connection), lone-direct / lone-c1 (one thread: the cost of a lone caller),
async-direct / async-c1 (THREADS asyncio tasks over an AsyncConnectionPool, direct or AsyncCoalescer).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyinv import AsyncCoalescer, AsyncInventory, Coalescer, Inventory, server  # noqa: E402
from pyinv.install import bundle  # noqa: E402

DATABASE = "pyinv_coalescer"


def prepare(dsn: str | None) -> str:
    base = dsn or server.start(Path("/tmp/pyinv-coal-bench"), settings=server.EMBEDDED_SETTINGS)
    with psycopg.connect(make_conninfo(base, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    target = make_conninfo(base, dbname=DATABASE)
    with psycopg.connect(target, autocommit=True) as connection:
        connection.execute(bundle())
        connection.execute("select inventory_api.create_item('S1', 'hot')")
        connection.execute("select inventory_api.receive_stock('S1', 100000000)")
        print("synchronous_commit =", connection.execute("show synchronous_commit").fetchone()[0])
    return target


def run(threads: int, seconds: float, call: Callable[[int, int], Any]) -> tuple[int, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        i = 0
        mine = latencies[n]
        while time.monotonic() < stop:
            started = time.perf_counter()
            call(n, i)
            mine.append(time.perf_counter() - started)
            i += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    every = sorted(x for mine in latencies for x in mine)
    return len(every), every


async def run_async(dsn: str, tasks: int, seconds: float, coalesce: bool) -> tuple[int, list[float], str]:
    async with AsyncConnectionPool(dsn, min_size=tasks, max_size=tasks, kwargs={"autocommit": True}) as pool:
        await pool.wait()
        inventory = AsyncInventory.from_pool(pool)
        coalescer = AsyncCoalescer(inventory) if coalesce else None
        latencies: list[float] = []
        stop = time.monotonic() + seconds

        async def work(n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                if coalescer is not None:
                    await coalescer.reserve_stock("S1", 1, f"ac-{n}-{i}")
                else:
                    await inventory.reserve_stock("S1", 1, f"ad-{n}-{i}")
                latencies.append(time.perf_counter() - started)
                i += 1

        await asyncio.gather(*(work(n) for n in range(tasks)))
        extra = ""
        if coalescer is not None:
            await coalescer.close()
            sizes = sorted(size for size, count in coalescer.stats.batch_sizes.items() for _ in range(count))
            extra = f"batches {len(sizes)}, size mean {statistics.mean(sizes):.1f}, max {sizes[-1]}"
        return len(latencies), sorted(latencies), extra


def report(name: str, seconds: float, held: int, every: list[float], extra: str = "") -> None:
    def ms(q: float) -> float:
        return every[min(len(every) - 1, int(q * len(every)))] * 1000

    print(f"{name:12s} held/s {held / seconds:8.0f}  p50 {ms(0.5):6.2f} ms  p99 {ms(0.99):6.2f} ms  "
          f"max {every[-1] * 1000:7.2f} ms  {extra}", flush=True)


def batches(coalescer: Coalescer) -> str:
    sizes = coalescer.stats.batch_sizes
    flat = sorted(size for size, count in sizes.items() for _ in range(count))
    return (f"batches {coalescer.stats.batches}, size mean {statistics.mean(flat):.1f}, median "
            f"{statistics.median(flat):.0f}, max {flat[-1]}, failed {coalescer.stats.failed_batches}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--variants", default="lone-direct,lone-c1,direct,c1,c2,cwait,cconn")
    arguments = parser.parse_args()
    dsn = prepare(arguments.dsn)
    seconds, threads = arguments.seconds, arguments.threads
    with ConnectionPool(dsn, min_size=threads, max_size=threads, kwargs={"autocommit": True}) as pool:
        pool.wait()
        inventory = Inventory.from_pool(pool)
        for variant in arguments.variants.split(","):
            count = 1 if variant.startswith("lone") else threads
            if variant.startswith("async"):
                held, every, extra = asyncio.run(run_async(dsn, threads, seconds, variant == "async-c1"))
                report(variant, seconds, held, every, extra)
                continue
            if variant.endswith("direct"):
                held, every = run(count, seconds, lambda n, i, v=variant: inventory.reserve_stock(
                    "S1", 1, f"{v}-{n}-{i}"))
                report(variant, seconds, held, every)
                continue
            if variant == "cconn":
                connection = psycopg.connect(dsn, autocommit=True)
                coalescer = Coalescer(Inventory(connection))
            else:
                options = {"c1": {}, "lone-c1": {}, "c2": {"max_in_flight": 2},
                           "cwait": {"flush_when_idle": False}}[variant]
                coalescer = Coalescer(inventory, **options)
            held, every = run(count, seconds, lambda n, i, v=variant, c=coalescer: c.reserve_stock(
                "S1", 1, f"{v}-{n}-{i}"))
            coalescer.close()
            report(variant, seconds, held, every, batches(coalescer))
            if variant == "cconn":
                connection.close()
    with psycopg.connect(dsn, autocommit=True) as connection:
        print("verify_inventory rows:", connection.execute(
            "select count(*) from inventory_api.verify_inventory()").fetchone()[0])


if __name__ == "__main__":
    main()
