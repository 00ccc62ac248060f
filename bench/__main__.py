"""`python -m bench` from a checkout: the same as `pyinv bench`."""

from pyinv.bench.command import main

main()
