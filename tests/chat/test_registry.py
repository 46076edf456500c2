"""What a failed handler tells the client and the log (chat/handlers/registry.py, `failure`)."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from chat.handlers.registry import Refuse, failure
from protocol import frames as f
from protocol.codes import ErrorCode


def test_a_database_refusal_is_logged_without_the_row_it_refused(caplog: pytest.LogCaptureFixture) -> None:
    exc = asyncpg.exceptions.CheckViolationError("new row violates check constraint")
    exc.detail = "Failing row contains (c1, 7, m1, member, Sam, x1, I relapsed last night, ...)."
    with caplog.at_level(logging.INFO, logger="peerchat.dispatch"):
        reply = failure(f.Send, exc, "r1")
    assert (reply.code, reply.ref) == ("internal", "r1")
    assert "CheckViolationError" in caplog.text and "23514" in caplog.text
    assert "relapsed" not in caplog.text and "Failing row" not in caplog.text


def test_an_outage_is_unavailable_and_a_refusal_keeps_its_code(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="peerchat.dispatch"):
        down = failure(f.Send, ConnectionError("the appender stopped"), None)
        refused = failure(f.End, Refuse(ErrorCode.FORBIDDEN, "not yours"), "r")
    assert down.code == "unavailable"
    assert (refused.code, refused.message, refused.ref) == ("forbidden", "not yours", "r")
