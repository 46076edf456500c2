"""After an erasure nothing keeps the person (PRODUCT.md §10), in memory either: every
process drops what it cached under their account id. The socket cap's and the hub's keyed
names ((role, sub) → an HMAC, kept for up to 100k identities each), a revocation remembered
under their sub, and the pairs of their conversations (`services.participants`).

The ring carries their keyed name (chat/redis_keys.identity_key), never the account id
(PRODUCT.md §2: Redis holds no account id in clear); each process drops the entries that
name that HMAC. The pairs go by conversation id on the participants channel
(chat/handoff.py), as a hand-over's do. An erasure forgets once its sockets are closed and
again seconds later (chat/privacy/erasure.py): a socket still closing on another process
names its person once more on its way out. A ring lost with Redis is made good by that
repeat, or, for the pairs, by the bus reconnect, which clears them all."""

from __future__ import annotations

from collections.abc import Iterable

from chat.handoff import forget_pair
from chat.redis_keys import identity_key
from chat.services import Services

CHANNEL = "pc:erased"
ROLE = "member"  # only members are erased (DELETE /api/me)


def on_bus(services: Services, data: bytes) -> None:
    """A CHANNEL ring: some process erased the member `data` (their keyed name) names."""
    forget_here(services, data.decode(errors="replace"))


def forget_here(services: Services, keyed: str) -> None:
    services.hub.forget_keyed(keyed)
    services.admission.forget_keyed(ROLE, keyed)


async def forget_everywhere(services: Services, member_id: str, conversation_ids: Iterable[str]) -> None:
    """Drop what every process caches of the erased member: here at once, elsewhere when
    their rings arrive."""
    keyed = identity_key(services.settings, ROLE, member_id)
    forget_here(services, keyed)
    await services.bus.publish(CHANNEL, keyed.encode())
    for conversation_id in conversation_ids:
        await forget_pair(services, conversation_id)
