"""Supabase's database linter (splinter, the Security and Performance Advisors) finds nothing in
pyinv's schemas with `inventory_api` exposed: each test asserts one of its rules (by its number and
name), written here from the rule's definition against the catalogue of a migrated database. Where
a rule depends on the exposed schemas we check both pyinv schemas (`inventory_api`, the one to
expose, and `inventory`, in case someone exposes it too); where splinter checks every user schema
we check pyinv's three (`inventory`, `inventory_api`, `inventory_meta`).

0029 (signed-in users may execute a SECURITY DEFINER function in an exposed schema) holds literally:
`inventory_api` has only SECURITY INVOKER wrappers. Its concern, definer code that `authenticated`
can reach (through those wrappers), is by design; the test asserts its structural guarantee
instead: each such function pins search_path, runs as a role that is neither superuser nor
BYPASSRLS, and authorises the caller before it writes anything.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

EXPOSED = ["inventory_api", "inventory"]
OURS = ["inventory", "inventory_api", "inventory_meta"]
API_ROLES = ["anon", "authenticated"]


@pytest.fixture(scope="module")
def advisor(module_dsn: str) -> Any:
    with psycopg.connect(module_dsn, autocommit=True) as connection:
        yield connection


def offenders(connection: psycopg.Connection[Any], query: str, **params: Any) -> list[str]:
    return [row[0] for row in connection.execute(query, {"ours": OURS, "exposed": EXPOSED,
                                                         "api_roles": API_ROLES, **params}).fetchall()]


def assert_none(found: list[str], rule: str) -> None:
    assert not found, f"splinter {rule} would report {len(found)}:\n  " + "\n  ".join(found)


def test_0003_auth_rls_initplan(advisor: Any) -> None:
    """Policies call current_setting() and auth.*() once per statement, wrapped in a scalar subquery."""
    rows = advisor.execute("""
        select p.schemaname || '.' || p.tablename || ': ' || p.policyname, coalesce(p.qual, ''),
               coalesce(p.with_check, '')
          from pg_policies p join pg_class c on c.relname = p.tablename
          join pg_namespace n on n.oid = c.relnamespace and n.nspname = p.schemaname
         where p.schemaname = any (%(ours)s) and c.relrowsecurity""", {"ours": OURS}).fetchall()
    calls = re.compile(r"(?<![\w.])(current_setting|auth\.(?:uid|jwt|role|email))\s*\(", re.IGNORECASE)
    found = []
    for name, *expressions in rows:
        for expression in expressions:
            for call in calls.finditer(expression):
                if not re.search(r"select\s+(pg_catalog\.)?$", expression[:call.start()].rstrip() + " ", re.IGNORECASE):
                    found.append(f"{name} calls {call.group(1)}() per row")
    assert_none(found, "0003 auth_rls_initplan")


def test_0006_multiple_permissive_policies(advisor: Any) -> None:
    found = offenders(advisor, """
        select n.nspname || '.' || c.relname || ' for ' || r.rolname || ' ' || a.action || ': '
               || string_agg(p.polname, ', ' order by p.polname)
          from pg_policy p
          join pg_class c on c.oid = p.polrelid
          join pg_namespace n on n.oid = c.relnamespace
          join pg_roles r on r.oid = any (p.polroles) or p.polroles = '{0}'
          cross join lateral unnest(case p.polcmd when '*' then array['SELECT', 'INSERT', 'UPDATE', 'DELETE']
                                                  when 'r' then array['SELECT'] when 'a' then array['INSERT']
                                                  when 'w' then array['UPDATE'] when 'd' then array['DELETE'] end)
                             a(action)
         where n.nspname = any (%(ours)s) and c.relkind = 'r' and p.polpermissive
           and r.rolname not like 'pg\\_%%' and r.rolname not like 'supabase%%admin' and not r.rolbypassrls
         group by n.nspname, c.relname, r.rolname, a.action
        having count(*) > 1""")
    assert_none(found, "0006 multiple_permissive_policies")


def test_0007_policy_exists_rls_disabled(advisor: Any) -> None:
    found = offenders(advisor, """
        select distinct n.nspname || '.' || c.relname
          from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any (%(ours)s) and not c.relrowsecurity""")
    assert_none(found, "0007 policy_exists_rls_disabled")


def test_0009_duplicate_index(advisor: Any) -> None:
    found = offenders(advisor, """
        select i.schemaname || '.' || i.tablename || ': ' || string_agg(i.indexname, ', ' order by i.indexname)
          from pg_indexes i
         where i.schemaname = any (%(ours)s)
         group by i.schemaname, i.tablename, replace(i.indexdef, i.indexname, '')
        having count(*) > 1""")
    assert_none(found, "0009 duplicate_index")


def test_0010_security_definer_view(advisor: Any) -> None:
    """Every view an API role can read runs as the caller (security_invoker), so row level security
    applies to the caller."""
    found = offenders(advisor, """
        select n.nspname || '.' || c.relname
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind = 'v' and n.nspname = any (%(exposed)s)
           and exists (select from unnest(%(api_roles)s::text[]) r where has_table_privilege(r, c.oid, 'SELECT'))
           and not coalesce(lower(c.reloptions::text)::text[], '{}')
                   && array['security_invoker=1', 'security_invoker=true', 'security_invoker=yes',
                            'security_invoker=on']""")
    assert_none(found, "0010 security_definer_view")
    # The rule only bites where API roles can read: make sure they can read the API views at all.
    readable = advisor.execute("""
        select count(*) from pg_class c where c.relnamespace = 'inventory_api'::regnamespace and c.relkind = 'v'
           and has_table_privilege('authenticated', c.oid, 'SELECT')""").fetchone()[0]
    assert readable >= 5


def test_0011_function_search_path_mutable(advisor: Any) -> None:
    found = offenders(advisor, """
        select p.oid::regprocedure::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = any (%(ours)s)
           and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
           and not exists (select from unnest(coalesce(p.proconfig, '{}')) s where s like 'search\\_path=%%')
         order by 1""")
    assert_none(found, "0011 function_search_path_mutable")


def test_0013_rls_disabled_in_public(advisor: Any) -> None:
    found = offenders(advisor, """
        select n.nspname || '.' || c.relname
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p') and not c.relrowsecurity and n.nspname = any (%(exposed)s)
           and exists (select from unnest(%(api_roles)s::text[]) r where has_table_privilege(r, c.oid, 'SELECT'))""")
    assert_none(found, "0013 rls_disabled_in_public")
    # Stricter than the rule: every table of pyinv has row level security, readable or not.
    without = offenders(advisor, """
        select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p') and not c.relrowsecurity and n.nspname in ('inventory', 'inventory_api')""")
    assert_none(without, "0013 (any table of pyinv without row level security)")


def test_0016_materialized_view_in_api(advisor: Any) -> None:
    found = offenders(advisor, """
        select n.nspname || '.' || c.relname
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind = 'm' and n.nspname = any (%(exposed)s)
           and exists (select from unnest(%(api_roles)s::text[]) r where has_table_privilege(r, c.oid, 'SELECT'))""")
    assert_none(found, "0016 materialized_view_in_api")


def test_0018_unsupported_reg_types(advisor: Any) -> None:
    """No column (of a table, view or composite type) has a reg* type pg_upgrade cannot carry."""
    found = offenders(advisor, """
        select n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, null)
          from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any (%(ours)s) and a.attnum > 0 and not a.attisdropped
           and a.atttypid in ('regcollation'::regtype, 'regconfig'::regtype, 'regdictionary'::regtype,
                              'regnamespace'::regtype, 'regoper'::regtype, 'regoperator'::regtype,
                              'regproc'::regtype, 'regprocedure'::regtype)""")
    assert_none(found, "0018 unsupported_reg_types")


def test_0024_rls_policy_always_true(advisor: Any) -> None:
    """No permissive policy that an API role (or PUBLIC) falls under lets every row be changed."""
    found = offenders(advisor, """
        select p.schemaname || '.' || p.tablename || ': ' || p.policyname || ' (' || p.cmd || ')'
          from pg_policies p
          join pg_class c on c.relname = p.tablename
          join pg_namespace n on n.oid = c.relnamespace and n.nspname = p.schemaname
          cross join lateral (select regexp_replace(lower(coalesce(p.qual, '')), '\\s', '', 'g') as q,
                                     regexp_replace(lower(coalesce(p.with_check, '')), '\\s', '', 'g') as w) e
         where p.schemaname = any (%(ours)s) and c.relrowsecurity and p.permissive = 'PERMISSIVE'
           and (p.roles && array['public', 'anon', 'authenticated']::name[])
           and ((p.cmd in ('UPDATE', 'DELETE', 'ALL') and (e.q in ('true', '(true)', '1=1', '(1=1)') or p.qual is null))
                or e.w in ('true', '(true)', '1=1', '(1=1)')
                or (p.with_check is null and p.cmd = 'INSERT'))""")
    assert_none(found, "0024 rls_policy_always_true")


def test_0028_anon_cannot_execute_security_definer_functions(advisor: Any) -> None:
    """Stricter than the rule (which looks only at exposed schemas): anon can execute no function of
    pyinv at all."""
    found = offenders(advisor, """
        select p.oid::regprocedure::text || case when p.prosecdef then ' (SECURITY DEFINER)' else '' end
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = any (%(ours)s) and has_function_privilege('anon', p.oid, 'EXECUTE')
         order by 1""")
    assert_none(found, "0028 anon_security_definer_function_executable")


def test_0029_no_security_definer_function_in_the_exposed_schema(advisor: Any) -> None:
    found = offenders(advisor, """
        select p.oid::regprocedure::text
          from pg_proc p
         where p.pronamespace = 'inventory_api'::regnamespace and p.prosecdef
           and has_function_privilege('authenticated', p.oid, 'EXECUTE')""")
    assert_none(found, "0029 authenticated_security_definer_function_executable")


# Functions whose job is to tell who the caller is and what it may do: they are the authorisation.
IDENTITY = {"current_actor", "is_gateway_session", "current_grants", "is_allowed", "visible_location_ids",
            "has_any_role", "holds_role_somewhere", "audit_context", "acting_db_role", "role_rank",
            "schema_version"}
AUTHORISATION = {"authorize", "authorize_locations", "is_allowed", "holds_role_somewhere", "has_any_role",
                 "visible_location_ids", "current_grants"}
CALL = re.compile(r"(?<!\w)inventory\.(\w+)\s*\(")
WRITE = re.compile(r"\b(insert\s+into|update\s+inventory\.|delete\s+from)\b", re.IGNORECASE)


def _body(definition: str) -> str:
    """The body of a pg_get_functiondef() text (after its header), without comments."""
    start = re.search(r"\n(AS \$|BEGIN ATOMIC)", definition)
    return re.sub(r"--[^\n]*", "", definition[start.start() if start else 0:])


def test_0029_by_design_definer_code_reachable_by_authenticated_is_confined(advisor: Any) -> None:
    """The SECURITY DEFINER implementations `authenticated` reaches through the API wrappers: each
    pins search_path to '', is owned by a role without superuser or BYPASSRLS, and authorises the
    caller (itself, or through a helper that does) before its first write of its own; a write an
    authorisation failure follows is rolled back with it."""
    bodies = {name: _body(source) for name, source in advisor.execute("""
        select p.proname, pg_get_functiondef(p.oid) from pg_proc p
         where p.pronamespace = 'inventory'::regnamespace and p.prokind = 'f'""").fetchall()}
    authorising = set(AUTHORISATION)
    while True:  # a function that calls one that authorises authorises too
        more = {name for name, body in bodies.items()
                if name not in authorising and set(CALL.findall(body)) & authorising}
        if not more:
            break
        authorising |= more
    rows = advisor.execute("""
        select p.oid::regprocedure::text, p.proname, p.proconfig, r.rolname, r.rolsuper, r.rolbypassrls
          from pg_proc p join pg_roles r on r.oid = p.proowner
         where p.pronamespace = any (array['inventory'::regnamespace, 'inventory_api'::regnamespace])
           and p.prosecdef and has_function_privilege('authenticated', p.oid, 'EXECUTE')
         order by 1""").fetchall()
    assert len(rows) >= 10, "authenticated should reach the API's implementations"
    found = []
    for signature, name, config, owner, superuser, bypassrls in rows:
        if 'search_path=""' not in (config or []):
            found.append(f"{signature}: search_path not pinned to '' ({config})")
        if superuser or bypassrls or owner != "inventory_owner":
            found.append(f"{signature}: owned by {owner} (superuser {superuser}, bypassrls {bypassrls})")
        if name in IDENTITY:
            continue
        body = bodies[name]
        checks = [call.start() for call in CALL.finditer(body) if call.group(1) in authorising]
        write = WRITE.search(body)
        if not checks:
            found.append(f"{signature}: never authorises the caller")
        elif write is not None and write.start() < checks[0]:
            found.append(f"{signature}: writes ({write.group(0)}) before it authorises the caller")
    assert_none(found, "0029 (by design): definer functions reachable by authenticated")
