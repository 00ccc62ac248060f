"""Maintenance and checks: verify the books, expire holds, the audit log and its chain (`audit`), bulk
`import`, the maintenance runner (`maintain`, `status`) and its pg_cron registration (`schedule`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from .. import maintenance as runner
from ..errors import PermissionDenied
from .context import (
    EXIT_VIOLATIONS,
    CliError,
    HelpGroup,
    emit_page,
    example,
    json_option,
    list_options,
    print_table,
    state,
)
from .output import (
    AUDIT_BREAK_COLUMNS,
    AUDIT_COLUMNS,
    CRON_COLUMNS,
    IMPORT_REJECT_COLUMNS,
    MAINTENANCE_STATUS_COLUMNS,
    VIOLATION_COLUMNS,
    format_cell,
    plain,
    progress,
    to_json,
)
from .params import MOMENT


@example("pyinv verify")
@click.command()
@json_option
def verify() -> None:
    """Check that the books balance (exit code 1 if not)."""
    violations = state().inventory().verify_inventory()
    if state().json:
        click.echo(to_json({"balanced": not violations, "violations": plain(violations)}))
    elif violations:
        print_table(violations, VIOLATION_COLUMNS)
        click.echo(f"{len(violations)} violation{'s' if len(violations) != 1 else ''}: the books do not balance")
    else:
        click.echo("books balance")
    if violations:
        click.get_current_context().exit(EXIT_VIOLATIONS)


@example("pyinv expire")
@click.command()
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@json_option
def expire(batch_size: int) -> None:
    """Release overdue holds, in batches, until none are left."""
    inv = state().inventory()
    total = expired = inv.expire_reservations(batch_size)
    batches = 1
    if expired == batch_size:  # more may follow: show the running count
        with progress(f"expired {total} so far (1 batch)") if not state().json else nullcontext() as update:
            while expired == batch_size:
                expired = inv.expire_reservations(batch_size)
                total += expired
                batches += 1
                if update is not None:
                    update(description=f"expired {total} so far ({batches} batches)")
    if state().json:
        click.echo(to_json({"expired": total, "batches": batches}))
    else:
        click.echo(f"expired {total} reservation{'s' if total != 1 else ''}")


# -- the audit chain ------------------------------------------------------------------------------------------


@example("pyinv audit log --table items --since 1d", "pyinv audit verify --anchor anchor.json")
@click.group(cls=HelpGroup)
def audit() -> None:
    """The audit log and its hash chain: log, seal, anchor, verify."""


@example("pyinv audit log --table items --actor alice --since 2026-05-01")
@audit.command("log")
@click.option("--table", "table_name", help="Only changes of this table, e.g. items, locations, user_roles.")
@click.option("--actor", help="Only changes by this user.")
@click.option("--since", type=MOMENT, help="From this time: 2026-05-01, 2026-05-01T09:30, or ago: 2h, 7d.")
@click.option("--until", type=MOMENT, help="Before this time (same forms as --since).")
@list_options
def audit_log(table_name: str | None, actor: str | None, since: datetime | None, until: datetime | None,
              limit: int, offset: int) -> None:
    """Who changed what: the latest --limit audit rows (admins; --offset skips newer ones)."""
    emit_page(state().inventory().audit_log, limit, offset, AUDIT_COLUMNS, latest=True,
              empty="no audit rows", table=table_name, actor=actor, since=since, until=until)


@example("pyinv audit seal")
@audit.command("seal")
@click.option("--batch-size", default=10000, show_default=True, type=click.IntRange(1, 1000000))
@json_option
def audit_seal(batch_size: int) -> None:
    """Seal committed audit rows onto the hash chain until none are left (schedule it)."""
    inv = state().inventory()
    total, busy = 0, False
    while True:
        sealed = inv.seal_audit_log(batch_size)
        if sealed is None:
            busy = True
            break
        total += sealed
        if sealed < batch_size:
            break
    if state().json:
        click.echo(to_json({"sealed": total, "busy": busy}))
    elif busy:
        click.echo(f"sealed {total}; another sealer is running (busy), it seals the rest")
    else:
        click.echo(f"sealed {total} audit row{'s' if total != 1 else ''}")


@example("pyinv audit anchor -o anchor.json")
@audit.command("anchor")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the anchor to this new file (it is never overwritten); default: stdout.")
@click.option("--wait", "wait_seconds", default=10.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds to wait for transactions still writing below the ledger cut.")
@json_option
def audit_anchor(output: Path | None, wait_seconds: float) -> None:
    """Export the heads of the audit and ledger chains (JSON).

    Keep anchors where the database (and its superuser) cannot write: another machine, object
    storage with retention, a mailbox. `pyinv audit verify --anchor FILE` later reports anything
    they cover that was rewritten or deleted."""
    exists = CliError("ALREADY_EXISTS", f"{output} already exists; an anchor file is never overwritten",
                      "Write the new anchor to a new file (anchors are kept side by side, e.g. one per day).",
                      {"path": str(output)})
    if output is not None and output.exists():
        raise exists  # before taking the anchor, which waits for running writers
    anchor = state().inventory().audit_anchor(Decimal(str(wait_seconds)))
    text = json.dumps(anchor, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise exists from None
    if state().json:
        click.echo(to_json({"written": str(output)}))
    else:
        click.echo(f"anchor written to {output}", err=True)


@example("pyinv audit verify --anchor anchor.json")
@audit.command("verify")
@click.option("--anchor", "anchor_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An anchor from `pyinv audit anchor`: also check nothing it covers changed.")
@json_option
def audit_verify(anchor_path: Path | None) -> None:
    """Verify the audit chain and the ledger (with an anchor: against it too); exit 1 on a problem."""
    anchor = json.loads(anchor_path.read_text(encoding="utf-8")) if anchor_path else None
    inv = state().inventory()
    breaks, violations = inv.verify_audit_chain(anchor), inv.verify_inventory(anchor)
    if state().json:
        click.echo(to_json({"intact": not breaks and not violations, "audit_chain": plain(breaks),
                            "inventory": plain(violations)}))
    else:
        if breaks:
            print_table(breaks, AUDIT_BREAK_COLUMNS)
        if violations:
            print_table(violations, VIOLATION_COLUMNS)
        if not breaks and not violations:
            click.echo("audit chain and ledger intact" + (" and match the anchor" if anchor else ""))
    if breaks or violations:
        click.get_current_context().exit(EXIT_VIOLATIONS)


# -- bulk import ------------------------------------------------------------------------------------------------


@example("pyinv import items.csv", "pyinv import policies.csv --kind policies")
@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["items", "policies"]),
              help="What the file holds (default: guessed from the header).")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 10000),
              help="Rows per transaction.")
@json_option
def import_command(path: Path, kind: str | None, batch_size: int) -> None:
    """Bulk import items or stock policies from a CSV file.

    Items: sku,name[,unit_of_measure,unit_cost,track_lots,status]. Policies:
    sku,location,reorder_point,safety_stock[,reorder_quantity,max_stock_level,lead_time_days].
    One transaction per batch: its valid rows are applied, the rest reported with the reason.
    Exit code 1 when rows were rejected."""
    inv = state().inventory()
    if state().json:
        report = inv.import_csv(path, kind=kind, batch_size=batch_size)
    else:
        with path.open("rb") as handle:
            total = max(sum(1 for _ in handle) - 1, 0)
        with progress(f"importing {path.name}", total) as update:
            report = inv.import_csv(path, kind=kind, batch_size=batch_size,
                                    progress=lambda rows_done: update(completed=rows_done))
    if state().json:
        click.echo(to_json(plain(report)))
    else:
        click.echo(f"{report.kind}: {report.received} rows in {report.batches} batch"
                   f"{'es' if report.batches != 1 else ''}, {report.applied} applied, {report.unchanged} unchanged, "
                   f"{len(report.rejected)} rejected ({report.seconds:.1f}s)")
        if report.rejected:
            print_table(list(report.rejected), IMPORT_REJECT_COLUMNS)
    if report.rejected:
        click.get_current_context().exit(EXIT_VIOLATIONS)


# -- the maintenance runner ------------------------------------------------------------------------------------


class IntervalType(click.ParamType):
    """JOB=DURATION (90s, 5m, 1h, 1d, or off)."""

    name = "JOB=DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value
        job, sep, duration = str(value).partition("=")
        if not sep or job not in runner.DEFAULT_INTERVALS:
            self.fail(f"{value!r} is not JOB=DURATION with JOB one of {', '.join(runner.JOBS)}", param, ctx)
        try:
            return job, runner.parse_interval(duration)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _settings(config: Path | None, every: tuple[tuple[str, Any], ...], **overrides: Any) -> runner.Settings:
    try:
        return runner.load_settings(config, dict(every), **overrides)
    except (ValueError, OSError) as error:  # tomllib.TOMLDecodeError is a ValueError
        raise click.UsageError(str(error)) from None


def _runner_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                            help="A TOML file: [maintain] lease_seconds, anchor_dir, ... and "
                                 "[maintain.intervals] job = \"5m\".")(function)
    defaults = ", ".join(f"{job} {runner.human(interval)}" for job, interval in runner.DEFAULT_INTERVALS.items())
    return click.option("--every", "every", multiple=True, type=IntervalType(), metavar="JOB=DURATION",
                        help="A job's interval, e.g. --every refresh_inventory_views=10m (off: never); "
                             f"repeatable. Defaults: {defaults} (audit_anchor only with --anchor-dir).")(function)


@example("pyinv maintain", "pyinv maintain --once --json", "pyinv maintain --anchor-dir /var/lib/pyinv/anchors")
@click.command()
@click.option("--once", is_flag=True,
              help="Run every due job once and exit (cron, CI); a runner that does not lead runs nothing.")
@_runner_options
@click.option("--anchor-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also take an audit anchor (daily by default) into a new file in this directory.")
@click.option("--lease", "lease_seconds", type=click.IntRange(1, 3600),
              help="Seconds a runner leads without renewing (default 5): how soon another takes over "
                   "when it dies.")
@click.option("--renew", "renew_seconds", type=click.FloatRange(0.05, 3600),
              help="Seconds between renewals of the lease (default 1).")
@click.option("--runner-id", help="This runner's name in maintenance_leader (default host:pid:random).")
@json_option
def maintain(once: bool, config: Path | None, every: tuple[tuple[str, Any], ...], anchor_dir: Path | None,
             lease_seconds: int | None, renew_seconds: float | None, runner_id: str | None) -> None:
    """Run the maintenance jobs on their intervals, as long as it runs (SIGTERM/Ctrl-C: stop).

    Expires overdue holds and seals the audit log every minute, refreshes the report views every 5
    minutes, checks reorder points hourly, expires lots daily, and (with --anchor-dir) takes an
    audit anchor daily. Start as many runners as you like, on any machines: they elect one leader
    through a lease only pyinv's scheduler role can take, and another takes over within seconds
    when the leader dies. Logs one line per job run (JSON lines with --json). The login needs the
    scheduler role (or unscoped admin)."""
    settings = _settings(config, every, anchor_dir=anchor_dir, lease_seconds=lease_seconds,
                         renew_seconds=renew_seconds)
    current = state()
    dsn = current.dsn()
    log = runner.Log(sys.stdout, as_json=current.json)
    maintenance_runner = runner.Runner(lambda: current.connect(dsn), settings, runner_id=runner_id, log=log)
    with maintenance_runner.signals_stop():
        runs = maintenance_runner.run(once=once)
    if once and any(run.result == "error" for run in runs):
        click.get_current_context().exit(EXIT_VIOLATIONS)


@example("pyinv status", "pyinv status --json")
@click.command()
@json_option
def status() -> None:
    """The maintenance jobs: last run, duration, rows touched, result, and time since (lag)."""
    inv = state().inventory()
    jobs = inv.maintenance_status()
    try:
        leader = inv.maintenance_leader()
    except PermissionDenied:  # only the scheduler and admins see who leads
        leader = None
    if state().json:
        click.echo(to_json({"jobs": plain(jobs), "leader": plain(leader) if leader else None}))
        return
    print_table(jobs, MAINTENANCE_STATUS_COLUMNS)
    if leader is not None:
        click.echo(f"leader: {leader.runner_id} since {format_cell(leader.claimed_at)}, lease until "
                   f"{format_cell(leader.lease_until)}" + ("" if leader.is_current else " (lapsed)"))
    else:
        click.echo("leader: none (no `pyinv maintain` runner leads)")


@example("pyinv schedule --pg-cron", "pyinv schedule --pg-cron --remove")
@click.command()
@click.option("--pg-cron", "pg_cron", is_flag=True, required=True,
              help="Register the jobs with the pg_cron extension (Supabase has it).")
@click.option("--remove", is_flag=True, help="Unregister pyinv's jobs from pg_cron instead.")
@_runner_options
@json_option
def schedule(pg_cron: bool, remove: bool, config: Path | None, every: tuple[tuple[str, Any], ...]) -> None:
    """Let the database run maintenance itself: register the jobs of `pyinv maintain` with pg_cron.

    pg_cron schedules in whole minutes and runs each job as the login that registered it (it needs
    the scheduler role). audit_anchor is not registered: an anchor must be written outside the
    database. Run it again after changing an interval; --remove unregisters them all."""
    if not pg_cron:
        raise click.UsageError("say where to schedule: --pg-cron")
    connection = state().inventory().connection
    if remove:
        names = runner.unschedule_pg_cron(connection)
        if state().json:
            click.echo(to_json({"removed": names}))
        else:
            click.echo(f"removed {len(names)} pg_cron job{'s' if len(names) != 1 else ''}"
                       + (f": {', '.join(names)}" if names else ""))
        return
    settings = _settings(config, every)
    state().inventory().maintenance_leader()  # pg_cron runs the jobs as this login: it must be a scheduler
    try:
        jobs = runner.schedule_pg_cron(connection, settings)
    except runner.PgCronUnavailable as error:
        raise CliError("PG_CRON_UNAVAILABLE", error.message, error.advice) from None
    rows = [{"name": name, "schedule": cron, "command": command} for name, cron, command in jobs]
    if state().json:
        click.echo(to_json({"scheduled": rows}))
    else:
        print_table(rows, CRON_COLUMNS)
        click.echo(f"scheduled {len(rows)} pg_cron jobs")
