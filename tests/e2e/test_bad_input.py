"""Bad input gets a clear answer (issue 2), against real uvicorn with a real `websockets`
client: bad frames get an `error` with the right code and `ref` and the socket stays open;
bad handshakes and bad tokens close with the right code and nothing before it; none of it
crashes the process, shows a traceback, logs a token or a body, or loses a stored message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.support.client import Client, token
from tests.support.flows import (
    assert_clean_log,
    assert_still_serving,
    hello,
    matched,
    stored_bodies,
    until_closed,
)
from tests.support.servers import JWT_SECRET, LiveService

MARKER = "bad-input-marker-7c1f0e"  # a message body that must never reach the log


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "member-x",
        "role": "member",
        "iss": "peerchat",
        "aud": "peerchat",
        "iat": now,
        "exp": now + 600,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _unsigned(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret."""
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _signed(**overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), JWT_SECRET, algorithm="HS256")


async def _refused_with_4001(live: LiveService, first: str) -> None:
    seen = await until_closed(live, first)
    assert seen.code == 4001, (seen.code, seen.frames)
    assert seen.frames == [], "no frame may precede the 4001 close"


# --------------------------------------------------------------------------- frames


async def test_bad_frames_get_an_error_with_the_ref_and_the_socket_stays_open(
    live: LiveService, database_url: str
) -> None:
    pair = await matched(live)
    conv, member = pair.conversation_id, pair.member
    ack = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": MARKER}, "ack"
    )
    assert ack["type"] == "ack" and ack["seq"] == 1

    # (raw text, expected code, expected ref): a ref is copied whenever it could be read.
    cases: list[tuple[str, str, str | None]] = [
        ('{"type": "send", "conversation_id": ', "bad_frame", None),  # malformed JSON
        ("not json at all", "bad_frame", None),
        ("[1, 2, 3]", "bad_frame", None),  # not an object
        ('"hello"', "bad_frame", None),
        ("42", "bad_frame", None),
        ('{"ref": "no-type"}', "bad_frame", "no-type"),
        ('{"type": 7, "ref": "int-type"}', "bad_frame", "int-type"),
        ('{"type": "launch_rockets", "ref": "unknown"}', "unknown_type", "unknown"),
        ('{"type": "typing", "conversation_id": 12, "ref": "wrong-type"}', "bad_frame", "wrong-type"),
        ('{"type": "read", "conversation_id": "c", "seq": "3", "ref": "seq-str"}', "bad_frame", "seq-str"),
        ('{"type": "read", "conversation_id": "c", "seq": -1, "ref": "seq-neg"}', "bad_frame", "seq-neg"),
        # Past PostgreSQL's integer: was `internal` and an ERROR log line (review finding 5).
        (
            f'{{"type": "read", "conversation_id": "{conv}", "seq": 3000000000, "ref": "seq-big"}}',
            "bad_frame",
            "seq-big",
        ),
        (
            f'{{"type": "history", "conversation_id": "{conv}", "after_seq": {2**31}, "ref": "after-big"}}',
            "bad_frame",
            "after-big",
        ),
        ('{"type": "send", "conversation_id": "c", "body": "b", "ref": "missing"}', "bad_frame", "missing"),
        ('{"type": "history", "ref": "no-conv"}', "bad_frame", "no-conv"),
        ('{"type": "feedback", "conversation_id": "c", "rating": 9, "ref": "rating"}', "bad_frame", "rating"),
        ('{"type": "availability", "status": "asleep", "ref": "status"}', "bad_frame", "status"),
        ('{"type": "typing", "conversation_id": "", "ref": "empty-id"}', "bad_frame", "empty-id"),
        (f'{{"type": "typing", "ref": "{"r" * 65}"}}', "bad_frame", None),  # an over-long ref is dropped
    ]
    for i, (raw, code, ref) in enumerate(cases):
        await member.ws.send(raw)
        err = await member.expect("error")
        assert err["code"] == code, (raw, err)
        assert err.get("ref") == ref, (raw, err)
        assert err["message"] and "Traceback" not in err["message"]
        # Still open: the very next frame works.
        ok = await member.call(
            {"type": "send", "conversation_id": conv, "client_msg_id": f"after-{i}", "body": f"ok {i}"}, "ack"
        )
        assert ok["type"] == "ack", (raw, ok)

    # Binary frames are refused, not parsed; a second hello is an error, not a new login.
    await member.ws.send(b'{"type": "typing"}')
    assert (await member.expect("error"))["code"] == "bad_frame"
    again = await member.call({"type": "hello", "token": token("member", pair.member_id)}, "welcome")
    assert again["type"] == "error" and again["code"] == "invalid_state"

    history = await member.call({"type": "history", "conversation_id": conv}, "history")
    assert [m["seq"] for m in history["messages"]] == list(range(1, len(cases) + 2))
    assert history["messages"][0]["body"] == MARKER
    assert (await stored_bodies(database_url, conv))[0] == (1, MARKER)
    # The specialist saw every message exactly once, in order, and nothing else broke.
    seen = [await pair.specialist.expect("message") for _ in range(len(cases) + 1)]
    assert [m["seq"] for m in seen] == list(range(1, len(cases) + 2))
    assert_clean_log(live, MARKER)
    await assert_still_serving(live)


async def test_a_frame_over_64_kib_closes_1009_and_keeps_what_was_stored(
    live: LiveService, database_url: str
) -> None:
    pair = await matched(live)
    conv = pair.conversation_id
    await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": MARKER}, "ack"
    )
    big = json.dumps({"type": "send", "conversation_id": conv, "client_msg_id": "big", "body": "x" * 70_000})
    await pair.member.ws.send(big)
    assert await pair.member.closed() == 1009
    # The specialist's socket is unaffected.
    history = await pair.specialist.call({"type": "history", "conversation_id": conv}, "history")
    assert [m["body"] for m in history["messages"]] == [MARKER]
    assert await stored_bodies(database_url, conv) == [(1, MARKER)]
    # Just under the limit is a frame like any other (here: a body over the 4000 chars).
    member, _ = await Client.connect(live.ws, token("member", pair.member_id, "Sam"))
    near = {"type": "send", "conversation_id": conv, "client_msg_id": "near", "body": "y" * 60_000}
    assert (await member.call(near, "ack"))["code"] == "too_large"
    assert_clean_log(live, MARKER)
    await assert_still_serving(live)


async def test_a_first_frame_that_is_not_hello_closes_4002(live: LiveService) -> None:
    for first in (
        json.dumps({"type": "send", "conversation_id": "c", "client_msg_id": "m", "body": "hi"}),
        json.dumps({"type": "nonsense"}),
        "not json",
        "[]",
        b"\x00\x01binary",
    ):
        seen = await until_closed(live, first)
        assert seen.code == 4002, (first, seen)
        assert seen.frames == []
    assert_clean_log(live)
    await assert_still_serving(live)


async def test_no_hello_in_time_closes_4002(service_factory: Any, redis_client: object) -> None:
    live: LiveService = service_factory(PEERCHAT_HELLO_TIMEOUT_S="0.5")
    started = time.monotonic()
    seen = await until_closed(live)
    assert seen.code == 4002 and seen.frames == []
    assert 0.4 < time.monotonic() - started < 5
    # A prompt hello on the same service is fine.
    _, welcome = await Client.connect(live.ws, token("member", "prompt"))
    assert welcome["type"] == "welcome"
    assert_clean_log(live)


# --------------------------------------------------------------------------- tokens


async def test_bad_tokens_close_4001_before_any_frame(live: LiveService, database_url: str) -> None:
    pair = await matched(live)
    conv = pair.conversation_id
    await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": MARKER}, "ack"
    )

    now = int(time.time())
    bad_tokens = {
        "alg none": _unsigned(_claims()),
        "alg none, empty signature stripped": _unsigned(_claims()).rstrip("."),
        "wrong key": jwt.encode(_claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
        "expired": _signed(iat=now - 7200, exp=now - 3600),
        "nbf in the future": _signed(nbf=now + 3600),
        "iat in the future": _signed(iat=now + 3600, exp=now + 7200),
        "wrong iss": _signed(iss="someone-else"),
        "wrong aud": _signed(aud="another-service"),
        "missing exp": _signed(exp=None),
        "missing sub": _signed(sub=None),
        "missing role": _signed(role=None),
        "missing iss": _signed(iss=None),
        "missing aud": _signed(aud=None),
        "missing iat": _signed(iat=None),
        "unknown role": _signed(role="admin"),
        "role as a list": _signed(role=["member"]),
        "empty sub": _signed(sub=""),
        "numeric sub": _signed(sub=42),
        "sub of the wrong length": _signed(sub="s" * 65),
        "name not a string": _signed(name={"first": "Sam"}),
        "garbage": "not.a.jwt",
        "one segment": "garbage",
        "tampered payload": (lambda t: t.split(".")[0] + "." + _b64(b'{"sub":"x"}') + "." + t.split(".")[2])(
            _signed()
        ),
    }
    for why, bad in bad_tokens.items():
        seen = await until_closed(live, hello(bad))
        assert seen.code == 4001, (why, seen)
        assert seen.frames == [], (why, seen.frames)

    # A hello with no usable token at all is a bad token too.
    for first in (
        '{"type": "hello"}',
        '{"type": "hello", "token": null}',
        '{"type": "hello", "token": 12345}',
        '{"type": "hello", "token": ""}',
        json.dumps({"type": "hello", "token": "t" * 9000}),
    ):
        await _refused_with_4001(live, first)

    # Nothing was lost, nothing crashed, nothing leaked.
    assert await stored_bodies(database_url, conv) == [(1, MARKER)]
    history = await pair.specialist.call({"type": "history", "conversation_id": conv}, "history")
    assert [m["body"] for m in history["messages"]] == [MARKER]
    long_ones = [t for t in bad_tokens.values() if len(t) > 40]
    assert_clean_log(live, MARKER, *long_ones, *(t.split(".")[-1] for t in long_ones if t[-1] != "."))
    await assert_still_serving(live)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh RSA key: the identity provider's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_rs256_service_accepts_its_providers_tokens_and_refuses_the_key_confusion_trick(
    service_factory: Any, redis_client: object, rsa_keys: tuple[str, str]
) -> None:
    private, public = rsa_keys
    live: LiveService = service_factory(
        PEERCHAT_JWT_SECRET="", PEERCHAT_JWT_PUBLIC_KEY=public, PEERCHAT_REDIS_KEY="r" * 32
    )

    good = jwt.encode(_claims(sub="member-rs", name="Ada"), private, algorithm="RS256")
    member, welcome = await Client.connect(live.ws, good)
    assert welcome["user"] == {"id": "member-rs", "role": "member", "name": "Ada"}
    await member.close()

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = {
        # The classic confusion: HS256 with the public key (which everyone has) as the secret.
        "hs256 with the public key": _hs256_with(public.encode(), _claims()),
        "hs256 with the shared test secret": _signed(),
        "alg none": _unsigned(_claims()),
        "another rsa key": jwt.encode(_claims(), other_key, algorithm="RS256"),
        "expired rs256": jwt.encode(_claims(exp=int(time.time()) - 60), private, algorithm="RS256"),
        "wrong aud rs256": jwt.encode(_claims(aud="elsewhere"), private, algorithm="RS256"),
        "es256 header on an rsa key": _es256_header_with_rsa_signature(private),
    }
    for why, bad in bad_tokens.items():
        seen = await until_closed(live, hello(bad))
        assert seen.code == 4001, (why, seen)
        assert seen.frames == [], why

    _, again = await Client.connect(live.ws, good)
    assert again["user"]["id"] == "member-rs"
    assert_clean_log(
        live, good.split(".")[-1], *(t.split(".")[-1] for t in bad_tokens.values() if t[-1] != ".")
    )


def _es256_header_with_rsa_signature(private: str) -> str:
    token = jwt.encode(_claims(), private, algorithm="RS256")
    _, payload, signature = token.split(".")
    return f"{_b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode())}.{payload}.{signature}"


# --------------------------------------------------------------------------- authorisation


async def test_nobody_touches_a_conversation_they_are_not_in(live: LiveService, database_url: str) -> None:
    pair = await matched(live)
    conv = pair.conversation_id
    await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": MARKER}, "ack"
    )
    await pair.member.expect("message")
    await pair.specialist.expect("message")
    stranger, _ = await Client.connect(live.ws, token("member", "stranger", "Mallory"))
    other_spec, _ = await Client.connect(live.ws, token("specialist", "spec-other", "Eve"))

    pokes: list[tuple[dict[str, Any], str]] = [
        ({"type": "send", "conversation_id": conv, "client_msg_id": "x", "body": "let me in"}, "ack"),
        ({"type": "history", "conversation_id": conv}, "history"),
        ({"type": "typing", "conversation_id": conv}, "typing"),
        ({"type": "read", "conversation_id": conv, "seq": 1}, "read"),
        ({"type": "end", "conversation_id": conv}, "conversation_ended"),
        ({"type": "feedback", "conversation_id": conv, "rating": 1}, "feedback_saved"),
    ]
    for frame, reply in pokes:
        got = await stranger.call(frame, reply)
        assert got["type"] == "error" and got["code"] in ("forbidden", "not_found"), (frame, got)
    for frame, reply in pokes[:5]:  # feedback is for members only
        got = await other_spec.call(frame, reply)
        assert got["type"] == "error" and got["code"] in ("forbidden", "not_found"), (frame, got)

    # The same frames for a conversation that does not exist at all.
    for frame, reply in pokes:
        got = await stranger.call({**frame, "conversation_id": "no-such-conversation"}, reply)
        assert got["type"] == "error" and got["code"] == "not_found", (frame, got)

    # Roles: members may not act as specialists, specialists may not ask for a peer.
    for frame in (
        {"type": "accept", "offer_id": "o"},
        {"type": "decline", "offer_id": "o"},
        {"type": "claim", "request_id": "r"},
        {"type": "availability", "status": "available"},
        {"type": "queue_watch"},
        {"type": "watch_queues"},
    ):
        got = await stranger.call(frame, "-")
        assert got["code"] == "forbidden", (frame, got)
    for frame in (
        {"type": "request", "tags": ["grief"]},
        {"type": "cancel", "request_id": "r"},
        {"type": "feedback", "conversation_id": conv, "rating": 5},
        {"type": "watch_queues"},
    ):
        got = await pair.specialist.call(frame, "-")
        assert got["code"] == "forbidden", (frame, got)

    # Nothing reached the participants, nothing changed.
    await pair.member.call({"type": "history", "conversation_id": conv}, "history")
    assert not [
        f for f in pair.member.inbox + pair.specialist.inbox if f["type"] in ("typing", "read", "message")
    ]
    assert await stored_bodies(database_url, conv) == [(1, MARKER)]
    still = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c2", "body": "still here"}, "ack"
    )
    assert still["seq"] == 2, "the conversation is still active"
    assert_clean_log(live, MARKER)


async def test_a_body_over_the_limit_is_too_large_and_stores_nothing(
    service_factory: Any, redis_client: object, database_url: str
) -> None:
    live: LiveService = service_factory(PEERCHAT_MAX_BODY_CHARS="100")
    pair = await matched(live)
    conv = pair.conversation_id
    over = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "big", "body": MARKER + "x" * 101}, "ack"
    )
    assert over["type"] == "error" and over["code"] == "too_large"
    exactly = "é" * 100  # characters, not bytes
    ack = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "fits", "body": exactly}, "ack"
    )
    assert ack["type"] == "ack" and ack["seq"] == 1
    # The refused client_msg_id was not burnt: it can carry a shorter body now.
    retry = await pair.member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "big", "body": "short"}, "ack"
    )
    assert retry["seq"] == 2
    assert await stored_bodies(database_url, conv) == [(1, exactly), (2, "short")]
    assert_clean_log(live, MARKER)


async def test_hostile_json_is_a_bad_frame_not_a_crash(live: LiveService, database_url: str) -> None:
    """Frames a parser can choke on: nesting deep enough to exhaust recursion, and NUL
    characters, which PostgreSQL text cannot hold."""
    pair = await matched(live)
    conv, member = pair.conversation_id, pair.member
    await member.call({"type": "send", "conversation_id": conv, "client_msg_id": "c1", "body": MARKER}, "ack")
    deep = '{"type": "send", "ref": "deep", "x": ' + "[" * 20_000 + "]" * 20_000 + "}"
    nul = "\\u0000"
    cases = [
        (deep, None),
        ("[" * 30_000, None),
        (
            f'{{"type": "send", "conversation_id": "{conv}", "client_msg_id": "n1", "body": "a{nul}b", '
            '"ref": "nul-body"}',
            "nul-body",
        ),
        (
            f'{{"type": "send", "conversation_id": "{conv}{nul}", "client_msg_id": "n2", "body": "b", '
            '"ref": "nul-id"}',
            "nul-id",
        ),
        (f'{{"type": "history", "conversation_id": "{nul}", "ref": "nul-history"}}', "nul-history"),
        (f'{{"type": "typing", "conversation_id": "x{nul}", "ref": "nul-typing"}}', "nul-typing"),
        (f'{{"type": "cancel", "request_id": "{nul}", "ref": "nul-cancel"}}', "nul-cancel"),
    ]
    for raw, ref in cases:
        await member.ws.send(raw)
        err = await member.expect("error")
        assert err["code"] == "bad_frame", (raw[:80], err)
        if ref is not None:
            assert err.get("ref") == ref, err
    # The largest seq the protocol takes (PostgreSQL's integer; past it is a bad frame, above):
    # nothing is after it, and it is no "storage unavailable".
    far = await member.call({"type": "history", "conversation_id": conv, "after_seq": 2**31 - 1}, "history")
    assert far["type"] == "history" and far["messages"] == [], far
    # The text "\u0000" written out is fine.
    ok = await member.call(
        {"type": "send", "conversation_id": conv, "client_msg_id": "c2", "body": "a literal \\u0000"}, "ack"
    )
    assert ok["type"] == "ack" and ok["seq"] == 2
    stranger, _ = await Client.connect(live.ws, token("member", "nul-member"))
    await stranger.ws.send(f'{{"type": "request", "tags": ["grief{nul}"], "ref": "nul-tag"}}')
    assert (await stranger.expect("error"))["code"] == "bad_frame"
    await stranger.ws.send(f'{{"type": "request", "note": "hard{nul}week", "ref": "nul-note"}}')
    assert (await stranger.expect("error"))["code"] == "bad_frame"
    # As a first frame, deep nesting is simply not a hello.
    seen = await until_closed(live, deep)
    assert seen.code == 4002 and seen.frames == []
    seen = await until_closed(live, f'{{"type": "hello", "token": "a{nul}b"}}')
    assert seen.code == 4001 and seen.frames == []
    assert await stored_bodies(database_url, conv) == [(1, MARKER), (2, "a literal \\u0000")]
    assert_clean_log(live, MARKER)
    await assert_still_serving(live)


async def test_a_browser_on_another_origin_is_refused_at_the_handshake(live: LiveService) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(live.ws, origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    # The page's own origin is fine; so is a non-browser client that sends none.
    same = Origin(live.http)
    _, welcome = await Client.connect(live.ws, token("member", "same-origin"), origin=same)
    assert welcome["type"] == "welcome"
    assert_clean_log(live)
