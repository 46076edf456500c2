"""Names of Redis keys that concern a person, without the person in them (PRODUCT.md §2).

Someone who can read Redis must not learn who is connected or who did what: a key never
carries an account id in clear, only a keyed HMAC of the identity (role, sub) under the
server key `Settings.redis_key` (PEERCHAT_REDIS_HMAC_KEY, or derived from the HS256
secret). The tag is stable across processes that share the key, so every `web` process
counts and finds the same keys; without the key it cannot be reversed or guessed from a
list of likely ids. Every module that puts a person in a Redis key goes through here.
"""

from __future__ import annotations

import hashlib
import hmac

# 128 bits: collisions between people are out of reach, and keys stay short.
TAG_HEX_CHARS = 32


def identity_tag(key: bytes, role: str, sub: str) -> str:
    """The keyed HMAC of the identity (role, sub), as hex. Role is part of it: a member
    and a specialist with the same `sub` are two people (PRODUCT.md §4)."""
    if not key:
        raise ValueError("identity_tag needs the server key (Settings.redis_key)")
    mac = hmac.new(key, role.encode() + b"\x00" + sub.encode(), hashlib.sha256)
    return mac.hexdigest()[:TAG_HEX_CHARS]


def rate_limit_key(key: bytes, role: str, sub: str, bucket: str) -> str:
    """The record of one person's recent requests to one rate-limit bucket."""
    return f"peerchat:rl:{bucket}:{identity_tag(key, role, sub)}"
