"""Each kind of value the environment can hold (PRODUCT.md §3), read and checked: a number
of seconds, a window in days or hours, a count, dev mode's switch, opening hours, the
places to turn (`PEERCHAT_ALTERNATIVES`), the Redis identity key, the bus's partitions.
Anything that cannot be right stops the process with a `ConfigError` that says why.
chat/config.py names which variable feeds which setting."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
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


def window(env: Mapping[str, str], name: str, default: float, unit: str) -> float:
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


def count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


_ALTERNATIVE_KEYS = frozenset({"name", "url", "description"})


def alternatives(raw: str) -> tuple[Alternative, ...]:
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


def hours(env: Mapping[str, str]) -> Schedule | None:
    try:
        return parse_hours(env.get("PEERCHAT_HOURS", ""), env.get("PEERCHAT_CLOSED_DATES", ""))
    except HoursError as wrong:
        raise ConfigError(str(wrong)) from None


DEV_ON = frozenset({"1", "true"})


def dev_mode(env: Mapping[str, str]) -> bool:
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


def redis_key(env: Mapping[str, str], public_key: str | None) -> bytes:
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


def bus_partitions(env: Mapping[str, str]) -> int:
    raw = env.get("PEERCHAT_BUS_PARTITIONS", str(DEFAULT_PARTITIONS)).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTITIONS:
        raise ConfigError(f"PEERCHAT_BUS_PARTITIONS must be a whole number from 1 to {MAX_PARTITIONS}")
    return int(raw)
