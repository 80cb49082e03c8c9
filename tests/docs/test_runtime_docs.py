"""docs/runtimes/ has a page per runtime kind, and its capability table matches the adapters."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from corral.runtimes import registry
from tests.conformance.profiles import all_profiles

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "docs" / "runtimes" / "README.md"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("tbl", ROOT / "scripts" / "conformance_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_kind_has_a_page_and_a_conformance_profile() -> None:
    profiled = {p.kind for p in all_profiles()}
    for kind in registry.kinds():
        assert (ROOT / "docs" / "runtimes" / f"{kind}.md").is_file(), kind
        assert f"({kind}.md)" in README.read_text(), kind
        assert kind in profiled, f"{kind} has no conformance profile"


def test_capability_table_is_current() -> None:
    table = _script().capability_table()  # type: ignore[attr-defined]
    assert table in README.read_text(), "run: .venv/bin/python scripts/conformance_table.py"


def test_conformance_table_names_every_profile() -> None:
    text = README.read_text()
    for profile in all_profiles():
        assert f"`{profile.id}`" in text, f"{profile.id}: run scripts/conformance_table.py"
