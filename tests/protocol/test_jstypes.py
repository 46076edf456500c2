"""The pages' frame types (protocol.jstypes, written by `make lint` for tsc) cover every frame."""

from __future__ import annotations

import re

import pytest

from protocol import frames as f
from protocol.jstypes import render


@pytest.mark.parametrize("frame_type", [*f.CLIENT_FRAMES, *f.SERVER_FRAMES], ids=lambda t: t.__name__)
def test_every_frame_is_declared_under_its_tag(frame_type: type[f.Frame]) -> None:
    text = render()
    name = frame_type.__name__
    tag = frame_type.__struct_config__.tag
    body = re.search(rf"^export interface {name} \{{\n(.*?)\n\}}", text, re.M | re.S)
    assert body, name
    assert f'  "type": "{tag}";' in body.group(1).splitlines()
    union = "ClientFrames" if frame_type in f.CLIENT_FRAMES else "ServerFrames"
    by_tag = re.search(rf"^export interface {union} \{{\n(.*?)\n\}}", text, re.M | re.S)
    assert by_tag and f'  "{tag}": {name};' in by_tag.group(1).splitlines()


def test_required_and_optional_fields_follow_the_schema() -> None:
    text = render()
    message = re.search(r"^export interface Message \{\n(.*?)\n\}", text, re.M | re.S)
    assert message
    lines = message.group(1).splitlines()
    assert '  "seq": number;' in lines
    assert '  "body": string;' in lines
    assert '  "ref"?: string | null;' in lines
