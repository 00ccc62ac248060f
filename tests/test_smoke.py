from pyinv import Inventory


def test_receive_and_reserve(catalogue: Inventory) -> None:
    reservation = catalogue.reserve_stock("A1", 3, "SO-1")
    assert reservation.status == "ACTIVE"
    [level] = catalogue.stock_levels("A1")
    assert (level.on_hand, level.reserved, level.available) == (10, 3, 7)
