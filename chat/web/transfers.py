"""`GET /api/conversations/{id}/transfer-targets` (PRODUCT.md §9): whom the transfer dialog
may offer a conversation to. Its specialist or a supervisor; never a member."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.store import conversations, transfer_reads
from chat.web.common import HttpRefusal, auth, has_control, problem, services_of


async def transfer_targets(request: Request) -> Response:
    identity = auth(request, "specialist", "supervisor")
    services = services_of(request)
    conversation_id = request.path_params["conversation_id"]
    if not 0 < len(conversation_id) <= 64 or has_control(conversation_id):
        raise HttpRefusal(problem(404, "no such conversation"))
    conv = await conversations.get(services.db, conversation_id)
    if conv is None:
        raise HttpRefusal(problem(404, "no such conversation"))
    if identity.role == "specialist" and conv.specialist_id != identity.user_id:
        raise HttpRefusal(problem(403, "not your conversation"))
    if conv.state != "active":
        raise HttpRefusal(problem(409, "this conversation has ended"))
    online = await services.presence.online_specialists(time.time())
    found = await transfer_reads.targets(services.db, conv, identity.user_id, online)
    return JSONResponse(
        {
            "specialists": [
                {
                    "id": t.id,
                    "name": t.name,
                    "languages": t.languages,
                    "tags": t.tags,
                    "active": t.active_chats,
                    "max_chats": t.max_chats,
                    "status": t.status,
                }
                for t in found
            ]
        }
    )
