"""chat/logs.py: query strings never reach a log line, whatever logger or handler wrote it."""

from __future__ import annotations

import io
import logging

import asyncpg
import pytest

from chat import logs
from chat.logs import DatabaseErrorScrubber, QueryStringScrubber, scrub


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


async def test_no_postgresql_error_text_reaches_a_log_line(database_url: str) -> None:
    """Review finding 4: `log.exception` (and `%s` of an error) around a failed query
    printed PostgreSQL's DETAIL, which names key values and rows. Wherever the error sits
    (the exception logged, its cause, an argument, the message) only its type and SQLSTATE
    are left."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE t (k text PRIMARY KEY)")
        key = "-".join(("alice", "secret"))  # not spelled out: traceback lines quote the source
        await conn.execute("INSERT INTO t VALUES ($1)", key)
        with pytest.raises(asyncpg.UniqueViolationError) as caught:
            await conn.execute("INSERT INTO t VALUES ($1)", key)
    finally:
        await conn.close()
    error = caught.value
    assert key in str(error)  # what would have leaked
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("test.logs.database")
    logger.propagate = False
    logger.addHandler(handler)
    root_handlers = list(logging.getLogger().handlers)
    try:
        logs.install()
        handler.addFilter(DatabaseErrorScrubber())  # as install() does for the root's handlers
        try:
            raise error
        except asyncpg.PostgresError:
            logger.exception("socket failed")
        try:
            try:
                raise error
            except asyncpg.PostgresError as exc:
                raise RuntimeError("wrapped") from exc
        except RuntimeError:
            logger.exception("bus handler failed")
        logger.warning("query failed: %s", error)
        logger.error(error)
    finally:
        logger.removeHandler(handler)
        for h in logging.getLogger().handlers:
            if h not in root_handlers:
                logging.getLogger().removeHandler(h)
    text = out.getvalue()
    assert key not in text and "DETAIL" not in text, text
    assert text.count("UniqueViolationError") >= 4 and "SQLSTATE 23505" in text
    assert "Traceback" in text and "wrapped" in text, "the traceback itself stays"


def test_install_puts_the_database_filter_on_every_handler() -> None:
    handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logs.install()
        assert any(isinstance(f, DatabaseErrorScrubber) for f in handler.filters)
        assert any(isinstance(f, DatabaseErrorScrubber) for f in root.filters)
    finally:
        root.removeHandler(handler)
