from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.risk import default_phrases, load_phrases, normalise, swapped


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


_ASCII_SEPARATORS = re.compile(r"[\s\-_]+")


@settings(max_examples=2000)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_normalise_ascii_path_is_the_separators_regex(text: str) -> None:
    # The ASCII path splits on whitespace instead of the separators' regex: the same result.
    lowered = text.lower().replace("'", "").replace("`", "")
    assert normalise(text) == _ASCII_SEPARATORS.sub(" ", lowered).strip()


def test_normalise_ascii_whitespace_pairs() -> None:
    for a in map(chr, range(128)):
        for b in ("", " ", "-", "_", "\t", "\x1f", "x"):
            text = f"k{a}{b}i{b}{a}"
            lowered = text.lower().replace("'", "").replace("`", "")
            assert normalise(text) == _ASCII_SEPARATORS.sub(" ", lowered).strip(), repr(text)


# --------------------------------------------------------------------------- obfuscations
#
# Every phrase of the shipped list, disguised the ways people (and autocorrect) disguise
# text, must still match; ordinary sentences, disguised the same ways, must not.

_INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufeff",  # BOM / zero-width no-break space
    "\u00ad",  # soft hyphen
    "\u200e",  # left-to-right mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\ufe0f",  # variation selector 16
    "\u034f",  # combining grapheme joiner
    "\u3164",  # Hangul filler
    "\U000e0041",  # tag letter A
]
# Written out by hand (not derived from the module's map) so the test checks the map.
_LOOK_ALIKES: dict[str, list[str]] = {
    "a": ["\u0430", "\u0410", "\u03b1", "\u0391"],
    "b": ["\u0412", "\u0392"],
    "c": ["\u0441", "\u0421"],
    "d": ["\u0501"],
    "e": ["\u0435", "\u0415", "\u03b5", "\u0395"],
    "h": ["\u04bb", "\u041d", "\u0397"],
    "i": ["\u0456", "\u0406", "\u03b9", "\u0399", "\u0131"],
    "j": ["\u0458"],
    "k": ["\u041a", "\u039a", "\u03ba"],
    "l": ["\u04cf", "\u0142"],
    "m": ["\u041c", "\u039c"],
    "n": ["\u039d"],
    "o": ["\u043e", "\u041e", "\u03bf", "\u039f", "\u00f8"],
    "p": ["\u0440", "\u0420", "\u03c1", "\u03a1"],
    "s": ["\u0455", "\u0405"],
    "t": ["\u0422", "\u03a4"],
    "x": ["\u0445", "\u0425", "\u03c7"],
    "y": ["\u0443", "\u0423", "\u03a5"],
}
_DIGITS: dict[str, list[str]] = {
    "o": ["0"],
    "i": ["1", "!", "|"],
    "l": ["1", "|"],
    "e": ["3"],
    "a": ["4", "@"],
    "s": ["5", "$"],
    "t": ["7"],
}


def _compat(c: str) -> list[str]:
    """NFKC variants of an ASCII lower-case letter: fullwidth, mathematical bold, circled."""
    i = ord(c) - ord("a")
    return [chr(0xFF41 + i), chr(0x1D41A + i), chr(0x24D0 + i), c + "\u0301"]


def _spelled(phrase: str) -> str:
    """A concrete text for a list entry: `suicid*` -> `suicidal`; `cant` -> `can't`."""
    text = phrase.replace("*", "al")
    return text.replace("cant", "can\u2019t").replace("dont", "don't")


@st.composite
def _disguised(draw: st.DrawFn, text: str) -> str:
    words = []
    for word in text.split(" "):
        letters = [c for c in word if c.isalpha()]
        # Digit swaps only where the word keeps at least one real letter (a mixed token).
        may_swap = len(letters) > 1
        out = []
        kept_letter = False
        for pos, c in enumerate(word):
            choice = draw(st.sampled_from(["same", "upper", "look", "compat", "digit"]))
            if choice == "digit" and may_swap and c in _DIGITS and (kept_letter or pos < len(word) - 1):
                out.append(draw(st.sampled_from(_DIGITS[c])))
            elif choice == "look" and c in _LOOK_ALIKES:
                out.append(draw(st.sampled_from(_LOOK_ALIKES[c])))
                kept_letter = True
            elif choice == "compat" and "a" <= c <= "z":
                out.append(draw(st.sampled_from(_compat(c))))
                kept_letter = True
            elif choice == "upper":
                out.append(c.upper())
                kept_letter = kept_letter or c.isalpha()
            else:
                out.append(c)
                kept_letter = kept_letter or c.isalpha()
            if draw(st.booleans()):
                out.append(draw(st.sampled_from(_INVISIBLE)))
        if may_swap and not any(ch.isalpha() for ch in out):
            out = list(word)
        words.append("".join(out))
    gaps = st.sampled_from([" ", "  ", "\n", " \u200b", "-", " \u00a0"])
    return "".join(w + (draw(gaps) if i < len(words) - 1 else "") for i, w in enumerate(words))


_CORPUS = [
    "I want to talk about alcohol and grief",
    "My studio apartment is too quiet at night",
    "I skill myself up with online courses",
    "The dietary plan helps with my cravings",
    "I have 1 kid and 3 dogs, we live at 45 Oak St",
    "Can we meet at 4pm? I get paid $50 on Friday",
    "My email is sam@example.org if that helps",
    "I went to the podcast recording and it was good",
    "I'm 30 days sober today and proud of it",
    "I can't go out tonight, my car is in the shop",
    "I want to diet and go on a run tomorrow",
    "My life has been busy with work and kids",
    "I will end my shift at 5 and then call my sponsor",
    "The killer whale documentary was great",
    "My dad died last year and I miss him",
    "I'm better off with a support group, I think",
    "I am so dead tired after work",
    "Self care is hard; I cut back on coffee",
    "Hang out with friends, jump in the pool",
    "Wish I could sleep more, I was up at 3",
    "We watched Game of Thrones episode 7 again",
    "I lost 10 lbs since I quit drinking",
    "Version 2.0 of my plan: sleep by 11",
    "I live on the 8th floor and the lift is broken",
    "My username is k1tty and my password hint is cats",
    "I love my mum, she lives in Kyiv",
]


@given(st.sampled_from(default_phrases().phrases).flatmap(lambda p: _disguised(_spelled(p))), st.data())
@settings(max_examples=400, deadline=None)
def test_every_phrase_matches_however_disguised(disguised: str, data: st.DataObject) -> None:
    before = data.draw(st.sampled_from(["", "honestly ", "Some days I feel like ", "(", "ok... "]))
    after = data.draw(st.sampled_from(["", ".", "!", "?!", " tonight", ", sorry", ")"]))
    assert default_phrases().matches(before + disguised + after), repr(before + disguised + after)


@pytest.mark.parametrize("phrase", [_spelled(p) for p in default_phrases().phrases])
def test_each_phrase_matches_with_a_zero_width_space_in_each_word(phrase: str) -> None:
    hidden = " ".join(w[:1] + "\u200b" + w[1:] for w in phrase.split(" "))
    assert default_phrases().matches(f"I think I {hidden} honestly")


@given(st.sampled_from(_CORPUS).flatmap(lambda s: _disguised(s.lower())))
@settings(max_examples=300, deadline=None)
def test_ordinary_sentences_do_not_match_however_disguised(sentence: str) -> None:
    assert not default_phrases().matches(sentence), repr(sentence)


@pytest.mark.parametrize("sentence", _CORPUS)
def test_ordinary_sentences_do_not_match(sentence: str) -> None:
    assert not default_phrases().matches(sentence)


@pytest.mark.parametrize(
    "text",
    [
        "I w\u0430nt to d\u0456e",  # Cyrillic a and i
        "K\u200bILL MY\u200dSELF",
        "\uff45\uff4e\uff44 my life",  # fullwidth
        "better off d\u0117ad",  # accent
        "i want to d!e",
        "k1ll my$elf",
        "end my 1ife",
        "su1c1dal",
        "c@n't g0 on",
        "\u202esuicide\u202c",
    ],
)
def test_examples_of_each_disguise(text: str) -> None:
    assert default_phrases().matches(text)


def test_digits_alone_are_never_letters() -> None:
    # "0d" would be "od" (overdose) only as a mixed token; a number stays a number.
    assert not default_phrases().matches("I have 0 doubts, 1 kid, 3 cats and $5")
    assert swapped(normalise("meet at 4 or 5")) is None
    assert swapped(normalise("k1ll")) is None  # the phrase's i and l match a 1 as they are
    assert swapped(normalise("d!e, abus3d!")) == "d1e, abused!"
    assert swapped(normalise("my$elf")) == "myself"


def test_normalise_removes_invisibles_and_maps_look_alikes() -> None:
    assert normalise("\u041a\u200b\u0456\u00adll\u2060 MY\ufe0fSELF") == "kill myself"
    assert normalise("\uff33\uff35\uff29\uff23\uff29\uff24\uff25") == "suicide"
