"""`peerchat serve`, for the benchmark, with the one uvicorn option it varies.

Everything else comes from `chat.cli.uvicorn_options`, so a benchmark server is served
exactly as production is; `--deflate` turns per-message deflate on to measure its memory.
BENCH_CPU_PROFILE samples its CPU time (bench/cpusampler.py); BENCH_STALL_LOG logs its loop's
stalls and its collector's runs (bench/stallprobe.py).

    python -m bench.serve --port 8123 [--deflate]
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args(argv)

    from chat import config, serving
    from chat.cli import uvicorn_options

    config.from_env()
    from bench.cpusampler import install_from_env

    install_from_env()
    options = uvicorn_options(args.port)
    options["ws_per_message_deflate"] = args.deflate
    # BENCH_STALL_LOG: the same app, its loop's stalls and collections logged (bench/stallprobe.py).
    app = "bench.stallprobe:asgi" if os.environ.get("BENCH_STALL_LOG") else "chat.app:asgi"
    serving.run(app, factory=True, **options)


if __name__ == "__main__":
    main()
