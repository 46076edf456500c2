"""Typed ids (issue 13): distinct types for the strings that name things, so a request id
cannot be passed where a conversation id is expected without mypy saying so.

At run time each is a plain `str` (`typing.NewType`): nothing on the wire or in PostgreSQL
changes. They are adopted at module boundaries (the stored rows chat/store/ returns), not
threaded through every call site: a value read from a row carries its type onward for free,
and a `str` from elsewhere is named once, where it enters, with e.g. `RequestId(frame.request_id)`.
"""

from __future__ import annotations

from typing import NewType

ConversationId = NewType("ConversationId", str)
RequestId = NewType("RequestId", str)
OfferId = NewType("OfferId", str)
# A person's `sub`: the account id from their token. A person is the pair (role, sub)
# (chat/people.py); this is the second half, never enough alone to name someone.
UserId = NewType("UserId", str)
