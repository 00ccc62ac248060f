"""Runs after every `pyinv migrate` that applied something: re-asserts the privileges from the shipped
sql/ (the current, authoritative definitions) by running its grants layer (every file of the 8x
band: the allowlist, and the grants to roles without a business role, inventory_user and
PostgREST/Supabase's) as the owner role, then asks PostgREST to reload its schema cache.
pyinv migrate makes the migrating login a member of inventory_owner for the run and revokes that
membership afterwards."""

from yoyo import step

from pyinv.resources import sql_dir

steps = [
    step("set local role inventory_owner"),
    *(step(path.read_text()) for path in sorted(sql_dir().glob("8*.sql"))),
    step("reset role"),
    step("notify pgrst, 'reload schema'"),
]
