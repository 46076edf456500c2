"""The pages' pure client logic under node's own test runner (tests/js/*.test.js).

Node is on every machine that runs `make lint` (ESLint and tsc need it), so this runs in
the same pytest session as everything else, and CI sees its result."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_node_tests_of_the_page_client_pass() -> None:
    node = shutil.which("node")
    assert node, "node is needed for the pages' tests (Node 20, as for make lint)"
    files = sorted(str(p) for p in (ROOT / "tests" / "js").glob("*.test.js"))
    assert files
    run = subprocess.run([node, "--test", *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.M)
    assert passed and int(passed.group(1)) >= 4, run.stdout
    assert re.search(r"^# fail 0$", run.stdout, re.M), run.stdout
