"""chat/config.py: the environment describes a service, or a readable `ConfigError` says why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chat.config import Alternative, ConfigError, Settings, from_env

SECRET = "c" * 32
BASE = {"DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:6379/0", "PEERCHAT_JWT_SECRET": SECRET}


def test_defaults() -> None:
    s = from_env(BASE)
    assert s == Settings(database_url="postgresql://db/x", redis_url="redis://r:6379/0", jwt_secret=SECRET)
    assert (s.offer_timeout_s, s.relax_after_s, s.reconnect_grace_s, s.presence_ttl_s) == (30, 60, 120, 30)
    assert s.max_body_chars == 4000 and s.hello_timeout_s == 10 and s.max_frame_bytes == 64 * 1024
    assert (s.jwt_issuer, s.jwt_audience) == ("peerchat", "peerchat")
    assert s.allowed_origins == frozenset() and not s.dev
    assert s.jwt_algorithms == ["HS256"]


def test_everything_set() -> None:
    s = from_env(
        {
            **BASE,
            "PEERCHAT_JWT_ISSUER": "idp",
            "PEERCHAT_JWT_AUDIENCE": "chat",
            "PEERCHAT_ALLOWED_ORIGINS": " https://a.example/ ,https://b.example,, ",
            "PEERCHAT_OFFER_TIMEOUT_S": "5",
            "PEERCHAT_RELAX_AFTER_S": "0.5",
            "PEERCHAT_RECONNECT_GRACE_S": "7",
            "PEERCHAT_PRESENCE_TTL_S": "3",
            "PEERCHAT_MAX_BODY_CHARS": "100",
            "PEERCHAT_HELLO_TIMEOUT_S": "1.5",
            "PEERCHAT_DEV": "1",
        }
    )
    assert (s.jwt_issuer, s.jwt_audience) == ("idp", "chat")
    assert s.allowed_origins == frozenset({"https://a.example", "https://b.example"})
    assert (s.offer_timeout_s, s.relax_after_s, s.reconnect_grace_s, s.presence_ttl_s) == (5, 0.5, 7, 3)
    assert s.max_body_chars == 100 and s.hello_timeout_s == 1.5 and s.dev


@pytest.mark.parametrize(
    "flag, dev", [("", False), ("1", True), ("true", True), ("TRUE", True), ("True", True)]
)
def test_dev_flag(flag: str, dev: bool) -> None:
    assert from_env({**BASE, "PEERCHAT_DEV": flag}).dev is dev


def test_dev_flag_unset_is_off() -> None:
    assert not from_env(BASE).dev


# PRODUCT.md §3: any other non-empty value stops the process; `0` and `false` included, as
# the contract names only unset/empty as "off" (docs/security.md, "Dev mode").
@pytest.mark.parametrize(
    "flag",
    [
        "0",
        "false",
        "False",
        "off",
        "OFF",
        "no",
        "yes",
        "on",
        " 0",
        "1 ",
        " true",
        "2",
        "tru",
        "t",
        "\x00",
        "\uff11",
    ],
)
def test_dev_flag_other_values_are_refused(flag: str) -> None:
    with pytest.raises(ConfigError, match="PEERCHAT_DEV"):
        from_env({**BASE, "PEERCHAT_DEV": flag})


def test_a_public_key_selects_the_asymmetric_algorithms() -> None:
    env = {
        **BASE,
        "PEERCHAT_JWT_SECRET": "",
        "PEERCHAT_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----...",
        "PEERCHAT_REDIS_KEY": "k" * 32,
    }
    s = from_env(env)
    assert s.jwt_secret is None and s.jwt_public_key is not None
    assert s.jwt_algorithms == ["RS256", "ES256"]


def test_a_public_key_without_a_redis_key_stops_the_process() -> None:
    # An HMAC key derived from a public key would let anyone reading Redis test guessed ids.
    env = {**BASE, "PEERCHAT_JWT_SECRET": "", "PEERCHAT_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----..."}
    with pytest.raises(ConfigError, match="PEERCHAT_REDIS_KEY"):
        from_env(env)


def test_empty_values_mean_the_default() -> None:
    s = from_env({**BASE, "PEERCHAT_OFFER_TIMEOUT_S": "", "PEERCHAT_HELLO_TIMEOUT_S": ""})
    assert s.offer_timeout_s == 30 and s.hello_timeout_s == 10


@pytest.mark.parametrize(
    "change, words",
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"PEERCHAT_JWT_SECRET": ""}, "PEERCHAT_JWT_SECRET"),
        ({"PEERCHAT_JWT_PUBLIC_KEY": "pem"}, "only one"),
        ({"PEERCHAT_JWT_SECRET": "short"}, "32 bytes"),
        ({"PEERCHAT_OFFER_TIMEOUT_S": "soon"}, "PEERCHAT_OFFER_TIMEOUT_S"),
        ({"PEERCHAT_PRESENCE_TTL_S": "0"}, "positive"),
        ({"PEERCHAT_RELAX_AFTER_S": "-1"}, "positive"),
        ({"PEERCHAT_HELLO_TIMEOUT_S": "never"}, "PEERCHAT_HELLO_TIMEOUT_S"),
        ({"PEERCHAT_MAX_BODY_CHARS": "0"}, "PEERCHAT_MAX_BODY_CHARS"),
        ({"PEERCHAT_MAX_BODY_CHARS": "-5"}, "PEERCHAT_MAX_BODY_CHARS"),
        ({"PEERCHAT_MAX_BODY_CHARS": "1e3"}, "PEERCHAT_MAX_BODY_CHARS"),
        ({"PEERCHAT_MAX_TOKEN_TTL_S": "a day"}, "PEERCHAT_MAX_TOKEN_TTL_S"),
        ({"PEERCHAT_MAX_TOKEN_TTL_S": "0"}, "PEERCHAT_MAX_TOKEN_TTL_S"),
        ({"PEERCHAT_MAX_TOKEN_TTL_S": "-60"}, "PEERCHAT_MAX_TOKEN_TTL_S"),
        ({"PEERCHAT_MAX_TOKEN_TTL_S": "nan"}, "PEERCHAT_MAX_TOKEN_TTL_S"),
        ({"PEERCHAT_MAX_TOKEN_TTL_S": "inf"}, "PEERCHAT_MAX_TOKEN_TTL_S"),
        ({"PEERCHAT_MAX_SOCKETS_PER_USER": "0"}, "PEERCHAT_MAX_SOCKETS_PER_USER"),
        ({"PEERCHAT_MAX_SOCKETS_PER_USER": "eight"}, "PEERCHAT_MAX_SOCKETS_PER_USER"),
        ({"PEERCHAT_MAX_SOCKETS_PER_USER": "-1"}, "PEERCHAT_MAX_SOCKETS_PER_USER"),
        ({"PEERCHAT_REDIS_KEY": "short"}, "PEERCHAT_REDIS_KEY"),
    ],
)
def test_refused(change: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        from_env({**BASE, **change})


def test_token_lifetime_and_socket_cap() -> None:
    s = from_env(BASE)
    assert (s.max_token_ttl_s, s.max_sockets_per_user) == (86400, 8)
    s = from_env({**BASE, "PEERCHAT_MAX_TOKEN_TTL_S": "90.5", "PEERCHAT_MAX_SOCKETS_PER_USER": "2"})
    assert (s.max_token_ttl_s, s.max_sockets_per_user) == (90.5, 2)


def test_the_redis_key_is_set_or_derived_from_the_jwt_key() -> None:
    derived = from_env(BASE).identity_hmac_key
    assert len(derived) == 32 and SECRET.encode() not in derived
    other = from_env({**BASE, "PEERCHAT_JWT_SECRET": "d" * 32}).identity_hmac_key
    assert derived != other
    key = "k" * 40
    assert from_env({**BASE, "PEERCHAT_REDIS_KEY": key}).identity_hmac_key == key.encode()


def test_the_error_never_echoes_the_secret() -> None:
    with pytest.raises(ConfigError) as refused:
        from_env({**BASE, "PEERCHAT_JWT_SECRET": "tiny-secret"})
    assert "tiny-secret" not in str(refused.value)


def test_hours_alternatives_and_member_grace() -> None:
    s = from_env(
        {
            **BASE,
            "PEERCHAT_HOURS": "America/New_York mon-fri 08:00-22:00, sat 10:00-16:00",
            "PEERCHAT_CLOSED_DATES": "2026-12-25",
            "PEERCHAT_ALTERNATIVES": json.dumps(
                [
                    {
                        "name": " SMART forum ",
                        "url": "https://forum.example/",
                        "description": "Open all night",
                    },
                    {"name": "Warm line", "url": "http://warm.example/call"},
                ]
            ),
            "PEERCHAT_MEMBER_GRACE_S": "45",
        }
    )
    assert s.hours is not None and str(s.hours.zone) == "America/New_York"
    assert not s.hours.is_open(datetime(2026, 12, 25, 17, 0, tzinfo=UTC))  # noon on a closed date
    assert s.hours.is_open(datetime(2026, 12, 24, 17, 0, tzinfo=UTC))
    assert s.alternatives == (
        Alternative(name="SMART forum", url="https://forum.example/", description="Open all night"),
        Alternative(name="Warm line", url="http://warm.example/call", description=""),
    )
    assert s.member_grace_s == 45
    defaults = from_env(BASE)
    assert defaults.hours is None and defaults.alternatives == () and defaults.member_grace_s == 300


@pytest.mark.parametrize(
    "change, words",
    [
        ({"PEERCHAT_HOURS": "Nowhere/Else daily 08:00-09:00"}, "PEERCHAT_HOURS must start with an IANA"),
        ({"PEERCHAT_HOURS": "UTC mon-fri 8-22"}, "PEERCHAT_HOURS span"),
        (
            {"PEERCHAT_HOURS": "UTC daily 08:00-09:00", "PEERCHAT_CLOSED_DATES": "xmas"},
            "PEERCHAT_CLOSED_DATES",
        ),
        ({"PEERCHAT_CLOSED_DATES": "2026-12-25"}, "needs PEERCHAT_HOURS"),
        ({"PEERCHAT_ALTERNATIVES": "not json"}, "JSON list"),
        ({"PEERCHAT_ALTERNATIVES": '{"name":"x"}'}, "JSON list"),
        ({"PEERCHAT_ALTERNATIVES": '["x"]'}, r"PEERCHAT_ALTERNATIVES\[0\] must be an object"),
        ({"PEERCHAT_ALTERNATIVES": '[{"url":"https://a.example"}]'}, "non-empty string name"),
        ({"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"javascript:alert(1)"}]'}, r"\.url must be an http"),
        ({"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"https://"}]'}, r"\.url must be an http"),
        ({"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"https://a.example/ x"}]'}, r"\.url must be an http"),
        ({"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"ftp://a.example"}]'}, r"\.url must be an http"),
        ({"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"https://a.example","desc":"x"}]'}, "unknown keys"),
        (
            {"PEERCHAT_ALTERNATIVES": '[{"name":"a","url":"https://a.example","description":3}]'},
            "description",
        ),
        ({"PEERCHAT_MEMBER_GRACE_S": "0"}, "PEERCHAT_MEMBER_GRACE_S must be a positive"),
    ],
)
def test_hours_and_alternatives_refused(change: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        from_env({**BASE, **change})


def test_privacy_windows_default_and_take_decimals() -> None:
    s = from_env(BASE)
    assert (s.retention_days, s.specialist_access_h) == (90, 24)
    s = from_env({**BASE, "PEERCHAT_RETENTION_DAYS": "0.0001", "PEERCHAT_SPECIALIST_ACCESS_H": "1.5"})
    assert (s.retention_days, s.specialist_access_h) == (0.0001, 1.5)


@pytest.mark.parametrize("name", ["PEERCHAT_RETENTION_DAYS", "PEERCHAT_SPECIALIST_ACCESS_H"])
@pytest.mark.parametrize("raw", ["0", "-1", "-0.5", "0.0", "abc", "nan", "inf"])
def test_privacy_windows_refuse_zero_negative_and_nonsense(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name) as refused:
        from_env({**BASE, name: raw})
    assert "positive number" in str(refused.value)


def test_without_a_direct_url_session_work_uses_database_url_and_the_cache_stays_on() -> None:
    s = from_env(BASE)
    assert s.session_database_url == "postgresql://db/x"
    assert not s.behind_pooler


def test_a_direct_url_takes_the_session_locks_and_marks_database_url_as_a_pooler() -> None:
    direct = "postgresql://db1,db2/x?target_session_attrs=read-write"
    s = from_env(
        {**BASE, "DATABASE_URL": "postgresql://pgbouncer:6432/x", "PEERCHAT_DATABASE_DIRECT_URL": direct}
    )
    assert s.session_database_url == direct
    assert s.behind_pooler  # asyncpg's statement cache goes off (docs/scaling.md)


def test_a_direct_url_equal_to_database_url_is_no_pooler() -> None:
    s = from_env({**BASE, "PEERCHAT_DATABASE_DIRECT_URL": "postgresql://db/x"})
    assert not s.behind_pooler
