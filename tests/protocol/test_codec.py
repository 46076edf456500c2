"""decode_client turns every kind of bad input into a typed error, never an exception."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import frames as f
from protocol.codec import CLIENT_TYPES, FrameError, decode_client, decode_server, encode, encode_text
from protocol.codes import CloseCode, ErrorCode


def test_a_good_send_decodes_to_its_type() -> None:
    frame = decode_client('{"type":"send","conversation_id":"c1","client_msg_id":"m1","body":"hi","ref":"r"}')
    assert frame == f.Send(conversation_id="c1", client_msg_id="m1", body="hi", ref="r")


def test_unknown_fields_are_ignored_so_clients_can_be_newer() -> None:
    frame = decode_client('{"type":"typing","conversation_id":"c1","future":true}')
    assert frame == f.Typing(conversation_id="c1")


@pytest.mark.parametrize(
    ("raw", "code", "ref"),
    [
        ("{", ErrorCode.BAD_FRAME, None),
        ("", ErrorCode.BAD_FRAME, None),
        ("[1,2]", ErrorCode.BAD_FRAME, None),
        ('"hello"', ErrorCode.BAD_FRAME, None),
        ("null", ErrorCode.BAD_FRAME, None),
        ('{"ref":"a"}', ErrorCode.BAD_FRAME, "a"),
        ('{"type":7,"ref":"a"}', ErrorCode.BAD_FRAME, "a"),
        ('{"type":"teleport","ref":"b"}', ErrorCode.UNKNOWN_TYPE, "b"),
        ('{"type":"send","ref":"c"}', ErrorCode.BAD_FRAME, "c"),
        (
            '{"type":"send","conversation_id":1,"client_msg_id":"m","body":"x","ref":"d"}',
            ErrorCode.BAD_FRAME,
            "d",
        ),
        ('{"type":"read","conversation_id":"c","seq":-1}', ErrorCode.BAD_FRAME, None),
        ('{"type":"feedback","conversation_id":"c","rating":6}', ErrorCode.BAD_FRAME, None),
        ('{"type":"availability","status":"asleep"}', ErrorCode.BAD_FRAME, None),
        ('{"type":"cancel","request_id":"' + "x" * 65 + '"}', ErrorCode.BAD_FRAME, None),
        ('{"type":"typing","conversation_id":"c","ref":"' + "r" * 65 + '"}', ErrorCode.BAD_FRAME, None),
        ('{"type":"welcome","ref":"e"}', ErrorCode.UNKNOWN_TYPE, "e"),  # a server frame from a client
    ],
)
def test_bad_input_gets_the_right_code_and_keeps_the_ref(raw: str, code: ErrorCode, ref: str | None) -> None:
    result = decode_client(raw)
    assert isinstance(result, FrameError)
    assert result.code is code
    assert result.ref == ref
    assert result.as_frame().code == code.value


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_no_input_makes_the_decoder_raise(raw: str | bytes) -> None:
    result = decode_client(raw)
    assert isinstance(result, (FrameError, *f.CLIENT_FRAMES))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CLIENT_TYPES)), st.dictionaries(st.text(max_size=20), json_values, max_size=5))
def test_known_types_with_random_fields_never_raise(kind: str, fields: dict[str, object]) -> None:
    raw = msgspec.json.encode({**fields, "type": kind})
    result = decode_client(raw)
    if isinstance(result, FrameError):
        assert result.code is ErrorCode.BAD_FRAME
    else:
        assert result.__struct_config__.tag == kind


def test_every_server_frame_round_trips() -> None:
    frames: list[f.Frame] = [
        f.Ack(conversation_id="c", client_msg_id="m", seq=3, ref="r"),
        f.Message(
            conversation_id="c",
            seq=1,
            sender=f.Sender(role="member", name="Sam"),
            body="<b>hi</b>",
            client_msg_id="m",
            sent_at="2026-11-27T09:30:00.000Z",
        ),
        f.Error(code=ErrorCode.BAD_FRAME, message="no"),
        f.PeerStatus(conversation_id="c", status="reconnecting"),
    ]
    for frame in frames:
        assert decode_server(encode(frame)) == frame


def test_ref_is_left_out_when_not_set() -> None:
    assert "ref" not in encode_text(f.Ack(conversation_id="c", client_msg_id="m", seq=1))


def test_close_codes_say_whether_to_reconnect() -> None:
    assert CloseCode.SERVER_RESTARTING.reconnect and CloseCode.SLOW_CONSUMER.reconnect
    assert not CloseCode.BAD_TOKEN.reconnect and not CloseCode.FRAME_TOO_BIG.reconnect
    assert ErrorCode.UNAVAILABLE.retryable and not ErrorCode.FORBIDDEN.retryable
