"""Per-supervisor rate limits on every supervisor HTTP route (PRODUCT.md §6; issue 14).

A stolen or misused supervisor token could read transcript after transcript: each read is
audited, but nothing stopped thirty in a row. Every `/api/` request that carries a valid
supervisor token is counted against that supervisor, in Redis so the limit holds across
all `web` processes: transcript reads at most TRANSCRIPTS_PER_MINUTE, everything else at
most OTHER_PER_MINUTE. Over the limit: 429 with `Retry-After` (whole seconds until the
oldest counted request leaves the window), and the route does not run.

The window slides: a sorted set per supervisor and bucket holds the times of the requests
it let through in the last minute, trimmed and counted atomically in one Lua script on
Redis's own clock (every process agrees on "now"). The key names the supervisor by the
keyed HMAC of their identity (chat/redis_keys.py), never by account id. Refused requests
are not counted, so a client that keeps hammering is let in again as the window slides.

If Redis does not answer, transcript reads are refused (503): an unbounded read is what
the limit is for. Other supervisor routes go on, unlimited, until Redis is back.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from chat.config import Settings
from chat.redis_keys import identity_key
from chat.redisconn import RedisClient
from chat.tokens import TokenRejected, verify

log = logging.getLogger("peerchat.ratelimit")

TRANSCRIPTS_PER_MINUTE = 30
OTHER_PER_MINUTE = 300
WINDOW_MS = 60_000
_TRANSCRIPT_PATH = re.compile(r"^/api/conversations/[^/]+/messages/?$")

# Returns 0 when the request is let in (and counted), else the milliseconds until it would be.
_SLIDING_WINDOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    per_minute: int


TRANSCRIPTS = Bucket("transcript", TRANSCRIPTS_PER_MINUTE)
OTHER = Bucket("supervisor", OTHER_PER_MINUTE)


def bucket_for(path: str) -> Bucket:
    return TRANSCRIPTS if _TRANSCRIPT_PATH.match(path) else OTHER


def redis_key(settings: Settings, sub: str, bucket: Bucket) -> str:
    return f"peerchat:ratelimit:{bucket.name}:{identity_key(settings, 'supervisor', sub)}"


class Limiter:
    def __init__(self, client: RedisClient, settings: Settings) -> None:
        self.settings = settings
        self._script = client.register_script(_SLIDING_WINDOW)

    async def wait_ms(self, sub: str, bucket: Bucket) -> int:
        """0: let in (and counted). Else how long until a request would be let in."""
        result = await self._script(
            keys=[redis_key(self.settings, sub, bucket)],
            args=[WINDOW_MS, bucket.per_minute, secrets.token_hex(6)],
        )
        return int(result)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class SupervisorRateLimit:
    """ASGI middleware. Requests without a valid supervisor token pass untouched (the route
    answers 401/403 as before, or serves the member or specialist)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        services = getattr(scope["app"].state, "services", None)
        if token is None or services is None:
            await self.app(scope, receive, send)
            return
        try:
            identity = verify(token, services.settings)
        except TokenRejected:
            await self.app(scope, receive, send)
            return
        if identity.role != "supervisor":
            await self.app(scope, receive, send)
            return
        bucket = bucket_for(scope["path"])
        limiter: Limiter | None = getattr(scope["app"].state, "limiter", None)
        if limiter is None:
            limiter = scope["app"].state.limiter = Limiter(services.redis, services.settings)
        try:
            wait_ms = await limiter.wait_ms(identity.user_id, bucket)
        except Exception as exc:
            log.warning("rate limiter unavailable (%s)", type(exc).__name__)
            if bucket is TRANSCRIPTS:
                response = JSONResponse({"error": "try again shortly"}, status_code=503)
                await response(scope, receive, send)
                return
            wait_ms = 0
        if wait_ms:
            retry_after = max(1, math.ceil(wait_ms / 1000))
            response = JSONResponse(
                {
                    "error": f"too many requests: at most {bucket.per_minute} a minute",
                    "retry_after_s": retry_after,
                },
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
