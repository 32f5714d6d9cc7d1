"""Fault injection: run a command as a real process, SIGKILL it at seeded random moments, restart it.

A kill moment is drawn after the launch has shown progress of its own (``started``: e.g. it wrote a
checkpoint or a block), so every kill lands inside the work (a step, a validation, a checkpoint or
block write) rather than in interpreter start-up. ``check`` runs after every kill, on what the killed
process left behind.
"""
from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class KillLog:
    """What a seeded run went through: the delays (s after progress began) and what each kill left."""

    seed: int
    delays: list[float] = field(default_factory=list)
    left: list[object] = field(default_factory=list)  # check()'s return value after each kill
    finished_early: int = 0  # launches that completed before their kill moment


def run_with_kills(argv: Sequence[str], seed: int, kills: int, window_s: float, started: Callable[[float], bool],
                   check: Callable[[], object], timeout_s: float = 300) -> KillLog:
    """Launch ``argv`` up to ``kills`` times, each SIGKILLed ``uniform(0, window_s)`` s after
    ``started(launch_time)`` turns true; then once more to completion (exit status 0 asserted)."""
    rng = np.random.default_rng(seed)
    log = KillLog(seed)
    for _ in range(kills):
        launched = time.time()
        process = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = launched + timeout_s
        while process.poll() is None and not started(launched) and time.time() < deadline:
            time.sleep(0.01)
        delay = float(rng.uniform(0, window_s))
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            log.delays.append(delay)
            log.left.append(check())
            continue
        assert process.returncode == 0, process.stderr.read()[-3000:]
        log.finished_early += 1
        break
    final = subprocess.run(list(argv), check=False, capture_output=True, text=True, timeout=timeout_s)
    assert final.returncode == 0, final.stderr[-3000:]
    return log
