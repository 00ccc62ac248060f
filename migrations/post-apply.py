"""Runs after every `pyinv migrate` that applied something: re-asserts the privilege allowlist and
the PostgREST/Supabase grants from the shipped sql/ (the current, authoritative definitions), then
asks PostgREST to reload its schema cache."""

from yoyo import step

from pyinv.resources import sql_dir

steps = [
    step((sql_dir() / "70_grants.sql").read_text()),
    step((sql_dir() / "72_stock_control_grants.sql").read_text()),
    step((sql_dir() / "80_supabase.sql").read_text()),
    step("notify pgrst, 'reload schema'"),
]
