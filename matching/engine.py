"""The matching engine: an in-memory, incremental view of the queue that decides offers.

One leader process drives it (see docs/matching.md): feed it every event with the
current time, act on the :class:`~matching.decisions.Decisions` it returns, and call
:meth:`Engine.tick` about once a second. It does no I/O and never reads a clock.

Invariant kept after every call: no waiting request without a pending offer has an
eligible specialist with room. So an event only has to look at what it changed: the
requests it put (back) in line and the specialists it gave room; everything else was
already settled. That is what keeps a decision well under a millisecond with 10,000
waiting requests (see "Performance" in docs/matching.md).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from types import MappingProxyType

from matching.decisions import NO_DECISIONS, Decisions, QueueEstimate
from matching.estimate import MAX_ESTIMATE_S, ServiceRates, estimated_wait_s, shown_wait_s
from matching.lifecycle import (
    OFFER_TRANSITIONS,
    REQUEST_TRANSITIONS,
    OfferEvent,
    OfferState,
    RequestEvent,
    RequestState,
    next_state,
)
from matching.model import (
    CRISIS_TAG,
    MatchConfig,
    Offer,
    Priority,
    Request,
    Specialist,
    Status,
    queue_key,
)

Key = tuple[int, float, str]
# Where requests wait and where specialists with room are found, by what they match:
# ("any", language, "")  requests any speaker of the language may take (no tags asked,
#                        or relaxed); language None is "any language";
# ("tag", language, tag) requests that still need a shared tag, once per wanted tag;
# ("held", None, id)     requests held for their preferred specialist ``id``.
Bucket = tuple[str, str | None, str]

_RELAX = 0
_PREFERENCE = 1
_NO_KEYS: list[Key] = []
# A (position, shown wait) pair told to a member, kept as position * _WAITS + wait.
_WAITS = 1 << 20
assert MAX_ESTIMATE_S < _WAITS
# Sorts after every urgent request's key and before every other (`queue_key`).
_FIRST_NOT_URGENT: Key = (2, -math.inf, "")
# Up to this many touched specialists with room, a settle asks each for its first request
# (`Engine._first_of_few`); more, it walks their buckets by request (`_Cursors`).
_FEW_SPECIALISTS = 4
# Up to this many open specialists in an "any" bucket, `Engine._least_loaded` scans them;
# more, it keeps a heap of their ranks.
_SCAN_UP_TO = 32


def wanted_tags(r: Request) -> frozenset[str]:
    """Tags that count for ``r``: its own, plus "crisis" when it is urgent."""
    return r.tags | {CRISIS_TAG} if r.priority is Priority.URGENT else r.tags


# `_avoiding` rebuilds a Request field by field (dataclasses.replace costs twice as much, on
# every decline and expiry): a field added to Request must be added there too.
assert [f.name for f in fields(Request)] == [
    "id",
    "member_id",
    "tags",
    "language",
    "priority",
    "created_at",
    "prefer_specialist",
    "avoid",
    "transfer_of",
], "Request changed: update _avoiding"


def _avoiding(r: Request, specialist_id: str) -> Request:
    """``r`` with ``specialist_id`` added to its ``avoid``."""
    return Request(
        r.id,
        r.member_id,
        r.tags,
        r.language,
        r.priority,
        r.created_at,
        r.prefer_specialist,
        r.avoid | {specialist_id},
        r.transfer_of,
    )


def _pools(s: Specialist) -> tuple[str | None, ...]:
    return (*s.languages, None)


def _specialist_buckets(s: Specialist) -> tuple[Bucket, ...]:
    buckets: list[Bucket] = []
    for language in _pools(s):
        buckets.append(("any", language, ""))
        buckets.extend(("tag", language, tag) for tag in sorted(s.tags))
    return tuple(buckets)


class _Out:
    """Decisions being gathered during one call, plus the work left to settle.

    A plain class with slots: one is made per event, and a dataclass with nine default
    factories cost more than some events' whole decision."""

    __slots__ = (
        "expired",
        "fallbacks",
        "offers",
        "reqs",
        "revoked",
        "set_away",
        "specs",
        "touched",
        "updates",
    )

    def __init__(self) -> None:
        self.offers: list[Offer] = []
        self.expired: list[Offer] = []
        self.revoked: list[Offer] = []
        self.set_away: list[str] = []
        self.fallbacks: list[str] = []
        self.updates: dict[str, QueueEstimate] = {}
        # Specialists who may have gained room or eligibility, and requests that may have
        # become eligible for someone: the only places a new offer can come from.
        self.specs: set[str] = set()
        self.reqs: list[str] = []
        # Requests whose estimate must be re-reported at the end of the call.
        self.touched: set[str] = set()


class Engine:
    """Incremental matcher for one leader process. Not thread-safe; call it from one task.

    Every method takes ``now`` (seconds, any epoch, never going backwards) and returns
    the decisions the driver must carry out (see :class:`Decisions`). Events about ids
    the engine does not know (a stale accept, a double cancel) are ignored: PostgreSQL
    is the source of truth, and the driver must check there before it feeds an event in.
    """

    def __init__(self, config: MatchConfig, new_id: Callable[[], str]) -> None:
        self._config = config
        self._new_id = new_id
        self._reset()

    def _reset(self) -> None:
        self._requests: dict[str, Request] = {}
        self._state: dict[str, RequestState] = {}
        self._keys: dict[str, Key] = {}
        self._queue: list[Key] = []
        self._queue_by_language: dict[str | None, list[Key]] = {}
        self._buckets: dict[Bucket, list[Key]] = {}
        self._bucketed: dict[str, tuple[Bucket, ...]] = {}
        self._relaxed: set[str] = set()
        self._held: set[str] = set()
        self._preference_open: set[str] = set()
        self._deadlines: list[tuple[float, int, str]] = []
        self._offers: dict[str, Offer] = {}
        self._offer_for: dict[str, str] = {}
        self._offers_held: dict[str, dict[str, None]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._specialists: dict[str, Specialist] = {}
        self._specialist_buckets: dict[str, tuple[Bucket, ...]] = {}
        self._search: dict[str, tuple[Bucket, ...]] = {}
        # Per specialist, the bucket containers they are filed in or search, looked up once
        # when their buckets change (a settle or an open/close then does no bucket hashing):
        # the sets of `_open` for their buckets, their "any" buckets, and for each bucket
        # they search whether it is a "held" one and its list of keys. So `_open` keeps its
        # empty sets and `_buckets` its empty lists (one per language, tag and held
        # specialist: bounded).
        self._open_sets: dict[str, tuple[set[str], ...]] = {}
        self._any_buckets: dict[str, tuple[Bucket, ...]] = {}
        self._search_keys: dict[str, tuple[tuple[bool, list[Key]], ...]] = {}
        self._open: dict[Bucket, set[str]] = {}
        self._opened: dict[str, tuple[Bucket, ...]] = {}
        # Per "any" bucket: open specialists' ranks, a heap checked lazily (`_least_loaded`).
        self._by_rank: dict[Bucket, list[tuple[int, float, str]]] = {}
        self._missed: dict[str, int] = {}
        self._rates = ServiceRates(self._config.rate_window_s, self._config.default_handle_s)
        # What each waiting member was last told, as one int (`_told`): a tuple per report
        # was a hundred GC-tracked objects a tick, and the collections they set off landed
        # on ticks (docs/performance.md round 9).
        self._reported: dict[str, int] = {}
        self._sweep_after: Key | None = None
        # Wrap-ups still running, soonest end first, and the latest `now` seen (never
        # going backwards), against which a specialist's wrap-up is judged.
        self._wrap_ups: list[tuple[float, str]] = []
        self._clock = -math.inf

    # ---------------------------------------------------------------- events

    def load(
        self,
        requests: Iterable[Request],
        specialists: Iterable[Specialist],
        offers: Iterable[Offer],
        now: float,
    ) -> Decisions:
        """Forget everything and rebuild from a snapshot, then decide as :meth:`tick` does.

        Pass every waiting request (offered or not), every specialist, and every pending
        offer. An offer whose request or specialist is missing, or that duplicates another
        offer for its request, comes back in ``revoked``. Missed-offer streaks and service
        rate history start again from zero.
        """
        self._reset()
        out = _Out()
        for s in specialists:
            self._set_specialist(s, now, out)
        for r in requests:
            if r.id not in self._requests:
                self._add_request(r, now, out, fresh=False)
        for offer in offers:
            self._attach_offer(offer, out)
        out.reqs.extend(rid for rid in self._bucketed)
        for s in self._specialists.values():
            self._enforce_capacity(s, out, now)
        out.specs.update(self._opened)
        return self._tick(now, out)

    def request_added(self, r: Request, now: float) -> Decisions:
        """A member asked for a peer. The decisions always carry this request's
        position and estimate (for the ``queued`` reply), unless it is already known."""
        if r.id in self._requests:
            return NO_DECISIONS
        out = _Out()
        self._add_request(r, now, out, fresh=True)
        out.reqs.append(r.id)
        out.touched.add(r.id)
        return self._finish(now, out)

    def request_removed(self, request_id: str, now: float) -> Decisions:
        """The request was cancelled or assigned elsewhere. Its pending offer, if any,
        comes back in ``revoked``. For a hand claim prefer :meth:`request_claimed`."""
        if request_id not in self._requests:
            return NO_DECISIONS
        out = _Out()
        self._remove_request(request_id, RequestEvent.CANCEL, out)
        return self._finish(now, out)

    def request_claimed(self, request_id: str, specialist_id: str, now: float) -> Decisions:
        """A specialist claimed a waiting request by hand (after the database agreed).

        Another specialist's pending offer for it is revoked; the claimer gets one more
        active chat and, if that leaves them over capacity, their newest pending offers
        are revoked.
        """
        if request_id not in self._requests:
            return NO_DECISIONS
        offer_id = self._offer_for.get(request_id)
        if offer_id is not None and self._offers[offer_id].specialist_id == specialist_id:
            return self.offer_accepted(offer_id, now)
        out = _Out()
        urgent = self._requests[request_id].priority is Priority.URGENT
        self._remove_request(request_id, RequestEvent.ASSIGN, out)
        s = self._specialists.get(specialist_id)
        if s is not None:
            self._set_specialist(self._took_one(s, urgent, now), now, out)
        return self._finish(now, out)

    def specialist_changed(self, s: Specialist, now: float) -> Decisions:
        """A specialist is new, or changed status, profile or ``active_chats``.

        Pass the fresh row: a drop in ``active_chats`` counts as that many finished
        conversations for the wait estimates. Leaving ``available`` revokes their
        pending offers (no strike against them); a capacity cut below active chats plus
        pending offers revokes the newest offers.
        """
        out = _Out()
        self._set_specialist(s, now, out)
        return self._finish(now, out)

    def conversation_ended(
        self, specialist_id: str, now: float, *, urgent: bool = False, wrap_up_until: float = 0.0
    ) -> Decisions:
        """One of this specialist's conversations ended: one slot frees up (one urgent
        slot too, if it was urgent or at high risk), after their wrap-up, if any.

        Same as :meth:`specialist_changed` with ``active_chats - 1``; calling that with
        the fresh row afterwards is harmless.
        """
        s = self._specialists.get(specialist_id)
        if s is None:
            return NO_DECISIONS
        out = _Out()
        ended = replace(
            s,
            active_chats=max(0, s.active_chats - 1),
            urgent_chats=max(0, s.urgent_chats - 1) if urgent else s.urgent_chats,
            wrap_up_until=max(s.wrap_up_until, wrap_up_until),
        )
        self._set_specialist(ended, now, out)
        return self._finish(now, out)

    def offer_accepted(self, offer_id: str, now: float) -> Decisions:
        """The holder accepted in time (the database agreed): the request is assigned,
        the specialist has one more active chat and counts as busy since ``now``."""
        offer = self._offers.get(offer_id)
        if offer is None:
            return NO_DECISIONS
        out = _Out()
        urgent = self._requests[offer.request_id].priority is Priority.URGENT
        self._end_offer(offer_id, OfferEvent.ACCEPT, now, out)
        self._remove_request(offer.request_id, RequestEvent.ASSIGN, out)
        self._missed[offer.specialist_id] = 0
        s = self._specialists.get(offer.specialist_id)
        if s is not None:
            self._set_specialist(self._took_one(s, urgent, now), now, out)
        return self._finish(now, out)

    @staticmethod
    def _took_one(s: Specialist, urgent: bool, now: float) -> Specialist:
        return replace(
            s,
            active_chats=s.active_chats + 1,
            urgent_chats=s.urgent_chats + 1 if urgent else s.urgent_chats,
            idle_since=now,
        )

    def offer_declined(self, offer_id: str, now: float) -> Decisions:
        """The holder declined: they are never offered this request again, and it goes
        to the next candidate without losing its place."""
        offer = self._offers.get(offer_id)
        if offer is None:
            return NO_DECISIONS
        out = _Out()
        self._missed[offer.specialist_id] = 0
        self._end_offer(offer_id, OfferEvent.DECLINE, now, out)
        self._refresh_open(offer.specialist_id)
        out.specs.add(offer.specialist_id)
        return self._finish(now, out)

    def tick(self, now: float) -> Decisions:
        """Let time pass: expire offers, relax tag requirements, end preference windows,
        and re-estimate the next slice of the queue. Call about once a second."""
        return self._tick(now, _Out())

    # --------------------------------------------------------------- queries

    def queue_position(self, request_id: str, now: float) -> QueueEstimate | None:
        """Position and estimate of a waiting request right now, or None if not waiting."""
        if request_id not in self._requests:
            return None
        return self._estimate(request_id, now)

    @property
    def requests(self) -> Mapping[str, Request]:
        """Waiting requests (offered or not), with the engine's ``avoid`` sets."""
        return MappingProxyType(self._requests)

    @property
    def specialists(self) -> Mapping[str, Specialist]:
        return MappingProxyType(self._specialists)

    @property
    def offers(self) -> Mapping[str, Offer]:
        """Pending offers by id."""
        return MappingProxyType(self._offers)

    # ------------------------------------------------------------- internals

    def _tick(self, now: float, out: _Out) -> Decisions:
        self._clock = max(self._clock, now)
        while self._wrap_ups and self._wrap_ups[0][0] <= now:
            _, sid = heapq.heappop(self._wrap_ups)
            if sid in self._specialists:
                self._refresh_open(sid)
                out.specs.add(sid)
        while self._expiries and self._expiries[0][0] <= now:
            _, offer_id = heapq.heappop(self._expiries)
            offer = self._offers.get(offer_id)
            if offer is not None:
                self._expire(offer, now, out)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, kind, request_id = heapq.heappop(self._deadlines)
            if request_id not in self._requests:
                continue
            if kind == _RELAX:
                self._relax(request_id, out)
            elif request_id in self._preference_open:
                held = self._offer_for.get(request_id)
                holder = None if held is None else self._offers[held]
                preferred = self._requests[request_id].prefer_specialist
                # While the preferred specialist holds the offer, their answer decides.
                if holder is None or holder.specialist_id != preferred:
                    self._release_preference(request_id, out)
        self._finish(now, out)
        self._sweep(now, out)
        return self._decisions(out)

    def _finish(self, now: float, out: _Out) -> Decisions:
        self._settle(now, out)
        rates: dict[str | None, float] = {}  # one service rate per pool per call
        for request_id in out.touched:
            if request_id in self._requests:
                self._report(request_id, now, out, rates)
        out.touched.clear()
        return self._decisions(out)

    def _decisions(self, out: _Out) -> Decisions:
        return Decisions(
            offers=tuple(out.offers),
            expired=tuple(out.expired),
            revoked=tuple(out.revoked),
            queue_updates=tuple(out.updates.values()),
            set_away=tuple(out.set_away),
            preference_fallbacks=tuple(out.fallbacks),
        )

    def _settle(self, now: float, out: _Out) -> None:
        """Make offers until no request in line has an eligible specialist with room.

        Only the requests and specialists this event touched can form a new pair. Each
        round takes the first such request in queue order (urgent, then oldest) and
        offers it to its best eligible specialist, so queue order and best-first both
        hold even when one event opens several slots.
        """
        reqs = out.reqs
        if len(reqs) == 1:  # the usual event: one request back in line, or a new one
            pending = [self._keys[reqs[0]]] if reqs[0] in self._bucketed else []
        else:
            pending = [self._keys[rid] for rid in set(reqs) if rid in self._bucketed]
            heapq.heapify(pending)
        specs = {sid: None for sid in out.specs if sid in self._opened}
        out.reqs.clear()
        out.specs.clear()
        # The touched specialists' side, two ways to the same answer. A few (the usual event:
        # one slot freed, one decline): ask each for its first request every round, which
        # stops as soon as they are full. Many (a load, a burst that opened 2,000 at once,
        # where asking each every round was O(specialists) per offer and stalled the leader
        # for seconds): walk their buckets by request (`_Cursors`). The walk's set-up and
        # heap cost about twice the asking for one specialist (the matching benchmark's
        # offer_declined / specialist_changed p99 with 10,000 waiting, docs/performance.md).
        cursors = None if len(specs) <= _FEW_SPECIALISTS else _Cursors(self, specs)
        while True:
            choice = self._first_of_few(specs) if cursors is None else cursors.first()
            chosen: Specialist | None = None
            while pending:
                key = pending[0]
                if choice is not None and key >= choice:
                    break
                if key[2] not in self._bucketed:
                    heapq.heappop(pending)
                    continue
                chosen = self._best_specialist(self._requests[key[2]])
                if chosen is None:
                    heapq.heappop(pending)
                    continue
                choice = key
                break
            if choice is None:
                return
            r = self._requests[choice[2]]
            s = chosen or self._best_specialist(r)
            assert s is not None
            self._make_offer(r, s, now, out)

    def _first_of_few(self, specs: dict[str, None]) -> Key | None:
        """The least first request over these specialists; those with no room (or nothing
        they may take) are dropped for the rest of the settle."""
        choice: Key | None = None
        for sid in list(specs):
            key = self._first_for(sid) if sid in self._opened else None
            if key is None:
                del specs[sid]
            elif choice is None or key < choice:
                choice = key
        return choice

    def _may_take(self, bucket: Bucket, key: Key, specialist_ids: dict[str, None]) -> bool:
        """Whether one of these specialists, who search `bucket`, may be offered the request
        of `key` now (the conditions of `_first_for`). Those without room are dropped."""
        r = self._requests[key[2]]
        held = bucket[0] == "held"
        urgent = r.priority is Priority.URGENT
        gone = []
        found = False
        for sid in specialist_ids:
            if sid not in self._opened:
                gone.append(sid)
                continue
            if sid in r.avoid:
                continue
            if urgent and self._urgent_full(sid):
                continue
            if held and r.language is not None and r.language not in self._specialists[sid].languages:
                continue
            found = True
            break
        for sid in gone:
            del specialist_ids[sid]
        return found

    def _first_for(self, specialist_id: str) -> Key | None:
        """First request in queue order that this specialist may be offered."""
        languages = self._specialists[specialist_id].languages
        no_urgent: bool | None = None  # asked only if an urgent request comes up
        best: Key | None = None
        for held, keys in self._search_keys[specialist_id]:
            if not keys or (best is not None and keys[0] >= best):
                continue
            i, n = 0, len(keys)
            while i < n:
                key = keys[i]
                if best is not None and key >= best:
                    break
                r = self._requests[key[2]]
                if r.priority is Priority.URGENT:
                    if no_urgent is None:
                        no_urgent = self._urgent_full(specialist_id)
                    if no_urgent:
                        # At the urgent cap: every urgent request sorts before every other
                        # (`queue_key`), so jump past them all rather than walk them (with a
                        # line of urgent requests, the walk was most of a freed slot's cost).
                        i = bisect_left(keys, _FIRST_NOT_URGENT, i + 1)
                        continue
                if specialist_id in r.avoid or (
                    held and r.language is not None and r.language not in languages
                ):
                    i += 1
                    continue
                best = key
                break
        return best

    def _best_specialist(self, r: Request) -> Specialist | None:
        """Best eligible specialist with room for ``r``: preferred specialist first, then
        most wanted tags shared, then fewest chats (pending offers count), then longest
        idle."""
        anyone = self._open.get(("any", r.language, ""))
        if not anyone:
            return None
        urgent = r.priority is Priority.URGENT
        if r.id in self._held:
            preferred = r.prefer_specialist
            if (
                preferred is not None
                and preferred in anyone
                and preferred not in r.avoid
                and not (urgent and self._urgent_full(preferred))
            ):
                return self._specialists[preferred]
            return None
        wanted = wanted_tags(r)
        if not wanted:
            # No tags and not urgent: the preferred specialist if free, else the least loaded.
            preferred = r.prefer_specialist
            if preferred is not None and preferred in anyone and preferred not in r.avoid:
                return self._specialists[preferred]
            return self._least_loaded(("any", r.language, ""), r.avoid)
        candidates: Iterable[str]
        if r.tags and r.id not in self._relaxed:
            pools = [p for t in wanted if (p := self._open.get(("tag", r.language, t)))]
            if not pools:
                return None
            candidates = pools[0] if len(pools) == 1 else set().union(*pools)
        else:
            candidates = anyone
        best: Specialist | None = None
        best_rank: tuple[bool, int, int, float, str] | None = None
        for sid in candidates:
            if sid in r.avoid or (urgent and self._urgent_full(sid)):
                continue
            s = self._specialists[sid]
            rank = (
                sid != r.prefer_specialist,
                -len(s.tags & wanted),
                s.active_chats + len(self._offers_held.get(sid, ())),
                s.idle_since,
                sid,
            )
            if best_rank is None or rank < best_rank:
                best, best_rank = s, rank
        return best

    def _urgent_full(self, specialist_id: str) -> bool:
        """At the urgent-load cap: urgent or high-risk chats plus pending urgent offers."""
        s = self._specialists[specialist_id]
        held = sum(
            1
            for offer_id in self._offers_held.get(specialist_id, ())
            if self._requests[self._offers[offer_id].request_id].priority is Priority.URGENT
        )
        return s.urgent_chats + held >= self._config.max_urgent_per_specialist

    def _make_offer(self, r: Request, s: Specialist, now: float, out: _Out) -> None:
        offer = Offer(self._new_id(), r.id, s.id, now, now + self._config.offer_timeout_s)
        self._state[r.id] = next_state(REQUEST_TRANSITIONS, self._state[r.id], RequestEvent.OFFER_MADE)
        self._unindex(r.id)
        self._offers[offer.id] = offer
        self._offer_for[r.id] = offer.id
        self._offers_held.setdefault(s.id, {})[offer.id] = None
        heapq.heappush(self._expiries, (offer.expires_at, offer.id))
        self._refresh_open(s.id)
        out.offers.append(offer)
        out.touched.add(r.id)
        if r.id in self._preference_open and s.id != r.prefer_specialist:
            self._release_preference(r.id, out)

    def _attach_offer(self, offer: Offer, out: _Out) -> None:
        r = self._requests.get(offer.request_id)
        if r is None or offer.specialist_id not in self._specialists or r.id in self._offer_for:
            out.revoked.append(offer)
            return
        self._state[r.id] = next_state(REQUEST_TRANSITIONS, self._state[r.id], RequestEvent.OFFER_MADE)
        self._unindex(r.id)
        self._offers[offer.id] = offer
        self._offer_for[r.id] = offer.id
        self._offers_held.setdefault(offer.specialist_id, {})[offer.id] = None
        heapq.heappush(self._expiries, (offer.expires_at, offer.id))
        self._refresh_open(offer.specialist_id)

    def _end_offer(self, offer_id: str, event: OfferEvent, now: float, out: _Out) -> Offer:
        """Close a pending offer; unless accepted, its request goes back in line."""
        offer = self._offers.pop(offer_id)
        next_state(OFFER_TRANSITIONS, OfferState.PENDING, event)
        request_id, specialist_id = offer.request_id, offer.specialist_id
        del self._offer_for[request_id]
        held = self._offers_held[specialist_id]
        del held[offer_id]
        if not held:
            del self._offers_held[specialist_id]
        if event is OfferEvent.ACCEPT:
            return offer
        r = self._requests[request_id]
        if event is not OfferEvent.REVOKE:
            r = _avoiding(r, specialist_id)
            self._requests[request_id] = r
        if request_id in self._preference_open and (
            (specialist_id in r.avoid and specialist_id == r.prefer_specialist)
            or now >= r.created_at + self._config.prefer_window_s
        ):
            self._release_preference(request_id, out)
        self._state[request_id] = next_state(
            REQUEST_TRANSITIONS, self._state[request_id], RequestEvent.OFFER_ENDED
        )
        self._index(request_id)
        out.reqs.append(request_id)
        out.touched.add(request_id)
        return offer

    def _expire(self, offer: Offer, now: float, out: _Out) -> None:
        self._end_offer(offer.id, OfferEvent.EXPIRE, now, out)
        out.expired.append(offer)
        sid = offer.specialist_id
        missed = self._missed.get(sid, 0) + 1
        s = self._specialists.get(sid)
        if missed >= self._config.missed_offers_before_away and s is not None:
            self._missed[sid] = 0
            if s.status is Status.AVAILABLE:
                out.set_away.append(sid)
                self._set_specialist(replace(s, status=Status.AWAY), now, out)
        else:
            self._missed[sid] = missed
        self._refresh_open(sid)
        out.specs.add(sid)

    def _revoke(self, offer_id: str, now: float, out: _Out) -> None:
        out.revoked.append(self._end_offer(offer_id, OfferEvent.REVOKE, now, out))

    def _add_request(self, r: Request, now: float, out: _Out, *, fresh: bool) -> None:
        key = queue_key(r)
        self._requests[r.id] = r
        self._state[r.id] = RequestState.WAITING
        self._keys[r.id] = key
        insort(self._queue, key)
        insort(self._queue_by_language.setdefault(r.language, []), key)
        relax_at = r.created_at + self._config.relax_after_s
        if r.tags and now >= relax_at:
            self._relaxed.add(r.id)
        elif r.tags:
            heapq.heappush(self._deadlines, (relax_at, _RELAX, r.id))
        if r.prefer_specialist is not None:
            window_end = r.created_at + self._config.prefer_window_s
            if r.prefer_specialist not in r.avoid and now < window_end:
                self._preference_open.add(r.id)
                heapq.heappush(self._deadlines, (window_end, _PREFERENCE, r.id))
                # Continuity waits a little; urgency never does.
                if r.priority is Priority.NORMAL:
                    self._held.add(r.id)
            elif fresh:
                out.fallbacks.append(r.id)
        self._index(r.id)

    def _remove_request(self, request_id: str, event: RequestEvent, out: _Out) -> None:
        offer_id = self._offer_for.get(request_id)
        if offer_id is not None:
            offer = self._offers.pop(offer_id)
            del self._offer_for[request_id]
            held = self._offers_held[offer.specialist_id]
            del held[offer_id]
            if not held:
                del self._offers_held[offer.specialist_id]
            out.revoked.append(offer)
            self._refresh_open(offer.specialist_id)
            out.specs.add(offer.specialist_id)
        next_state(REQUEST_TRANSITIONS, self._state.pop(request_id), event)
        if request_id in self._bucketed:
            self._unindex(request_id)
        r = self._requests.pop(request_id)
        key = self._keys.pop(request_id)
        for keys in (self._queue, self._queue_by_language[r.language]):
            del keys[bisect_left(keys, key)]
        self._relaxed.discard(request_id)
        self._held.discard(request_id)
        self._preference_open.discard(request_id)
        self._reported.pop(request_id, None)
        out.touched.discard(request_id)
        out.updates.pop(request_id, None)

    def _relax(self, request_id: str, out: _Out) -> None:
        if request_id in self._relaxed:
            return
        self._relaxed.add(request_id)
        if request_id in self._bucketed and request_id not in self._held:
            self._unindex(request_id)
            self._index(request_id)
            out.reqs.append(request_id)
        out.touched.add(request_id)

    def _release_preference(self, request_id: str, out: _Out) -> None:
        """Stop holding a request for its preferred specialist; the member is told."""
        self._preference_open.discard(request_id)
        out.fallbacks.append(request_id)
        if request_id in self._held:
            self._held.discard(request_id)
            if request_id in self._bucketed:
                self._unindex(request_id)
                self._index(request_id)
                out.reqs.append(request_id)

    def _index(self, request_id: str) -> None:
        r = self._requests[request_id]
        buckets: tuple[Bucket, ...]
        if request_id in self._held:
            assert r.prefer_specialist is not None
            buckets = (("held", None, r.prefer_specialist),)
        elif r.tags and request_id not in self._relaxed:
            buckets = tuple([("tag", r.language, t) for t in wanted_tags(r)])
        else:
            buckets = (("any", r.language, ""),)
        key = self._keys[request_id]
        for bucket in buckets:
            insort(self._buckets.setdefault(bucket, []), key)
        self._bucketed[request_id] = buckets

    def _unindex(self, request_id: str) -> None:
        key = self._keys[request_id]
        for bucket in self._bucketed.pop(request_id):
            keys = self._buckets[bucket]
            del keys[bisect_left(keys, key)]

    def _set_specialist(self, s: Specialist, now: float, out: _Out) -> None:
        old = self._specialists.get(s.id)
        if old is None or s.missed_offers != old.missed_offers:
            # The stored streak moved (an expiry carried out, a reply, back to available):
            # it is the one that survives a new leader or a reload, so it wins.
            self._missed[s.id] = s.missed_offers
        if old is not None and s.active_chats < old.active_chats:
            self._rates.completed(_pools(old), now, old.active_chats - s.active_chats)
        was_available = old is not None and old.status is Status.AVAILABLE
        if not (
            # The usual change (a chat more or less) leaves the available slots as they were.
            was_available
            and s.status is Status.AVAILABLE
            and old is not None
            and old.max_chats == s.max_chats
            and old.languages == s.languages
        ):
            if was_available:
                assert old is not None
                self._rates.add_slots(_pools(old), -old.max_chats)
            if s.status is Status.AVAILABLE:
                self._rates.add_slots(_pools(s), s.max_chats)
        self._specialists[s.id] = s
        self._clock = max(self._clock, now)
        if s.wrap_up_until > now and (old is None or old.wrap_up_until != s.wrap_up_until):
            heapq.heappush(self._wrap_ups, (s.wrap_up_until, s.id))
        if old is None or old.tags != s.tags or old.languages != s.languages:
            buckets = _specialist_buckets(s)
            search = (*buckets, ("held", None, s.id))
            self._specialist_buckets[s.id] = buckets
            self._search[s.id] = search
            self._open_sets[s.id] = tuple([self._open.setdefault(b, set()) for b in buckets])
            self._any_buckets[s.id] = tuple([b for b in buckets if b[0] == "any"])
            self._search_keys[s.id] = tuple(
                [(b[0] == "held", self._buckets.setdefault(b, [])) for b in search]
            )
        # Revoking and enforcing capacity below read nothing of the open index: it is
        # brought up to date once, after them.
        if s.status is not Status.AVAILABLE:
            for offer_id in list(self._offers_held.get(s.id, ())):
                self._revoke(offer_id, now, out)
        self._enforce_capacity(s, out, now)
        self._refresh_open(s.id)
        out.specs.add(s.id)

    def _enforce_capacity(self, s: Specialist, out: _Out, now: float) -> None:
        held = self._offers_held.get(s.id)
        while held and s.active_chats + len(held) > s.max_chats:
            self._revoke(next(reversed(held)), now, out)
            held = self._offers_held.get(s.id)

    def _refresh_open(self, specialist_id: str) -> None:
        """Keep the index of specialists with room in step with their current state."""
        s = self._specialists.get(specialist_id)
        buckets = self._specialist_buckets.get(specialist_id, ())
        want = (
            s is not None
            and s.status is Status.AVAILABLE
            and s.active_chats + len(self._offers_held.get(specialist_id, ())) < s.max_chats
            and s.wrap_up_until <= self._clock
        )
        have = self._opened.get(specialist_id)
        if have is buckets:
            if want:
                assert s is not None
                self._rank_push(s)
                return
            for members in self._open_sets[specialist_id]:
                members.discard(specialist_id)
            del self._opened[specialist_id]
            return
        if have is not None:
            # Opened under buckets they have since left (a profile change).
            for bucket in have:
                self._open[bucket].discard(specialist_id)
            del self._opened[specialist_id]
        if want:
            assert s is not None
            for members in self._open_sets[specialist_id]:
                members.add(specialist_id)
            self._opened[specialist_id] = buckets
            self._rank_push(s)

    def _load_rank(self, s: Specialist) -> tuple[int, float, str]:
        """Fewest chats (pending offers count), then longest idle: `_best_specialist`'s
        order once tags and preference have had their say."""
        return (s.active_chats + len(self._offers_held.get(s.id, ())), s.idle_since, s.id)

    def _rank_push(self, s: Specialist) -> None:
        """File an open specialist's current rank in the heaps of their "any" buckets.

        Every change that can lower a rank or open a specialist comes through
        `_refresh_open`, which files the new rank; entries gone stale are dropped or
        refiled when they reach the top (`_least_loaded`)."""
        if not self._by_rank:
            return
        rank: tuple[int, float, str] | None = None
        for bucket in self._any_buckets[s.id]:
            heap = self._by_rank.get(bucket)
            if heap is None:
                continue  # few open there: `_least_loaded` scans them
            rank = rank or self._load_rank(s)
            if len(heap) > 2 * len(self._open.get(bucket, ())) + 64:
                heap[:] = [self._load_rank(self._specialists[sid]) for sid in self._open.get(bucket, ())]
                heapq.heapify(heap)
            heapq.heappush(heap, rank)

    def _least_loaded(self, bucket: Bucket, avoid: frozenset[str]) -> Specialist | None:
        """The open specialist of `bucket` with the fewest chats, then longest idle, not in
        `avoid`: the same choice as ranking them all, in O(log n) instead of O(n).

        The heap is kept only while the bucket has many open specialists (a burst): with a
        few (the usual overload, everyone near capacity), filing every rank change cost more
        than scanning them (the matching benchmark's p99, docs/performance.md round 8)."""
        members = self._open.get(bucket)
        if not members:
            self._by_rank.pop(bucket, None)
            return None
        heap = self._by_rank.get(bucket)
        if len(members) <= _SCAN_UP_TO:
            if heap is not None:
                del self._by_rank[bucket]
            ranked = [self._load_rank(self._specialists[sid]) for sid in members if sid not in avoid]
            return self._specialists[min(ranked)[2]] if ranked else None
        if heap is None:
            heap = self._by_rank[bucket] = [self._load_rank(self._specialists[sid]) for sid in members]
            heapq.heapify(heap)
        skipped = []
        best = None
        while heap:
            top = heap[0]
            sid = top[2]
            if sid not in members:
                heapq.heappop(heap)
                continue
            s = self._specialists[sid]
            current = self._load_rank(s)
            if current != top:
                heapq.heapreplace(heap, current)
                continue
            if sid in avoid:
                skipped.append(heapq.heappop(heap))
                continue
            best = s
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return best

    # ---------------------------------------------------------- honest waits

    def _estimate(self, request_id: str, now: float) -> QueueEstimate:
        return QueueEstimate(request_id, *self._place(request_id, now))

    def _place(
        self,
        request_id: str,
        now: float,
        rates: dict[str | None, float] | None = None,
        position: int | None = None,
    ) -> tuple[int, int]:
        """Place among the requests competing for the same specialists (same language,
        plus those that take any language), and its wait at the pool's service rate.

        ``rates`` caches one rate per pool and ``position`` may be given when the
        caller already knows it. `_sweep` has its own copy of this, inline: change both."""
        r = self._requests[request_id]
        if position is None:
            key = self._keys[request_id]
            if r.language is None:
                position = bisect_left(self._queue, key) + 1
            else:
                same = self._queue_by_language.get(r.language, _NO_KEYS)
                anyone = self._queue_by_language.get(None, _NO_KEYS)
                position = bisect_left(same, key) + bisect_left(anyone, key) + 1
        if request_id in self._offer_for:
            return position, 0
        if rates is None:
            rate = self._rates.rate(r.language, now)
        elif (rate := rates.get(r.language, -1.0)) < 0:
            rate = rates[r.language] = self._rates.rate(r.language, now)
        wait = estimated_wait_s(position, rate, self._config.default_handle_s)
        if r.tags and request_id not in self._relaxed and self._open.get(("any", r.language, "")):
            # Someone who speaks the language has room but lacks the tags: once the
            # tags are relaxed this request is offered straight away.
            relax_in = r.created_at + self._config.relax_after_s - now
            wait = min(wait, max(0, math.ceil(relax_in)))
        return position, shown_wait_s(wait)

    def _report(
        self,
        request_id: str,
        now: float,
        out: _Out,
        rates: dict[str | None, float] | None = None,
        position: int | None = None,
    ) -> None:
        position, wait = self._place(request_id, now, rates, position)
        told = position * _WAITS + wait
        if self._reported.get(request_id) != told:
            self._reported[request_id] = told
            out.updates[request_id] = QueueEstimate(request_id, position, wait)

    def _sweep(self, now: float, out: _Out) -> None:
        """Re-estimate the next ``queue_refresh_batch`` requests, round robin.

        Positions shift for everyone behind each request that leaves; recomputing them
        all per event would be O(n). Instead each tick refreshes a slice, so with n
        waiting every member hears within ceil(n / batch) ticks, and when the line is
        shorter than the batch (the usual case) every tick refreshes everyone. Walking
        the queue in order, positions are counted, not searched: O(1) each.
        """
        queue = self._queue
        n = len(queue)
        if n == 0:
            self._sweep_after = None
            return
        start = 0 if self._sweep_after is None else bisect_right(queue, self._sweep_after)
        if start >= n:
            start = 0
        rates: dict[str | None, float] = {}  # one service rate per pool per sweep
        # Whether someone who speaks the language has room, per sweep (nothing changes it here).
        room: dict[str | None, bool] = {}
        ahead = self._ahead_by_language(queue[start])
        requests, offer_for, relaxed = self._requests, self._offer_for, self._relaxed
        reported = self._reported
        handle_s, relax_after_s = self._config.default_handle_s, self._config.relax_after_s
        i = start
        for _ in range(min(self._config.queue_refresh_batch, n)):
            if i == n:
                i = 0
                ahead = dict.fromkeys(ahead, 0)
            request_id = queue[i][2]
            r = requests[request_id]
            language = r.language
            anyone = ahead.get(None, 0)
            position = i + 1 if language is None else ahead.get(language, 0) + anyone + 1
            # `_report` and `_place`, inline (a tick is mostly this loop; the side-by-side
            # harness of docs/performance.md round 9 holds the two to the same answers).
            if request_id in offer_for:
                wait = 0
            else:
                if (rate := rates.get(language, -1.0)) < 0:
                    rate = rates[language] = self._rates.rate(language, now)
                wait = estimated_wait_s(position, rate, handle_s)
                if r.tags and request_id not in relaxed:
                    if (has_room := room.get(language)) is None:
                        has_room = room[language] = bool(self._open.get(("any", language, "")))
                    if has_room:
                        wait = min(wait, max(0, math.ceil(r.created_at + relax_after_s - now)))
                wait = shown_wait_s(wait)
            told = position * _WAITS + wait
            if reported.get(request_id) != told:
                reported[request_id] = told
                out.updates[request_id] = QueueEstimate(request_id, position, wait)
            ahead[language] = ahead.get(language, 0) + 1
            i += 1
        self._sweep_after = queue[i - 1]

    def _ahead_by_language(self, key: Key) -> dict[str | None, int]:
        return {language: bisect_left(keys, key) for language, keys in self._queue_by_language.items()}


class _Cursors:
    """The touched specialists' side of a settle, walked by request rather than by specialist.

    The least request some touched specialist may be offered is the least, over the buckets
    they search, of the first request there one of them may take. While settling, requests
    only leave the buckets and specialists only lose room (making offers is all that
    happens), so a request nobody touched may take now stays so until the end: each cursor
    only moves forward, and a whole settle is O(n log n) however many specialists it opened.
    """

    def __init__(self, engine: Engine, specs: Iterable[str]) -> None:
        self._engine = engine
        buckets = engine._buckets
        self._searchers: dict[Bucket, dict[str, None]] = {}
        for sid in specs:
            for bucket in engine._search[sid]:
                self._searchers.setdefault(bucket, {})[sid] = None
        self._cursors = [(keys[0], bucket) for bucket in self._searchers if (keys := buckets.get(bucket))]
        heapq.heapify(self._cursors)

    def first(self) -> Key | None:
        engine, cursors, searchers = self._engine, self._cursors, self._searchers
        while cursors:
            key, bucket = cursors[0]
            keys = engine._buckets.get(bucket, _NO_KEYS)
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key and engine._may_take(bucket, key, searchers[bucket]):
                return key
            if not searchers[bucket]:
                # Everyone touched who searches here is full now: nothing more to find in
                # it (walking on would be O(waiting) per event with a long line).
                heapq.heappop(cursors)
                continue
            if i < len(keys) and keys[i] == key:
                i += 1  # nobody touched may take it (and nobody will, this time)
            if i < len(keys):
                heapq.heapreplace(cursors, (keys[i], bucket))
            else:
                heapq.heappop(cursors)
        return None
