"""Small crash-safe JSON state under DATA_DIR/state/ (sync watermarks, OAuth tokens) and the run lock.

Why a separate store: watermarks must only move after the data they cover is in the lake, and
OAuth refresh tokens are single-use, so a new pair must hit the disk (fsync + atomic rename,
owner-only permissions) before it is used. A torn write would lose the integration's access.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crmsum.errors import CrmsumError
from crmsum.failpoints import failpoint

LOCK_NAME = "nightly"


class StateError(CrmsumError, RuntimeError):
    """The state directory cannot be read or written."""


class LockedError(StateError):
    """Another crmsum run holds the run lock."""


RunInProgressError = LockedError


class StateStore:
    """Named JSON documents in one directory, each replaced atomically, all owner-only (0600)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def load(self, name: str, default: Any = None) -> Any:
        """The stored document, or `default` when there is none yet."""
        p = self.path(name)
        try:
            with p.open("r", encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return default
        except ValueError as exc:
            raise StateError(f"state file {p} is not valid JSON ({exc.msg}); fix or remove it") from None

    def save(self, name: str, doc: Any) -> None:
        """Write a document: temp file (0600) + fsync + rename + directory fsync."""
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(self.dir, 0o700)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.dir)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, ensure_ascii=False, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                failpoint("state.save.before_rename")
                os.replace(tmp, self.path(name))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(self.dir)
            failpoint("state.save.after_rename")

    def update(self, name: str, **changes: Any) -> dict:
        """Read-modify-write of a dict document (keys set to None are removed)."""
        with self._lock:
            doc = dict(self.load(name, {}) or {})
        for k, v in changes.items():
            if v is None:
                doc.pop(k, None)
            else:
                doc[k] = v
        self.save(name, doc)
        return doc


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- run lock ---------------------------------------------------------------------------------
_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth); re-entrant within a process
_held_guard = threading.RLock()


@contextlib.contextmanager
def run_lock(state_dir: str | Path, name: str = LOCK_NAME, wait: bool | float = False) -> Iterator[Path]:
    """Hold an exclusive flock on DATA_DIR/state/<name>.lock (default nightly.lock) for the block.

    `wait=False` fails at once with RunInProgressError, `wait=True` blocks, a number waits that many
    seconds. Re-entrant inside one process, so the nightly flow and the sync it calls can both take it.
    """
    path = Path(state_dir) / f"{name}.lock"
    key = str(path.resolve()) if path.parent.exists() else str(path.absolute())
    with _held_guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, wait)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        with _held_guard:
            _held[key] = (fd, 1)
        try:
            yield path
        finally:
            with _held_guard:
                _held.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, wait: bool | float) -> None:
    if wait is True:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + (0.0 if wait is False else float(wait))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (pid {int(path.read_text().strip())})"
            raise LockedError(
                f"another crmsum run is in progress{holder}: {path} is locked; wait for it or retry later"
            )
        time.sleep(0.2)
