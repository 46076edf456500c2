"""People's bus channels, and the sealed rings the hub sends on them (chat/delivery/hub.py).

Nothing on the bus is readable (PRODUCT.md §2): a person's channel is named by a keyed
HMAC of (role, sub) (chat/redis_keys.py), never by the account id, and the frame is sealed
with the server's key (chat/seal.py), with the channel and the clear header (process id,
conversation id, seq: ids and numbers only) authenticated alongside it. A ring that does
not open here is dropped and counted; what it carried is read from PostgreSQL by the
repair that follows (docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chat.metrics import METRICS
from chat.people import Person
from chat.seal import Sealer

log = logging.getLogger("peerchat.hub")

USER_PREFIX = "pc:user:"
_NAMES_KEPT = 100_000  # cached channel names (an HMAC each); cleared when full

# (role, sub) → an opaque, keyed name (chat/redis_keys.identity_key with the settings bound).
Namer = Callable[[str, str], str]


class Channels:
    def __init__(self, name: Namer, sealer: Sealer) -> None:
        self._name = name
        self._sealer = sealer
        self._names: dict[Person, str] = {}
        self.unopened = 0  # rings this process could not open (another key, forged)

    def of(self, person: Person) -> str:
        """The person's bus channel: an opaque name, the same on every process."""
        name = self._names.get(person)
        if name is None:
            if len(self._names) >= _NAMES_KEPT:
                self._names.clear()
            name = self._names[person] = USER_PREFIX + self._name(person.role, person.id)
        return name

    def forget_keyed(self, keyed: str) -> None:
        """Drop the cached name of whoever `keyed` (chat/redis_keys.identity_key) names: an
        erasure (chat/privacy/forgetting.py); the cache holds their account id."""
        name = USER_PREFIX + keyed
        for person in [p for p, n in self._names.items() if n == name]:
            del self._names[person]

    def ring(self, channel: str, header: bytes, data: bytes) -> bytes:
        """The clear header and `data` sealed, the channel and header authenticated."""
        return header + self._sealer.seal(data, channel.encode() + header)

    def open(self, channel: str, header: bytes, sealed: bytes) -> bytes | None:
        """A ring's frame, or None for one this process cannot open (sealed under another
        key during a rotation, or forged by someone who can write to Redis)."""
        opened = self._sealer.open(sealed, channel.encode() + header)
        if opened is None:
            self.unopened += 1
            METRICS.rings_unopened.inc()
            if self.unopened in (1, 10, 100) or self.unopened % 1000 == 0:
                log.warning("dropped %d bus rings that did not open with this key", self.unopened)
        return opened
