"""`pyinv demo`: race concurrent orders against a small shop, in a database of its own, then verify
nothing was oversold."""

from __future__ import annotations

import click
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .context import EXIT_VIOLATIONS, example, json_option, notice, state
from .output import to_json


@example("pyinv demo", "pyinv demo --workers 16 --orders 2000 --seed 7")
@click.command()
@click.option("--workers", default=8, show_default=True, type=click.IntRange(min=1, max=64))
@click.option("--orders", default=400, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", type=int, help="Seed the random choices (threads still race).")
@click.option("--database", default="pyinv_demo", show_default=True,
              help="The demo's own database on the same server: dropped and created anew (must start with "
                   "pyinv_demo; never the database you named).")
@json_option
def demo(workers: int, orders: int, seed: int | None, database: str) -> None:
    """Simulate concurrent orders in a demo database; prove nothing is oversold.

    Creates the database DATABASE next to yours (your own data is never touched), applies the
    migrations there, creates a small shop, races WORKERS threads (each with its own connection)
    through ORDERS orders, then verifies the books. The shop stays there to look at until the next
    demo replaces it."""
    from ..demo import format_report, prepare_database, run_demo

    try:
        demo_dsn = prepare_database(state().dsn(), database)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--database") from None
    notice(f"running in the database {database} (dropped and created anew; your data is not touched)")
    report = run_demo(demo_dsn, workers=workers, orders=orders, seed=seed, progress=not state().json)
    if state().json:
        click.echo(to_json({**report.to_dict(), "database": database}))
    else:
        click.echo(format_report(report))
        shown = {key: value for key, value in conninfo_to_dict(demo_dsn).items() if key != "password"}
        click.echo(f"\nThe demo's shop stays in the database {database} until the next demo: "
                   f"pyinv --dsn '{make_conninfo(**shown)}' stock")
    if not report.ok:
        click.get_current_context().exit(EXIT_VIOLATIONS)
