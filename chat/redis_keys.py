"""Names for identities in Redis that tell a Redis reader nothing (PRODUCT.md §2).

A key, value or published payload that must point at a person uses `identity_key(role,
sub)`: an HMAC-SHA256 under the server's `PEERCHAT_REDIS_KEY`, so equal identities meet
at the same key on every process while someone who can read Redis (or its backups) can
neither read an account id nor test a guessed one without the key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable

from chat.config import Settings


def identity_key(settings: Settings, role: str, sub: str) -> str:
    """A stable, opaque name for (role, sub); 32 hex characters. The role is part of it:
    a member and a specialist with the same `sub` are two people (PRODUCT.md §4)."""
    return _keyed(settings.identity_hmac_key, role, sub)


def namer(settings: Settings) -> Callable[[str, str], str]:
    """`identity_key` with the settings bound and their key read once: without
    `PEERCHAT_REDIS_KEY` the key is itself an HMAC of the JWT secret, and deriving it again
    for every name doubled the cost of a sweep naming thousands of members
    (chat/upkeep/member_grace.py)."""
    key = settings.identity_hmac_key
    return functools.partial(_keyed, key)


def _keyed(key: bytes, role: str, sub: str) -> str:
    # Length-prefixed, so no two pairs spell the same message.
    message = f"{len(role)}:{role}:{sub}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
