"""Someone who can read Redis learns nothing about who said what (PRODUCT.md §2): while a
member and a specialist chat across two `web` processes (so the bus really carries every
message, offer and `conversation_started` between them), a raw client subscribed to every
channel (PSUBSCRIBE *) and a SCAN of every key and value find no message body, request
note, feedback comment, member alias or member account id, in any channel name, payload,
key or value."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as redis

from tests.support.client import Client, token
from tests.support.flows import put_profile
from tests.support.servers import LiveService

MEMBER_ID = "acct-Xq81741-zebu"
ALIAS = "Marguerite Quillfeather"
NOTE = "note-Ziggurat-481 about my brother"
COMMENT = "comment-Pangolin-55"
BODIES = [f"body-Quokka-{i}-{side}" for i in range(6) for side in ("member", "specialist")]
SECRETS = [MEMBER_ID, ALIAS, NOTE, COMMENT, *BODIES]


def _flat(reply: object) -> list[bytes]:
    """Every bulk string in a raw Redis reply, however nested."""
    if isinstance(reply, bytes):
        return [reply]
    if isinstance(reply, (list, tuple)):
        return [blob for item in reply for blob in _flat(item)]
    if isinstance(reply, dict):
        return [blob for pair in reply.items() for blob in _flat(list(pair))]
    return []


# Redis type → the command that reads a whole value of that type.
_READ: dict[str, tuple[str, ...]] = {
    "string": ("GET",),
    "hash": ("HGETALL",),
    "list": ("LRANGE", "0", "-1"),
    "set": ("SMEMBERS",),
    "zset": ("ZRANGE", "0", "-1"),
    "stream": ("XRANGE", "-", "+"),
}


async def _dump_keys(client: redis.Redis) -> list[bytes]:
    """Every key and every value, as raw bytes (the service uses database 0 only)."""
    assert set(await client.info("keyspace")) <= {"db0"}
    seen: list[bytes] = []
    async for key in client.scan_iter(count=500):
        seen.append(key)
        kind = await client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "none":
            continue  # gone between SCAN and TYPE (a socket closed, a lease expired)
        assert kind in _READ, f"a {kind} key this test cannot read: {key!r}"
        command = _READ[kind]
        seen += _flat(await client.execute_command(command[0], key, *command[1:]))  # type: ignore[no-untyped-call]
    return seen


def _leaks(blobs: list[bytes]) -> list[tuple[str, bytes]]:
    found = []
    for blob in blobs:
        lowered = blob.lower()
        for secret in SECRETS:
            if secret.lower().encode() in lowered:
                found.append((secret, blob[:200]))
    return found


async def test_redis_holds_nothing_readable_while_two_processes_carry_a_chat(
    redis_client: redis.Redis, service_factory: Any
) -> None:
    home: LiveService = service_factory()
    away: LiveService = service_factory()

    published: list[bytes] = []
    channels: set[bytes] = set()
    spy = redis_client.pubsub()
    await spy.psubscribe("*")

    async def listen() -> None:
        async for event in spy.listen():
            if event["type"] == "pmessage":
                channels.add(event["channel"])
                published.extend((event["channel"], event["data"]))

    listener = asyncio.create_task(listen())
    snapshots: list[bytes] = []
    try:
        await put_profile(home, "spec-opaque", name="Rosa", tags=["grief"])
        specialist, _ = await Client.connect(away.ws, token("specialist", "spec-opaque", "Rosa"))
        await specialist.call({"type": "availability", "status": "available"}, "availability")
        watching, _ = await Client.connect(away.ws, token("specialist", "spec-browse", "Lee"))
        await watching.call({"type": "queue_watch"}, "queue")
        phone, _ = await Client.connect(home.ws, token("member", MEMBER_ID, ALIAS))
        laptop, _ = await Client.connect(away.ws, token("member", MEMBER_ID, ALIAS))
        queued = await phone.call({"type": "request", "tags": ["grief"], "note": NOTE}, "queued")
        assert queued["type"] == "queued", queued
        offer = await specialist.expect("offer")
        assert offer["note"] == NOTE
        # The queue broadcast (sealed, from whichever process leads matching) was opened.
        listed = await watching.expect(
            "queue", where=lambda q: queued["request_id"] in [r["request_id"] for r in q["requests"]]
        )
        assert listed["requests"][0]["tags"] == ["grief"]
        await specialist.call({"type": "accept", "offer_id": offer["offer_id"]}, "conversation_started")
        conv = (await phone.expect("conversation_started"))["conversation"]["id"]
        await laptop.expect("conversation_started")

        for i in range(6):
            ack = await phone.call(
                {"type": "send", "conversation_id": conv, "client_msg_id": f"m{i}", "body": BODIES[2 * i]},
                "ack",
            )
            assert ack["type"] == "ack", ack
            ack = await specialist.call(
                {
                    "type": "send",
                    "conversation_id": conv,
                    "client_msg_id": f"s{i}",
                    "body": BODIES[2 * i + 1],
                },
                "ack",
            )
            assert ack["type"] == "ack", ack
        await phone.send({"type": "typing", "conversation_id": conv})
        await specialist.expect("typing")
        # Every message reached the specialist on the other process, and the member's
        # other device there: the bus carried them.
        got = [(await specialist.expect("message"))["body"] for _ in range(12)]
        assert got == BODIES
        assert [(await laptop.expect("message"))["body"] for _ in range(12)] == BODIES

        snapshots += await _dump_keys(redis_client)  # mid-conversation: presence is live

        await phone.send({"type": "end", "conversation_id": conv})
        await specialist.expect("conversation_ended")
        await laptop.expect("conversation_ended")
        saved = await laptop.call(
            {"type": "feedback", "conversation_id": conv, "rating": 4, "comment": COMMENT}, "feedback_saved"
        )
        assert saved["type"] == "feedback_saved"
        for client in (phone, laptop, specialist, watching):
            await client.close()
        snapshots += await _dump_keys(redis_client)
        await asyncio.sleep(0.5)  # the last rings of the closes reach the spy
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await spy.aclose()  # type: ignore[no-untyped-call]

    # The spy really saw the traffic: many payloads on more than the control channels.
    assert len(published) > 40, published[:10]
    assert len(channels) >= 3, channels
    assert snapshots, "presence keys existed mid-conversation"
    assert not _leaks(published), _leaks(published)[:5]
    assert not _leaks(snapshots), _leaks(snapshots)[:5]
