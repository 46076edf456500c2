"""`REDIS_URL` in its three forms (PRODUCT.md §11), read into a `RedisTopology`.

- `redis://`, `rediss://` (TLS) or `unix://`: one Redis, read by redis-py itself.
- `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?options]`
  (`rediss+sentinel://` for TLS): a Sentinel set. Every connection asks the sentinels
  where the master is first, so a promotion is followed; the password is the master's
  (Sentinel's own, if it has one, is `sentinel_password` in the query).
- `redis+cluster://[[user]:password@]host:port[,host:port...]` (`rediss+cluster://`): a
  Redis Cluster; the hosts are seeds, the rest is discovered.

`parse()` is pure and runs at start-up (chat/config.py), so a malformed URL stops the
process with a message naming what is wrong. The query options redis-py honours for TLS
(`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`)
apply to the Sentinel and Cluster forms as well. chat/redisconn.py makes the client each
form needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Kind = Literal["single", "sentinel", "cluster"]

TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


class RedisUrlError(ValueError):
    """REDIS_URL cannot be used; the message says why (never the password)."""


@dataclass(frozen=True, slots=True)
class RedisTopology:
    kind: Kind
    url: str  # as given (the single form is handed to redis-py as is)
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""  # Sentinel's name for the master set
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def parse(url: str) -> RedisTopology:
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise RedisUrlError(
            "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
        )
    if scheme in ("redis", "rediss", "unix"):
        return RedisTopology("single", url, tls=scheme == "rediss")
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return _several(url, "sentinel", tls=scheme.startswith("rediss"))
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _several(url, "cluster", tls=scheme.startswith("rediss"))
    raise RedisUrlError(
        f"REDIS_URL scheme {scheme!r} is not one of redis, rediss, unix, redis+sentinel, "
        "rediss+sentinel, redis+cluster, rediss+cluster"
    )


def _several(url: str, kind: Kind, *, tls: bool) -> RedisTopology:
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if not colon:  # redis://secret@host is how redis-py reads a bare password too
            username, password = None, unquote(user) or None
    hosts = tuple(_host(h, kind) for h in hostlist.split(","))
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if kind == "sentinel":
        if not path or len(path) > 2:
            raise RedisUrlError(
                "a Sentinel REDIS_URL ends with /<master name>, e.g. redis+sentinel://h:26379,h2:26379/mymaster"
            )
        service = unquote(path[0])
        if len(path) == 2:
            db = _db(path[1])
    elif path and (len(path) > 1 or _db(path[0]) != 0):
        raise RedisUrlError("a Redis Cluster has only database 0: no /<db> in a redis+cluster URL")
    query = dict(parse_qsl(parts.query))
    if "db" in query:
        if kind == "cluster" and _db(query["db"]) != 0:
            raise RedisUrlError("a Redis Cluster has only database 0: no db= in a redis+cluster URL")
        db = _db(query.pop("db"))
    known = (*TLS_OPTIONS, *(_SENTINEL_OPTIONS if kind == "sentinel" else ()))
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise RedisUrlError(
            f"REDIS_URL option(s) not understood: {', '.join(unknown)} (known: {', '.join(known)})"
        )
    tls_options = {k: v for k, v in query.items() if k in TLS_OPTIONS}
    if tls_options and not tls:
        raise RedisUrlError("ssl_* options need the TLS scheme (rediss+sentinel:// or rediss+cluster://)")
    return RedisTopology(
        kind,
        url,
        hosts=hosts,
        service=service,
        db=db,
        username=username,
        password=password,
        tls=tls,
        tls_options=tls_options,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def _host(text: str, kind: Kind) -> tuple[str, int]:
    default = 26379 if kind == "sentinel" else 6379
    text = text.strip()
    if not text:
        raise RedisUrlError("REDIS_URL has an empty host in its host list")
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"REDIS_URL port {port_text!r} is not a port number")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"REDIS_URL database {text!r} is not a whole number")
    return int(text)
