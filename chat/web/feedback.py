"""Members' ratings by specialist and by week (supervisors): averages, counts and comments,
without member identities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.store import feedback
from chat.store.db import iso
from chat.web.common import auth, bounded_int, has_control, problem, services_of

WEEKS_DEFAULT = 4
WEEKS_MAX = 52


async def feedback_by_week(request: Request) -> Response:
    """GET /api/feedback?specialist=&weeks= → {"weeks":[{"specialist_id","specialist_name",
    "week","count","average","comments":[{"rating","comment","at"}]}]}: the current week and
    the `weeks` - 1 before it (UTC, weeks start on Monday)."""
    auth(request, "supervisor")
    weeks = bounded_int(
        request.query_params.get("weeks"), "weeks", default=WEEKS_DEFAULT, low=1, high=WEEKS_MAX
    )
    assert weeks is not None
    specialist = request.query_params.get("specialist") or None
    if specialist is not None and (len(specialist) > 64 or has_control(specialist)):
        return problem(400, "specialist must be 1 to 64 characters, no control characters")
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    since = monday - timedelta(weeks=weeks - 1)
    found = await feedback.by_week(services_of(request).db, since=since, specialist=specialist)
    return JSONResponse(
        {
            "since": iso(since),
            "weeks": [
                {
                    "specialist_id": w.specialist_id,
                    "specialist_name": w.specialist_name,
                    "week": w.week.isoformat(),
                    "count": w.count,
                    "average": w.average,
                    "comments": [
                        {"rating": c.rating, "comment": c.comment, "at": iso(c.at)} for c in w.comments
                    ],
                }
                for w in found
            ],
        }
    )
