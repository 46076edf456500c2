"""Who someone is: the pair (role, sub) (PRODUCT.md §4).

A member and a specialist whose tokens carry the same `sub` are two different people, so
nothing that routes, checks or caches by person may use the `sub` alone: sockets in the
hub, bus channels, presence leases, participation checks. A `sub` is shown to others
(a specialist's id is in every `conversation_started`), so anyone could mint a token of
another role with it at an identity provider that lets users pick their ids.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from protocol.frames import Role


class Person(NamedTuple):
    role: Role
    id: str  # the token's `sub`


# A conversation's (member, specialist): `person in participants` is the participation check.
Participants = tuple[Person, Person]


def member(sub: str) -> Person:
    return Person("member", sub)


def specialist(sub: str) -> Person:
    return Person("specialist", sub)


class Actor(Protocol):
    """Who acts, as the records that name them need it (the audit log, staff notes): a
    verified token's identity (chat/tokens.py) or a socket's session."""

    @property
    def user_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def name(self) -> str: ...
