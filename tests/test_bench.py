"""The benchmark harness in a minimal mode: it runs, checks the books after every cell and reports.

No timing assertions: tests do not time anything, the benchmark does."""

from __future__ import annotations

import json
import os

from pyinv.bench import BenchConfig, format_table, run
from pyinv.bench.harness import (
    HOT_MODE_VARIANTS,
    LOT_VARIANT,
    NO_EVENTS_VARIANT,
    REFERENCE_VARIANTS,
    REPORT_QUERIES,
    VARIANTS,
)


def test_bench_minimal_run_reports_valid_cells(dsn: str) -> None:
    config = BenchConfig(dsn=dsn, database=f"pyinv_bench_test_{os.getpid()}", workloads=("W2", "W4", "REPORTS"),
                         clients=(2,), duration=1.0, repetitions=1, flash_clients=4, uniform_skus=1000,
                         report_levels=200, seed=1,
                         progress=lambda _message: None)
    results = run(config)

    document = json.loads(json.dumps(results, default=str))  # what the JSON result file holds
    cells = {(cell["workload"], cell["variant"]): cell for cell in document["cells"]}
    assert set(cells) == ({("W2", variant) for variant in
                           VARIANTS + REFERENCE_VARIANTS + (LOT_VARIANT, NO_EVENTS_VARIANT)}
                          | {("W4", variant) for variant in VARIANTS + HOT_MODE_VARIANTS})
    for cell in cells.values():
        assert cell["successes"] > 0, cell
        assert cell["verify_violations"] == 0, cell
        assert cell["valid"], cell
    for variant in VARIANTS + HOT_MODE_VARIANTS:  # a flash sale in hot mode and through the coalescer too
        flash = cells[("W4", variant)]
        assert flash["oversold"] == 0, flash
        assert flash["undersold"] == 0, flash
        assert flash["granted_to_clients"] == flash["sold_in_db"] == flash["units"]
    assert document["environment"]["server_version"].startswith("PostgreSQL")
    assert {target["target"] for target in document["targets"]} >= {
        "W2@32 bare UPDATE (floor): pyinv / it", "W2@32 bare function, same writes: pyinv / it",
        "W2@32 lot-tracked (FEFO over 3 lots) / plain reserve_stock", "W2@2 reserve_stock with events / without",
        "W4 pyinv reserve_stock, hot mode: oversold = undersold = 0, every run",
        "W4 pyinv reserve_stock through the coalescer: oversold = undersold = 0, every run"}
    reports = document["REPORTS"]
    assert reports["stock_levels"] == 200 and reports["valid"], reports
    assert set(reports["seconds"]) == set(REPORT_QUERIES)
    rows = reports["rows"]  # a viewer of one of the ten locations sees fewer low levels than the admin
    assert 0 < rows["low_stock_items_first_page/admin"] == reports["low_stock_levels"]
    assert rows["low_stock_items_first_page/viewer_one_location"] < rows["low_stock_items_first_page/admin"]
    assert "reports (200 levels)" in format_table(results)
    assert "W2" in format_table(results) and "pyinv reserve_stock" in format_table(results)
