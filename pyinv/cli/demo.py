"""`pyinv demo`: race concurrent orders against a small shop, then verify nothing was oversold."""

from __future__ import annotations

import click

from .context import EXIT_VIOLATIONS, json_option, state
from .output import to_json


@click.command()
@click.option("--workers", default=8, show_default=True, type=click.IntRange(min=1, max=64))
@click.option("--orders", default=400, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", type=int, help="Seed the random choices (threads still race).")
@json_option
def demo(workers: int, orders: int, seed: int | None) -> None:
    """Simulate concurrent orders; prove nothing is oversold.

    Applies the migrations first, creates a small shop with SKUs unique to the run, races WORKERS
    threads (each with its own connection) through ORDERS orders, then verifies the books."""
    from ..demo import format_report, run_demo

    report = run_demo(state().dsn(), workers=workers, orders=orders, seed=seed, progress=True)
    if state().json:
        click.echo(to_json(report.to_dict()))
    else:
        click.echo(format_report(report))
    if not report.ok:
        click.get_current_context().exit(EXIT_VIOLATIONS)
