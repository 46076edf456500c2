"""Safety inside a conversation (PRODUCT.md §8): risk, flags, supervisor alerts and the
specialist's wrap-up."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocol.frames.base import Frame, Id, Seq, Struct


class Flag(Frame, tag="flag", frozen=True):
    """The conversation's specialist asks supervisors for support (PRODUCT.md §8); `high`
    also marks the conversation `risk: "high"`. The note goes to supervisors only."""

    conversation_id: Id
    level: Literal["concern", "high"]
    note: Annotated[str, Meta(max_length=1000)] | None = None


class AckAlert(Frame, tag="ack_alert", frozen=True):
    """A supervisor closes an open alert for every supervisor."""

    alert_id: Id


class WrapUp(Frame, tag="wrap_up", frozen=True):
    """The specialist records how an ended conversation of theirs went; ends their wrap-up
    now, or at its floor (half the length after an urgent or high-risk conversation)."""

    conversation_id: Id
    outcome: Annotated[str, Meta(min_length=1, max_length=200)]
    risk_level: Literal["none", "low", "medium", "high"]
    note: Annotated[str, Meta(max_length=2000)] | None = None


AlertKind = Literal["urgent_request", "risk_message", "flagged", "long_wait", "report", "block"]


AlertLevel = Literal["concern", "high"]


class Alert(Struct, frozen=True):
    """An open supervisor alert (PRODUCT.md §8), stored until one supervisor acks it.
    `waited_s` is how long the request had waited when the alert was raised; `level` and
    `note` come with a `flagged` alert (`level: "high"` with `risk_message`)."""

    id: str
    kind: AlertKind
    at: str
    request_id: str | None = None
    conversation_id: str | None = None
    tags: list[str] | None = None
    waited_s: int | None = None
    level: AlertLevel | None = None
    note: str | None = None  # a flag's note, for supervisors


class AckedBy(Struct, frozen=True):
    name: str


class Risk(Frame, tag="risk", frozen=True):
    """To the specialist's devices (and monitoring supervisors): the member message `seq`
    matched the risk phrase list; the conversation is now `risk: "high"` for good."""

    conversation_id: str
    level: Literal["high"]
    seq: Seq


class Flagged(Frame, tag="flagged", frozen=True):
    conversation_id: str
    alert_id: str


class AlertAcked(Frame, tag="alert_acked", frozen=True):
    """To every watching supervisor on every process: the alert is closed."""

    alert_id: str
    by: AckedBy


class WrapUpSaved(Frame, tag="wrap_up_saved", frozen=True):
    conversation_id: str
    wrap_up_until: str
