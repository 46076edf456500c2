"""chat/tokens.py: the allow-list comes from configuration, required claims are enforced,
and every refusal is a `TokenRejected` whose message never holds the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chat.config import Settings
from chat.tokens import Identity, TokenRejected, mint, verify

SECRET = "unit-secret-" + "s" * 40
HS = Settings(database_url="-", redis_url="-", jwt_secret=SECRET)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RS = Settings(database_url="-", redis_url="-", jwt_public_key=_pem(RSA_KEY))
ES = Settings(database_url="-", redis_url="-", jwt_public_key=_pem(EC_KEY))


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "u1",
        "role": "member",
        "iss": "peerchat",
        "aud": "peerchat",
        "iat": now,
        "exp": now + 60,
    }
    for key, value in overrides.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    return claims


def _hs(**overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), SECRET, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def test_a_minted_token_verifies() -> None:
    now = int(time.time())
    tok = mint(HS, sub="alice", role="specialist", name="  Alice  ", now=now, ttl_s=600)
    assert verify(tok, HS) == Identity(
        user_id="alice", role="specialist", name="Alice", issued_at=now, expires_at=now + 600
    )


def test_default_names_never_show_a_members_account_id() -> None:
    assert verify(mint(HS, sub="acct-1", role="member"), HS).name == "Member"
    assert verify(mint(HS, sub="spec-1", role="specialist"), HS).name == "spec-1"
    assert verify(_hs(name="   "), HS).name == "Member"
    assert verify(_hs(name="n" * 100), HS).name == "n" * 64


@pytest.mark.parametrize(
    "why, tok",
    [
        ("alg none", _raw({"alg": "none", "typ": "JWT"}, _claims(), None)),
        ("alg None spelled oddly", _raw({"alg": "None"}, _claims(), None)),
        ("wrong key", jwt.encode(_claims(), "other-" + "k" * 40, algorithm="HS256")),
        ("hs384 with the right key", jwt.encode(_claims(), SECRET, algorithm="HS384")),
        ("expired", _hs(iat=int(time.time()) - 120, exp=int(time.time()) - 60)),
        ("nbf in the future", _hs(nbf=int(time.time()) + 600)),
        ("iat in the future", _hs(iat=int(time.time()) + 600, exp=int(time.time()) + 1200)),
        ("wrong iss", _hs(iss="evil")),
        ("wrong aud", _hs(aud="evil")),
        ("missing sub", _hs(sub=None)),
        ("missing role", _hs(role=None)),
        ("missing iss", _hs(iss=None)),
        ("missing aud", _hs(aud=None)),
        ("missing iat", _hs(iat=None)),
        ("missing exp", _hs(exp=None)),
        ("unknown role", _hs(role="admin")),
        ("role of another case", _hs(role="Member")),
        ("role as a list", _hs(role=["member"])),
        ("role as an object", _hs(role={"name": "member"})),
        ("empty sub", _hs(sub="")),
        ("sub too long", _hs(sub="s" * 65)),
        ("sub not a string", _hs(sub=7)),
        ("name not a string", _hs(name=["x"])),
        ("exp not a number", _hs(exp="tomorrow")),
        ("a lifetime over a day", _hs(exp=int(time.time()) + 86401)),
        ("a hundred years", _hs(exp=int(time.time()) + 100 * 365 * 86400)),
        ("NUL in sub", _hs(sub="member\x00x")),
        ("escape in sub", _hs(sub="\x1b[2Jmember")),
        ("newline in sub", _hs(sub="member\nroot")),
        ("C1 control in sub", _hs(sub="member\x85")),
        ("lone surrogate in sub", _hs(sub="member\ud800")),
        ("NUL in name", _hs(name="Sam\x00")),
        ("newline in name", _hs(name="Sam\nSupervisor")),
        ("DEL in name", _hs(name="Sam\x7f")),
        ("payload not an object", _raw({"alg": "HS256"}, [1, 2], SECRET.encode())),  # type: ignore[arg-type]
        ("garbage", "garbage"),
        ("empty", ""),
        ("three dots of nothing", ".."),
        ("bad base64", "!!!.???.***"),
    ],
)
def test_refused(why: str, tok: str) -> None:
    with pytest.raises(TokenRejected) as refused:
        verify(tok, HS)
    if len(tok) > 10:
        assert tok not in str(refused.value)
        assert tok.split(".")[1] not in str(refused.value)


def test_exp_exactly_now_is_expired() -> None:
    # No leeway at `exp`: a socket is closed at that instant, so the same token cannot open
    # another one there (PRODUCT.md §4).
    now = int(time.time())
    assert verify(_hs(iat=now - 70, exp=now + 60), HS, now=now + 59.9).user_id == "u1"
    for at in (now + 60, now + 61, now + 62):
        with pytest.raises(TokenRejected):
            verify(_hs(iat=now - 70, exp=now + 60), HS, now=at)


def test_iat_keeps_a_few_seconds_of_clock_skew() -> None:
    now = int(time.time())
    assert verify(_hs(iat=now + 3, exp=now + 60), HS).user_id == "u1"


def test_the_lifetime_limit_is_configuration() -> None:
    now = int(time.time())
    tok = _hs(iat=now, exp=now + 86400)
    assert verify(tok, HS).user_id == "u1", "exactly the limit is allowed"
    short = Settings(database_url="-", redis_url="-", jwt_secret=SECRET, max_token_ttl_s=60)
    assert verify(_hs(iat=now, exp=now + 60), short).user_id == "u1"
    with pytest.raises(TokenRejected, match="PEERCHAT_MAX_TOKEN_TTL_S"):
        verify(_hs(iat=now, exp=now + 61), short)


def test_display_names_are_normalised() -> None:
    assert verify(_hs(name="\u202eSupervisor Lee"), HS).name == "Supervisor Lee"
    assert verify(_hs(name="Sa\u200bm\u2066"), HS).name == "Sam"
    assert verify(_hs(name="\uff33\uff41\uff4d"), HS).name == "Sam"
    assert verify(_hs(name="\u202e\u200b"), HS).name == "Member", "nothing visible: the default"
    spec = verify(_hs(role="specialist", sub="spec-9", name="\u2067\u200d"), HS)
    assert spec.name == "spec-9"


def test_rs256_and_es256_with_a_public_key() -> None:
    rs = jwt.encode(_claims(sub="r"), RSA_KEY, algorithm="RS256")
    es = jwt.encode(_claims(sub="e"), EC_KEY, algorithm="ES256")
    assert verify(rs, RS).user_id == "r"
    assert verify(es, ES).user_id == "e"
    # A key of one kind never verifies the other algorithm.
    for tok, settings in ((es, RS), (rs, ES)):
        with pytest.raises(TokenRejected):
            verify(tok, settings)


def test_the_public_key_is_not_an_hmac_secret() -> None:
    assert RS.jwt_public_key is not None
    forged = _raw({"alg": "HS256", "typ": "JWT"}, _claims(), RS.jwt_public_key.encode())
    with pytest.raises(TokenRejected):
        verify(forged, RS)
    # Nor is an HS256 token with the right shared secret accepted once a public key is configured.
    with pytest.raises(TokenRejected):
        verify(_hs(), RS)
    with pytest.raises(TokenRejected):
        verify(_raw({"alg": "none"}, _claims(), None), RS)


def test_another_providers_key_is_refused() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(TokenRejected):
        verify(jwt.encode(_claims(), other, algorithm="RS256"), RS)


def test_issuer_and_audience_come_from_settings() -> None:
    custom = Settings(
        database_url="-", redis_url="-", jwt_secret=SECRET, jwt_issuer="idp", jwt_audience="chat"
    )
    assert verify(mint(custom, sub="a", role="supervisor"), custom).role == "supervisor"
    with pytest.raises(TokenRejected):
        verify(mint(HS, sub="a", role="supervisor"), custom)
    with pytest.raises(TokenRejected):
        verify(jwt.encode(_claims(iss="idp", aud=["other"]), SECRET, algorithm="HS256"), custom)
    assert verify(jwt.encode(_claims(iss="idp", aud=["other", "chat"]), SECRET, algorithm="HS256"), custom)


def test_mint_needs_a_shared_secret() -> None:
    with pytest.raises(TokenRejected):
        mint(RS, sub="a", role="member")


def test_mint_sets_every_required_claim() -> None:
    now = 1_700_000_000
    claims = jwt.decode(
        mint(HS, sub="a", role="member", ttl_s=30, now=now),
        SECRET,
        algorithms=["HS256"],
        audience="peerchat",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "sub": "a",
        "role": "member",
        "iss": "peerchat",
        "aud": "peerchat",
        "iat": now,
        "exp": now + 30,
    }
