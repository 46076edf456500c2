"""`POST /dev/token`: a token for any role, in dev mode only."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.tokens import Role, mint
from chat.web.common import problem, services_of


class DevLogin(msgspec.Struct):
    role: Role
    name: str = ""
    sub: str = ""


async def dev_token(request: Request) -> Response:
    services = services_of(request)
    if not services.settings.dev:
        return problem(404, "not found")
    try:
        login = msgspec.json.decode(await request.body(), type=DevLogin)
    except msgspec.DecodeError as exc:
        return problem(400, str(exc))
    sub = (login.sub or f"{login.role}-{msgspec.json.encode(time.time_ns()).decode()[-8:]}")[:64]
    token = mint(
        services.settings,
        sub=sub,
        role=login.role,
        name=login.name.strip()[:64] or None,
    )
    return JSONResponse({"token": token, "sub": sub})
