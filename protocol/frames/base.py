"""Shared shapes of every frame: the `Frame` and `Struct` bases and the bounded field types."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Id = Annotated[str, Meta(min_length=1, max_length=64)]


Ref = Annotated[str, Meta(max_length=64)]


Tag = Annotated[str, Meta(min_length=1, max_length=40)]


Language = Annotated[str, Meta(min_length=2, max_length=16)]


Seq = Annotated[int, Meta(ge=0, le=2**31 - 1)]


Role = Literal["member", "specialist", "supervisor"]


Priority = Literal["urgent", "normal"]


class Frame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Any frame. `ref`, when a client sets it, is copied into the direct reply only."""

    ref: Ref | None = None


class Struct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A value nested inside a frame."""
