"""The pages' code list (chat/static/codes.js) is the one generated from protocol/codes.py."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.codes import CloseCode, ErrorCode
from protocol.jscodes import render

CODES_JS = Path(__file__).resolve().parents[2] / "chat" / "static" / "codes.js"


def test_committed_codes_js_is_the_generated_one() -> None:
    assert CODES_JS.read_text() == render(), "run: python -m protocol.jscodes > chat/static/codes.js"


def test_every_code_is_in_the_generated_module() -> None:
    text = render()
    for error in ErrorCode:
        assert f'  {error.name}: "{error.value}",' in text
    for close in CloseCode:
        assert f"  {close.name}: {int(close)}," in text
    retryable = re.search(r"RETRYABLE_ERRORS = Object.freeze\(\[(.*)\]\)", text)
    assert retryable is not None
    assert retryable.group(1).split(", ") == [f"ErrorCode.{e.name}" for e in ErrorCode if e.retryable]
    reconnect = re.search(r"RECONNECT_CLOSES = Object.freeze\(\[(.*)\]\)", text)
    assert reconnect is not None
    assert reconnect.group(1).split(", ") == [f"CloseCode.{c.name}" for c in CloseCode if c.reconnect]
