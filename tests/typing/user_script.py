# ruff: noqa: F821  (reveal_type is known to mypy, which this file is written for, not to Python)
"""A small program written against pyinv's public API, as a user would: tests/test_typing.py runs
`mypy --strict` on it (nothing from pyinv may be Any) and reads its reveal_type notes."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import pyinv
from pyinv import AsyncInventory, InsufficientStock, Inventory, InventoryError, RetryPolicy
from pyinv.models import Reservation


def reserve(dsn: str) -> Decimal:
    with Inventory.connect(dsn, prepared_statements=False, connect_timeout=5,
                           retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.1)) as inv:
        inv.create_item("MUG", "Mug")
        level = inv.receive_stock("MUG", 5, idempotency_key="receipt-1")
        reveal_type(level)
        try:
            hold: Reservation = inv.reserve_stock("MUG", 2, "SO-1", notes="gift wrap")
        except InsufficientStock as error:
            print(error.code, error.detail, error.advice)
            raise
        except InventoryError as error:
            print(error.actual_sqlstate, error.retryable)
            raise
        reveal_type(hold.quantity)
        rows = inv.stock_levels(sku="MUG", limit=10)
        reveal_type(rows)
        movements = inv.movements(limit=5)
        reveal_type(movements[0].metadata)
        reveal_type(inv.expire_reservations())
        reveal_type(inv.audit_anchor())
        reveal_type(inv.verify_inventory())
        inv.create_item("SERUM", "Serum", track_lots=True, requires_qc=True)
        inv.receive_stock("SERUM", 10, lot_number="L1", expires_on=date(2030, 1, 31), supplier_lot="S-9")
        reveal_type(inv.set_lot_status("SERUM", "L1", qc_status="PASSED"))
        inv.reserve_stock("SERUM", 2, "SO-9", min_shelf_life=timedelta(days=30))
        lots = inv.lots(sku="SERUM", limit=10)
        reveal_type(lots)
        reveal_type(lots[0].expires_on)
        reveal_type(inv.expiring_lots(within_days=7))
        reveal_type(inv.lot_allocations(order_ref="SO-9"))
        reveal_type(inv.trace_lot("SERUM", "L1"))
        reveal_type(inv.expire_inventory_lots().units_written_off)
        reveal_type(movements[0].lots)
        reveal_type(inv.inventory_metrics()[0].value)
        reveal_type(inv.daily_movements())
        with pyinv.Coalescer(inv, max_batch=50) as coalescer:
            reveal_type(coalescer.reserve_stock("MUG", 1, "SO-C", expires_in=timedelta(minutes=15)))
            reveal_type(coalescer.stats.batches)
        return sum((row.available for row in rows), Decimal(0))


async def reserve_async(dsn: str) -> str:
    inv = await AsyncInventory.connect(dsn)
    async with inv:
        hold = await inv.reserve_stock("MUG", 1, "SO-2", idempotency_key="SO-2/MUG")
        reveal_type(hold)
        reveal_type(await inv.items(include_deleted=True))
        reveal_type(await inv.trace_lot("SERUM", "L1"))
        reveal_type(await inv.inventory_metrics(metric="stock_out_rate"))
        async with pyinv.AsyncCoalescer(inv) as coalescer:
            reveal_type(await coalescer.reserve_stock("MUG", 1, "SO-D"))
        return hold.status


def main() -> None:
    dsn = pyinv.resolve_dsn()
    print(reserve(dsn), asyncio.run(reserve_async(dsn)))
