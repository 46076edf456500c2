"""Configuration from the environment (PRODUCT.md §3). Read once, at start-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chat import redisconn
from chat.bus_partitions import DEFAULT_PARTITIONS, MAX_PARTITIONS
from matching.hours import HoursError, Schedule, parse_hours


class ConfigError(ValueError):
    """The environment describes a service that cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class Alternative:
    """Somewhere else a member can turn (`PEERCHAT_ALTERNATIVES`): a forum, a recovery group,
    a workshop, a warm line."""

    name: str
    url: str
    description: str = ""


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0 or not math.isfinite(value):  # `nan` compares false with everything
        raise ConfigError(f"{name} must be a positive, finite number of seconds")
    return value


def _window(env: Mapping[str, str], name: str, default: float, unit: str) -> float:
    """A retention-like window: a positive number, decimals allowed (`0.0001` is fine)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a positive number of {unit} (decimals allowed), not {raw!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"{name} must be a positive number of {unit} (decimals allowed, e.g. 0.5), not {raw!r}:"
            " zero or less would erase or refuse everything at once"
        )
    return value


def retention_days(env: Mapping[str, str] | None = None) -> float:
    """PEERCHAT_RETENTION_DAYS alone, for `peerchat migrate` (which needs no JWT key)."""
    return _window(os.environ if env is None else env, "PEERCHAT_RETENTION_DAYS", 90.0, "days")


def retention_batch_messages(env: Mapping[str, str] | None = None) -> int:
    return _count(os.environ if env is None else env, "PEERCHAT_RETENTION_BATCH_MESSAGES", 2000)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


_ALTERNATIVE_KEYS = frozenset({"name", "url", "description"})


def _alternatives(raw: str) -> tuple[Alternative, ...]:
    """Read `PEERCHAT_ALTERNATIVES`: refuse anything a member's page could not show safely."""
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        raise ConfigError("PEERCHAT_ALTERNATIVES must be a JSON list of {name, url, description}") from None
    if not isinstance(items, list):
        raise ConfigError("PEERCHAT_ALTERNATIVES must be a JSON list of {name, url, description}")
    found = []
    for i, item in enumerate(items):
        where = f"PEERCHAT_ALTERNATIVES[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be an object with name, url and description")
        unknown = sorted(set(item) - _ALTERNATIVE_KEYS)
        if unknown:
            raise ConfigError(f"{where} has unknown keys {unknown} (allowed: name, url, description)")
        name, url, description = item.get("name"), item.get("url"), item.get("description", "")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} needs a non-empty string name")
        if not isinstance(description, str):
            raise ConfigError(f"{where}.description must be a string")
        if not isinstance(url, str) or not _is_web_url(url):
            raise ConfigError(f"{where}.url must be an http:// or https:// address, not {url!r}")
        found.append(Alternative(name=name.strip(), url=url, description=description.strip()))
    return tuple(found)


def _is_web_url(url: str) -> bool:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _hours(env: Mapping[str, str]) -> Schedule | None:
    try:
        return parse_hours(env.get("PEERCHAT_HOURS", ""), env.get("PEERCHAT_CLOSED_DATES", ""))
    except HoursError as wrong:
        raise ConfigError(str(wrong)) from None


DEV_ON = frozenset({"1", "true"})


def _dev(env: Mapping[str, str]) -> bool:
    """PRODUCT.md §3: only `1` or `true` (any case) turn dev mode on; unset or empty leaves it
    off; anything else stops the process. `off`, `no`, `0` and `false` are errors too, not
    "off": a value that looks like a switch but is not one must never be guessed at, in
    either direction (an earlier parser took `off` for on and served /dev/token)."""
    raw = env.get("PEERCHAT_DEV", "")
    if raw == "":
        return False
    if raw.lower() in DEV_ON:
        return True
    raise ConfigError(
        f"PEERCHAT_DEV must be unset (dev mode off) or 1/true (dev mode on), not {raw!r}; "
        "there is no other spelling"
    )


def _redis_key(env: Mapping[str, str], public_key: str | None) -> bytes:
    raw = env.get("PEERCHAT_REDIS_KEY", "")
    if raw and len(raw.encode()) < 32:
        raise ConfigError("PEERCHAT_REDIS_KEY must be at least 32 bytes")
    if not raw and public_key:
        # Derived from a public key, the HMAC key would be public too: anyone reading Redis
        # could test guessed account ids against the tags (PRODUCT.md §2).
        raise ConfigError(
            "set PEERCHAT_REDIS_KEY (32 bytes or more) when tokens use PEERCHAT_JWT_PUBLIC_KEY: "
            "a key derived from a public key would not be secret"
        )
    return raw.encode()


def _partitions(env: Mapping[str, str]) -> int:
    raw = env.get("PEERCHAT_BUS_PARTITIONS", str(DEFAULT_PARTITIONS)).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTITIONS:
        raise ConfigError(f"PEERCHAT_BUS_PARTITIONS must be a whole number from 1 to {MAX_PARTITIONS}")
    return int(raw)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "")
    redis_url = env.get("REDIS_URL", "")
    if not database_url or not redis_url:
        raise ConfigError("DATABASE_URL and REDIS_URL must be set (`peerchat dev` starts both for you)")
    try:
        redisconn.parse(redis_url)
    except redisconn.RedisUrlError as exc:
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
        bus_partitions=_partitions(env),
        jwt_secret=secret,
        jwt_public_key=public_key,
        jwt_issuer=env.get("PEERCHAT_JWT_ISSUER", "peerchat"),
        jwt_audience=env.get("PEERCHAT_JWT_AUDIENCE", "peerchat"),
        allowed_origins=origins,
        offer_timeout_s=_float(env, "PEERCHAT_OFFER_TIMEOUT_S", 30.0),
        relax_after_s=_float(env, "PEERCHAT_RELAX_AFTER_S", 60.0),
        prefer_window_s=_float(env, "PEERCHAT_PREFER_WINDOW_S", 20.0),
        queue_update_s=_float(env, "PEERCHAT_QUEUE_UPDATE_S", 2.0),
        reconnect_grace_s=_float(env, "PEERCHAT_RECONNECT_GRACE_S", 120.0),
        presence_ttl_s=_float(env, "PEERCHAT_PRESENCE_TTL_S", 30.0),
        max_body_chars=int(max_body),
        # Not in PRODUCT.md §3: the protocol fixes 10 s; tests shorten it to prove the 4002 close.
        hello_timeout_s=_float(env, "PEERCHAT_HELLO_TIMEOUT_S", 10.0),
        dev=_dev(env),
        crisis_resources=env.get("PEERCHAT_CRISIS_RESOURCES", ""),
        outbound_queue_frames=_count(env, "PEERCHAT_OUTBOUND_QUEUE_FRAMES", 256),
        rate_limit_per_10s=_count(env, "PEERCHAT_RATE_LIMIT_PER_10S", 50),
        hours=_hours(env),
        alternatives=_alternatives(env.get("PEERCHAT_ALTERNATIVES", "")),
        member_grace_s=_float(env, "PEERCHAT_MEMBER_GRACE_S", 300.0),
        max_urgent_per_specialist=_count(env, "PEERCHAT_MAX_URGENT_PER_SPECIALIST", 1),
        block_days=_window(env, "PEERCHAT_BLOCK_DAYS", 30.0, "days"),
        wrap_up_s=_float(env, "PEERCHAT_WRAP_UP_S", 120.0),
        wrap_up_urgent_s=_float(env, "PEERCHAT_WRAP_UP_URGENT_S", 600.0),
        max_token_ttl_s=_float(env, "PEERCHAT_MAX_TOKEN_TTL_S", 86400.0),
        max_sockets_per_user=_count(env, "PEERCHAT_MAX_SOCKETS_PER_USER", 8),
        redis_key=_redis_key(env, public_key),
        retention_days=retention_days(env),
        specialist_access_h=_window(env, "PEERCHAT_SPECIALIST_ACCESS_H", 24.0, "hours"),
        retention_sweep_s=_float(env, "PEERCHAT_RETENTION_SWEEP_S", 600.0),
        retention_batch_messages=retention_batch_messages(env),
    )
