"""chat/delivery/doorbell.py: the rings one process sends the others, byte for byte."""

from __future__ import annotations

import pytest

from chat.delivery import doorbell
from chat.delivery.doorbell import Mark, Ring
from chat.gateway.session import Outbound
from protocol.codes import CloseCode

ORIGIN = "0123456789ab"
SEALED = b"\x00sealed frame bytes|with\nanything in them"


def test_a_message_ring_is_one_clear_header_line_then_the_sealed_body() -> None:
    header = doorbell.frame_header(ORIGIN, Outbound(b"ignored", "c1", 7))
    assert header == b"0123456789ab|c1|7|\n"
    ring = doorbell.parse(header + SEALED)
    assert ring == Ring(ORIGIN, Mark.FRAME, header, Outbound(SEALED, "c1", 7))


@pytest.mark.parametrize(
    ("out", "header", "mark"),
    [
        (Outbound(b"", "c1", None, starts_conversation=True), b"0123456789ab|c1||1\n", Mark.STARTS),
        (Outbound(b"", "c1", None, ends_conversation=True), b"0123456789ab|c1||2\n", Mark.ENDS),
        (Outbound(b""), b"0123456789ab|||\n", Mark.FRAME),  # queue and stats broadcasts
    ],
)
def test_conversation_marks_and_plain_frames_round_trip(out: Outbound, header: bytes, mark: Mark) -> None:
    assert doorbell.frame_header(ORIGIN, out) == header
    ring = doorbell.parse(header + SEALED)
    assert ring is not None
    assert (ring.mark, ring.header, ring.out.data) == (mark, header, SEALED)
    assert (ring.out.conversation_id, ring.out.starts_conversation, ring.out.ends_conversation) == (
        out.conversation_id,
        out.starts_conversation,
        out.ends_conversation,
    )


def test_join_has_no_body_and_close_carries_its_code() -> None:
    join = doorbell.join_ring(ORIGIN)
    assert join == b"0123456789ab|||J\n"
    parsed = doorbell.parse(join)
    assert parsed is not None and parsed.mark is Mark.JOIN and parsed.out.data == b""
    close = doorbell.close_header(ORIGIN, CloseCode.BAD_TOKEN)
    assert close == f"0123456789ab||{int(CloseCode.BAD_TOKEN)}|C\n".encode()
    parsed = doorbell.parse(close + SEALED)
    assert parsed is not None
    assert (parsed.mark, parsed.code, parsed.header, parsed.out.data) == (
        Mark.CLOSE,
        CloseCode.BAD_TOKEN,
        close,
        SEALED,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"no header line",
        b"a|b|c\n{}",  # three fields
        b"a|b|c|d|e\n{}",  # five
        b"a|c1|seven|\n{}",  # seq not a number
        b"a|c1|7|X\n{}",  # an unknown mark
        b"\xff|c1|7|\n{}",  # not text
    ],
)
def test_anything_else_is_not_a_ring(data: bytes) -> None:
    assert doorbell.parse(data) is None
