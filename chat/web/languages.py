"""The pages' languages: one catalogue file per language in chat/static/i18n/ (docs/web.md
"Languages"), so adding a language is adding its file; this lists the files there."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.web.pages import STATIC

_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


def available() -> list[str]:
    """Language codes with a catalogue, English first."""
    codes = sorted(p.stem for p in (STATIC / "i18n").glob("*.js") if _CODE.fullmatch(p.stem))
    return sorted(codes, key=lambda c: c != "en")


async def languages(request: Request) -> Response:
    """GET /api/languages → {"languages": ["en", "es", …]} (no sign-in needed: the login
    page and a signed-out page are translated too)."""
    return JSONResponse({"languages": available()}, headers={"Cache-Control": "max-age=300"})
