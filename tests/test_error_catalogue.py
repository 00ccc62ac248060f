"""The Python exception map mirrors the SQL error catalogue exactly."""

from __future__ import annotations

from pyinv.errors import CATALOGUE


def test_python_and_sql_catalogues_agree(db) -> None:
    in_sql = dict(db.execute("select code, sqlstate from inventory.error_codes").fetchall())
    in_python = {code: cls.sqlstate for code, cls in CATALOGUE.items()}
    assert in_python == in_sql


def test_every_raised_hint_is_catalogued(db) -> None:
    bodies = db.execute("""
        select string_agg(prosrc, ' ') from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('inventory', 'inventory_api')""").fetchone()[0]
    import re

    raised = set(re.findall(r"raise_error\('([A-Z_]+)'", bodies))
    catalogued = {row[0] for row in db.execute("select code from inventory.error_codes")}
    assert raised and raised <= catalogued


def test_every_catalogued_error_is_documented_in_the_readme(db) -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code, sqlstate in db.execute("select code, sqlstate from inventory.error_codes"):
        assert f"| `{code}` | `{sqlstate}` |" in readme, code
