"""pyinv's benchmark suite: `pyinv bench` (or `python -m bench` in a checkout). See docs/benchmarks.md."""

from .harness import BenchConfig, Suite
from .report import format_table, plot, targets


def run(config: BenchConfig) -> dict:  # type: ignore[type-arg]
    """Run the suite with `config`; returns the result document (also what the JSON file holds)."""
    return Suite(config).run()


__all__ = ["BenchConfig", "Suite", "format_table", "plot", "run", "targets"]
