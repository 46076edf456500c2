"""chat/redis_keys.py: an identity's Redis name is stable, keyed, role-aware and opaque."""

from __future__ import annotations

from chat.config import Settings
from chat.redis_keys import identity_key, namer

A = Settings(database_url="-", redis_url="-", jwt_secret="a" * 32)
B = Settings(database_url="-", redis_url="-", jwt_secret="a" * 32, redis_key=b"b" * 32)


def test_stable_and_opaque() -> None:
    key = identity_key(A, "member", "member-4711")
    assert key == identity_key(A, "member", "member-4711")
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    assert "4711" not in key


def test_role_and_sub_both_count() -> None:
    assert identity_key(A, "member", "x") != identity_key(A, "specialist", "x")
    assert identity_key(A, "member", "x") != identity_key(A, "member", "y")
    # The separator keeps the pair unambiguous.
    assert identity_key(A, "member", "a\x00b") != identity_key(A, "member\x00a", "b")


def test_the_key_matters() -> None:
    assert identity_key(A, "member", "x") != identity_key(B, "member", "x")


def test_a_namer_names_as_identity_key_does() -> None:
    # Every process's presence, caps and channels must meet at the same names, whichever
    # of the two spelled them (the namer reads the settings' key once).
    for settings in (A, B):
        name = namer(settings)
        for role, sub in (("member", "member-4711"), ("specialist", "s1"), ("supervisor", "")):
            assert name(role, sub) == identity_key(settings, role, sub)
    assert namer(A)("member", "x") != namer(B)("member", "x")
