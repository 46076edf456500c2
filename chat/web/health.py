"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from chat.metrics import METRICS
from chat.web.common import services_of


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    services = services_of(request)
    problems = []
    try:
        await asyncio.wait_for(services.db.fetchval("SELECT 1"), 2)
    except Exception:
        problems.append("postgresql")
    try:
        await asyncio.wait_for(services.redis.ping(), 2)
    except Exception:
        problems.append("redis")
    if services.draining:
        problems.append("draining")
    if problems:
        return JSONResponse({"ready": False, "unavailable": problems}, status_code=503)
    return JSONResponse({"ready": True})


async def metrics(request: Request) -> Response:
    METRICS.sockets_live.set(len(services_of(request).hub.all_sessions()))
    METRICS.bus_down.set(0 if services_of(request).bus.healthy else 1)
    return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)
