"""The private surface of uvicorn and websockets that chat/gateway/wsproto.py leans on, in
one place: neither library documents it, uvicorn is pinned to an exact version, and
tests/chat/test_wsproto_surface.py fails on an upgrade that changes any of it, before any
socket does. Kept apart from the protocol so the protocol reads as what it does and this
reads as what it assumes."""

from __future__ import annotations

# Attributes of uvicorn's WebSocketsSansIOProtocol that wsproto.py reads or writes.
UVICORN_ATTRIBUTES = frozenset(
    {
        "close_sent",
        "conn",
        "curr_msg_data_type",
        "disconnected",
        "frames",
        "handshake_complete",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "queue",
        "read_paused",
        "request",
        "response",
        "scope",
        "transport",
        "writable",
    }
)
# Its methods wsproto.py overrides or calls.
UVICORN_METHODS = frozenset(
    {
        "data_received",
        "handle_parser_exception",
        "handle_pong",
        "handle_text",
        "keepalive_timeout",
        "run_asgi",
        "send_receive_event_to_app",
        "start_keepalive",
        "stop_keepalive",
    }
)
# Upstream methods wsproto.py copies (send_receive_event_to_app) or whose behaviour it
# relies on (receive resumes reading only once the queue is empty), by the SHA-256 of
# their source in the pinned uvicorn: a change there must be read before it is taken.
UPSTREAM_SOURCES = {
    "send_receive_event_to_app": "a2b10de91477dc1d4d0e7c9065b85388a5b2a6ebeb84d6ec1591e112ca0bfbb9",
    "receive": "1dc0e715390021a105cfe6abb35a730af9c5be3d71043329a39bbc1c5afe66bc",
    # Text frames wsproto.py parses itself do what these do with a parsed frame.
    "data_received": "c89d394077d8841d253e469eb47bfd9db0172cd7eebe38edf5211c8e312885d0",
    "handle_text": "6ae523180cf04a012bde88d4eb7fc1429d4e60ee8dc7cbf0f004288a3e657a8f",
    # The keepalive (chat/gateway/keepalive.py): the pong check replaced in wsproto.py, upstream's
    # drop and timer cleanup reused; `send` starts it on the accept, `connection_lost` and
    # `shutdown` stop it.
    "handle_pong": "b20c68cc7e4f9bca91938db2af4a7b247c3035a35e4f855dcab7c5e7bd7769e2",
    "keepalive_timeout": "8e1ceb6ec446de9d14611a262b197f07cfc2cb8b8b427eb2023ffa891dee2044",
    "stop_keepalive": "bbb91b997b37b77c2762d1bf57ab8cc053422e11a971ee45a0df31295efad799",
    "connection_lost": "dd116afc4d8034e11baebc28faf53f4f0f15181c4ea1a0e49cc9fdf45056cc97",
    "shutdown": "e8ace796ada616b72e45af56a223079bef3f1c560652f29d70269f68401c73aa",
    "send": "d4919ed760ce9f7be8574989b91ed67448f210ff9cc114f38d286487ec1ddfc8",
}
# websockets' sans-I/O protocol: `writes` (bytes it queued itself, such as a pong) is not
# documented, nor are the parser's state wsproto.py reads before parsing a frame itself: `reader` (its
# `buffer`), `parser` (a generator idle in the reader's `at_eof` between frames),
# `current_size` (not None inside a fragmented message), `max_message_size`; `send_text`,
# `send_close`, `data_to_send`, `state` and `extensions` are documented.
WEBSOCKETS_ATTRIBUTES = frozenset({"writes", "reader", "parser", "current_size", "max_message_size"})
