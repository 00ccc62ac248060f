"""Checkout shim: `python -m bench` runs pyinv's benchmark suite (pyinv.bench)."""
