"""JWT verification and, for development, minting (PRODUCT.md §4).

The algorithm allow-list comes from configuration, never from the token's header, so
`alg: none` and the HS256-signed-with-the-public-key trick are refused by PyJWT itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

from chat.config import Settings

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


def verify(token: str, settings: Settings) -> Identity:
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
    sub, role, name = claims.get("sub"), claims.get("role"), claims.get("name")
    if not isinstance(sub, str) or not 0 < len(sub) <= 64:
        raise TokenRejected("bad sub")
    # An identity provider may send a list (`"role": ["member"]`); `in` on a set would raise.
    if not isinstance(role, str) or role not in ROLES:
        raise TokenRejected("unknown role")
    if name is not None and not isinstance(name, str):
        raise TokenRejected("bad name")
    display = (name or "").strip()[:64] or _default_name(sub, cast(Role, role))
    return Identity(user_id=sub, role=cast(Role, role), name=display)


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
