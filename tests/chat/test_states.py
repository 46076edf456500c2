"""The SQL compare-and-sets come from the lifecycle tables, and the schema agrees with them."""

from __future__ import annotations

import re

from chat.store import states
from chat.store.migrate import migrations
from matching.lifecycle import ConversationState, OfferState, RequestState


def test_moves_are_read_off_the_tables() -> None:
    assert states.Move("'assigned'", "('offered', 'waiting')") == states.REQUEST_ASSIGNED
    assert states.Move("'offered'", "('waiting')") == states.REQUEST_OFFERED
    assert states.Move("'revoked'", "('pending')") == states.OFFER_REVOKED
    assert states.Move("'ended'", "('active')") == states.CONVERSATION_ENDED


def test_the_schema_allows_exactly_the_lifecycle_states() -> None:
    schema = "\n".join(sql for _, _, sql in migrations())
    for table, enum in (
        ("requests", RequestState),
        ("offers", OfferState),
        ("conversations", ConversationState),
    ):
        block = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", schema, re.S)
        assert block is not None
        check = re.search(
            r"state\s+text NOT NULL DEFAULT '\w+'\s*CHECK \(state IN \(([^)]*)\)\)", block.group(1)
        )
        assert check is not None, table
        allowed = {v.strip().strip("'") for v in check.group(1).split(",")}
        assert allowed == {s.value for s in enum}, table
