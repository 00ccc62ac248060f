"""Runs after every `pyinv migrate` that applied something: re-asserts the privileges from the shipped
sql/ (the current, authoritative definitions) by running its grants layer (every file of the 8x
band: the allowlist, and the grants to roles without a business role, inventory_user and
PostgREST/Supabase's) as the owner role, then asks PostgREST to reload its schema cache. The same
statements end an upgrade script (pyinv.install.post_apply_statements, their one home).
pyinv migrate makes the migrating login a member of inventory_owner for the run and revokes that
membership afterwards."""

from yoyo import step

from pyinv.install import post_apply_statements

steps = [step(statement) for statement in post_apply_statements()]
