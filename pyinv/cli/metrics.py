"""Metrics (`metrics`: a table, --json or --prometheus; `metrics serve`: a Prometheus scrape endpoint)
and the self-contained HTML report (`report out.html`)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click

from .. import metrics as exposition
from .. import report as html_report
from .context import CliError, HelpGroup, example, json_option, notice, print_table, state
from .output import plain, to_json

METRIC_COLUMNS = ("metric", "value", "unit", "period", "description")


@example("pyinv metrics", "pyinv metrics --prometheus", "pyinv metrics serve --port 9188")
@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--prometheus", is_flag=True, help="The Prometheus text exposition format (gauges pyinv_<metric>).")
@json_option
@click.pass_context
def metrics(ctx: click.Context, prometheus: bool) -> None:
    """Operational metrics: stock-out rate, low stock, fill rate, turnover, count accuracy, expiry
    waste, expired holds, maintenance lag and the audit backlog.

    Stock figures cover your locations; maintenance and audit figures the whole database. An empty
    value is undefined (a rate with nothing to count; NaN in --prometheus)."""
    if ctx.invoked_subcommand is not None:
        return
    figures = state().inventory().inventory_metrics()
    if prometheus:
        click.echo(exposition.prometheus_text(figures), nl=False)
    elif state().json:
        click.echo(to_json(plain(figures)))
    elif not figures:
        click.echo("no metrics: you hold no business role (ask an admin for one)")
    else:
        rows = [{**plain(metric), "period": exposition.period_text(metric.period) if metric.period else None}
                for metric in figures]
        print_table(rows, METRIC_COLUMNS)


@example("pyinv metrics serve --port 9188", "pyinv metrics serve --host 0.0.0.0 --port 9188")
@metrics.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=9188, show_default=True,
              help="TCP port to listen on (0: any free port, printed at start).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def metrics_serve(port: int, host: str) -> None:
    """Serve GET /metrics for Prometheus to scrape, each scrape read fresh from the database.

    One request at a time over one connection, reopened after a failure (a scrape fails with 503
    while the database is unreachable). SIGTERM or Ctrl-C stops it cleanly."""
    current = state()
    dsn = current.dsn()
    try:
        server = exposition.MetricsServer((host, port), lambda: current.connect(dsn))
    except OSError as error:
        raise CliError("LISTEN_FAILED", f"cannot listen on {host}:{port}: {error.strerror or error}",
                       "Choose another --port (or --host), or stop what listens there.",
                       {"host": host, "port": port}) from None
    stop = threading.Event()
    try:
        server.scrape()  # fail at once (unreachable, no role, old schema) rather than at the first scrape
    except BaseException:
        server.server_close()
        raise
    notice(f"serving metrics on {server.url} (SIGTERM or Ctrl-C to stop)")
    with exposition.stopping_on_signals(stop):
        exposition.serve(server, stop)
    notice(f"stopped after {server.scrapes} scrape(s)")
    sys.stderr.flush()


@example("pyinv report stock.html", "pyinv report - > stock.html")
@click.command()
@click.argument("output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--title", default="Inventory report", show_default=True, help="Title of the page.")
def report(output: Path, title: str) -> None:
    """Write a self-contained HTML page (no network needed to view it): stock status, low stock,
    expiring lots, valuation and a chart of the last 30 days' movements, over your locations.

    OUTPUT is the file to write ("-": stdout). A summary line goes to stderr."""
    inv = state().inventory()
    data = html_report.collect(inv)
    page = html_report.render(data, title=title)
    if str(output) == "-":
        click.echo(page, nl=False)
    else:
        try:
            output.write_text(page, encoding="utf-8")
        except OSError as error:
            raise CliError("WRITE_FAILED", f"cannot write {output}: {error.strerror or error}",
                           "Name a file in a directory you may write to (or - for stdout).",
                           {"path": str(output)}) from None
    notice(f"{'report' if str(output) == '-' else output}: {data.summary()}")
