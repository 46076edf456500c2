"""protocol/names.py: what a display name may hold and how it is shown."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.names import MAX_NAME_CHARS, display_name, has_refused_characters

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"

# Text without control characters or surrogates, generously salted with the characters
# the stripping is about.
names = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cc", "Cs")),
        st.sampled_from(BIDI + ZERO_WIDTH + " \u3000\u00a0\u2028\uff21\u0301\u3164"),
    ),
    max_size=120,
)


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\u202eSupervisor Lee", "Supervisor Lee"),
        ("Sup\u200bervisor\u200d Lee\u2066", "Supervisor Lee"),
        ("\uff21\uff4c\uff45\uff58", "Alex"),  # full-width letters
        ("  Sam \u3000\u00a0 Q.  ", "Sam Q."),
        ("Jose\u0301", "Jos\u00e9"),
        ("\u202e\u200b\u3164", ""),
        ("x" * 100, "x" * MAX_NAME_CHARS),
    ],
)
def test_examples(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "line\nbreak", "tab\t", "\x7f", "c1\x85", "\ud800"])
def test_control_characters_and_surrogates_are_refused(text: str) -> None:
    assert has_refused_characters(text)


@pytest.mark.parametrize("text", ["Sam", "\u202eSam", "Zo\u00eb", "\u00a0"])
def test_other_characters_are_not_refused(text: str) -> None:
    assert not has_refused_characters(text)


@given(names)
def test_nothing_invisible_or_bidi_survives(raw: str) -> None:
    shown = display_name(raw)
    assert not any(unicodedata.category(ch) == "Cf" for ch in shown)
    assert not any(ch in shown for ch in BIDI + ZERO_WIDTH + "\u3164")
    assert not has_refused_characters(shown)


@given(names)
def test_normalised_bounded_and_trimmed(raw: str) -> None:
    shown = display_name(raw)
    assert unicodedata.normalize("NFKC", shown) == shown
    assert len(shown) <= MAX_NAME_CHARS
    assert shown == shown.strip()
    assert "  " not in shown


@given(names)
def test_idempotent(raw: str) -> None:
    once = display_name(raw)
    assert display_name(once) == once


@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=60))
def test_plain_names_pass_unchanged(raw: str) -> None:
    if unicodedata.normalize("NFKC", raw) == raw:
        assert display_name(raw) == raw
