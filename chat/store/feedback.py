"""Members' ratings as the supervisor sees them: by specialist and by week, averages, counts
and comments, and nothing that says which member wrote them (no alias, no member id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from chat.store.db import Db

# Comments shown per specialist and week, newest first; the counts and averages cover all.
COMMENTS_PER_WEEK = 50


@dataclass(frozen=True, slots=True)
class Comment:
    rating: int
    comment: str
    at: datetime


@dataclass(frozen=True, slots=True)
class WeekOfFeedback:
    specialist_id: str
    specialist_name: str
    week: date  # the Monday (UTC) the week starts on
    count: int
    average: float
    comments: list[Comment]


async def by_week(db: Db, *, since: datetime, specialist: str | None = None) -> list[WeekOfFeedback]:
    """Feedback given since `since`, grouped by the conversation's specialist and the ISO
    week (UTC) it was given in; newest week first, then by specialist name."""
    rows = await db.fetch(
        """SELECT c.specialist_id,
                  (array_agg(c.specialist_name ORDER BY f.created_at DESC))[1] AS specialist_name,
                  (date_trunc('week', f.created_at AT TIME ZONE 'UTC'))::date AS week,
                  count(*)::int AS count,
                  avg(f.rating)::float8 AS average,
                  (array_agg(f.rating ORDER BY f.created_at DESC)
                      FILTER (WHERE f.comment IS NOT NULL AND btrim(f.comment) <> ''))[1:$3] AS ratings,
                  (array_agg(f.comment ORDER BY f.created_at DESC)
                      FILTER (WHERE f.comment IS NOT NULL AND btrim(f.comment) <> ''))[1:$3] AS comments,
                  (array_agg(f.created_at ORDER BY f.created_at DESC)
                      FILTER (WHERE f.comment IS NOT NULL AND btrim(f.comment) <> ''))[1:$3] AS ats
           FROM feedback f JOIN conversations c ON c.id = f.conversation_id
           WHERE f.created_at >= $1 AND ($2::text IS NULL OR c.specialist_id = $2::text)
           GROUP BY c.specialist_id, week
           ORDER BY week DESC, specialist_name, c.specialist_id""",
        since,
        specialist,
        COMMENTS_PER_WEEK,
    )
    return [
        WeekOfFeedback(
            specialist_id=r["specialist_id"],
            specialist_name=r["specialist_name"],
            week=r["week"],
            count=r["count"],
            average=round(r["average"], 2),
            comments=[
                Comment(rating, comment, at)
                for rating, comment, at in zip(
                    r["ratings"] or [], r["comments"] or [], r["ats"] or [], strict=True
                )
            ],
        )
        for r in rows
    ]
