"""chat/logs.py: query strings never reach a log line, whatever logger or handler wrote it."""

from __future__ import annotations

import io
import logging

import pytest

from chat.logs import QueryStringScrubber, scrub


@pytest.mark.parametrize(
    "line, clean",
    [
        (
            '127.0.0.1:5 - "WebSocket /ws?token=eyJabc" [accepted]',
            '127.0.0.1:5 - "WebSocket /ws?…" [accepted]',
        ),
        (
            "GET /api/conversations/c1/messages?reason=why&limit=5 HTTP/1.1",
            "GET /api/conversations/c1/messages?… HTTP/1.1",
        ),
        ("see http://host:8000/member?token=x then", "see http://host:8000/member?… then"),
        ("no query here /ws and a question? yes", "no query here /ws and a question? yes"),
        ("/a?x=1 /b?y=2", "/a?… /b?…"),
    ],
)
def test_scrub(line: str, clean: str) -> None:
    assert scrub(line) == clean


def test_the_filter_rewrites_arguments_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(QueryStringScrubber())
    logger = logging.getLogger("test.logs.scrubber")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning('%s - "WebSocket %s" 403', "1.2.3.4:5", "/ws?token=SECRET1")
        try:
            raise ValueError("bad path /ws?token=SECRET2")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert '"WebSocket /ws?…" 403' in text and "bad path /ws?…" in text
    assert "SECRET" not in text


def test_arguments_keep_their_shape_for_uvicorns_access_formatter() -> None:
    """uvicorn's AccessFormatter unpacks `args` as (client, method, path, version, status):
    flattening them into the message broke every access line ("Logging error")."""
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/member?token=SECRET", "1.1", 200),
        None,
    )
    assert QueryStringScrubber().filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert line == '1.2.3.4:5 - "GET /member?… HTTP/1.1" 200 OK'
