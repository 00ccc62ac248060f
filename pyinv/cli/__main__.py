"""`python -m pyinv.cli`: the same as the `pyinv` command."""

from . import main

main()
