"""chat/redis_keys.py: identities in Redis keys are keyed HMACs, never the account id."""

from __future__ import annotations

import pytest

from chat.redis_keys import identity_tag, rate_limit_key

KEY = b"k" * 32


def test_the_tag_hides_the_id_and_depends_on_key_and_role() -> None:
    tag = identity_tag(KEY, "supervisor", "sup-1")
    assert "sup-1" not in tag and len(tag) == 32
    assert tag == identity_tag(KEY, "supervisor", "sup-1")  # stable across processes
    assert tag != identity_tag(b"j" * 32, "supervisor", "sup-1")
    assert tag != identity_tag(KEY, "member", "sup-1")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert identity_tag(KEY, "ab", "c") != identity_tag(KEY, "a", "bc")


def test_rate_limit_key_names_no_account() -> None:
    name = rate_limit_key(KEY, "supervisor", "sup-secret-id", "transcript")
    assert "sup-secret-id" not in name and name.startswith("peerchat:rl:transcript:")


def test_no_key_no_tag() -> None:
    with pytest.raises(ValueError):
        identity_tag(b"", "member", "m")
