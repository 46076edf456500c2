"""Issue 14, configuration and process hygiene, against real `peerchat serve` and
`peerchat dev` processes: PEERCHAT_DEV cannot be spelled into dev mode, `serve` never
serves the dev routes, `dev` listens on loopback, no query string reaches a log line, the
CSP confines sockets to the page's own origin, and `peerchat dev` leaves no embedded
PostgreSQL or Redis behind on SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
import websockets

from chat.devservers import free_port
from tests.support.client import Client, token
from tests.support.flows import assert_clean_log, hello, until_closed
from tests.support.servers import LiveService, Servers, service_env

SUPERVISOR = {"Authorization": f"Bearer {token('supervisor', 'sup-1', 'Lee')}"}

# --------------------------------------------------------------------------- dev mode


@pytest.mark.parametrize("flag", ["1", "true", "TRUE", "True"])
async def test_serve_never_serves_the_dev_routes(service_factory: type, flag: str) -> None:
    """PRODUCT.md §3: whatever PEERCHAT_DEV says, `peerchat serve` answers 404 on both."""
    live: LiveService = service_factory(PEERCHAT_DEV=flag)
    async with httpx.AsyncClient(base_url=live.http) as http:
        assert (await http.get("/login")).status_code == 404
        for body in ({"role": "supervisor", "name": "Mallory"}, {"role": "member"}, {}):
            minted = await http.post("/dev/token", json=body)
            assert minted.status_code == 404, minted.text
            assert "token" not in minted.text
        # Other spellings of the same routes do not find a way round.
        assert (await http.get("/login/", follow_redirects=True)).status_code == 404
        assert (await http.get("/LOGIN")).status_code == 404
        assert (await http.post("/dev/token/", json={"role": "supervisor"})).status_code == 404
        assert (await http.post("/dev//token", json={"role": "supervisor"})).status_code == 404
        assert (await http.get("/dev/token")).status_code == 404
        index = await http.get("/", follow_redirects=False)
        assert index.headers["location"] == "/member"
    assert_clean_log(live)


BAD_DEV_VALUES = [
    "off",
    "no",
    "False",
    "FALSE",
    " 0",
    "0",
    "false",
    "yes",
    "on",
    " 1",
    "true ",
    "2",
    "enabled",
]


def _start_refused(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat.cli", *command], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("flag", BAD_DEV_VALUES)
def test_any_other_dev_value_stops_serve_at_start(servers: Servers, flag: str) -> None:
    port = free_port()
    env = service_env("postgresql://postgres@127.0.0.1:1/none", servers.redis.url, PEERCHAT_DEV=flag)
    done = _start_refused(["serve", "--port", str(port)], env)
    assert done.returncode == 2, done
    assert "PEERCHAT_DEV" in done.stderr and repr(flag) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    with pytest.raises(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
        pass


@pytest.mark.parametrize("flag", ["off", "0", "False"])
def test_any_other_dev_value_stops_dev_too(servers: Servers, flag: str, tmp_path: Path) -> None:
    env = service_env(
        "postgresql://postgres@127.0.0.1:1/none",
        servers.redis.url,
        PEERCHAT_DEV=flag,
        PEERCHAT_DEV_DATA=str(tmp_path),
    )
    done = _start_refused(["dev", "--port", str(free_port()), "--no-seed"], env)
    assert done.returncode == 2 and "PEERCHAT_DEV" in done.stderr, done
    assert "Traceback" not in done.stderr + done.stdout


def _listening_addresses(port: int) -> set[str]:
    """The local addresses bound to `port` in LISTEN state, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if int(hex_port, 16) == port and state == "0A":
                    found.add(address)
    return found


async def test_dev_listens_on_loopback_unless_told(
    servers: Servers, database_url: str, tmp_path: Path
) -> None:
    env = service_env(database_url, servers.redis.url, PEERCHAT_DEV_DATA=str(tmp_path / "data"))
    del env["PEERCHAT_HOST"]
    dev = LiveService(env=env, log_path=tmp_path / "dev.log", command="dev")
    dev.start(timeout=60)
    try:
        # 0100007F is 127.0.0.1 in /proc's byte order; 00000000 would be every interface.
        assert _listening_addresses(dev.port) == {"0100007F"}
        async with httpx.AsyncClient(base_url=dev.http) as http:
            assert (await http.get("/login")).status_code == 200
            minted = await http.post("/dev/token", json={"role": "member", "name": "Sam"})
            assert minted.status_code == 200 and minted.json()["token"].startswith("eyJ")
    finally:
        dev.stop()
    assert "dev login" in dev.output()


# --------------------------------------------------------------------------- logs


async def test_no_query_string_reaches_any_log(service_factory: type) -> None:
    """uvicorn logs `"WebSocket /ws?token=…" [accepted]` through its error logger even with
    the access log off; at debug level websockets logs the raw request line too."""
    live: LiveService = service_factory(PEERCHAT_LOG_LEVEL="debug")
    secrets = [f"SECRET{i}x{os.getpid()}" for i in range(6)]
    # An accepted handshake whose URL carries a token-like query, then a good hello.
    good = token("member", "m-logs", "Sam")
    client, _ = await Client.connect(f"{live.ws}?token={secrets[0]}&t={good}", good)
    await client.ws.close()
    # A refused handshake (foreign origin): uvicorn logs it with its 403.
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{live.ws}?token={secrets[1]}", origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    # A handshake closed for a bad token.
    refused = await until_closed(live, hello("not-a-jwt"))
    assert refused.code == 4001
    async with websockets.connect(f"{live.ws}?x={secrets[2]}") as ws:
        await ws.send(hello(None))
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
    async with httpx.AsyncClient(base_url=live.http) as http:
        assert (await http.get(f"/member?token={secrets[3]}")).status_code == 200
        got = await http.get(f"/api/conversations/c1/messages?reason={secrets[4]}", headers=SUPERVISOR)
        assert got.status_code == 404
        assert (await http.get(f"/no/such?token={secrets[5]}")).status_code == 404
    live.stop()
    out = live.output()
    # The lines are still there (proving the scrubber, not silence, keeps the secrets out)...
    assert '"WebSocket /ws?…" [accepted]' in out, out[-3000:]
    assert '"WebSocket /ws?…" 403' in out, out[-3000:]
    # ...without a single query string, token or reason.
    assert_clean_log(live, *secrets, good)
    assert "/ws?token" not in out and "?reason=" not in out and "?x=" not in out


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_even_uvicorns_access_log_gets_no_query_string(
    servers: Servers, database_url: str, tmp_path: Path
) -> None:
    """An operator who serves the factory with plain uvicorn and turns its access log on
    still gets no query string: the filter sits on uvicorn's access logger itself."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "chat.app:asgi",
                "--factory",
                "--access-log",
                "--port",
                str(port),
            ],
            env=service_env(database_url, servers.redis.url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    secret = f"SECRET-ACCESS-{os.getpid()}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if _get_status(base + "/healthz") == 200:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
            time.sleep(0.2)
        assert _get_status(f"{base}/member?token={secret}") == 200
        assert _get_status(f"{base}/login?token={secret}") == 404
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    out = log_path.read_text()
    assert '"GET /member?… HTTP/1.1" 200' in out, out[-2000:]
    assert '"GET /login?… HTTP/1.1" 404' in out, out[-2000:]
    assert secret not in out and "Traceback" not in out


# --------------------------------------------------------------------------- CSP


async def test_csp_connect_src_names_only_the_pages_own_origin(live: LiveService) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        for path in ("/member", "/specialist", "/supervisor", "/healthz", "/api/stats"):
            csp = (await http.get(path)).headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            host = f"127.0.0.1:{live.port}"
            assert directives["connect-src"] == f"'self' ws://{host} wss://{host}", csp
        # A Host header crafted to widen the policy gets 'self' alone, never its payload.
        for host in ("evil.example; connect-src *", "a b", "x'y", "*", "ws:", "[::1]:80 *", ""):
            csp = (await http.get("/member", headers={"Host": host})).headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            assert directives["connect-src"] == "'self'", (host, csp)
            assert csp.count("connect-src") == 1 and "*" not in csp and "ws:" not in csp.replace("ws://", "")
        # A plain name with a port is its own origin.
        csp = (await http.get("/member", headers={"Host": "chat.example.org:8443"})).headers[
            "content-security-policy"
        ]
        assert "connect-src 'self' ws://chat.example.org:8443 wss://chat.example.org:8443;" in csp


# --------------------------------------------------------------------------- `make run` children


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dev_leaves_no_child_behind(sig: signal.Signals, tmp_path: Path) -> None:
    """`make run` is `peerchat dev`: its embedded PostgreSQL and Redis (in sessions of their
    own) must stop with it, on SIGINT (Ctrl-C) and on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERCHAT_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        PEERCHAT_DEV_DATA=str(tmp_path / "devdata"), PEERCHAT_LOG_LEVEL="warning", PYTHONUNBUFFERED="1"
    )
    port = free_port()
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat.cli", "dev", "--port", str(port), "--no-seed"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            time.sleep(0.2)
        children = _children(proc.pid)
        names = {Path(f"/proc/{c}/exe").resolve().name for c in children}
        assert {"postgres", "redis-server"} <= names, names
        os.kill(proc.pid, sig)  # the process alone, as `make` forwards it or `kill` sends it
        proc.wait(60)
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], "embedded servers left running"
        assert "Traceback" not in (tmp_path / "dev.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
