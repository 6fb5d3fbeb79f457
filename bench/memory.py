"""Peak memory of a bench process, read the one way every bench should read it.

`VmHWM` in /proc/PID/status is the peak resident set of the process's current image. `ru_maxrss` is
not: Linux carries it across fork and execve, so a step started from a big parent reports the
parent's peak as its own (and `RUSAGE_CHILDREN` reports the largest child ever waited for).
"""

from __future__ import annotations

from pathlib import Path


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak RSS (VmHWM) of a live process in MB; NaN where /proc has no such field."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
