"""bench/cpusampler.py: samples follow CPU time, not wall-clock time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.cpusampler import report

PROGRAM = """
import time
from bench.cpusampler import install
install({path!r}, 0.0, 1.0)

def burn():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass

def idle():
    time.sleep(0.5)

time.sleep(0.05)
burn()
idle()
time.sleep(0.3)
"""


def test_samples_land_where_the_cpu_went_not_where_the_process_slept(tmp_path: Path) -> None:
    path = tmp_path / "cpu"
    subprocess.run([sys.executable, "-c", PROGRAM.format(path=str(path))], check=True, timeout=30)
    text = report([str(path)])
    total = int(text.split()[0])
    # One sample per ms of CPU asked; the kernel delivers at its tick (250 Hz here).
    assert 30 <= total <= 450, f"0.3 s of CPU, got {total} samples"
    burn = next(line for line in text.splitlines() if line.endswith("| burn (<string>)"))
    assert float(burn.split("|")[0]) > 80.0, text
    assert "idle (" not in text, "sleeping costs no CPU, so it gets no samples"
