"""CPU and memory accounting for one benchmark phase on a machine other people share.

The accounting is the reference script's (`keras_reference.py`, class `Phase`), so "other cores"
means the same on both sides: CPU time the whole machine spent (from /proc/stat) minus this
process's own, per second of wall time. Above about 0.1 a phase's figures were slowed by someone
else and should not be quoted.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_HZ = os.sysconf("SC_CLK_TCK")
IDLE_THRESHOLD_CORES = 0.15


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    steal = ticks[7] if len(ticks) > 7 else 0
    return (sum(ticks[:8]) - idle - steal) / _HZ, steal / _HZ


def own_cpu_s() -> float:
    """User + system CPU seconds of this process."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def wait_idle(max_wait_s: float) -> float:
    """Wait (at most max_wait_s) until others use under 0.15 cores for 1 s; the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait_s:
        busy0, own0, wall0 = machine_cpu_s()[0], own_cpu_s(), time.perf_counter()
        time.sleep(1.0)
        busy, own = machine_cpu_s()[0] - busy0, own_cpu_s() - own0
        other = (busy - own) / (time.perf_counter() - wall0)
        if other < IDLE_THRESHOLD_CORES:
            break
    return round(time.perf_counter() - start, 1)


@contextmanager
def phase_cpu(log: dict[str, dict[str, float]], name: str,
              wait_idle_s: float = 0.0) -> Iterator[None]:
    """Record in log[name] the block's wall time, own cores, others' cores and steal."""
    waited = wait_idle(wait_idle_s) if wait_idle_s > 0 else 0.0
    busy0, steal0 = machine_cpu_s()
    own0, wall0 = own_cpu_s(), time.perf_counter()
    yield
    wall = time.perf_counter() - wall0
    busy1, steal1 = machine_cpu_s()
    own = own_cpu_s() - own0
    log[name] = {
        "wall_s": round(wall, 2),
        "own_cores": round(own / wall, 2),
        "other_cores": round(max(0.0, (busy1 - busy0) - own) / wall, 2),
        "steal_cores": round((steal1 - steal0) / wall, 2),
        "waited_idle_s": waited,
    }


def median_call_s(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
