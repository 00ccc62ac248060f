"""Where the shipped SQL lives: inside the wheel (pyinv/sql, pyinv/migrations) or, in a source
checkout, at the top of the repository."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pyinv cannot find its {name}/ directory next to {_PACKAGE}")


def sql_dir() -> Path:
    """The authoritative schema: small SQL files applied in name order."""
    return _find("sql")


def migrations_dir() -> Path:
    """yoyo migrations that bring any database to the schema in sql_dir()."""
    return _find("migrations")


def schema_files() -> list[Path]:
    return sorted(sql_dir().glob("*.sql"))


def schema_sql() -> str:
    """The whole schema as one script (it sets and resets its own role; run it in one transaction)."""
    parts = [f"-- {path.name}\n{path.read_text()}" for path in schema_files()]
    return "\n".join(parts)
