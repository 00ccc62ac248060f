"""Project-level checks: the README's commands, CI, the wheel's contents, style."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv[^\n]+)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_exactly_the_readme_test_command() -> None:
    install_and_demo, tests = readme_commands()
    assert install_and_demo.endswith("pyinv demo")
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3")]
    assert ci_lines == [tests]


def test_the_installed_package_carries_sql_and_migrations() -> None:
    distribution = metadata.distribution("pyinv")
    direct_url = distribution.read_text("direct_url.json")
    if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (*ROOT.glob("sql/*.sql"), *ROOT.glob("migrations/*"))}
        assert shipped and (ROOT / "pyinv" / "py.typed").is_file()
        return
    files = {str(path) for path in distribution.files or []}
    assert "pyinv/py.typed" in files  # PEP 561: type checkers read pyinv's annotations
    for path in ROOT.glob("sql/*.sql"):
        assert f"pyinv/sql/{path.name}" in files
    for path in ROOT.glob("migrations/*"):
        assert f"pyinv/migrations/{path.name}" in files


def test_python_code_passes_ruff() -> None:
    folders = [name for name in ("pyinv", "tests", "bench", "tools") if (ROOT / name).is_dir()]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *folders],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
