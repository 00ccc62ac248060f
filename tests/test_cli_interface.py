"""The CLI's contract with scripts and people: exit codes per kind of failure, --json for every result and
error (usage errors too), help grouped by section, --limit/--offset on lists, tables that fit the terminal."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import Run

from pyinv import Inventory
from pyinv.cli import EXIT_CODES, State, cli, exit_code_for


def json_error(stderr: str) -> dict[str, Any]:
    """The one JSON object on stderr of a failed --json call."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    error = json.loads(lines[0])["error"]
    assert set(error) == {"code", "message", "detail", "advice", "sqlstate", "exit_code"}, error
    assert error["advice"], error
    return error


# -- the table of exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "sqlstate", "expected"), [
    ("INSUFFICIENT_STOCK", "PT409", 3), ("PRODUCT_NOT_FOUND", "PT404", 3), ("INVALID_QUANTITY", "22023", 3),
    ("DATABASE_ERROR", "23514", 3), ("DATABASE_ERROR", "P0001", 3),
    ("PERMISSION_DENIED", "42501", 4), ("APPEND_ONLY", "42501", 4), ("AUTHENTICATION_FAILED", "28P01", 4),
    ("RETRYABLE", "40001", 5), ("RETRYABLE", "40P01", 5), ("BUSY", "55P03", 5), ("RETRYABLE", "57014", 5),
    ("DATABASE_ERROR", "57P01", 5), ("DATABASE_ERROR", "53300", 5), ("CONNECTION_FAILED", None, 5),
    ("CONNECTION_FAILED", "08006", 5),
    ("USAGE_ERROR", None, 2), ("INVALID_DSN", None, 2), ("ABORTED", None, 1),
    ("MIGRATION_REQUIRED", "42P01", 6), ("DATABASE_ERROR", "XX000", 6), ("INTERNAL_ERROR", None, 6),
])
def test_every_failure_maps_to_one_exit_code(code: str, sqlstate: str | None, expected: int) -> None:
    assert exit_code_for(code, sqlstate) == expected


def test_the_exit_codes_are_documented_in_help_and_readme(readme: str) -> None:
    out = CliRunner().invoke(cli, ["--help"]).stdout
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\s+{code}  {re.escape(meaning.split(':')[0].split(' (')[0])}", out, re.M), (code, out)
        assert f"| {code} |" in section, (code, section)


@pytest.fixture
def readme() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


# -- exit codes end to end -------------------------------------------------------------------------------


def test_usage_errors_exit_2_and_speak_json(run: Run) -> None:
    for args, words in ((("stock", "--bogus"), "No such option '--bogus'"),
                        (("item", "add"), "Missing argument 'SKU'"),
                        (("item", "status", "A1", "sold_out"), "'sold_out' is not one of"),
                        (("receive", "A1", "ten"), "is not a number"),
                        (("frobnicate",), "No such command 'frobnicate'")):
        text = run(*args, exit_code=2)
        assert words in text.stderr and text.stdout == "", text.stderr
        for as_json in (("--json", *args), (*args, "--json")):
            result = run(*as_json, exit_code=2)
            assert result.stdout == ""
            error = json_error(result.stderr)
            assert (error["code"], error["exit_code"], error["sqlstate"]) == ("USAGE_ERROR", 2, None)
            assert words in error["message"] and "--help" in error["advice"]
    # A usage error raised by a command itself.
    error = json_error(run("--json", "reserve", "SO-3", "A1", "1", "--line", "B2:1", exit_code=2).stderr)
    assert "not both" in error["message"] and error["detail"]["usage"].startswith("Usage: pyinv reserve")


def test_business_refusals_exit_3(catalogue: Inventory, run: Run) -> None:
    for args, code in ((("reserve", "SO-1", "A1", "11"), "INSUFFICIENT_STOCK"),
                       (("receive", "NOPE", "1"), "PRODUCT_NOT_FOUND"),
                       (("receive", "A1", "0"), "INVALID_QUANTITY"),
                       (("cancel", "SO-404"), "NO_RESERVATION")):
        error = json_error(run("--json", *args, exit_code=3).stderr)
        assert (error["code"], error["exit_code"]) == (code, 3)


def test_permission_refusals_exit_4(catalogue: Inventory, run: Run, login_dsn: Callable[[str], str]) -> None:
    clerk = login_dsn("pyinv_clerk")  # an operator: may receive, not change the catalogue
    assert run("--json", "receive", "A1", "1", dsn_=clerk).exit_code == 0
    error = json_error(run("--json", "item", "add", "Z9", "Zed", exit_code=4, dsn_=clerk).stderr)
    assert (error["code"], error["sqlstate"], error["exit_code"]) == ("PERMISSION_DENIED", "42501", 4)
    assert "PERMISSION_DENIED (42501), exit code 4" in run("location", "add", "x", "X", exit_code=4,
                                                          dsn_=clerk).stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A 127.0.0.1 port that accepts connections and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_server_that_never_answers_times_out_with_exit_5(run: Run, silent_server: int) -> None:
    dsn = f"postgresql://pyinv@127.0.0.1:{silent_server}/nothing"
    started = time.monotonic()
    result = run("--connect-timeout", "1", "--json", "stock", exit_code=5, dsn_=dsn)
    assert time.monotonic() - started < 8
    error = json_error(result.stderr)
    assert (error["code"], error["exit_code"]) == ("CONNECTION_FAILED", 5)
    assert "retry" in error["advice"]


def test_a_closed_port_exits_5(run: Run) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("stock", exit_code=5, dsn_=f"postgresql://pyinv@127.0.0.1:{port}/nothing")
    assert result.stderr.startswith("error: cannot connect to the database")
    assert "CONNECTION_FAILED, exit code 5" in result.stderr


def test_a_database_without_the_schema_exits_6_in_json(empty_database: Callable[[], str], run: Run) -> None:
    error = json_error(run("--json", "stock", exit_code=6, dsn_=empty_database()).stderr)
    assert (error["code"], error["exit_code"]) == ("MIGRATION_REQUIRED", 6)
    assert "pyinv migrate" in error["advice"]


def test_a_check_that_fails_exits_1_and_the_rest_0(catalogue: Inventory, run: Run) -> None:
    assert run("validate", "A1", "10").exit_code == 0
    assert json.loads(run("--json", "validate", "A1", "11", exit_code=1).stdout)["can_fulfill"] is False


def test_the_connection_options_reach_the_client(catalogue: Inventory, run: Run, dsn: str) -> None:
    levels = json.loads(run("--no-prepared-statements", "--connect-timeout", "5", "--json", "stock").stdout)
    assert [level["sku"] for level in levels] == ["A1", "B2"]
    assert "--connect-timeout" in run("--connect-timeout", "0", "stock", exit_code=2).stderr
    # What the global options become: the connection the commands use.
    with State(prepared_statements=False, connect_timeout=5).connect(dsn) as client:
        assert client.connection.prepare_threshold is None
        assert client.connection.info.get_parameters()["connect_timeout"] == "5"
    with State().connect(dsn) as client:
        assert client.connection.prepare_threshold is not None


# -- help -------------------------------------------------------------------------------------------------------


def test_help_groups_commands_by_section_with_an_example_each() -> None:
    out = CliRunner().invoke(cli, ["--help"], terminal_width=100).stdout
    for section in ("Stock", "Orders", "Catalogue", "Stock control", "Reports", "Events", "Audit & maintenance",
                    "Users", "Database", "Try it"):
        assert f"\n{section}:\n" in out, section
    assert not [line for line in out.splitlines() if "..." in line and "Usage:" not in line]  # nothing cut off
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and re.search(rf"^  {re.escape(name)}\s", out, re.M), name
        assert getattr(command, "examples", ()), f"{name} has no example"
        assert f"e.g. {command.examples[0]}" in out, name
        if isinstance(command, click.Group):
            sub = CliRunner().invoke(cli, [name, "--help"], terminal_width=100)
            assert sub.exit_code == 0, name
            assert not [line for line in sub.stdout.splitlines() if "..." in line and "Usage:" not in line], name
            for child in command.list_commands(ctx):
                assert getattr(command.get_command(ctx, child), "examples", ()), f"{name} {child} has no example"
                leaf = CliRunner().invoke(cli, [name, child, "--help"], terminal_width=100)
                assert leaf.exit_code == 0 and "Example" in leaf.stdout, (name, child)
                assert not [line for line in leaf.stdout.splitlines() if "..." in line and "Usage:" not in line]
    assert "Exit codes:" in out


# -- lists: --limit / --offset, --wide, width ------------------------------------------------------------------


def test_lists_page_with_limit_and_offset(inv: Inventory, run: Run) -> None:
    for number in range(1, 8):
        inv.create_item(f"SKU-{number}", f"Item {number}")
    first = run("item", "list", "--limit", "3")
    assert [line.split()[0] for line in first.stdout.splitlines()[2:]] == ["SKU-1", "SKU-2", "SKU-3"]
    assert "showing rows 1-3; more rows: use --offset 3" in first.stderr
    last = run("item", "list", "--limit", "3", "--offset", "6")
    assert [line.split()[0] for line in last.stdout.splitlines()[2:]] == ["SKU-7"]
    assert last.stderr == ""
    page = run("--json", "item", "list", "--limit", "2", "--offset", "2")
    assert [item["sku"] for item in json.loads(page.stdout)] == ["SKU-3", "SKU-4"]
    assert json.loads(page.stderr) == {"notice": "showing rows 3-4; more rows: use --offset 4 (or a larger --limit)"}
    assert run("item", "list", "--offset", "7").stdout.strip() == "no items (at offset 7)"
    assert len(json.loads(run("--json", "item", "list").stdout)) == 7  # default limit 50

    # The ledger pages from the newest: --limit N is the latest N, --offset skips newer ones.
    for number in range(1, 6):
        inv.receive_stock("SKU-1", number, reference=f"PO-{number}")
    newest = json.loads(run("--json", "movements", "--limit", "2").stdout)
    assert [move["reference"] for move in newest] == ["PO-4", "PO-5"]
    older = json.loads(run("--json", "movements", "--limit", "2", "--offset", "2").stdout)
    assert [move["reference"] for move in older] == ["PO-2", "PO-3"]
    assert "--limit" in run("movements", "--limit", "0", exit_code=2).stderr


def test_every_list_command_takes_limit_and_offset() -> None:
    for args in (("item", "list"), ("location", "list"), ("stock",), ("reservations",), ("returns",),
                 ("movements",), ("adjustments",), ("counts",), ("policy", "list"), ("alerts",),
                 ("alerts", "recommendations"), ("user", "list"), ("audit", "log"), ("lots",), ("lots", "expiring"),
                 ("lots", "allocations"), ("events",)):
        out = CliRunner().invoke(cli, [*args, "--help"]).stdout
        assert "--limit" in out and "--offset" in out and "--wide" in out and "--json" in out, args


def test_wide_shows_every_column(catalogue: Inventory, run: Run) -> None:
    narrow = run("stock").stdout.splitlines()[0].split()
    assert narrow == ["sku", "location", "on_hand", "reserved", "available", "status"]
    for args in (("--wide", "stock"), ("stock", "--wide")):
        wide = run(*args).stdout.splitlines()[0].split()
        assert wide == ["sku", "location", "on_hand", "reserved", "available", "expired_unreleased", "status",
                        "version", "updated_at", "blocked", "hot_buckets"]


def test_tables_fit_the_terminal(inv: Inventory, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    inv.create_item("LONG-1", "A name long enough that it cannot fit on one line of a narrow terminal at all")
    inv.create_item("SHORT", "Mug")
    full = run("item", "list").stdout
    assert max(len(line) for line in full.splitlines()) > 60
    monkeypatch.setenv("COLUMNS", "60")
    fitted = run("item", "list").stdout
    assert max(len(line) for line in fitted.splitlines()) <= 60
    assert "narrow" in fitted and "LONG-1" in fitted and "SHORT" in fitted  # wrapped, not cut
    assert max(len(line) for line in run("item", "list", "--wide").stdout.splitlines()) > 60
