"""Per-ring cost of keeping Redis unreadable (chat/seal.py, chat/redis_keys.py): sealing a
frame on the sending process, opening it on the receiving one, and naming a person's
channel; and the hub's whole send side (`to_user` for a person held elsewhere) with and
without the seal. Each step timed over many rounds with ``time.perf_counter_ns`` on a typical
`message` frame and on a large one. Run: ``python -m bench.seal_bench``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
from collections.abc import Callable

from chat.bus import Receivers
from chat.config import Settings
from chat.delivery.hub import Hub
from chat.people import member
from chat.redis_keys import identity_key
from chat.seal import Sealer, seal_key
from protocol import frames as f
from protocol.codec import encode

SETTINGS = Settings(database_url="-", redis_url="-", jwt_secret="b" * 40)
CHANNEL = b"pc:user:" + identity_key(SETTINGS, "member", "acct-4711").encode()
HEADER = b"0123456789ab|9f8e7d6c5b4a39281706f5e4d3c2b1a0|1234|\n"


def _frame(body: str) -> bytes:
    return encode(
        f.Message(
            conversation_id="9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            seq=1234,
            sender=f.Sender(role="member", name="Sam"),
            body=body,
            client_msg_id="m-0001",
            sent_at="2026-12-04T23:00:00.000Z",
        )
    )


class _NullBus:
    """Takes every publish and sends nothing: what is left is the hub's own work."""

    healthy = True

    def post(self, channel: str, data: bytes, on_receivers: Receivers | None = None) -> None:
        pass

    def confirmed(self, channel: str) -> bool:
        return False


class _ClearSealer(Sealer):
    """The hub as it was before: the frame goes out as it is."""

    def seal(self, data: bytes, context: bytes) -> bytes:
        return data


def _per_call_ns(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(median, p99) of `rounds` batches of 100 calls, per call, in nanoseconds."""
    gc.disable()
    try:
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for _ in range(100):
                fn()
            samples.append((time.perf_counter_ns() - t0) / 100)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    key = seal_key(SETTINGS.identity_hmac_key)
    sender, receiver = Sealer(key), Sealer(key)
    names: dict[object, str] = {}
    person = member("acct-4711")
    names[person] = identity_key(SETTINGS, *person)
    print(f"{'step':<40} {'median µs':>10} {'p99 µs':>8}")
    for label, body in (("60-char body", "x" * 60), ("4,000-char body", "é" * 4000)):
        data = _frame(body)
        sealed = sender.seal(data, CHANNEL + HEADER)
        steps: list[tuple[str, Callable[[], object]]] = [
            (f"seal, {label}, {len(data)} B", lambda d=data: sender.seal(d, CHANNEL + HEADER)),  # type: ignore[misc]
            (f"open, {label}", lambda s=sealed: receiver.open(s, CHANNEL + HEADER)),  # type: ignore[misc]
            (f"unsealed ring (before), {label}", lambda d=data: HEADER + d),  # type: ignore[misc]
        ]
        for name, fn in steps:
            median, p99 = _per_call_ns(fn, args.rounds)
            print(f"{name:<40} {median / 1000:>10.2f} {p99 / 1000:>8.2f}")
    frame = _frame("x" * 60)
    for name, sealer in (("to_user, frame sealed", sender), ("to_user, frame in clear", _ClearSealer(key))):
        hub = Hub(_NullBus(), lambda role, sub: identity_key(SETTINGS, role, sub), sealer)  # type: ignore[arg-type]
        send: Callable[[], None] = functools.partial(hub.to_user, person, frame, conversation_id="c", seq=1)
        median, p99 = _per_call_ns(send, args.rounds)
        print(f"{name:<40} {median / 1000:>10.2f} {p99 / 1000:>8.2f}")
    for name, fn in (
        ("channel name, HMAC computed", lambda: identity_key(SETTINGS, "member", "acct-4711")),
        ("channel name, cached", lambda: names[person]),
    ):
        median, p99 = _per_call_ns(fn, args.rounds)
        print(f"{name:<40} {median / 1000:>10.2f} {p99 / 1000:>8.2f}")


if __name__ == "__main__":
    main()
