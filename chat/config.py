"""Configuration from the environment (PRODUCT.md §3). Read once, at start-up: `from_env`
says which variable feeds which setting; chat/config_values.py reads and checks each kind
of value."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from chat import config_values as values
from chat import redis_url as redis_urls
from chat.config_values import Alternative as Alternative
from chat.config_values import ConfigError as ConfigError
from matching.hours import Schedule


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    redis_url: str
    # `PEERCHAT_BUS_PARTITIONS`: sharded channels the bus uses on a Redis Cluster
    # (chat/bus_partitions.py); ignored on one Redis or a Sentinel set.
    bus_partitions: int = 32
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str = "peerchat"
    jwt_audience: str = "peerchat"
    allowed_origins: frozenset[str] = frozenset()
    offer_timeout_s: float = 30.0
    relax_after_s: float = 60.0
    # How long a request naming `prefer_specialist` waits for that specialist alone.
    prefer_window_s: float = 20.0
    # A waiting member hears a changed place or wait at most this often (PEERCHAT_QUEUE_UPDATE_S).
    queue_update_s: float = 2.0
    reconnect_grace_s: float = 120.0
    presence_ttl_s: float = 30.0
    max_body_chars: int = 4000
    dev: bool = False
    hello_timeout_s: float = 10.0
    max_frame_bytes: int = 64 * 1024
    # A socket whose client stops reading is closed (4008) once this many frames wait.
    outbound_queue_frames: int = 256
    # Sends per rolling 10 s before `rate_limited`; twice that closes with 4029.
    rate_limit_per_10s: int = 50
    crisis_resources: str = field(default="")
    # None: always open (PEERCHAT_HOURS unset).
    hours: Schedule | None = None
    alternatives: tuple[Alternative, ...] = ()
    # How long a member with no live connection anywhere keeps their place (PRODUCT.md §5).
    member_grace_s: float = 300.0
    # Urgent or high-risk conversations a specialist may hold before no more urgent requests
    # are offered to them (PRODUCT.md §8; a hand claim is still allowed).
    max_urgent_per_specialist: int = 1
    # How long a specialist's `block` of a member lasts (PRODUCT.md §9), in days.
    block_days: float = 30.0
    # Wrap-up after a conversation ends for a specialist (PRODUCT.md §8).
    wrap_up_s: float = 120.0
    wrap_up_urgent_s: float = 600.0
    # A token whose `exp - iat` exceeds this is refused (PRODUCT.md §4).
    max_token_ttl_s: float = 86400.0
    # Live sockets per identity (role, sub), counted across every process.
    max_sockets_per_user: int = 8
    # `PEERCHAT_REDIS_KEY`: the key of the HMACs that name identities in Redis
    # (chat/redis_keys.py). Empty: derived from the JWT key (see identity_hmac_key).
    redis_key: bytes = b""
    # `PEERCHAT_DATABASE_DIRECT_URL`: PostgreSQL itself, when DATABASE_URL goes through a
    # transaction pooler (PgBouncer). Session-level work (the matching leader's lock, the
    # retention sweep's lock, migrations) uses it; empty: DATABASE_URL is direct.
    database_direct_url: str = ""

    @property
    def session_database_url(self) -> str:
        """Where session-level state (advisory locks held across transactions) is safe."""
        return self.database_direct_url or self.database_url

    @property
    def behind_pooler(self) -> bool:
        """DATABASE_URL reaches PostgreSQL through a transaction pooler: consecutive
        transactions of one pooled connection may run on different server sessions."""
        return bool(self.database_direct_url) and self.database_direct_url != self.database_url

    @property
    def identity_hmac_key(self) -> bytes:
        """`PEERCHAT_REDIS_KEY`, or else one derived from the HS256 secret (as secret as the
        secret). With a public key the variable is required (`from_env` refuses to start
        without it), since a key derived from a public value would not be secret."""
        if self.redis_key:
            return self.redis_key
        seed = (self.jwt_secret or self.jwt_public_key or "").encode()
        return hmac.new(seed, b"peerchat redis identity key v1", hashlib.sha256).digest()

    # PRODUCT.md §10. Both are windows measured from stored times at every check.
    retention_days: float = 90.0
    specialist_access_h: float = 24.0
    # How often each process tries to run the retention sweep (one at a time, by lock),
    # and how many messages one sweep transaction may remove (docs/privacy.md).
    retention_sweep_s: float = 600.0
    retention_batch_messages: int = 2000

    @property
    def jwt_algorithms(self) -> list[str]:
        # Fixed by configuration, never read from the token header (PRODUCT.md §4).
        return ["RS256", "ES256"] if self.jwt_public_key else ["HS256"]


def retention_days(env: Mapping[str, str] | None = None) -> float:
    """PEERCHAT_RETENTION_DAYS alone, for `peerchat migrate` (which needs no JWT key)."""
    return values.window(os.environ if env is None else env, "PEERCHAT_RETENTION_DAYS", 90.0, "days")


def retention_batch_messages(env: Mapping[str, str] | None = None) -> int:
    return values.count(os.environ if env is None else env, "PEERCHAT_RETENTION_BATCH_MESSAGES", 2000)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "")
    redis_url = env.get("REDIS_URL", "")
    if not database_url or not redis_url:
        raise ConfigError("DATABASE_URL and REDIS_URL must be set (`peerchat dev` starts both for you)")
    try:
        redis_urls.parse(redis_url)
    except redis_urls.RedisUrlError as exc:
        raise ConfigError(str(exc)) from None
    secret = env.get("PEERCHAT_JWT_SECRET") or None
    public_key = env.get("PEERCHAT_JWT_PUBLIC_KEY") or None
    if not secret and not public_key:
        raise ConfigError("set PEERCHAT_JWT_SECRET (HS256) or PEERCHAT_JWT_PUBLIC_KEY (RS256/ES256)")
    if secret and public_key:
        raise ConfigError("set only one of PEERCHAT_JWT_SECRET and PEERCHAT_JWT_PUBLIC_KEY")
    if secret and len(secret.encode()) < 32:
        raise ConfigError("PEERCHAT_JWT_SECRET must be at least 32 bytes for HS256")
    origins = frozenset(
        o.strip().rstrip("/") for o in env.get("PEERCHAT_ALLOWED_ORIGINS", "").split(",") if o.strip()
    )
    max_body = env.get("PEERCHAT_MAX_BODY_CHARS", "4000")
    if not max_body.isdigit() or int(max_body) < 1:
        raise ConfigError("PEERCHAT_MAX_BODY_CHARS must be a positive whole number")
    return Settings(
        database_url=database_url,
        database_direct_url=env.get("PEERCHAT_DATABASE_DIRECT_URL", ""),
        redis_url=redis_url,
        bus_partitions=values.bus_partitions(env),
        jwt_secret=secret,
        jwt_public_key=public_key,
        jwt_issuer=env.get("PEERCHAT_JWT_ISSUER", "peerchat"),
        jwt_audience=env.get("PEERCHAT_JWT_AUDIENCE", "peerchat"),
        allowed_origins=origins,
        offer_timeout_s=values.seconds(env, "PEERCHAT_OFFER_TIMEOUT_S", 30.0),
        relax_after_s=values.seconds(env, "PEERCHAT_RELAX_AFTER_S", 60.0),
        prefer_window_s=values.seconds(env, "PEERCHAT_PREFER_WINDOW_S", 20.0),
        queue_update_s=values.seconds(env, "PEERCHAT_QUEUE_UPDATE_S", 2.0),
        reconnect_grace_s=values.seconds(env, "PEERCHAT_RECONNECT_GRACE_S", 120.0),
        presence_ttl_s=values.seconds(env, "PEERCHAT_PRESENCE_TTL_S", 30.0),
        max_body_chars=int(max_body),
        # Not in PRODUCT.md §3: the protocol fixes 10 s; tests shorten it to prove the 4002 close.
        hello_timeout_s=values.seconds(env, "PEERCHAT_HELLO_TIMEOUT_S", 10.0),
        dev=values.dev_mode(env),
        crisis_resources=env.get("PEERCHAT_CRISIS_RESOURCES", ""),
        outbound_queue_frames=values.count(env, "PEERCHAT_OUTBOUND_QUEUE_FRAMES", 256),
        rate_limit_per_10s=values.count(env, "PEERCHAT_RATE_LIMIT_PER_10S", 50),
        hours=values.hours(env),
        alternatives=values.alternatives(env.get("PEERCHAT_ALTERNATIVES", "")),
        member_grace_s=values.seconds(env, "PEERCHAT_MEMBER_GRACE_S", 300.0),
        max_urgent_per_specialist=values.count(env, "PEERCHAT_MAX_URGENT_PER_SPECIALIST", 1),
        block_days=values.window(env, "PEERCHAT_BLOCK_DAYS", 30.0, "days"),
        wrap_up_s=values.seconds(env, "PEERCHAT_WRAP_UP_S", 120.0),
        wrap_up_urgent_s=values.seconds(env, "PEERCHAT_WRAP_UP_URGENT_S", 600.0),
        max_token_ttl_s=values.seconds(env, "PEERCHAT_MAX_TOKEN_TTL_S", 86400.0),
        max_sockets_per_user=values.count(env, "PEERCHAT_MAX_SOCKETS_PER_USER", 8),
        redis_key=values.redis_key(env, public_key),
        retention_days=retention_days(env),
        specialist_access_h=values.window(env, "PEERCHAT_SPECIALIST_ACCESS_H", 24.0, "hours"),
        retention_sweep_s=values.seconds(env, "PEERCHAT_RETENTION_SWEEP_S", 600.0),
        retention_batch_messages=retention_batch_messages(env),
    )
