"""The published schema is the generated one, and docs/protocol.md's examples obey it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from protocol import frames as f
from protocol.schema import render, schema

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _examples() -> list[dict[str, Any]]:
    text = (DOCS / "protocol.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def test_committed_schema_is_the_generated_one() -> None:
    assert (DOCS / "protocol.schema.json").read_text() == render(), "run: python -m protocol.schema"


def test_every_example_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    examples = _examples()
    assert len(examples) >= 30
    for example in examples:
        errors = list(validator.iter_errors(example))
        assert not errors, (example["type"], errors[0].message)


def test_the_schema_rejects_what_the_decoder_rejects() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    assert not validator.is_valid({"type": "send", "conversation_id": "c"})
    assert not validator.is_valid({"type": "teleport"})


@pytest.mark.parametrize("frame_type", [*f.CLIENT_FRAMES, *f.SERVER_FRAMES], ids=lambda t: t.__name__)
def test_every_frame_has_an_example(frame_type: type[f.Frame]) -> None:
    tag = frame_type.__struct_config__.tag
    client = frame_type in f.CLIENT_FRAMES
    validator = jsonschema.Draft202012Validator(
        {**schema(), "oneOf": [{"$ref": f"#/$defs/{frame_type.__name__}"}]}
    )
    matching = [e for e in _examples() if e["type"] == tag and validator.is_valid(e)]
    assert matching, (
        f"docs/protocol.md has no example of the {'client' if client else 'server'} `{tag}` frame"
    )
