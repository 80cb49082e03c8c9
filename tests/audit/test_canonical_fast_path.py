"""The fast path of canonical() writes exactly what the RFC 8785 encoder writes."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.audit.canonical import canonical

_KEYS = st.text(st.characters(max_codepoint=127), max_size=8)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_PLAIN)
def test_fast_path_matches_the_jcs_encoder(value: object) -> None:
    assert canonical(value) == rfc8785.dumps(value)


def test_control_characters_and_unicode_escape_like_jcs() -> None:
    value = {"b": '\x00\x01\x1f\b\t\n\f\r"\\\x7f é 漢 😀 \u2028', "a": [1, None, True]}
    assert canonical(value) == rfc8785.dumps(value)
