"""`pyinv bench` / `python -m bench`: run the suite, print the table, write the JSON (and the plot)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from .harness import ALL_VARIANTS, ALL_WORKLOADS, BenchConfig, Suite
from .report import PLOT_HINT, format_table, plot


def _csv(value: str | None, cast=str) -> tuple | None:  # type: ignore[no-untyped-def, type-arg]
    if not value:
        return None
    return tuple(cast(part.strip()) for part in value.split(",") if part.strip())


@click.command("bench")
@click.option("--dsn", metavar="DSN", help="Server to benchmark on (default: the embedded server). The bench "
              "creates, and afterwards drops, its own database there; your data is never touched.")
@click.option("--quick", is_flag=True, help="Short run (W1, W2, W4, a small W6; c=32; 2 s cells; under ~2 min).")
@click.option("--workloads", help=f"Comma-separated subset of {','.join(ALL_WORKLOADS)}.")
@click.option("--variants", help="Comma-separated variants to run (default all), e.g. B3,B3noev.")
@click.option("--clients", help="Comma-separated client counts (default 1,8,32,64; --quick: 32).")
@click.option("--duration", type=float, help="Seconds per cell (default 10; --quick: 2).")
@click.option("--repetitions", type=click.IntRange(min=1), help="Repetitions of every cell (default 3).")
@click.option("--w6-backlog", type=click.IntRange(min=100), help="Overdue holds per W6 run (default 1,000,000).")
@click.option("--w6-repetitions", type=click.IntRange(min=1), help="Repetitions of W6 (default: --repetitions).")
@click.option("--scale-ledger-rows", type=click.IntRange(min=10_000),
              help="Ledger rows for the large side of the scale check (default 10,000,000).")
@click.option("--report-levels", type=click.IntRange(min=10),
              help="Stock levels of the REPORTS catalogue (default 1,000,000; 10 locations).")
@click.option("--database", default="pyinv_bench", show_default=True,
              help="Name of the bench database (dropped and recreated; must start with pyinv_bench).")
@click.option("--keep-database", is_flag=True, help="Do not drop the bench database afterwards.")
@click.option("--hot-buckets", type=click.IntRange(min=2, max=64),
              help="Buckets of the hot-mode (B3hot) cells (default 16).")
@click.option("--coalescer-processes", type=click.IntRange(min=1, max=8),
              help="Application processes of the coalescer (B3co) cells, each with one Coalescer (default 2).")
@click.option("--seed", type=int, help="Seed for the cell order and the Python drivers.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON result file (default bench/results/<timestamp>.json).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw throughput vs clients (PNG; needs matplotlib: pip install 'pyinv[bench]').")
def bench(dsn: str | None, quick: bool, workloads: str | None, variants: str | None, clients: str | None,
          duration: float | None, repetitions: int | None, w6_backlog: int | None, w6_repetitions: int | None,
          scale_ledger_rows: int | None, report_levels: int | None, database: str, keep_database: bool,
          seed: int | None, output: Path | None, plot_path: Path | None, hot_buckets: int | None,
          coalescer_processes: int | None) -> None:
    """Benchmark pyinv against a bare-UPDATE floor and two client-side baselines.

    Every cell runs for a fixed time at a fixed number of connections and is INVALID unless
    verify_inventory() returns no rows afterwards. Results: a table on stdout, JSON in --output."""
    chosen = _csv(workloads, lambda text: text.upper())
    if chosen and set(chosen) - set(ALL_WORKLOADS):
        raise click.BadParameter(f"unknown workloads {sorted(set(chosen) - set(ALL_WORKLOADS))}",
                                 param_hint="--workloads")
    chosen_variants = _csv(variants)
    if chosen_variants and set(chosen_variants) - set(ALL_VARIANTS):
        raise click.BadParameter(f"unknown variants {sorted(set(chosen_variants) - set(ALL_VARIANTS))}; "
                                 f"choose from {','.join(ALL_VARIANTS)}", param_hint="--variants")
    overrides = {"dsn": dsn, "workloads": chosen, "variants": chosen_variants, "clients": _csv(clients, int),
                 "duration": duration,
                 "repetitions": repetitions, "w6_backlog": w6_backlog, "w6_repetitions": w6_repetitions,
                 "scale_ledger_rows": scale_ledger_rows, "report_levels": report_levels, "seed": seed,
                 "hot_buckets": hot_buckets, "coalescer_processes": coalescer_processes}
    if quick:
        config = BenchConfig.quick_config(**overrides)
    else:
        config = BenchConfig(**{key: value for key, value in overrides.items() if value is not None})
    config.database, config.keep_database = database, keep_database
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            click.echo(f"warning: {PLOT_HINT}; running without --plot", err=True)
            plot_path = None
    results = Suite(config).run()
    output = output or Path("bench") / "results" / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str))
    click.echo(format_table(results))
    click.echo(f"\nresults: {output}  (wall time {results['wall_s']:.0f} s)")
    if plot_path is not None:
        plot(results, plot_path)
        click.echo(f"plot: {plot_path}")
    if any(not cell["valid"] for cell in results["cells"]) or any(not r["valid"] for r in results.get("W6", [])):
        click.echo("some cells are INVALID: the books did not balance after them (see the JSON)", err=True)
        sys.exit(1)


def main() -> None:
    bench(prog_name="python -m bench")
