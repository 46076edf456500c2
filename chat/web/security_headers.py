"""Security headers on every HTTP response, with a CSP whose `connect-src` names only the
page's own origin (PRODUCT.md §6; issue 14).

`connect-src 'self' ws: wss:` let a page open a socket to any host: an injected script
could ship what it read anywhere over a WebSocket. Now it names the page's own host, as
`ws://` and `wss://` (a TLS-terminating proxy may hand us plain HTTP for an HTTPS page, and
browsers before CSP Level 3 do not count ws/wss under 'self'). The host comes from the
request's Host header; one that is not a plain host[:port] gets `'self'` alone.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port. Nothing
# else may be spliced into the policy (a space or `;` would add sources or directives).
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$"
)

_BEFORE = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
_AFTER = "; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

OTHER_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def csp_for(host: str | None) -> str:
    """The policy for a page served under `host` (the request's Host header)."""
    if host and _HOST.match(host):
        return f"{_BEFORE} ws://{host} wss://{host}{_AFTER}"
    return _BEFORE + _AFTER


def _host(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return str(value.decode("latin-1"))
    return None


class SecurityHeaders:
    """Every HTTP response carries a strict CSP; pages hold health information, so no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(b"content-security-policy", csp_for(_host(scope)).encode()), *OTHER_HEADERS]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, with_headers)
