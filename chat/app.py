"""`create_app()`: the Starlette application, its routes and middleware, with the lifespan
that opens and closes everything one `web` process holds (chat/lifespan.py); and the
factories `peerchat serve` and `peerchat dev` run."""

from __future__ import annotations

import dataclasses
import gc
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from chat import config, logs
from chat.gateway.endpoint import websocket_endpoint
from chat.lifespan import lifespan
from chat.web import (
    audit,
    boundaries,
    conversations,
    crisis,
    dev,
    feedback,
    health,
    languages,
    me,
    revocations,
    specialists,
    stats,
    transcripts,
    transfers,
)
from chat.web.common import HttpRefusal
from chat.web.pages import STATIC, index, page
from chat.web.ratelimit import SupervisorRateLimit
from chat.web.security_headers import SecurityHeaders


class PeerchatApp(Starlette):
    """Starlette, with `/ws` served without the middleware stack: a socket's ASGI call lasts
    as long as the socket, and each layer it passes through (the error and exception
    middleware, the security headers and rate limit, which let websockets through untouched,
    the router and the route's wrappers) stays parked in it, about 5 KiB of coroutine frames
    per idle socket (issue 20). The endpoint catches what it raises itself; what a route
    would add for a websocket (WebSocketException handlers) it does not use. Any other path,
    and `/ws` under a root path, goes through the stack as before."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive=receive, send=send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: config.Settings | None = None) -> Starlette:
    settings = settings or config.from_env()
    app = PeerchatApp(
        routes=[
            Route("/", index),
            Route("/healthz", health.healthz),
            Route("/readyz", health.readyz),
            Route("/metrics", health.metrics),
            Route("/api/specialists", specialists.list_specialists, methods=["GET"]),
            Route("/api/specialists/me", specialists.my_profile, methods=["GET"]),
            Route("/api/specialists/{specialist_id}", specialists.put_specialist, methods=["PUT"]),
            Route(
                "/api/specialists/{specialist_id}/status", specialists.put_specialist_status, methods=["PUT"]
            ),
            Route("/api/stats", stats.stats, methods=["GET"]),
            Route("/api/stats/history", stats.stats_history, methods=["GET"]),
            Route(
                "/api/conversations/{conversation_id}/messages",
                transcripts.conversation_messages,
                methods=["GET"],
            ),
            Route(
                "/api/conversations/{conversation_id}/transfer-targets",
                transfers.transfer_targets,
                methods=["GET"],
            ),
            Route("/api/audit", audit.audit_log, methods=["GET"]),
            Route("/api/conversations", conversations.list_conversations, methods=["GET"]),
            Route("/api/audit.csv", audit.audit_csv, methods=["GET"]),
            Route("/api/feedback", feedback.feedback_by_week, methods=["GET"]),
            Route("/api/revocations", revocations.post_revocation, methods=["POST"]),
            Route("/api/blocks", boundaries.list_blocks, methods=["GET"]),
            Route("/api/blocks/{block_id}", boundaries.lift_block, methods=["DELETE"]),
            Route("/api/reports", boundaries.list_reports, methods=["GET"]),
            Route(
                "/api/members/{member_id}/suspension",
                boundaries.put_suspension,
                methods=["PUT"],
            ),
            Route(
                "/api/members/{member_id}/suspension",
                boundaries.delete_suspension,
                methods=["DELETE"],
            ),
            Route("/api/me/export", me.export_me, methods=["GET"]),
            Route("/api/me", me.erase_me, methods=["DELETE"]),
            Route("/api/languages", languages.languages, methods=["GET"]),
            Route("/api/crisis-resources", crisis.crisis_resources, methods=["GET"]),
            page("member"),
            page("specialist"),
            page("supervisor"),
            # The dev routes exist only in dev mode: `peerchat serve` has no such routes at all.
            *(
                [Route("/dev/token", dev.dev_token, methods=["POST"]), page("login", dev_only=True)]
                if settings.dev
                else []
            ),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        # Outermost first: a 429 from the rate limit carries the security headers too.
        middleware=[Middleware(SecurityHeaders), Middleware(SupervisorRateLimit)],
        exception_handlers={HttpRefusal: _refusal},  # type: ignore[dict-item]
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def _refusal(request: Request, exc: HttpRefusal) -> Response:
    return exc.response


def asgi() -> Starlette:
    """The factory `peerchat serve` runs (`uvicorn --factory chat.app:asgi`). Never dev mode:
    `/login` and `/dev/token` answer 404 whatever PEERCHAT_DEV says (PRODUCT.md §3), though a
    malformed PEERCHAT_DEV still stops the process (config.from_env)."""
    return _served(dataclasses.replace(config.from_env(), dev=False))


def asgi_dev() -> Starlette:
    """The factory `peerchat dev` runs: dev mode as PEERCHAT_DEV says."""
    return _served(config.from_env())


def _served(settings: config.Settings) -> Starlette:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logs.install()
    app = create_app(settings)
    # Everything imported so far lives as long as the process: move it out of the collector's
    # sight, and collect the young generation less often. A profile under load showed 19 % of
    # a web process in the collector; this took 12 % off its CPU per message (performance.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return app
