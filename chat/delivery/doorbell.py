"""The doorbell's wire format: what one process publishes on a Redis channel for the others
(chat/delivery/hub.py rings; chat/bus_redis.py carries the bytes).

A ring is one ASCII header line, then the body:

    {origin}|{field1}|{field2}|{mark}\\n{body}

- ``origin``: the sending process's hub id (12 hex digits); a process drops its own rings.
- ``mark`` (a `Mark`) says what the ring is and what the two fields hold:

  ===========  ==================  ================  =================================
  mark         field1              field2            body
  ===========  ==================  ================  =================================
  ``""``       conversation or ""  seq or ""         an encoded frame for the sockets
  ``"1"``      conversation        ""                ``conversation_started``
  ``"2"``      conversation        ""                ``conversation_ended``
  ``"J"``      ""                  ""                none: a process joined the channel
  ``"C"``      role                close code        none: close that role's sockets
  ===========  ==================  ================  =================================

Fields never hold ``|`` or a newline: origins are hex, conversation ids are server-made
hex, roles and codes are from closed sets. A ring that does not parse is dropped (the
repair by sequence covers anything a lost ring carried).
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


@dataclass(frozen=True, slots=True)
class Ring:
    """A parsed ring. Frame rings (FRAME, STARTS, ENDS) carry `out`; a CLOSE carries `role`
    and `code` (0 if the ring named none)."""

    origin: str
    mark: Mark
    out: Outbound
    role: str = ""
    code: int = 0


def frame_ring(origin: str, out: Outbound) -> bytes:
    """The ring for a frame: header and `out.data`. On every message's path: kept cheap."""
    conv = out.conversation_id or ""
    seq = "" if out.seq is None else str(out.seq)
    mark = "1" if out.starts_conversation else "2" if out.ends_conversation else ""
    return f"{origin}|{conv}|{seq}|{mark}\n".encode() + out.data


def join_ring(origin: str) -> bytes:
    return f"{origin}|||J\n".encode()


def close_ring(origin: str, role: str, code: int) -> bytes:
    return f"{origin}|{role}|{code}|C\n".encode()


def parse(data: bytes) -> Ring | None:
    """The ring in `data`, or None if it is not one."""
    head, sep, body = data.partition(b"\n")
    if not sep:
        return None
    try:
        origin, first, second, raw_mark = head.decode().split("|")
        mark = _MARKS[raw_mark]
        number = int(second) if second else None
    except (ValueError, KeyError):  # UnicodeDecodeError is a ValueError
        return None
    if mark is Mark.CLOSE:
        return Ring(origin, mark, Outbound(b""), role=first, code=number or 0)
    out = Outbound(body, first or None, number, mark is Mark.STARTS, mark is Mark.ENDS)
    return Ring(origin, mark, out)
