"""A socket's right to go on: `reauth` (PRODUCT.md §4). The decisions live in
chat/admission.py, which also closes the socket at `exp` and on revocation."""

from __future__ import annotations

from chat.gateway.session import Session
from chat.handlers.registry import handles
from chat.services import Services
from protocol import frames as f


@handles(f.Reauth, "member", "specialist", "supervisor")
async def on_reauth(services: Services, session: Session, frame: f.Reauth) -> None:
    """`reauthed`, or the socket is closed with 4001."""
    services.admission.reauth(session, frame)
