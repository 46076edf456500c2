"""No query string reaches a log line (PRODUCT.md §6; issue 14).

uvicorn writes request lines through its *error* logger even with the access log off
(`"WebSocket /ws?token=…" [accepted]`, the 403 of a refused handshake), and websockets
logs the raw request line at debug level. A query string may hold a token, a reason or a
conversation id, so every record that passes through uvicorn's loggers or any handler of
the process is scrubbed: `/path?anything` becomes `/path?…`. The filter sits both on the
loggers uvicorn writes to (records logged there, whatever handler an operator configures)
and on every handler (records propagated from any other logger).

No PostgreSQL error text reaches a log line either: an asyncpg `PostgresError` carries the
server's message and `DETAIL`, which can hold key values and row contents (`Key
(member_id)=(…) already exists`, `Failing row contains (…)`). Wherever one is logged (an
argument, the message, or anywhere in the chain of a logged exception) it is reduced to
its type and SQLSTATE; the traceback lines stay.

Call `install()` once logging is configured (the app factory does).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping

import asyncpg

# A path (it starts with a slash), then `?` and everything up to a space or a quote.
_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")
MARK = "?…"
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")


def scrub(text: str) -> str:
    return _QUERY.sub(lambda m: m.group(1) + MARK, text) if "?" in text else text


class QueryStringScrubber(logging.Filter):
    """Rewrites a record's message (and its traceback text) without query strings; drops
    nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Scrub the arguments one by one, keeping their shape: uvicorn's access formatter
        # unpacks `record.args` as a tuple of five.
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: scrub(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        clean = scrub(message)
        if clean != message:  # a query only the formatting put together (or a non-str argument)
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def reduced(exc: asyncpg.PostgresError) -> str:
    """What of a PostgreSQL error may be logged: its type and SQLSTATE, never its text."""
    return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"


def _withhold(exc: BaseException | None, te: traceback.TracebackException | None, seen: set[int]) -> bool:
    """Blank the text of every PostgresError in the chain of `exc` (mirrored by `te`);
    whether there was one."""
    if exc is None or te is None or id(exc) in seen:
        return False
    seen.add(id(exc))
    found = isinstance(exc, asyncpg.PostgresError)
    if isinstance(exc, asyncpg.PostgresError):
        # The line `ExcType: text` is built from `_str`; a public way to replace it does not exist.
        te._str = f"SQLSTATE {exc.sqlstate} (its text is not logged)"  # type: ignore[attr-defined]
        te.__notes__ = None
    found |= _withhold(exc.__cause__, te.__cause__, seen)
    found |= _withhold(exc.__context__, te.__context__, seen)
    return found


class DatabaseErrorScrubber(logging.Filter):
    """Reduces every asyncpg PostgresError in a record to its type and SQLSTATE; drops
    nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, asyncpg.PostgresError):
            record.msg = reduced(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                reduced(a) if isinstance(a, asyncpg.PostgresError) else a for a in record.args
            )
        elif isinstance(record.args, Mapping):
            record.args = {
                k: reduced(v) if isinstance(v, asyncpg.PostgresError) else v for k, v in record.args.items()
            }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            te = traceback.TracebackException.from_exception(exc)
            if _withhold(exc, te, set()):
                record.exc_text = "".join(te.format()).rstrip("\n")
        return True


_FILTER = QueryStringScrubber()
_DB_FILTER = DatabaseErrorScrubber()


def install() -> None:
    """Idempotent. Covers the handlers present now: call it after logging is configured."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in LOGGERS)]
    for logger in loggers:
        for where in (logger, *logger.handlers):
            for f in (_DB_FILTER, _FILTER):  # the query scrubber then scrubs what is left
                if f not in where.filters:
                    where.addFilter(f)
