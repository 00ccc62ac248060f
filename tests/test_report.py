"""`pyinv report out.html` (issue 13): one self-contained HTML page (nothing fetched from a network), with
stock status, low stock, expiring lots, valuation and an SVG chart of the movements; every text from the
database escaped."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pyinv import Inventory
from pyinv.report import collect, movement_chart, render

INJECTION = "<script>alert(1)</script>"


@pytest.fixture
def scene(catalogue: Inventory) -> Inventory:
    """The catalogue (A1 10 and B2 5 at main, location east), an item named like an injection, a
    lot-tracked item with a lot expiring in 3 days, a level out of stock and one low, costs."""
    inv = catalogue
    inv.update_item("A1", unit_cost=2)
    inv.create_item("EVIL", INJECTION, unit_cost=1)
    inv.receive_stock("EVIL", 3, location="east")
    inv.create_item("LT", "Lotted & <b>bold</b>", track_lots=True)
    inv.receive_stock("LT", 4, lot_number="L-<1>", unit_cost=5, expires_on=date.today() + timedelta(days=3))
    inv.reserve_stock("A1", 3, "SO-1")
    inv.fulfill_order("SO-1")
    inv.reserve_stock("B2", 5, "SO-2")  # B2: nothing available
    inv.set_stock_policy("B2", "main", reorder_point=2, safety_stock=1)
    inv.set_stock_policy("A1", "main", reorder_point=8, safety_stock=2)  # A1: 7 available, LOW
    inv.refresh_inventory_views()
    return inv


class Structure(HTMLParser):
    """Tags, attributes and text of a page, to check what it would load and show."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Structure:
    structure = Structure()
    structure.feed(page)
    structure.close()
    return structure


def test_report_is_one_self_contained_page(run, scene: Inventory, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run("report", str(out))
    assert result.stdout == ""
    assert re.fullmatch(rf"pyinv: {re.escape(str(out))}: 4 stock levels, 2 low, 1 expiring lots, value 37, "
                        r"\d+ movements in 30 days\n", result.stderr)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1 and page.rstrip().endswith("</html>")
    structure = parse(page)
    # Nothing to fetch: no scripts, no external style sheets, fonts or images; no URL at all.
    assert "script" not in structure.tags and "link" not in structure.tags and "img" not in structure.tags
    assert not [a for a in structure.attributes if a[1] in ("src", "href", "srcset", "xmlns:xlink")]
    assert "http://" not in page and "https://" not in page and "url(" not in page and "@import" not in page
    assert structure.tags.count("style") == 1 and structure.tags.count("svg") == 1
    # The injection is shown as text, never as markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and INJECTION not in page
    assert INJECTION in "".join(structure.text)
    assert "Lotted &amp; &lt;b&gt;bold&lt;/b&gt;" in page and "L-&lt;1&gt;" in page
    text = " ".join(structure.text)
    for sku in ("A1", "B2", "EVIL", "LT"):
        assert sku in text
    for heading in ("Stock status", "Low stock", "Expiring lots", "Valuation", "Movements, last 30 days", "Metrics"):
        assert heading in structure.text


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start:end if end > 0 else None]


def _rows(section: str) -> list[list[str]]:
    rows: list[list[str]] = []

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "tr":
                rows.append([])
            elif tag == "td":
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                rows[-1].append("".join(self.cell))
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    Cells().feed(section)
    return [row for row in rows if row]


def test_report_sections_show_the_views(scene: Inventory) -> None:
    page = render(collect(scene))
    status = _rows(_section(page, "Stock status"))
    assert [(row[0], row[2], row[3], row[6]) for row in status] == [
        ("A1", "main", "LOW", "7"), ("B2", "main", "OUT OF STOCK", "0"), ("EVIL", "east", "OK", "3"),
        ("LT", "main", "OK", "4")]
    assert status[2][1] == INJECTION  # the name, as text
    low = _rows(_section(page, "Low stock"))
    assert [(row[0], row[3]) for row in low] == [("A1", "LOW"), ("B2", "OUT OF STOCK")]
    expiring = _rows(_section(page, "Expiring lots"))
    assert [(row[0], row[2], row[4], row[6], row[7]) for row in expiring] == [("LT", "L-<1>", "EXPIRING SOON", "3",
                                                                                "4")]
    valuation = _rows(_section(page, "Valuation"))
    assert [(row[0], row[2], row[3], row[6]) for row in valuation] == [
        ("A1", "main", "", "14"), ("B2", "main", "", ""), ("EVIL", "east", "", "3"), ("LT", "main", "L-<1>", "20")]
    assert "Total of the rows shown: 37" in _section(page, "Valuation")
    metrics = {row[0]: row[1] for row in _rows(_section(page, "Metrics"))}
    assert metrics["stock_out_rate"] == "0.25"


def test_the_chart_draws_each_day_s_movements(scene: Inventory, db: psycopg.Connection[Any]) -> None:
    days = scene.daily_movements()
    assert len(days) == 30 and [day.day for day in days] == sorted(day.day for day in days)
    today = days[-1]
    assert (today.received, today.shipped, today.net_change) == (22, 3, 19)  # 10 + 5 + 3 + 4 received; SO-1
    chart = movement_chart(days)
    assert chart.startswith("<svg") and chart.endswith("</svg>")
    groups = re.findall(r'<g class="day"><title>([^<]*)</title>'
                        r'<rect class="received" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"[^>]*/>'
                        r'<rect class="shipped" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', chart)
    assert len(groups) == 30
    title, received_height, shipped_height = groups[-1]
    assert title == f"{today.day.isoformat()}: received 22, shipped 3, net 19"
    assert float(received_height) > float(shipped_height) > 0  # drawn to scale: 22 against 3
    assert abs(float(received_height) / float(shipped_height) - 22 / 3) < 0.05
    assert all(float(height) == 0 for _, height, _ in groups[:-1])
    assert chart.count("<polyline") == 1


def test_report_to_stdout_and_its_errors(run, scene: Inventory, tmp_path: Path) -> None:
    page = run("report", "-").stdout
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    result = run("report", str(tmp_path / "missing" / "r.html"), exit_code=6)
    assert "cannot write" in result.stderr and "what to do:" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_report_of_an_empty_inventory(run, inv: Inventory, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    assert "0 stock levels, 0 low, 0 expiring lots, value unknown, 0 movements in 30 days" in run(
        "report", str(out)).stderr
    page = out.read_text()
    assert "No stock levels." in page and "<svg" in page
