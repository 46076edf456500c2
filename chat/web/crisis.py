"""Crisis resources shown to members (configured, or a default list)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.web.common import services_of

DEFAULT_CRISIS_RESOURCES = [
    {
        "name": "988 Suicide & Crisis Lifeline (US)",
        "contact": "Call or text 988",
        "description": "Free, confidential, 24/7 support.",
    },
    {
        "name": "Emergency services",
        "contact": "911 (US) / 112 (EU)",
        "description": "If you or someone else is in immediate danger.",
    },
]


async def crisis_resources(request: Request) -> Response:
    configured = services_of(request).settings.crisis_resources
    resources = DEFAULT_CRISIS_RESOURCES
    if configured:
        try:
            resources = json.loads(configured)
        except ValueError:
            resources = DEFAULT_CRISIS_RESOURCES
    return JSONResponse({"resources": resources})
