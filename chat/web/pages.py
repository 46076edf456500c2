"""The pages (static HTML and assets). The security headers every HTTP response carries
are in chat/web/security_headers.py."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent.parent / "static"


def page(name: str, dev_only: bool = False) -> Route:
    async def page(request: Request) -> Response:
        if dev_only and not request.app.state.services.settings.dev:
            return Response("not found", status_code=404)
        return FileResponse(STATIC / f"{name}.html", media_type="text/html")

    return Route(f"/{name}", page, methods=["GET"])


async def index(request: Request) -> Response:
    return RedirectResponse("/login" if request.app.state.services.settings.dev else "/member")
