"""The last run of each step (sync, import, precompute, digest, nightly): when, how it ended, what it did.

Kept in DATA_DIR/state/runs.json (crash-safe, owner-only), written when a step ends, so that
`crmsum status` can say whether last night worked without asking Prefect.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmsum.state import StateStore

RUNS = "runs"


@dataclass
class Run:
    """One step's run; the step body fills `counts` and may flag `partial` failures."""

    name: str
    started: str = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0).isoformat())
    finished: str | None = None
    ok: bool = True
    error: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@contextlib.contextmanager
def tracked(state_dir: str | Path, name: str) -> Iterator[Run]:
    """Record the run of `name` when the block ends, failed (with the error's first line) if it raised."""
    run, t0 = Run(name), time.monotonic()
    try:
        yield run
    except BaseException as exc:
        run.ok, run.error = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise
    finally:
        run.finished = dt.datetime.now().replace(microsecond=0).isoformat()
        run.seconds = round(time.monotonic() - t0, 2)
        with contextlib.suppress(OSError):
            StateStore(state_dir).update(RUNS, **{name: run.__dict__})


def last_runs(state_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Step name -> its last run (as recorded by `tracked`)."""
    return dict(StateStore(state_dir).load(RUNS, {}) or {})
