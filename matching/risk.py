"""Risk phrases: does a note or a message suggest the member may be in crisis?

The list is data (``risk_phrases.txt``) so that clinicians can change it without a code
change. A match makes a request urgent, or marks a conversation ``risk: "high"``; it never
blocks the member, changes or delays their message, or sends them a reply.

Text is normalised before matching, so that a phrase typed with disguises still matches
as whole words (docs/safety.md lists what is and is not caught):

1. NFKC compatibility forms (fullwidth, circled, mathematical letters, ligatures) become
   plain letters; accents are dropped (NFKD, combining marks removed, then recomposed).
2. Invisible and formatting characters are removed: every character of Unicode category
   Cf (zero-width space/joiners, bidi controls, soft hyphen, word joiner, BOM, tag
   characters), combining marks (variation selectors, the combining grapheme joiner) and
   the Hangul fillers that render as nothing.
3. Look-alike letters from other scripts (Cyrillic, Greek, a few Latin extensions) become
   the Latin letter they imitate (``_LOOK_ALIKES``); upper- and lower-case forms are
   mapped separately: Greek capital eta looks like H, its small letter like n.
4. Case-folded; apostrophes removed ("can't" = "cant"); runs of spaces, hyphens and
   underscores become one space.
5. Digit and symbol swaps (``0``→o, ``1``/``!``/``|``→i or l, ``3``→e, ``4``/``@``→a,
   ``5``/``$``→s, ``7``→t, ``8``→b; ``!`` only before a letter or digit) are applied
   only inside a *mixed* token, one that also holds a letter ("k1ll", "my$elf", "d!e"),
   and only in a second view of the text that is searched in addition to the plain one.
   So numbers ("I have 1 kid", "at 4", "$50") never become letters, and punctuation
   after a word ("die!") is still matched by the plain view. ``1`` may stand for i or l,
   so it is kept as ``1`` and a phrase's ``i`` and ``l`` also match it. A swappable
   symbol glued to a word counts as part of it ("$kill" is "skill", not "kill").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Curly and modifier apostrophes in notes typed on phones.
_APOSTROPHES = str.maketrans("", "", "'\u2018\u2019\u02bc\u2032`")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_\u2800]+")
# Rendered as nothing but not in category Cf or M: Hangul fillers.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})

# Letters of other scripts that look like a Latin letter, mapped before case folding.
# Cyrillic upper and lower case, Greek upper case (lower case only where it looks Latin),
# and Latin letters NFKD does not decompose.
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic capitals
        "\u0410": "a", "\u0412": "b", "\u0415": "e", "\u0401": "e", "\u0405": "s", "\u0406": "i",
        "\u0407": "i", "\u0408": "j", "\u041a": "k", "\u041c": "m", "\u041d": "h", "\u041e": "o",
        "\u0420": "p", "\u0421": "c", "\u0422": "t", "\u0423": "y", "\u0425": "x", "\u04ae": "y",
        "\u04ba": "h", "\u04c0": "l", "\u051a": "q", "\u051c": "w",
        # Cyrillic small letters
        "\u0430": "a", "\u0435": "e", "\u0451": "e", "\u0455": "s", "\u0456": "i", "\u0457": "i",
        "\u0458": "j", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
        "\u04bb": "h", "\u04cf": "l", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04af": "y",
        "\u043a": "k", "\u043c": "m", "\u0442": "t", "\u0432": "b", "\u043f": "n", "\u0433": "r",
        # Greek capitals
        "\u0391": "a", "\u0392": "b", "\u0395": "e", "\u0396": "z", "\u0397": "h", "\u0399": "i",
        "\u039a": "k", "\u039c": "m", "\u039d": "n", "\u039f": "o", "\u03a1": "p", "\u03a4": "t",
        "\u03a5": "y", "\u03a7": "x",
        # Greek small letters that look like Latin small letters
        "\u03b1": "a", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o",
        "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03b3": "y", "\u03b7": "n",
        # Latin letters without a decomposition
        "\u0131": "i", "\u0142": "l", "\u0141": "l", "\u00f8": "o", "\u00d8": "o", "\u0111": "d",
        "\u0110": "d", "\u0127": "h", "\u0251": "a", "\u0261": "g", "\u0269": "i", "\u029f": "l",
        "\u0274": "n", "\u0280": "r", "\ua731": "s",
    }
)  # fmt: skip

# Digit and symbol swaps inside mixed tokens only (see the module docstring, step 5).
# `!` only before a word character ("die!" ends a sentence, "d!e" and "!t" hide a letter);
# `|` is no sentence punctuation, so next to any word character ("wil|").
_SWAPS = str.maketrans({"0": "o", "3": "e", "4": "a", "@": "a", "5": "s", "$": "s", "7": "t", "8": "b"})
_BARS = re.compile(r"[|!]+")
_WORD = re.compile(r"\w")
_SWAPPABLE = frozenset("013457@$!|8")
_ANY_SWAPPABLE = re.compile(r"[013457@$!|8]")
# A whole token (a run of non-spaces) holding a letter and a swappable character; a superset
# of the tokens `_swap_token` changes (`[^\W\d_]` also takes a few numeric symbols, which
# `_swap_token` then leaves alone).
_MIXED = re.compile(r"(?<!\S)(?=\S*?[^\W\d_])(?=\S*?[013457@$!|8])\S+")


def _strip_invisible(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        c for c in decomposed if c not in _FILLERS and unicodedata.category(c) not in _DROPPED_CATEGORIES
    )
    return unicodedata.normalize("NFC", kept)


def normalise(text: str) -> str:
    """The plain view: compatibility forms, invisibles, look-alikes, case, apostrophes and
    separators normalised (module docstring, steps 1-4)."""
    if not text.isascii():
        text = _strip_invisible(text).translate(_LOOK_ALIKES)
        return _SEPARATORS.sub(" ", text.casefold().translate(_APOSTROPHES)).strip()
    # ASCII (most chat messages; risk_watch checks every member message): the same steps
    # without str.translate's per-character dict lookups, about 3x cheaper.
    text = text.lower()
    if "'" in text:
        text = text.replace("'", "")
    if "`" in text:
        text = text.replace("`", "")
    # The separators' regex sub, for ASCII: hyphens and underscores are spaces, then runs
    # of whitespace (str.split and the regex's \s agree on what that is) become one space,
    # none at either end. A substitution per space cost 2 µs of a typical message's 2.8.
    if "-" in text:
        text = text.replace("-", " ")
    if "_" in text:
        text = text.replace("_", " ")
    return " ".join(text.split())


def _ones(m: re.Match[str]) -> str:
    run, text = m.group(0), m.string
    after = _WORD.match(text, m.end()) is not None
    before = m.start() > 0 and _WORD.match(text, m.start() - 1) is not None
    if after:
        return "1" * len(run)
    return run.replace("|", "1") if before else run


def _swap_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if any(c.isalpha() for c in token) and any(c in _SWAPPABLE for c in token):
        return _BARS.sub(_ones, token.translate(_SWAPS))
    return token


def swapped(plain: str) -> str | None:
    """The second view of an already `normalise`d text, with digit and symbol swaps inside
    mixed tokens; None when it would be the same as ``plain``."""
    if _ANY_SWAPPABLE.search(plain) is None:  # one regex scan, not a set lookup per character
        return None
    # Only mixed tokens can change: a Python call for each of those, not for every token.
    view = _MIXED.sub(_swap_token, plain)
    return None if view == plain else view


@dataclass(frozen=True, slots=True)
class RiskPhrases:
    phrases: tuple[str, ...]
    _pattern: re.Pattern[str] | None

    def matches(self, note: str | None) -> bool:
        """True if the text contains any phrase as whole words, after normalisation."""
        if not note or self._pattern is None:
            return False
        plain = normalise(note)
        if self._pattern.search(plain) is not None:
            return True
        view = swapped(plain)
        return view is not None and self._pattern.search(view) is not None

    def __len__(self) -> int:
        return len(self.phrases)


def _letter(c: str) -> str:
    # `1` may stand for i or l in the swapped view (and only there can it sit in a word).
    return "[" + c + "1]" if c in "il" else re.escape(c)


def _phrase_regex(phrase: str) -> str:
    prefix = phrase.endswith("*")
    words = phrase.rstrip("*").split(" ")
    body = " ".join("".join(_letter(c) for c in w) for w in words)
    return body + (r"\w*" if prefix else "")


def load_phrases(text: str) -> RiskPhrases:
    """Parse the phrase file format: one phrase a line, ``#`` comments, blank lines."""
    phrases: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        phrase = normalise(line)
        if phrase.rstrip("*") and phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        return RiskPhrases((), None)
    # Whole words: a swappable symbol glued to a word makes it part of that word ("$kill" is
    # "skill"), so it counts as a word character at both ends.
    alternatives = "|".join(_phrase_regex(p) for p in phrases)
    pattern = re.compile(r"(?<![\w$@|])(?:" + alternatives + r")(?![\w$@|])")
    return RiskPhrases(tuple(phrases), pattern)


@cache
def default_phrases() -> RiskPhrases:
    """The phrase list shipped with the package (``matching/risk_phrases.txt``)."""
    return load_phrases(resources.files("matching").joinpath("risk_phrases.txt").read_text("utf-8"))
