"""Aggregation (median, min, max over repetitions), the target ratios, the text table and the plot."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

METRICS = ("ops_per_s", "attempts_per_s", "p50_ms", "p95_ms", "p99_ms", "generator_cpu_share", "wal_bytes_per_op",
           "oversold", "undersold", "sell_out_s")


def _summary(values: list[Any]) -> dict[str, float | None]:
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, variant, clients): median/min/max of every metric over repetitions."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        groups[(cell["workload"], cell["variant"], cell["clients"])].append(cell)
    rows = []
    for (workload, variant, clients), runs in sorted(groups.items()):
        errors: dict[str, int] = defaultdict(int)
        for run in runs:
            for code, count in run["errors"].items():
                errors[code] += count
        row: dict[str, Any] = {"workload": workload, "variant": variant, "clients": clients, "runs": len(runs),
                               "valid_runs": sum(1 for run in runs if run["valid"]), "errors": dict(errors),
                               "driver": runs[0]["driver"]}
        for metric in METRICS:
            if any(metric in run for run in runs):
                row[metric] = _summary([run.get(metric) for run in runs])
        extras: dict[str, int] = defaultdict(int)
        for run in runs:
            for key, value in run.get("extra", {}).items():
                if isinstance(value, int):
                    extras[key] += value
        row["extra_totals"] = dict(extras)
        rows.append(row)
    return rows


def _median(summary_rows: list[dict[str, Any]], workload: str, variant: str, clients: int,
            metric: str = "ops_per_s") -> float | None:
    for row in summary_rows:
        if (row["workload"], row["variant"], row["clients"]) == (workload, variant, clients) and metric in row:
            return row[metric]["median"]
    return None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each PASS, MISS or NOT RUN, with the measured numbers."""
    rows = results.get("summary", [])
    out: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, goal: str, passed: bool | None, detail: str) -> None:
        if goal == "report":  # measured and reported, with no target to meet
            verdict = "NOT RUN" if measured is None else "INFO"
        else:
            verdict = "NOT RUN" if measured is None and passed is None else ("PASS" if passed else "MISS")
        out.append({"target": name, "goal": goal, "measured": measured, "verdict": verdict, "detail": detail})

    for workload, base, goal in (("W2", "Bfn", 0.8), ("W2", "B0", 0.4), ("W1", "B0", 0.8)):
        b3, other = _median(rows, workload, "B3", 32), _median(rows, workload, base, 32)
        value = _ratio(b3, other)
        add(f"{workload}@32 {name(base)}: pyinv / it", value, f">= {goal}", None if value is None else value >= goal,
            f"pyinv {_n(b3)} / {_n(other)} ops/s (medians)")
    for workload in ("W1", "W2", "W3"):
        for clients in (8, 32, 64):
            b3 = _median(rows, workload, "B3", clients)
            rivals = {v: _median(rows, workload, v, clients) for v in ("B1", "B2")}
            best = max((rate for rate in rivals.values() if rate is not None), default=None)
            value = _ratio(b3, best)
            add(f"{workload}@{clients} pyinv / best of ORM optimistic, FOR UPDATE", value, "> 1",
                None if value is None else value > 1,
                f"pyinv {_n(b3)}; " + ", ".join(f"{name(v)} {_n(rate)}" for v, rate in rivals.items()) + " ops/s")
    lots, plain = _median(rows, "W2", "B3lot", 32), _median(rows, "W2", "B3", 32)
    value = _ratio(lots, plain)
    add("W2@32 lot-tracked (FEFO over 3 lots) / plain reserve_stock", value, "report", None,
        f"lot-tracked {_n(lots)} / plain {_n(plain)} ops/s (medians)")
    for clients in sorted({row["clients"] for row in rows if row["workload"] == "W2" and row["variant"] == "B3noev"}):
        with_events, without = _median(rows, "W2", "B3", clients), _median(rows, "W2", "B3noev", clients)
        value = _ratio(with_events, without)
        add(f"W2@{clients} reserve_stock with events / without", value, ">= 0.9",
            None if value is None else value >= 0.9,
            f"events on {_n(with_events)} / off {_n(without)} ops/s (medians, same run)")
    wal = _median(rows, "W2", "B3", 32, "wal_bytes_per_op")
    add("WAL bytes per reservation (W2@32)", wal, "<= 800", None if wal is None else wal <= 800,
        f"bare function with the same writes: {_n(_median(rows, 'W2', 'Bfn', 32, 'wal_bytes_per_op'))}, "
        f"bare UPDATE: {_n(_median(rows, 'W2', 'B0', 32, 'wal_bytes_per_op'))}")
    # Hot-SKU mode (issue 14): one SKU, 32 clients, against the bare single-row UPDATE of the same run.
    floor, hot, coalesced = (_median(rows, "W1", variant, 32) for variant in ("B0", "B3hot", "B3co"))
    value = _ratio(hot, floor)
    add("W1@32 hot mode / bare single-row UPDATE", value, ">= 3", None if value is None else value >= 3,
        f"hot mode {_n(hot)} / floor {_n(floor)} reservations/s; "
        f"plain reserve_stock {_n(_median(rows, 'W1', 'B3', 32))}")
    value = _ratio(coalesced, floor)
    add("W1@32 coalescer / bare single-row UPDATE (units held/s)", value, ">= 10",
        None if value is None else value >= 10, f"coalescer {_n(coalesced)} / floor {_n(floor)} units/s")
    p99_co, p99_direct = _median(rows, "W1", "B3co", 32, "p99_ms"), _median(rows, "W1", "B3", 32, "p99_ms")
    added = p99_co - p99_direct if p99_co is not None and p99_direct is not None else None
    add("W1@32 p99 added by the coalescer (ms)", added, "<= 10", None if added is None else added <= 10,
        f"p99 through the coalescer {_n(p99_co)} ms, the same calls made directly {_n(p99_direct)} ms")
    flash = [cell for cell in results.get("cells", []) if cell["workload"] == "W4"]
    flash_b3 = [cell for cell in flash if cell["variant"] == "B3"]
    if flash_b3:
        worst = max(max(cell["oversold"], cell["undersold"]) for cell in flash_b3)
        others = ", ".join(
            f"{name(variant)} {max(max(c['oversold'], c['undersold']) for c in flash if c['variant'] == variant)}"
            for variant in ("B0", "B1", "B2") if any(c["variant"] == variant for c in flash))
        add("W4 pyinv oversold = undersold = 0, every run", float(worst), "0", worst == 0,
            f"{len(flash_b3)} pyinv runs, worst over/undersold {worst}; other variants' worst: {others}")
    else:
        add("W4 pyinv oversold = undersold = 0, every run", None, "0", None, "W4 not run")
    for variant in ("B3hot", "B3co"):
        runs = [cell for cell in flash if cell["variant"] == variant]
        worst = max((max(cell["oversold"], cell["undersold"]) for cell in runs), default=None)
        add(f"W4 {name(variant)}: oversold = undersold = 0, every run", None if worst is None else float(worst), "0",
            None if worst is None else worst == 0,
            f"{len(runs)} runs, worst over/undersold {worst}" if runs else "not run")
    orders = [cell for cell in results.get("cells", []) if cell["workload"] == "W7"]
    if orders:
        deadlocks = sum(cell["errors"].get("40P01", 0) for cell in orders)
        add("W7 deadlocks (40P01) surfaced", float(deadlocks), "0", deadlocks == 0,
            f"{len(orders)} runs, {sum(cell['successes'] for cell in orders):,} orders reserved")
    backlog = results.get("W6") or []
    if backlog:
        by_workers: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for record in backlog:
            by_workers[record["workers"]].append(record)
        rates = {w: statistics.median([r["expired_per_s"] for r in recs]) for w, recs in by_workers.items()}
        best = max(rates.values())
        add("W6 holds expired per second", best, ">= 50,000", best >= 50_000,
            "median per worker count: " + ", ".join(f"{w} -> {_n(rate)}/s" for w, rate in sorted(rates.items()))
            + f" (backlog {backlog[0]['backlog']:,})")
        ratios = {w: statistics.median([r["p99_ratio"] for r in recs if r["p99_ratio"] is not None] or [0])
                  for w, recs in by_workers.items()}
        worst_ratio = max(ratios.values())
        add("W6 reserve p99 during sweep / without", worst_ratio, "<= 2", worst_ratio <= 2,
            "median per worker count: " + ", ".join(f"{w} -> {ratio:.2f}x" for w, ratio in sorted(ratios.items())))
    else:
        add("W6 holds expired per second", None, ">= 50,000", None, "W6 not run")
    scale = results.get("SCALE")
    if scale:
        value = scale.get("p50_ratio")
        add("Scale: reserve p50 large / small ledger", value, "<= 1.2", value is not None and value <= 1.2,
            f"p50 {_n(scale['p50_small_ms']['median'], 3)} ms at {scale['ledger_rows_small']:,} ledger rows vs "
            f"{_n(scale['p50_large_ms']['median'], 3)} ms at {scale['ledger_rows_large']:,}")
    else:
        add("Scale: reserve p50 large / small ledger", None, "<= 1.2", None, "scale check not run")
    return out


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _range(summary: dict[str, float | None] | None, digits: int = 0) -> str:
    if not summary or summary["median"] is None:
        return "-"
    if summary["min"] == summary["max"]:
        return _n(summary["median"], digits)
    return f"{_n(summary['median'], digits)} ({_n(summary['min'], digits)}-{_n(summary['max'], digits)})"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}:{count}" for code, count in sorted(errors.items())) or "-"


def format_table(results: dict[str, Any], markdown: bool = False) -> str:
    """The results as an aligned text table (or Markdown): medians with (min-max)."""
    headers = ["workload", "variant", "c", "ops/s", "attempts/s", "p50 ms", "p95 ms", "p99 ms", "gen CPU",
               "WAL B/op", "valid", "errors / notes"]
    body = []
    for row in results.get("summary", []):
        notes = _errors(row["errors"])
        if row["workload"] == "W4":
            notes = (f"oversold {_range(row.get('oversold'))}, undersold {_range(row.get('undersold'))}, "
                     f"sell-out {_range(row.get('sell_out_s'), 2)} s; " + notes)
        extras = row.get("extra_totals", {})
        if row["variant"] == "B1" and row["workload"] != "W4":
            notes = f"conflicts {extras.get('conflicts', 0)}, give-ups {extras.get('give_ups', 0)}; " + notes
        if row["workload"] == "W5":
            notes = f"expired by sweeper {extras.get('expired_by_sweeper', 0)}; " + notes
        cpu = row.get("generator_cpu_share", {}).get("median")
        body.append([row["workload"], f"{row['variant']} {name(row['variant'])}", str(row["clients"]),
                     _range(row.get("ops_per_s")),
                     _range(row.get("attempts_per_s")), _range(row.get("p50_ms"), 2), _range(row.get("p95_ms"), 2),
                     _range(row.get("p99_ms"), 2), "-" if cpu is None else f"{cpu:.0%}",
                     _n(row.get("wal_bytes_per_op", {}).get("median")),
                     f"{row['valid_runs']}/{row['runs']}", notes])
    lines = [_render(headers, body, markdown)]
    backlog = results.get("W6") or []
    if backlog:
        headers6 = ["W6 workers", "rep", "backlog", "expired/s", "sweep s", "WAL B/hold", "p99 without ms",
                    "p99 during ms", "ratio", "valid"]
        body6 = [[str(r["workers"]), str(r["repetition"]), f"{r['backlog']:,}", _n(r["expired_per_s"]),
                  f"{r['sweep_s']:.1f}", _n(r["wal_bytes_per_hold"]), _n(r["p99_without_ms"], 2),
                  _n(r["p99_during_ms"], 2), "-" if r["p99_ratio"] is None else f"{r['p99_ratio']:.2f}",
                  "yes" if r["valid"] else "NO"]
                 for r in sorted(backlog, key=lambda r: (r["workers"], r["repetition"]))]
        lines += ["", _render(headers6, body6, markdown)]
    scale = results.get("SCALE")
    if scale:
        headers_s = ["scale (B3, c=1)", "ledger rows", "ops/s", "p50 ms", "p99 ms"]
        body_s = [["small ledger", f"{scale['ledger_rows_small']:,}", _range(scale["ops_per_s_small"]),
                   _range(scale["p50_small_ms"], 3), _range(scale["p99_small_ms"], 3)],
                  ["large ledger", f"{scale['ledger_rows_large']:,}", _range(scale["ops_per_s_large"]),
                   _range(scale["p50_large_ms"], 3), _range(scale["p99_large_ms"], 3)]]
        lines += ["", _render(headers_s, body_s, markdown)]
    reports = results.get("REPORTS")
    if reports:
        headers_r = [f"reports ({reports['stock_levels']:,} levels)", "caller", "rows", "seconds (median, min-max)"]
        body_r = [[query_name, caller, f"{reports['rows'].get(f'{query_name}/{caller}', 0):,}",
                   _range(values, 3)]
                  for query_name, by_caller in reports["seconds"].items() for caller, values in by_caller.items()]
        lines += ["", _render(headers_r, body_r, markdown)]
    headers_t = ["target", "goal", "measured", "verdict", "detail"]
    body_t = [[t["target"], t["goal"], "-" if t["measured"] is None else f"{t['measured']:,.2f}", t["verdict"],
               t["detail"]] for t in results.get("targets", [])]
    lines += ["", _render(headers_t, body_t, markdown)]
    return "\n".join(lines)


def _render(headers: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
        return "\n".join(out)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return "\n".join(out)


# What each variant is, in words a reader of the table or the plot understands.
VARIANT_NAMES = {"B0": "bare UPDATE (floor)", "B1": "ORM optimistic", "B2": "SELECT FOR UPDATE",
                 "B3": "pyinv reserve_stock", "B3a": "pyinv reserve_stock, async commit",
                 "Bfn": "bare function, same writes", "B3lot": "pyinv reserve_stock, lot-tracked (FEFO)",
                 "B3noev": "pyinv reserve_stock, events off", "B3hot": "pyinv reserve_stock, hot mode",
                 "B3co": "pyinv reserve_stock through the coalescer"}


def name(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


VARIANT_COLORS = {"B0": "tab:blue", "B1": "tab:orange", "B2": "tab:green", "B3": "tab:red", "B3a": "tab:pink",
                  "Bfn": "tab:gray", "B3lot": "tab:brown", "B3noev": "tab:olive", "B3hot": "tab:purple",
                  "B3co": "tab:cyan"}
PLOT_HINT = "plotting needs matplotlib: pip install 'pyinv[bench]'"


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput vs clients per variant, one panel per workload (median, bars from min to max)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise RuntimeError(PLOT_HINT) from error
    rows = [row for row in results.get("summary", []) if row["workload"] != "W4"]
    workloads = sorted({row["workload"] for row in rows})
    if not workloads:
        raise RuntimeError("nothing to plot: no throughput cells in the results")
    figure, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.8), squeeze=False)
    for axis, workload in zip(axes[0], workloads, strict=True):
        for variant in VARIANT_COLORS:
            points = sorted((row["clients"], row["ops_per_s"]) for row in rows
                            if row["workload"] == workload and row["variant"] == variant)
            if not points:
                continue
            xs = [c for c, _ in points]
            medians = [s["median"] for _, s in points]
            low = [s["median"] - s["min"] for _, s in points]
            high = [s["max"] - s["median"] for _, s in points]
            axis.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, label=name(variant),
                          color=VARIANT_COLORS[variant])
        axis.set_title(workload)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("clients")
        axis.set_ylabel("successful ops/s")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    environment = results.get("environment", {})
    figure.suptitle(f"pyinv bench: {environment.get('cores', '?')} cores, "
                    f"{str(environment.get('server_version', '')).split(' on ')[0]}, "
                    f"{results.get('config', {}).get('duration_s')} s cells, median of "
                    f"{results.get('config', {}).get('repetitions')} (bars: min-max)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
