"""Queue statistics for supervisors: now, and the last hour sampled by this process."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat import stats as stats_view
from chat import ticks
from chat.services import Services
from chat.store.db import iso
from chat.web.common import auth, services_of


async def stats(request: Request) -> Response:
    auth(request, "supervisor")
    current = await stats_view.current_stats(services_of(request))
    body = msgspec.json.decode(msgspec.json.encode(current))
    body.pop("type", None)
    return JSONResponse(body)


class StatsHistory:
    """The last hour of (time, waiting, longest wait), sampled by this process."""

    def __init__(self) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=360)

    async def run(self, services: Services, every_s: float = 10.0) -> None:
        while True:
            try:
                waiting, longest = await stats_view.waiting_now(services)
                self.samples.append(
                    {"at": iso(datetime.now(UTC)), "waiting": waiting, "longest_wait_s": longest}
                )
            except Exception:  # noqa: S110 - a missed sample is fine; the next one comes soon
                pass
            await ticks.sleep(every_s)


async def stats_history(request: Request) -> Response:
    auth(request, "supervisor")
    history: StatsHistory = request.app.state.stats_history
    return JSONResponse({"samples": list(history.samples)})
