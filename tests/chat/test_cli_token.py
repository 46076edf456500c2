"""`peerchat token` mints only what the service would accept: a lifetime over
PEERCHAT_MAX_TOKEN_TTL_S is refused at the command line, not with a 4001 later."""

from __future__ import annotations

import os
import subprocess
import sys

from chat.config import Settings
from chat.tokens import verify

SECRET = "cli-secret-" + "c" * 32


def _token(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
    return subprocess.run(
        [sys.executable, "-m", "chat.cli", "token", "--role", "member", "--sub", "m-1", *extra],
        env={**base, "PEERCHAT_JWT_SECRET": SECRET, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_token_within_the_limit_is_minted_and_verifies() -> None:
    done = _token("--ttl", "600")
    assert done.returncode == 0, done.stderr
    identity = verify(done.stdout.strip(), Settings(database_url="-", redis_url="-", jwt_secret=SECRET))
    assert identity.expires_at - identity.issued_at == 600


def test_a_lifetime_over_the_limit_is_refused_at_once() -> None:
    for extra, env in ((("--ttl", "86401"), {}), (("--ttl", "120"), {"PEERCHAT_MAX_TOKEN_TTL_S": "60"})):
        done = _token(*extra, **env)
        assert done.returncode == 2
        assert "PEERCHAT_MAX_TOKEN_TTL_S" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
    assert _token("--ttl", "0").returncode == 2
