"""`mypy --strict` on a small program that uses the client as a user would: it passes, and no type
it reveals from pyinv is Any (pyinv ships py.typed, and every result has a declared type)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "typing" / "user_script.py"


def test_a_user_script_passes_mypy_strict_and_sees_no_any(tmp_path: Path) -> None:
    # Checked from a directory of its own, so pyinv is found as an installed package would be (on
    # the import path, where mypy reads only packages marked with py.typed), not as loose source.
    script = tmp_path / "user_script.py"
    shutil.copy(SCRIPT, script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         "--python-executable", sys.executable, str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    notes = re.findall(r'Revealed type is "(.*)"', result.stdout)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == [] and result.returncode == 0, result.stdout + result.stderr
    assert len(notes) == SCRIPT.read_text().count("reveal_type(")
    assert not [note for note in notes if "Any" in note], notes
    assert "pyinv.models.Reservation" in notes and "list[pyinv.models.StockRow]" in notes
