"""chat/delivery/doorbell.py: the rings one process sends the others, byte for byte."""

from __future__ import annotations

import pytest

from chat.delivery import doorbell
from chat.delivery.doorbell import Mark, Ring
from chat.gateway.session import Outbound
from protocol.codes import CloseCode

ORIGIN = "0123456789ab"
BODY = b'{"type":"message","seq":7}'


def test_a_message_ring_is_one_header_line_then_the_frame() -> None:
    ring = doorbell.frame_ring(ORIGIN, Outbound(BODY, "c1", 7))
    assert ring == b"0123456789ab|c1|7|\n" + BODY
    assert doorbell.parse(ring) == Ring(ORIGIN, Mark.FRAME, Outbound(BODY, "c1", 7))


@pytest.mark.parametrize(
    ("out", "header", "mark"),
    [
        (Outbound(BODY, "c1", None, starts_conversation=True), b"0123456789ab|c1||1\n", Mark.STARTS),
        (Outbound(BODY, "c1", None, ends_conversation=True), b"0123456789ab|c1||2\n", Mark.ENDS),
        (Outbound(BODY), b"0123456789ab|||\n", Mark.FRAME),  # queue and stats broadcasts
    ],
)
def test_conversation_marks_and_plain_frames_round_trip(out: Outbound, header: bytes, mark: Mark) -> None:
    ring = doorbell.frame_ring(ORIGIN, out)
    assert ring == header + BODY
    assert doorbell.parse(ring) == Ring(ORIGIN, mark, out)


def test_join_and_close_rings_carry_no_body() -> None:
    join = doorbell.join_ring(ORIGIN)
    assert join == b"0123456789ab|||J\n"
    parsed = doorbell.parse(join)
    assert parsed is not None and parsed.mark is Mark.JOIN and parsed.out.data == b""
    close = doorbell.close_ring(ORIGIN, "specialist", CloseCode.BAD_TOKEN)
    assert close == f"0123456789ab|specialist|{int(CloseCode.BAD_TOKEN)}|C\n".encode()
    parsed = doorbell.parse(close)
    assert parsed is not None
    assert (parsed.mark, parsed.role, parsed.code) == (Mark.CLOSE, "specialist", CloseCode.BAD_TOKEN)


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
