"""The sans-I/O fences (docs/architecture.md, STYLE.md): `protocol/` (the wire format) and
`matching/` (pairing decisions) import no I/O library and nothing of `chat/`, and neither
imports the other. Read from the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Anything that reaches a socket, a process, a file or a clock of its own, or a server framework.
IO = frozenset(
    {
        "asyncio",
        "asyncpg",
        "redis",
        "starlette",
        "uvicorn",
        "websockets",
        "socket",
        "selectors",
        "ssl",
        "http",
        "urllib",
        "subprocess",
        "multiprocessing",
        "threading",
        "signal",
        "os",
        "shutil",
        "tempfile",
        "logging",
        "prometheus_client",
        "jwt",
        "psutil",
    }
)
FORBIDDEN = {
    "protocol": IO | {"chat", "matching", "bench", "tests"},
    "matching": IO | {"chat", "protocol", "bench", "tests"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_pure_packages_import_no_io_and_not_each_other(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    broken = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package]) for path in files
    }
    assert {path: names for path, names in broken.items() if names} == {}


def test_the_fence_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import asyncio.events\n    from redis.asyncio import Redis\n")
    assert imported_roots(sample) >= {"asyncio", "redis"}
