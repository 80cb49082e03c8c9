"""The serving processes' garbage-collector policy: startup objects frozen, rarer collections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from corral.gc_policy import THRESHOLDS, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_startup_objects_are_frozen_and_thresholds_raised(restored_gc: None) -> None:
    gc.unfreeze()
    tune_for_serving()
    assert gc.get_freeze_count() > 10_000  # modules, classes, functions of this process
    assert gc.get_threshold() == THRESHOLDS
    # A full collection no longer walks them.
    assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()


async def test_a_second_freeze_follows_the_warm_up(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("corral.gc_policy.WARMUP_SECONDS", 0.05)
    gc.unfreeze()
    tune_for_serving(asyncio.get_running_loop())
    held = [[object()] for _ in range(200)]  # long-lived objects the first requests make
    assert _collectable(held) == len(held)
    collections: list[int] = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or real_collect(*a))
    await asyncio.sleep(0.2)
    assert _collectable(held) == 0  # frozen: collections no longer walk them
    # Without a full collection first: the replica may be serving by then.
    assert collections == []


def _collectable(objects: list[list[object]]) -> int:
    """How many of ``objects`` the collector's generations (not the frozen ones) hold."""
    tracked = {id(o) for o in gc.get_objects()}
    return sum(1 for o in objects if id(o) in tracked)
