"""The README's walk-through runs as written: on a fresh embedded data directory (pyinv's own embedded
server, not the test cluster), the set-up's `pyinv demo` and then every command of "Using it", in
order, each exiting 0."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyinv import server
from pyinv.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def shell_block(heading: str) -> list[str]:
    """The lines of the first ```sh block after `heading`."""
    text = README.read_text(encoding="utf-8")
    after = text.split(f"\n{heading}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None, heading
    return [line for line in block.group(1).splitlines() if line.strip()]


def pyinv_commands(lines: list[str]) -> list[list[str]]:
    """Each line as the arguments of one `pyinv` command (comments dropped)."""
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words and words[0] == "pyinv", f"not a pyinv command: {line!r}"
        commands.append(words[1:])
    return commands


@pytest.fixture
def fresh_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PYINV_DATA_DIR pointing to a new directory, no database named by the environment, a tmp cwd."""
    if os.environ.get("PYINV_TEST_DSN"):
        pytest.skip("the tests run against PYINV_TEST_DSN, not embedded clusters")
    # Not under tmp_path: pytest keeps its parents private (0700), and as root the embedded server runs
    # as a system user of its own that must reach the data directory.
    home = Path(tempfile.mkdtemp(prefix="pyinv-readme-"))
    home.chmod(0o755)
    pgdata = home / "pgdata"
    monkeypatch.setenv("PYINV_DATA_DIR", str(pgdata))
    for name in ("PYINV_DATABASE_URL", "DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGSERVICE", "PGUSER",
                 "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        yield pgdata
    finally:
        server.stop(pgdata)
        shutil.rmtree(home, ignore_errors=True)


def test_the_walkthrough_runs_verbatim(fresh_embedded: Path) -> None:
    setup = next(line for line in shell_block("## Set-up: two commands") if "pyinv demo" in line)
    demo = ["demo", *shlex.split(setup.split("pyinv demo", 1)[1])]
    commands = [demo, *pyinv_commands(shell_block("## Using it"))]
    assert len(commands) > 20
    for number, args in enumerate(commands):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, args
        if number == 0:  # the first command starts the new embedded server and says so
            assert "pyinv: initialising a new embedded PostgreSQL" in result.stderr
    assert (fresh_embedded / "PG_VERSION").exists()
    assert Path("anchor.json").exists()  # written in the working directory
