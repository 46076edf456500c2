"""No query string reaches a log line (PRODUCT.md §6; issue 14).

uvicorn writes request lines through its *error* logger even with the access log off
(`"WebSocket /ws?token=…" [accepted]`, the 403 of a refused handshake), and websockets
logs the raw request line at debug level. A query string may hold a token, a reason or a
conversation id, so every record that passes through uvicorn's loggers or any handler of
the process is scrubbed: `/path?anything` becomes `/path?…`. The filter sits both on the
loggers uvicorn writes to (records logged there, whatever handler an operator configures)
and on every handler (records propagated from any other logger).

Call `install()` once logging is configured (the app factory does).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

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


_FILTER = QueryStringScrubber()


def install() -> None:
    """Idempotent. Covers the handlers present now: call it after logging is configured."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in LOGGERS)]
    for logger in loggers:
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
