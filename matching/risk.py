"""Risk phrases: does a request's note suggest the member may be in crisis?

The list is data (``risk_phrases.txt``) so that clinicians can change it without a code
change. A match makes a request urgent; it never blocks the member or sends a reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Curly and modifier apostrophes in notes typed on phones.
_APOSTROPHES = str.maketrans("", "", "'\u2018\u2019\u02bc\u2032`")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_]+")


def normalise(text: str) -> str:
    """Lower-case, apostrophes removed, runs of spaces/hyphens folded to one space."""
    return _SEPARATORS.sub(" ", text.casefold().translate(_APOSTROPHES)).strip()


@dataclass(frozen=True, slots=True)
class RiskPhrases:
    phrases: tuple[str, ...]
    _pattern: re.Pattern[str] | None

    def matches(self, note: str | None) -> bool:
        """True if the note contains any phrase as whole words."""
        if not note or self._pattern is None:
            return False
        return self._pattern.search(normalise(note)) is not None

    def __len__(self) -> int:
        return len(self.phrases)


def _phrase_regex(phrase: str) -> str:
    prefix = phrase.endswith("*")
    words = phrase.rstrip("*").split(" ")
    body = " ".join(re.escape(w) for w in words)
    return r"\b" + body + (r"\w*" if prefix else "") + r"\b"


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
    pattern = re.compile("|".join(_phrase_regex(p) for p in phrases))
    return RiskPhrases(tuple(phrases), pattern)


@cache
def default_phrases() -> RiskPhrases:
    """The phrase list shipped with the package (``matching/risk_phrases.txt``)."""
    return load_phrases(resources.files("matching").joinpath("risk_phrases.txt").read_text("utf-8"))
