"""The doorbell's wire format: what one process publishes on a Redis channel for the others
(chat/delivery/hub.py rings; chat/bus_redis.py carries the bytes).

A ring is one ASCII header line, then the body:

    {origin}|{conversation}|{number}|{mark}\n{body}

- ``origin``: the sending process's hub id (12 hex digits); a process drops its own rings.
- ``mark`` (a `Mark`) says what the ring is and what the two fields hold:

  ===========  ==================  ================  =================================
  mark         conversation        number            body
  ===========  ==================  ================  =================================
  ``""``       conversation or ""  seq or ""         a sealed frame for the sockets
  ``"1"``      conversation        ""                sealed ``conversation_started``
  ``"2"``      conversation        ""                sealed ``conversation_ended``
  ``"J"``      ""                  ""                none: a process joined the channel
  ``"C"``      ""                  close code        sealed, empty: close the sockets
  ===========  ==================  ================  =================================

The header is in the clear (ids and numbers only) and is authenticated with the channel
alongside the sealed body (chat/seal.py, chat/delivery/hub.py). Fields never hold ``|``
or a newline: origins are hex, conversation ids are server-made hex, codes are numbers. A
ring that does not parse is dropped (the repair by sequence covers anything a lost ring
carried).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chat.gateway.session import Outbound


class Mark(StrEnum):
    FRAME = ""
    STARTS = "1"
    ENDS = "2"
    JOIN = "J"
    CLOSE = "C"


_MARKS = {m.value: m for m in Mark}
# Module constants: an Enum member read off its class costs a descriptor call each time.
_STARTS, _ENDS, _CLOSE = Mark.STARTS, Mark.ENDS, Mark.CLOSE


@dataclass(slots=True)  # not frozen: one per ring received, and frozen fields cost 4x to set
class Ring:
    """A parsed ring: `header` (the clear line, newline included, as authenticated) and
    `out`, whose data is the body still sealed. A CLOSE carries its `code` (0 if none)."""

    origin: str
    mark: Mark
    header: bytes
    out: Outbound
    code: int = 0


def frame_header(origin: str, out: Outbound) -> bytes:
    """The header for a frame ring. On every message's path: kept cheap."""
    conv = out.conversation_id or ""
    seq = "" if out.seq is None else str(out.seq)
    mark = "1" if out.starts_conversation else "2" if out.ends_conversation else ""
    return f"{origin}|{conv}|{seq}|{mark}\n".encode()


def join_ring(origin: str) -> bytes:
    return f"{origin}|||J\n".encode()


def close_header(origin: str, code: int) -> bytes:
    """Close the person's sockets with `code`; the channel says whose."""
    return f"{origin}||{code}|C\n".encode()


def parse(data: bytes) -> Ring | None:
    """The ring in `data`, or None if it is not one. On every ring received: kept cheap
    (one slice each for the header and the body, no partition of the whole)."""
    end = data.find(b"\n")
    if end < 0:
        return None
    try:
        origin, conv, second, raw_mark = data[:end].decode().split("|")
        mark = _MARKS[raw_mark]
        number = int(second) if second else None
    except (ValueError, KeyError):  # UnicodeDecodeError is a ValueError
        return None
    end += 1
    if mark is _CLOSE:
        return Ring(origin, mark, data[:end], Outbound(data[end:]), code=number or 0)
    out = Outbound(data[end:], conv or None, number, mark is _STARTS, mark is _ENDS)
    return Ring(origin, mark, data[:end], out)
