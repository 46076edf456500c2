"""Configuration from the environment (PRODUCT.md §3). Read once, at start-up."""

from __future__ import annotations

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
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
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
        retention_days=retention_days(env),
        specialist_access_h=_window(env, "PEERCHAT_SPECIALIST_ACCESS_H", 24.0, "hours"),
        retention_sweep_s=_float(env, "PEERCHAT_RETENTION_SWEEP_S", 600.0),
        retention_batch_messages=retention_batch_messages(env),
    )
