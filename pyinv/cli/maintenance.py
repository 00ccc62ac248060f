"""Maintenance and checks: verify the books, expire holds, the audit log and its chain (`audit`), bulk
`import`."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import click

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
    IMPORT_REJECT_COLUMNS,
    VIOLATION_COLUMNS,
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
