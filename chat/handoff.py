"""Carrying out a transfer (PRODUCT.md §9) once PostgreSQL has recorded it: who is told
what, in which order, on every process. The decisions and the compare-and-sets are in
chat/store/transfer*.py; the frames in handlers/transfer.py and the matchmaker come here.

Order matters for the one who hands a conversation on: every process first forgets the
conversation's cached pair (`services.participants`, rung on PARTICIPANTS_CHANNEL) so no
later `send` fans out to them, and only then are they told `conversation_ended` (reason
`transferred`); their sockets drop anything of that conversation after that frame
(chat/gateway/ordering.py), so a message committed a moment before, whose ring arrives a
moment after, does not reach them either.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Literal, cast

from msgspec.structs import replace

from chat import views
from chat.delivery.ended import ended_frame
from chat.delivery.hub import STATS_CHANNEL
from chat.gateway.session import Outbound, Session
from chat.people import Person, specialist
from chat.safety.risk_watch import RISK
from chat.services import Services, remember_pair
from chat.store import conversations, transfer, transfer_reads, wrap_up
from chat.store.conversations import Conversation
from chat.store.db import iso
from chat.store.queue import Request
from protocol import frames as f
from protocol.codec import encode
from protocol.frames import Role

log = logging.getLogger("peerchat.transfer")

# Payload: a conversation id. Every process drops its cached participants of it.
PARTICIPANTS_CHANNEL = "pc:participants"
# How long after a hand-over the new specialist's devices are sent what was stored in the
# moment before every process had forgotten the old pair (a ring to the old pair is lost).
_CATCH_UP_AFTER_S = 1.0
_BACKGROUND: set[asyncio.Task[None]] = set()


def on_bus(services: Services, data: bytes) -> None:
    """A PARTICIPANTS_CHANNEL ring: forget the conversation's pair (read again on next use)."""
    services.participants.pop(data.decode(errors="replace"), None)


async def forget_pair(services: Services, conversation_id: str) -> None:
    services.participants.pop(conversation_id, None)
    await services.bus.publish(PARTICIPANTS_CHANNEL, conversation_id.encode())


async def hand_off(services: Services, conversation_id: str, from_specialist_id: str) -> None:
    """The specialist no longer holds the conversation: forget the pair everywhere, then
    tell their devices it ended for them (reason `transferred`) and that their wrap-up runs."""
    await forget_pair(services, conversation_id)
    old = specialist(from_specialist_id)
    ended = ended_frame(conversation_id, "specialist", "transferred")
    services.hub.to_user(old, ended, conversation_id=conversation_id, ends_conversation=True)
    wrapping = await wrap_up.until(services.db, from_specialist_id)
    if wrapping is not None:
        status = await services.db.fetchval(
            "SELECT status FROM specialists WHERE id = $1", from_specialist_id
        )
        services.hub.to_user(
            old,
            f.AvailabilityChanged(
                status="available" if status == "available" else "away", wrap_up_until=iso(wrapping)
            ),
        )


def tell_sender(services: Services, row: transfer.Transfer, frame: f.Frame) -> None:
    """A warm transfer's outcome (`transfer_failed`) to whoever must hear it: the one who
    asked, and, when a supervisor asked, the specialist who keeps the conversation."""
    asker = Person(cast(Role, row.by_role), row.by_id)
    services.hub.to_user(asker, frame)
    holder = specialist(row.from_specialist_id)
    if holder != asker:
        services.hub.to_user(holder, frame)


async def failed(
    services: Services, row: transfer.Transfer, reason: Literal["declined", "expired", "unavailable"]
) -> None:
    """A warm transfer closed without being accepted: its sender (`tell_sender`) gets
    `transfer_failed` and keeps the conversation; supervisors see it is over."""
    tell_sender(services, row, f.TransferFailed(conversation_id=row.conversation_id, reason=reason))
    await tell_supervisors(services, row.conversation_id, None)


def transfer_view(under_way: transfer_reads.Open) -> f.ConversationTransfer:
    """`transfer` on a `welcome` conversation, a `transfer_status` and a listed conversation."""
    if under_way.to_specialist_id is None:
        return f.ConversationTransfer(state="waiting")
    return f.ConversationTransfer(
        state="offered",
        to=f.SpecialistView(id=under_way.to_specialist_id, name=under_way.to_name or ""),
        expires_at=iso(under_way.expires_at) if under_way.expires_at else None,
    )


async def tell_supervisors(
    services: Services, conversation_id: str, now: f.ConversationTransfer | None
) -> None:
    """Every supervisor watching the queues, on every process, sees a transfer begin (`now`)
    and end (None): the dashboard marks the conversation's row (PRODUCT.md §9). Transfers
    are rare; one broadcast each, as `queue_stats` is sent."""
    await services.hub.broadcast(
        STATS_CHANNEL, f.TransferStatus(conversation_id=conversation_id, transfer=now)
    )


async def began(services: Services, row: transfer.Transfer) -> None:
    """A transfer was just recorded: supervisors see which; and when a supervisor asked for
    a warm one, the specialist who keeps the conversation until it is accepted sees it too
    (as after a reload, `welcome`'s `conversations[].transfer`)."""
    conversation_id = row.conversation_id
    under_way = (await transfer_reads.open_of(services.db, [conversation_id])).get(conversation_id)
    if under_way is None:
        return
    view = transfer_view(under_way)
    await tell_supervisors(services, conversation_id, view)
    if row.by_role == "supervisor" and row.to_specialist_id is not None:
        services.hub.to_user(
            specialist(row.from_specialist_id),
            f.TransferStatus(conversation_id=conversation_id, transfer=view),
        )


def waiting(conversation_id: str, ref: str | None = None) -> f.TransferState:
    return f.TransferState(conversation_id=conversation_id, state="waiting", ref=ref)


async def taken(
    services: Services,
    conv: Conversation,
    from_name: str,
    note: str,
    *,
    asked: Session | None = None,
    ref: str | None = None,
) -> None:
    """`conv` (as stored now) has its new specialist: they get `conversation_started` with
    the handoff and then the history; the member gets `transfer joined`. `asked`, the
    socket whose accept or claim this answers, gets its copy with the `ref`."""
    await forget_pair(services, conv.id)
    remember_pair(services.participants, conv.id, conv.participants)
    started = f.ConversationStarted(
        conversation=views.conversation_info(conv),
        transfer=f.StartedTransfer(note=note, from_=f.TransferFrom(name=from_name)),
    )
    if asked is not None:
        asked.push(Outbound(encode(replace(started, ref=ref)), conv.id, None, True))
    services.hub.to_user(
        conv.specialist, started, conversation_id=conv.id, starts_conversation=True, skip=asked
    )
    services.hub.to_user(
        conv.member,
        f.TransferState(
            conversation_id=conv.id,
            state="joined",
            specialist=f.SpecialistView(id=conv.specialist_id, name=conv.specialist_name),
        ),
    )
    await _history(services, conv.specialist, conv.id, 0)
    await _tell_risk(services, conv)
    await tell_supervisors(services, conv.id, None)
    task = asyncio.get_running_loop().create_task(_catch_up_later(services, conv.specialist, conv.id))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def _history(services: Services, person: Person, conversation_id: str, after: int) -> None:
    """Everything stored so far, as `message` frames in order (the sockets drop repeats by seq)."""
    while True:
        batch = await conversations.messages_after(services.db, conversation_id, after, 500)
        for m in batch:
            services.hub.to_user(person, views.message(m), conversation_id=conversation_id, seq=m.seq)
        if len(batch) < 500:
            return
        after = batch[-1].seq


async def _tell_risk(services: Services, conv: Conversation) -> None:
    """A conversation already `risk: "high"` (PRODUCT.md §8) reaches its new specialist: they
    get the `risk` its earlier holder got (or nobody got, while a cold transfer waited),
    with the seq of the member message that marked it (the last seq if a flag did)."""
    if await services.db.fetchval("SELECT risk FROM conversations WHERE id = $1", conv.id) != "high":
        return
    seq, after = 0, 0
    while not seq:
        batch = await conversations.messages_after(services.db, conv.id, after, 500)
        seq = next((m.seq for m in batch if m.sender_role == "member" and RISK.matches(m.body)), 0)
        if len(batch) < 500:
            break
        after = batch[-1].seq
    frame = f.Risk(conversation_id=conv.id, level="high", seq=seq or conv.last_seq)
    services.hub.to_user(conv.specialist, frame, conversation_id=conv.id)


async def _catch_up_later(services: Services, person: Person, conversation_id: str) -> None:
    await asyncio.sleep(_CATCH_UP_AFTER_S)
    try:
        await _history(services, person, conversation_id, 0)
    except Exception as exc:  # the next message's gap fill covers it
        log.info("transfer catch-up skipped: %s", type(exc).__name__)


async def offer_transfer(services: Services, request: Request, offer: f.OfferMade) -> f.OfferMade:
    """A cold transfer's queue entry offered: the offer says whose conversation it is."""
    found = await transfer_reads.of_request(services.db, request.id)
    if found is None or request.transfer_of is None:
        return offer
    row, note = found
    return _with_transfer(offer, request.transfer_of, row.from_name, note)


def _with_transfer(offer: f.OfferMade, conversation_id: str, from_name: str, note: str) -> f.OfferMade:
    return replace(
        offer,
        transfer=f.OfferTransfer(
            conversation_id=conversation_id, note=note, from_=f.TransferFrom(name=from_name)
        ),
    )


def warm_offer(begun: transfer.Begun, tags: list[str], expires_in_s: int) -> f.OfferMade:
    """The `offer` a warm transfer's target gets: `offer_id` and `request_id` are the transfer's id."""
    row = begun.transfer
    return f.OfferMade(
        offer_id=row.id,
        request_id=row.id,
        tags=tags,
        language=begun.language,
        note=None,
        waited_s=0,
        expires_in_s=expires_in_s,
        priority="urgent" if begun.priority == "urgent" else "normal",
        transfer=f.OfferTransfer(
            conversation_id=row.conversation_id, note=begun.note, from_=f.TransferFrom(name=row.from_name)
        ),
    )


async def warm_offers_for(services: Services, specialist_id: str) -> list[f.OfferMade]:
    """Warm transfers offered to this specialist and still open, as `offer` frames (a
    reconnecting device's `welcome`)."""
    out = []
    now = datetime.now(UTC)
    for row in await transfer_reads.offered_to(services.db, specialist_id):
        conv = await conversations.get(services.db, row.conversation_id)
        if conv is None or row.expires_at is None:
            continue
        origin = await transfer.origin_of(services.db, conv.id)
        begun = transfer.Begun(
            row, conv, await transfer_reads.note_of(services.db, row), origin[0], origin[1]
        )
        out.append(warm_offer(begun, conv.tags, max(0, int((row.expires_at - now).total_seconds()))))
    return out
