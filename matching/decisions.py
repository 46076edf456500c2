"""What the engine tells its driver to do: plain values, acted on by chat/."""

from __future__ import annotations

from dataclasses import dataclass

from matching.model import Offer


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    """A member's place in line (1-based) and estimated wait in whole seconds."""

    request_id: str
    position: int
    estimated_wait_s: int


@dataclass(frozen=True, slots=True)
class Decisions:
    """The outcome of one event. The driver must, in this order:

    - ``revoked``: mark each offer revoked (compare-and-set on ``pending``) and send its
      holder ``offer_revoked``;
    - ``expired``: mark each offer expired and tell its holder;
    - ``set_away``: store status ``away`` and tell the specialist (they let
      ``missed_offers_before_away`` offers in a row expire);
    - ``offers``: insert each offer (the database must refuse a second pending offer for
      a request and an offer beyond capacity) and send ``offer``; if the insert is
      refused, feed the engine the truth (``request_removed`` / ``specialist_changed``);
    - ``preference_fallbacks``: tell each member their preferred specialist did not
      become available and the next best will be offered;
    - ``queue_updates``: send ``queue_update`` to each member.

    Offers, expiries and revocations are also recorded in each request's ``avoid`` set by
    the engine (declined/expired only); persist them so that :meth:`Engine.load` can
    rebuild the same state.
    """

    offers: tuple[Offer, ...] = ()
    expired: tuple[Offer, ...] = ()
    revoked: tuple[Offer, ...] = ()
    queue_updates: tuple[QueueEstimate, ...] = ()
    set_away: tuple[str, ...] = ()
    preference_fallbacks: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.offers
            or self.expired
            or self.revoked
            or self.queue_updates
            or self.set_away
            or self.preference_fallbacks
        )


NO_DECISIONS = Decisions()
