"""Bytes in, typed frames out; typed frames in, bytes out.

`decode_client` never raises on bad input: it returns a `FrameError` the gateway turns
into an `error` frame, with the client's `ref` when one could be read. Oversized frames
never reach it (the WebSocket layer closes them with 1009).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from protocol.codes import ErrorCode
from protocol.frames import CLIENT_FRAMES, ClientFrame, Error, Frame, ServerFrame

_client_decoder = msgspec.json.Decoder(ClientFrame)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

CLIENT_TYPES: frozenset[str] = frozenset(str(f.__struct_config__.tag) for f in CLIENT_FRAMES)


@dataclass(frozen=True, slots=True)
class FrameError:
    """A client frame we could not accept. Answer it with `as_frame()`."""

    code: ErrorCode
    message: str
    ref: str | None = None

    def as_frame(self) -> Error:
        return Error(code=self.code, message=self.message, ref=self.ref)


def decode_client(data: str | bytes) -> ClientFrame | FrameError:
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        if not isinstance(exc, msgspec.ValidationError):
            return FrameError(ErrorCode.BAD_FRAME, "frame is not valid JSON")
        return _classify(data, exc)
    except RecursionError:
        # `[[[[…` a few thousand deep fits in 64 KiB and exhausts the decoder's stack.
        return FrameError(ErrorCode.BAD_FRAME, "frame is nested too deeply")
    # PostgreSQL text cannot hold NUL, so a `\u0000` escape would fail deep in a handler.
    # Only frames that contain the escape pay for the exact check.
    if ("\\u0000" in data if isinstance(data, str) else b"\\u0000" in data) and _holds_nul(
        msgspec.to_builtins(frame)
    ):
        tag = type(frame).__struct_config__.tag
        return FrameError(ErrorCode.BAD_FRAME, f"bad `{tag}` frame: text may not contain NUL", frame.ref)
    return frame


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _classify(data: str | bytes, exc: msgspec.ValidationError) -> FrameError:
    # Slow path, bad frames only: look at the raw object to tell an unknown type from a
    # known type with a bad field, and to recover the `ref` for the reply.
    try:
        raw = _any_decoder.decode(data)
    except msgspec.DecodeError:  # the typed decoder can fail on shape before it sees bad JSON
        return FrameError(ErrorCode.BAD_FRAME, "frame is not valid JSON")
    except RecursionError:  # ... or before it reaches the deep nesting
        return FrameError(ErrorCode.BAD_FRAME, "frame is nested too deeply")
    if not isinstance(raw, dict):
        return FrameError(ErrorCode.BAD_FRAME, "frame must be a JSON object")
    ref = raw.get("ref")
    ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
    kind = raw.get("type")
    if not isinstance(kind, str):
        return FrameError(ErrorCode.BAD_FRAME, "frame needs a string `type`", ref)
    if kind not in CLIENT_TYPES:
        return FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}", ref)
    return FrameError(ErrorCode.BAD_FRAME, f"bad `{kind}` frame: {exc}", ref)


def encode(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def encode_text(frame: Frame) -> str:
    """Frames travel as WebSocket text frames."""
    return _encoder.encode(frame).decode()


def decode_server(data: str | bytes) -> ServerFrame:
    """For clients and tests: raises `msgspec.ValidationError` on anything unexpected."""
    frame: ServerFrame = _server_decoder.decode(data)
    return frame
