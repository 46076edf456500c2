"""chat/seal.py: what one process seals, every process holding the key opens, and nothing
else does: not another key, not an altered payload, not one moved to another context."""

from __future__ import annotations

from chat.seal import Sealer, seal_key

KEY = seal_key(b"k" * 32)
CONTEXT = b"pc:user:0123|origin|c1|4|"


def test_another_process_opens_it_and_it_hides_the_body() -> None:
    sender, receiver = Sealer(KEY), Sealer(KEY)
    body = b'{"type":"message","body":"I relapsed last night"}'
    sealed = sender.seal(body, CONTEXT)
    assert b"relapsed" not in sealed
    assert receiver.open(sealed, CONTEXT) == body
    assert sender.open(sealed, CONTEXT) == body


def test_no_nonce_repeats_within_a_process_and_no_subkey_across_processes() -> None:
    one, two = Sealer(KEY), Sealer(KEY)
    heads = {one.seal(b"x", CONTEXT)[:33] for _ in range(1000)}
    assert len(heads) == 1000
    assert one.seal(b"x", CONTEXT)[5:21] != two.seal(b"x", CONTEXT)[5:21], "each process its own salt"


def test_a_wrong_key_an_alteration_or_another_context_opens_nothing() -> None:
    sealed = Sealer(KEY).seal(b"secret", CONTEXT)
    assert Sealer(seal_key(b"j" * 32)).open(sealed, CONTEXT) is None
    assert Sealer(KEY).open(sealed, b"pc:user:other|origin|c1|4|") is None
    for at in (0, 3, 10, 30, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[at] ^= 1
        assert Sealer(KEY).open(bytes(altered), CONTEXT) is None
    for junk in (b"", b"\x01", sealed[:40], b"{}" * 40):
        assert Sealer(KEY).open(junk, CONTEXT) is None


def test_the_seal_key_is_derived_not_reused() -> None:
    assert seal_key(b"k" * 32) != b"k" * 32
    assert len(seal_key(b"k" * 32)) == 32
