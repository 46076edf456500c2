"""The JSON Schema of protocol v1, derived from the frame types themselves.

`python -m protocol.schema` prints it; docs/protocol.schema.json is its committed copy,
and a test fails when the two differ, so the published schema cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from protocol.frames import ClientFrame, ServerFrame


def schema() -> dict[str, Any]:
    (client, server), defs = msgspec.json.schema_components([ClientFrame, ServerFrame])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "peerchat protocol v1",
        "description": "Every WebSocket text frame is one JSON object with a `type`.",
        "$defs": {**defs, "ClientFrame": client, "ServerFrame": server},
        "anyOf": [{"$ref": "#/$defs/ClientFrame"}, {"$ref": "#/$defs/ServerFrame"}],
    }


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
