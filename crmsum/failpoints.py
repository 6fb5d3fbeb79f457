"""Named failpoints for crash-safety tests: crash the process at an exact step, then prove recovery.

    from crmsum.failpoints import failpoint
    failpoint("lake.put.before_rename")          # a no-op unless armed

Armed by the environment of the process (read once, at import):

    CRMSUM_FAILPOINTS="lake.put.before_rename=kill@3,precompute.item=kill@5,anonymize.batch=raise"

`NAME=ACTION[@N]`: on the Nth hit of NAME (default the first) the ACTION runs:
- `kill`  — SIGKILL this process (no cleanup, no atexit, no flush: what a power cut or OOM kill does);
- `raise` — raise `FailpointError` (an ordinary crash that unwinds the stack);
- `count` — nothing, only counted (`hits()`), to learn how often a point is reached.

Zero cost when unset: `failpoint` is one dict truthiness check. Tests in the same process use
`arm(spec)` / `disarm()`. Hits are counted per process and thread-safely.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "CRMSUM_FAILPOINTS"
ACTIONS = ("kill", "raise", "count")

#: every failpoint compiled into crmsum (kept in sync by tests/test_crash_safety.py)
NAMES = (
    "lake.put.before_rename",     # lake.py: a part file is written to its temp name, not yet visible
    "lake.put.after_rename",      # lake.py: the part is visible, the caller has not moved on yet
    "lake.compact.before_cleanup",  # lake.py: the compacted part is visible, the files it replaces not yet deleted
    "lake.compact.before_base",   # lake.py: the old base and parts are deleted, the compacted part not yet a base
    "state.save.before_rename",   # state.py: a state document (watermarks, OAuth pair) is fsynced, not renamed
    "state.save.after_rename",    # state.py: the new document is in place
    "amocrm.page",                # ingest/amocrm.py: a page was taken from the fetch queue (maybe flushed)
    "amocrm.list_end",            # ingest/amocrm.py: a list's data is in the lake, its watermark not yet saved
    "anonymize.batch",            # privacy/anonymizer.py: a batch of texts is about to be scrubbed
    "precompute.item",            # precompute.py: one summary computed, its chunk not yet written
    "delivery.chat",              # delivery.py: before a chat's digest is built and sent
    "delivery.part",              # telegram/send_once.py: before one part (chart or text message) is sent
)


class FailpointError(RuntimeError):
    """Raised by a failpoint armed with `raise`."""


_points: dict[str, tuple[str, int]] = {}
_hits: Counter = Counter()
_lock = threading.Lock()


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """`"a=kill@3,b=raise"` -> {"a": ("kill", 3), "b": ("raise", 1)}; ValueError on a bad entry."""
    out: dict[str, tuple[str, int]] = {}
    for item in (spec or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, rest = item.partition("=")
        action, _, nth = rest.partition("@")
        action = action.strip() or "kill"
        if not sep or not name.strip() or action not in ACTIONS:
            raise ValueError(f"{ENV}: bad entry {item!r} (expected NAME=kill|raise|count[@N])")
        try:
            n = int(nth) if nth.strip() else 1
        except ValueError:
            raise ValueError(f"{ENV}: bad hit number in {item!r}") from None
        if n < 1:
            raise ValueError(f"{ENV}: hit number must be >= 1 in {item!r}")
        out[name.strip()] = (action, n)
    return out


def arm(spec: str | dict[str, tuple[str, int]]) -> None:
    """Arm failpoints in this process (replaces any armed before) and reset the hit counters."""
    points = parse(spec) if isinstance(spec, str) else dict(spec)
    with _lock:
        _points.clear()
        _points.update(points)
        _hits.clear()


def disarm() -> None:
    arm({})


def hits() -> dict[str, int]:
    """How often each armed failpoint was reached in this process."""
    with _lock:
        return dict(_hits)


def failpoint(name: str) -> None:
    """Crash here if the failpoint `name` is armed and this is its Nth hit; else do nothing."""
    if not _points:
        return
    _trigger(name)


def _trigger(name: str) -> None:
    armed = _points.get(name)
    if armed is None:
        return
    action, nth = armed
    with _lock:
        _hits[name] += 1
        hit = _hits[name]
    if hit != nth or action == "count":
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        signal.pause()  # SIGKILL is not deliverable late, but never run on past a kill point
    raise FailpointError(f"failpoint {name} hit {hit}")


arm(os.environ.get(ENV, ""))
