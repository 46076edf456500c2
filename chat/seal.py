"""Bus payloads sealed with the server's key, so Redis carries nothing readable (PRODUCT.md §2).

Every frame a process rings to another (a message with its body, an offer with its note,
a `conversation_started` with the member's alias) goes through Redis pub/sub. Sealed
here with AES-256-GCM, a reader of Redis, of its replication stream or of a MONITOR
sees only ids, `seq` and ciphertext; and without the key nobody can forge or alter a
ring: the channel and the clear header are authenticated with it.

Nonces. GCM must never see one nonce twice under one key, and random 96-bit nonces are
only safe for about 2**32 seals per key, which a busy cluster reaches in weeks. So each
process draws a random 128-bit salt at start and seals under its own subkey
HMAC(key, salt), with a counter as the nonce: unique by construction within a process,
and two processes share a subkey only if they drew the same salt (2**-128). Receivers
derive (and cache) the subkey of each sender from the salt carried in the payload.

Layout: version (1) | key id (4) | salt (16) | counter (12) | ciphertext and tag (16).
Rotation: docs/operations.md ("Rotating PEERCHAT_REDIS_KEY").
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_SALT = 16
_NONCE = 12
_HEAD = 1 + 4 + _SALT + _NONCE
_MAX_SENDERS = 1024  # cached subkeys; a cluster has a few dozen processes


def seal_key(identity_hmac_key: bytes) -> bytes:
    """The sealing key, derived from the server's Redis key (chat/config.py) so one
    secret names people and seals payloads, without using one key for two jobs."""
    return hmac.new(identity_hmac_key, b"peerchat bus seal v1", hashlib.sha256).digest()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"peerchat seal key id" + key).digest()[:4]


class Sealer:
    """One per process. `seal` and `open` are synchronous and cost a few microseconds for
    a frame-sized payload (docs/performance.md, "Sealed rings")."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._key_id = _key_id(key)
        self._salt = os.urandom(_SALT)
        self._mine = AESGCM(self._subkey(self._salt))
        self._counter = itertools.count(1)
        self._senders: dict[bytes, AESGCM] = {self._salt: self._mine}

    def _subkey(self, salt: bytes) -> bytes:
        return hmac.new(self._key, salt, hashlib.sha256).digest()

    def seal(self, data: bytes, context: bytes) -> bytes:
        """Encrypt `data`; `context` (the channel and clear header) is authenticated, not
        encrypted, and `open` must be given the same."""
        nonce = next(self._counter).to_bytes(_NONCE, "big")
        head = _VERSION + self._key_id + self._salt + nonce
        return head + self._mine.encrypt(nonce, data, context)

    def open(self, sealed: bytes, context: bytes) -> bytes | None:
        """The plaintext, or None for anything not sealed by a process holding this key
        (another key, a forgery, a truncated or altered payload, another context)."""
        if len(sealed) < _HEAD + 16 or sealed[:1] != _VERSION or sealed[1:5] != self._key_id:
            return None
        salt, nonce = sealed[5 : 5 + _SALT], sealed[5 + _SALT : _HEAD]
        aead = self._senders.get(salt)
        if aead is None:
            if len(self._senders) >= _MAX_SENDERS:
                self._senders = {self._salt: self._mine}
            aead = self._senders[salt] = AESGCM(self._subkey(salt))
        try:
            return aead.decrypt(nonce, sealed[_HEAD:], context)
        except InvalidTag:
            return None
