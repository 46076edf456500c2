"""Boundaries (PRODUCT.md §9): a specialist blocks a member, a member reports a specialist."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from protocol.frames.base import Frame, Id


class BlockMember(Frame, tag="block", frozen=True):
    """The conversation's specialist blocks its member (PRODUCT.md §9): for
    PEERCHAT_BLOCK_DAYS the pair is never matched, claimed or transferred. `end: true` also
    ends the conversation if it is active."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=500)] = ""
    end: bool = False


class Report(Frame, tag="report", frozen=True):
    """The member reports the specialist of their conversation, during or after it: the pair
    is never matched again."""

    conversation_id: Id
    reason: Annotated[str, Meta(max_length=200)] = ""
    details: Annotated[str, Meta(max_length=4000)] = ""


class Blocked(Frame, tag="blocked", frozen=True):
    block_id: str
    until: str


class Reported(Frame, tag="reported", frozen=True):
    report_id: str
