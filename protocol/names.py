"""Display names as people will see them (PRODUCT.md §4), decided without I/O.

A token's `name` is what a specialist sees of a member (their alias) and what a member
sees of a specialist. It comes from an identity provider we do not control, so before
anyone sees it:

- control characters (C0 and C1, NUL included) and lone surrogates are refused outright:
  they can only be an attack or a broken provider, and PostgreSQL cannot store some of
  them (`has_refused_characters`);
- what remains is NFKC-normalised (full-width and compatibility forms fold to the plain
  letters a reader takes them for), stripped of every format character (Unicode category
  Cf: the bidi overrides, embeddings and isolates of "\\u202eSupervisor Lee", zero-width
  spaces and joiners, soft hyphens, tag characters) and of the filler characters that
  render as nothing, with runs of whitespace folded to one space and the ends trimmed,
  then cut to MAX_NAME_CHARS (`display_name`). An empty result means "no name given".
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 64

# Letters (category Lo/So/Mn) that render as blank space: a name made of them looks empty,
# and one mixed into a name hides what it is next to.
_INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u2800"  # Braille pattern blank
    "\u034f"  # combining grapheme joiner
    "\u180e"  # Mongolian vowel separator (Cf in old Unicode versions)
)


def has_refused_characters(text: str) -> bool:
    """Whether `text` holds a control character (category Cc: C0, DEL, C1; NUL included)
    or a lone surrogate (Cs, which JSON's `\\ud800` escape can produce and UTF-8 cannot
    hold). Such a `sub` or `name` refuses the whole token."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _visible(ch: str) -> bool:
    return unicodedata.category(ch) != "Cf" and ch not in _INVISIBLE


def display_name(raw: str) -> str:
    """The name as shown: normalised and stripped (see the module's docstring); "" when
    nothing visible is left, and the caller then uses its default. Assumes
    `has_refused_characters(raw)` is False. Idempotent."""
    text = unicodedata.normalize("NFKC", raw)
    text = " ".join("".join(ch for ch in text if _visible(ch)).split())
    # Removing a character can bring a letter and a combining mark together: normalise
    # again (composition only, now) so the result is its own fixed point. A prefix of a
    # normalised string is normalised, so the cut keeps it so.
    return unicodedata.normalize("NFKC", text)[:MAX_NAME_CHARS].rstrip()
