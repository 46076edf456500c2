"""Error codes and close codes: one registry, so clients can decide what to do next.

Close codes tell a client whether reconnecting can help:
- 1009, 4001, 4002, 4003: reconnecting as-is repeats the failure; fix the cause first
  (shrink the frame, get a new token, send `hello` first, use an account that may do this).
  4001 also ends a socket whose token expired (at `exp`, unless `reauth` came first) or
  was revoked.
- 4008, 4029: reconnect after a back-off; resume from the last `seq`. After a 4029 that
  followed `error too_many_connections`, close another of the person's sockets first.
- 1012: the server is restarting; reconnect at once (with jitter) to any process.

The pages use the same codes from chat/static/codes.js, generated from this file: after a
change here, run `python -m protocol.jscodes > chat/static/codes.js` (a test checks it).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """`error.code`. None of these closes the connection."""

    BAD_FRAME = "bad_frame"  # not JSON, not an object, or a field of the wrong shape
    UNKNOWN_TYPE = "unknown_type"
    FORBIDDEN = "forbidden"  # authenticated, but not allowed to touch this
    NOT_FOUND = "not_found"
    INVALID_STATE = "invalid_state"  # e.g. sending into an ended conversation
    OFFER_EXPIRED = "offer_expired"
    ALREADY_CLAIMED = "already_claimed"
    TOO_LARGE = "too_large"  # a body over PEERCHAT_MAX_BODY_CHARS
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # retry later; nothing was stored
    INTERNAL = "internal"  # our fault; nothing was stored, the details are in our logs
    # Sent just before close 4029: the identity holds PEERCHAT_MAX_SOCKETS_PER_USER sockets.
    TOO_MANY_CONNECTIONS = "too_many_connections"
    CLOSED_HOURS = "closed_hours"  # outside PEERCHAT_HOURS; the error carries `opens_at`
    BLOCKED = "blocked"  # a block or report keeps this member and specialist apart (PRODUCT.md §9)
    SUSPENDED = "suspended"  # the member may not ask for a peer until `until` (PRODUCT.md §9)
    WRAP_UP = "wrap_up"  # a claim during the specialist's wrap-up (PRODUCT.md §8)

    @property
    def retryable(self) -> bool:
        return self in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)


class CloseCode(IntEnum):
    NORMAL = 1000
    FRAME_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVER_RESTARTING = 1012
    BAD_TOKEN = 4001
    NO_HELLO = 4002
    FORBIDDEN = 4003
    SLOW_CONSUMER = 4008
    FLOOD = 4029

    @property
    def reconnect(self) -> bool:
        """Whether reconnecting unchanged can succeed."""
        return self in (
            CloseCode.NORMAL,
            CloseCode.INTERNAL_ERROR,
            CloseCode.SERVER_RESTARTING,
            CloseCode.SLOW_CONSUMER,
            CloseCode.FLOOD,
        )
