"""bench/idleprobe.py: a process's wakes are read from every thread's status."""

from __future__ import annotations

import os
import threading

from bench.idleprobe import voluntary_switches, wakes

STATUS = """Name:\tpython
State:\tS (sleeping)
voluntary_ctxt_switches:\t1234
nonvoluntary_ctxt_switches:\t56
"""


def test_the_voluntary_switches_are_read_from_a_status_text() -> None:
    assert voluntary_switches(STATUS) == 1234
    assert voluntary_switches("Name:\tpython\n") == 0


def test_a_process_that_sleeps_is_counted_woken_across_its_threads() -> None:
    before = wakes(os.getpid())
    slept, leave = threading.Event(), threading.Event()

    def sleeper() -> None:
        for _ in range(20):
            leave.wait(0.005)  # each wait sleeps and is woken
        slept.set()
        leave.wait()

    thread = threading.Thread(target=sleeper)
    thread.start()
    try:
        assert slept.wait(5)
        assert wakes(os.getpid()) >= before + 20  # the thread's own, while it lives
    finally:
        leave.set()
        thread.join()
