"""JWT verification and, for development, minting (PRODUCT.md §4).

The algorithm allow-list comes from configuration, never from the token's header, so
`alg: none` and the HS256-signed-with-the-public-key trick are refused by PyJWT itself.
On top of PyJWT: a token is expired at `exp` itself (no leeway: a socket is closed at that
instant, so a token there cannot open one); a lifetime `exp - iat` over
PEERCHAT_MAX_TOKEN_TTL_S is refused; a `sub` or `name` with control characters is refused;
the name is normalised for display (protocol/names.py). Revocations are checked by the
callers (chat/revocations.py), which hold the state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

from chat.config import Settings
from protocol.names import display_name, has_refused_characters

Role = Literal["member", "specialist", "supervisor"]
ROLES: frozenset[str] = frozenset({"member", "specialist", "supervisor"})
REQUIRED_CLAIMS = ["sub", "role", "iss", "aud", "iat", "exp"]


class TokenRejected(Exception):
    """The token cannot be trusted. The message is safe to log: it never holds the token."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    role: Role
    name: str
    issued_at: float = 0.0  # the token's `iat`, seconds since the epoch
    expires_at: float = 0.0  # its `exp`: a socket opened with it is closed then


def verify(token: str, settings: Settings, now: float | None = None) -> Identity:
    key = settings.jwt_public_key or settings.jwt_secret
    assert key is not None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS, "verify_nbf": True},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(type(exc).__name__) from None
    # PyJWT has checked that both are numbers.
    issued, expires = float(claims["iat"]), float(claims["exp"])
    if expires <= (time.time() if now is None else now):
        raise TokenRejected("ExpiredSignatureError")
    if expires - issued > settings.max_token_ttl_s:
        raise TokenRejected("lifetime over PEERCHAT_MAX_TOKEN_TTL_S")
    sub, role, name = claims.get("sub"), claims.get("role"), claims.get("name")
    if not isinstance(sub, str) or not 0 < len(sub) <= 64:
        raise TokenRejected("bad sub")
    if has_refused_characters(sub):
        raise TokenRejected("control characters in sub")
    # An identity provider may send a list (`"role": ["member"]`); `in` on a set would raise.
    if not isinstance(role, str) or role not in ROLES:
        raise TokenRejected("unknown role")
    if name is not None and not isinstance(name, str):
        raise TokenRejected("bad name")
    if name is not None and has_refused_characters(name):
        raise TokenRejected("control characters in name")
    display = display_name(name or "") or _default_name(sub, cast(Role, role))
    return Identity(user_id=sub, role=cast(Role, role), name=display, issued_at=issued, expires_at=expires)


def _default_name(sub: str, role: Role) -> str:
    # A member without a chosen alias gets a neutral one; never their account id.
    return "Member" if role == "member" else sub


def mint(
    settings: Settings,
    *,
    sub: str,
    role: Role,
    name: str | None = None,
    ttl_s: int = 12 * 3600,
    now: float | None = None,
) -> str:
    """A token signed with the configured HS256 secret; for development and tests only."""
    if settings.jwt_secret is None:
        raise TokenRejected("minting needs PEERCHAT_JWT_SECRET; tokens come from the identity provider")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
