"""The simulator's OpenCode-shaped ids: shape, order, uniqueness."""

from __future__ import annotations

import re

from corral.sim.opencode.ids import ascending, descending

SHAPE = re.compile(r"^[a-z]+_[0-9a-f]{12}[0-9A-Za-z]{14}$")


def test_ids_have_opencodes_shape() -> None:
    for made in (ascending("msg"), ascending("prt"), descending("ses")):
        assert SHAPE.match(made), made


def test_ascending_ids_sort_in_creation_order_and_descending_ones_newest_first() -> None:
    up = [ascending("evt") for _ in range(5_000)]
    down = [descending("ses") for _ in range(200)]
    assert up == sorted(up)
    assert down == sorted(down, reverse=True)
    assert len(set(up)) == len(up)


def test_suffixes_use_the_whole_alphabet() -> None:
    suffixes = "".join(ascending("x")[-14:] for _ in range(2_000))
    assert len(set(suffixes)) == 62
