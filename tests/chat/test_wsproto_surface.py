"""The private surface chat/gateway/wsproto.py leans on still exists, unchanged, in the
installed uvicorn and websockets. An upgrade that renames an attribute, drops a method or
changes a method whose behaviour the module copies fails here, before any socket does."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.server import ServerProtocol

from chat.gateway import wsproto, wsproto_surface


def self_attributes(cls: type) -> set[str]:
    """Every `self.<name>` the class's own source reads or writes."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }


def test_every_uvicorn_attribute_used_is_still_one_of_its_protocol() -> None:
    missing = wsproto_surface.UVICORN_ATTRIBUTES - self_attributes(WebSocketsSansIOProtocol)
    assert missing == set()


def test_every_uvicorn_method_used_is_still_defined_upstream() -> None:
    for name in wsproto_surface.UVICORN_METHODS:
        assert callable(getattr(WebSocketsSansIOProtocol, name, None)), name


def test_upstream_methods_copied_or_relied_on_are_unchanged() -> None:
    changed = {
        name: hashlib.sha256(inspect.getsource(getattr(WebSocketsSansIOProtocol, name)).encode()).hexdigest()
        for name in wsproto_surface.UPSTREAM_SOURCES
    }
    assert changed == wsproto_surface.UPSTREAM_SOURCES, (
        "re-read the upstream change, then update wsproto_surface.py"
    )


def test_websockets_undocumented_attributes_exist_on_a_server_protocol() -> None:
    conn = ServerProtocol()
    for name in wsproto_surface.WEBSOCKETS_ATTRIBUTES:
        assert hasattr(conn, name), name
    assert isinstance(conn.writes, list)  # send_now reads it as "frames websockets queued"


def test_the_list_names_everything_the_module_touches() -> None:
    """Each upstream attribute the subclass uses is in the list: the list is the surface."""
    used = self_attributes(wsproto.DirectWebSocketProtocol)
    upstream = self_attributes(WebSocketsSansIOProtocol) | set(dir(WebSocketsSansIOProtocol))
    own = {"on_text", "send_now"}
    assert (used & upstream) - own <= wsproto_surface.UVICORN_ATTRIBUTES | wsproto_surface.UVICORN_METHODS


def test_parser_idle_tells_a_websockets_parser_between_frames_from_one_inside_a_frame() -> None:
    """wsproto parses text frames itself only while websockets' parser waits between
    frames (`parser_idle`); that reading of the parser's state holds for this websockets."""
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Protocol, State

    conn = ServerProtocol()
    conn.state = State.OPEN
    conn.parser = Protocol.parse(conn)  # the frame parser, as after the handshake
    next(conn.parser)
    assert wsproto.parser_idle(conn)
    frame = Frame(Opcode.TEXT, b"hello").serialize(mask=True, extensions=[])
    conn.receive_data(frame[:6])  # header and mask read, payload pending: inside a frame
    assert not wsproto.parser_idle(conn)
    conn.receive_data(frame[6:])
    assert [e.data for e in conn.events_received() if isinstance(e, Frame)] == [b"hello"]
    assert wsproto.parser_idle(conn)
    conn.receive_data(Frame(Opcode.TEXT, b"frag", fin=False).serialize(mask=True, extensions=[]))
    assert not wsproto.parser_idle(conn), "inside a fragmented message"
