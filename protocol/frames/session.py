"""A socket's session (PRODUCT.md §5): `hello` and `welcome`, token renewal, and `error`."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocol.codes import ErrorCode
from protocol.frames.base import Frame, Id, Role, Seq, Struct
from protocol.frames.conversation import ConversationSummary
from protocol.frames.queue import Alternative, OfferMade, PastPeer, RequestInfo


class Hello(Frame, tag="hello", frozen=True):
    token: Annotated[str, Meta(max_length=8192)]
    resume: dict[Id, Seq] | None = None


class Reauth(Frame, tag="reauth", frozen=True):
    """A fresh token for the same (role, sub), sent before the current one's `exp`."""

    token: Annotated[str, Meta(max_length=8192)]


class User(Struct, frozen=True):
    id: str
    role: Role
    name: str


class Welcome(Frame, tag="welcome", frozen=True):
    user: User
    conversations: list[ConversationSummary]
    requests: list[RequestInfo]
    offers: list[OfferMade]
    availability: Literal["available", "away"] | None = None  # specialists only
    # Opening hours (PEERCHAT_HOURS): whether the service is open now, and if not, when it opens.
    open: bool | None = None
    opens_at: str | None = None
    # When closed, when nobody is online, or during a long wait: where else to turn.
    alternatives: list[Alternative] | None = None
    past_peers: list[PastPeer] | None = None  # members only
    wrap_up_until: str | None = None  # specialists in wrap-up (PRODUCT.md §8)


class Reauthed(Frame, tag="reauthed", frozen=True):
    """The socket now lives until `exp` (ISO 8601 UTC), the new token's expiry."""

    exp: str


class Error(Frame, tag="error", frozen=True):
    code: ErrorCode
    message: str
    # `closed_hours` only: when the service opens, and where else to turn meanwhile.
    opens_at: str | None = None
    alternatives: list[Alternative] | None = None
    # `suspended` only: when the member's suspension ends.
    until: str | None = None
