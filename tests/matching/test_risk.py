from __future__ import annotations

import pytest

from matching.risk import default_phrases, load_phrases, normalise


@pytest.mark.parametrize(
    "note",
    [
        "I want to die",
        "thinking about SUICIDE",
        "I've been feeling suicidal",
        "I just want to end my life.",
        "i might   kill\nmyself",
        "I don\u2019t want to live anymore",
        "I dont want to live",
        "took an overdose last night",
        "I self-harm when it gets bad",
        "self harm",
        "there's no reason to live",
    ],
)
def test_default_list_flags_crisis_notes(note: str) -> None:
    assert default_phrases().matches(note)


@pytest.mark.parametrize(
    "note",
    ["", "I want to talk about alcohol and grief", "skill myself up", "my studio", "dietary help", None],
)
def test_default_list_leaves_ordinary_notes_alone(note: str | None) -> None:
    assert not default_phrases().matches(note)


def test_format_comments_blank_lines_and_prefixes() -> None:
    phrases = load_phrases("# comment\n\n  Hurt Myself \nhopeless*\nhurt myself\n*\n")
    assert phrases.phrases == ("hurt myself", "hopeless*")
    assert len(phrases) == 2
    assert phrases.matches("I feel hopelessness")
    assert phrases.matches("I might HURT   myself")
    assert not phrases.matches("hurt my selfie")


def test_empty_list_matches_nothing() -> None:
    assert not load_phrases("# nothing yet\n").matches("I want to die")


def test_normalise_folds_case_apostrophes_and_separators() -> None:
    assert normalise("  Don\u2019t\tSELF\u2014harm ") == "dont self harm"
