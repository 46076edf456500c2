"""What every HTTP route shares: the process's services, a JSON problem, bearer-token
authorisation, and the text checks that refuse input PostgreSQL or a log cannot hold."""

from __future__ import annotations

import unicodedata

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.services import Services
from chat.tokens import Identity, TokenRejected, verify


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class HttpRefusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def auth(request: Request, *roles: str) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpRefusal(problem(401, "a bearer token is required"))
    try:
        identity = verify(token.strip(), services_of(request).settings)
    except TokenRejected:
        raise HttpRefusal(problem(401, "the token was refused")) from None
    if services_of(request).admission.refuses(identity):  # revoked (chat/revocations.py)
        raise HttpRefusal(problem(401, "the token was refused"))
    if roles and identity.role not in roles:
        raise HttpRefusal(problem(403, "your role may not do this"))
    return identity


def has_nul(*texts: str) -> bool:
    """PostgreSQL text cannot hold NUL: refuse it up front, not with a 500 from the driver."""
    return any("\x00" in t for t in texts)


def has_control(*texts: str) -> bool:
    """Control characters (NUL, newlines, escapes) have no place in a name, tag or code."""
    return any(unicodedata.category(ch) == "Cc" for t in texts for ch in t)


def bounded_int(raw: str | None, name: str, *, default: int | None, low: int, high: int) -> int | None:
    """A query parameter that must be a plain whole number in [low, high] (ASCII digits only:
    `int()` would also take " 5", "+5", "5_0" and other scripts' digits). Out of bounds is
    refused, never clamped (PRODUCT.md §6: 400, and nothing changes)."""
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise HttpRefusal(problem(400, f"{name} must be a whole number from {low} to {high}"))
    return int(raw)
