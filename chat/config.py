"""Configuration from the environment (PRODUCT.md §3). Read once, at start-up."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """The environment describes a service that cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    redis_url: str
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str = "peerchat"
    jwt_audience: str = "peerchat"
    allowed_origins: frozenset[str] = frozenset()
    offer_timeout_s: float = 30.0
    relax_after_s: float = 60.0
    # How long a request naming `prefer_specialist` waits for that specialist alone.
    prefer_window_s: float = 20.0
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
    # A token whose `exp - iat` exceeds this is refused (PRODUCT.md §4).
    max_token_ttl_s: float = 86400.0
    # Live sockets per identity (role, sub), counted across every process.
    max_sockets_per_user: int = 8
    # `PEERCHAT_REDIS_KEY`: the key of the HMACs that name identities in Redis
    # (chat/redis_keys.py). Empty: derived from the JWT key (see identity_hmac_key).
    redis_key: bytes = b""

    @property
    def identity_hmac_key(self) -> bytes:
        """`PEERCHAT_REDIS_KEY`, or else one derived from the JWT key. Derived from an HS256
        secret it is as secret as the secret; from a public key it is not secret at all,
        which docs/operations.md warns about (with an identity provider, set the variable)."""
        if self.redis_key:
            return self.redis_key
        seed = (self.jwt_secret or self.jwt_public_key or "").encode()
        return hmac.new(seed, b"peerchat redis identity key v1", hashlib.sha256).digest()

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


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def _redis_key(env: Mapping[str, str]) -> bytes:
    raw = env.get("PEERCHAT_REDIS_KEY", "")
    if raw and len(raw.encode()) < 32:
        raise ConfigError("PEERCHAT_REDIS_KEY must be at least 32 bytes")
    return raw.encode()


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "")
    redis_url = env.get("REDIS_URL", "")
    if not database_url or not redis_url:
        raise ConfigError("DATABASE_URL and REDIS_URL must be set (`peerchat dev` starts both for you)")
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
        redis_url=redis_url,
        jwt_secret=secret,
        jwt_public_key=public_key,
        jwt_issuer=env.get("PEERCHAT_JWT_ISSUER", "peerchat"),
        jwt_audience=env.get("PEERCHAT_JWT_AUDIENCE", "peerchat"),
        allowed_origins=origins,
        offer_timeout_s=_float(env, "PEERCHAT_OFFER_TIMEOUT_S", 30.0),
        relax_after_s=_float(env, "PEERCHAT_RELAX_AFTER_S", 60.0),
        prefer_window_s=_float(env, "PEERCHAT_PREFER_WINDOW_S", 20.0),
        reconnect_grace_s=_float(env, "PEERCHAT_RECONNECT_GRACE_S", 120.0),
        presence_ttl_s=_float(env, "PEERCHAT_PRESENCE_TTL_S", 30.0),
        max_body_chars=int(max_body),
        # Not in PRODUCT.md §3: the protocol fixes 10 s; tests shorten it to prove the 4002 close.
        hello_timeout_s=_float(env, "PEERCHAT_HELLO_TIMEOUT_S", 10.0),
        dev=env.get("PEERCHAT_DEV", "") not in ("", "0", "false"),
        crisis_resources=env.get("PEERCHAT_CRISIS_RESOURCES", ""),
        outbound_queue_frames=_count(env, "PEERCHAT_OUTBOUND_QUEUE_FRAMES", 256),
        rate_limit_per_10s=_count(env, "PEERCHAT_RATE_LIMIT_PER_10S", 50),
        max_token_ttl_s=_float(env, "PEERCHAT_MAX_TOKEN_TTL_S", 86400.0),
        max_sockets_per_user=_count(env, "PEERCHAT_MAX_SOCKETS_PER_USER", 8),
        redis_key=_redis_key(env),
    )
