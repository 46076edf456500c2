"""A conversation's messages over HTTP: its participants', or a supervisor's with a reason
(audited before the transcript leaves)."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat import views
from chat.people import Person
from chat.privacy import access
from chat.store import audit, conversations
from chat.web.common import auth, bounded_int, has_nul, problem, services_of

# The reason for a supervisor's transcript read: preferred in this header, as proxies and
# load balancers log query strings (PRODUCT.md §6); `?reason=` still works.
REASON_HEADER = "x-peerchat-reason"
MAX_REASON_CHARS = 500
MAX_LIMIT = 500
MAX_SEQ = 2**63 - 1


async def conversation_messages(request: Request) -> Response:
    identity = auth(request)
    services = services_of(request)
    conversation_id = request.path_params["conversation_id"]
    # Out of bounds is refused, not clamped (PRODUCT.md §6), before anything is read or audited.
    after = bounded_int(request.query_params.get("after_seq"), "after_seq", default=0, low=0, high=MAX_SEQ)
    limit = bounded_int(request.query_params.get("limit"), "limit", default=MAX_LIMIT, low=1, high=MAX_LIMIT)
    assert after is not None and limit is not None
    conv = None if has_nul(conversation_id) else await conversations.get(services.db, conversation_id)
    if identity.role == "supervisor":
        reason = _reason(request)
        if not reason:
            return problem(403, "a supervisor must give a reason to read a transcript")
        if has_nul(reason):
            return problem(400, "a reason may not contain NUL characters")
        if len(reason) > MAX_REASON_CHARS:
            return problem(400, f"a reason is at most {MAX_REASON_CHARS} characters")
        if conv is None:
            return problem(404, "no such conversation")
        # The audit row is written before the transcript leaves: no trace, no read.
        await audit.record_by(
            services.db,
            identity,
            action="read_transcript",
            conversation_id=conv.id,
            reason=reason,
        )
    elif conv is None or not conv.has(Person(identity.role, identity.user_id)):
        return problem(404, "no such conversation")
    elif not access.may_read_conversation(
        identity.role, conv, datetime.now(UTC), access.windows_of(services.settings)
    ):
        return problem(403, "forbidden: this conversation ended too long ago for you to read it")
    stored = await conversations.messages_after(services.db, conv.id, after, limit)
    body = {"conversation_id": conv.id, "messages": [msgspec.to_builtins(views.message(m)) for m in stored]}
    return JSONResponse(body)


def _reason(request: Request) -> str:
    """The header wins when both are given; a blank header does not fall back to the query
    (a client that sent the header meant it)."""
    header = request.headers.get(REASON_HEADER)
    if header is not None:
        # Header values arrive as latin-1 bytes; a client sends UTF-8 percent-encoded or
        # plain ASCII. Decode percent-escapes so non-ASCII reasons survive.
        return urllib.parse.unquote(header).strip()
    return (request.query_params.get("reason") or "").strip()
