"""Runs after every `pyinv migrate` that applied something: re-asserts the privilege allowlist and
the grants to roles without a business role (inventory_user, PostgREST/Supabase's) from the shipped
sql/ (the current, authoritative definitions), as the owner role, then asks PostgREST to reload its
schema cache. pyinv migrate makes the migrating login a member of inventory_owner for the run and
revokes that membership afterwards."""

from yoyo import step

from pyinv.resources import sql_dir

steps = [
    step("set local role inventory_owner"),
    step((sql_dir() / "70_grants.sql").read_text()),
    step((sql_dir() / "72_stock_control_grants.sql").read_text()),
    step((sql_dir() / "80_api_access.sql").read_text()),
    step("reset role"),
    step("notify pgrst, 'reload schema'"),
]
