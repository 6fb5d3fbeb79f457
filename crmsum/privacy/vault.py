"""Pseudonym vault: the secret key and the pseudonym -> real value mapping.

Lives in ``DATA_DIR/vault/`` (dir 0700, files 0600), never in the lake, logs or prompts.
Pseudonyms are ``PREFIX-`` + first 8 hex of HMAC-SHA256(key, "kind:normalized value"), so they
are stable across processes and runs that share the vault, and useless without the key.
Two processes may use one vault at once: sqlite in WAL mode, writes are INSERT OR IGNORE.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

from crmsum.cites import PSEUDONYM_RE
from crmsum.errors import CrmsumError

log = logging.getLogger(__name__)

PREFIX = {"person": "PER", "phone": "TEL", "email": "EML", "handle": "TG", "url": "URL", "doc": "DOC"}
KIND_OF_PREFIX = {v: k for k, v in PREFIX.items()}

KEY_FILE = "key"
DB_FILE = "vault.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mapping (
    pseudonym TEXT PRIMARY KEY,
    value     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    role      TEXT
);
CREATE TABLE IF NOT EXISTS companies (name TEXT PRIMARY KEY);
"""


class VaultError(CrmsumError, RuntimeError):
    """The vault cannot be opened or is unsafe (bad permissions, broken key)."""


def _touch_private(path: Path) -> None:
    """Create an empty owner-only file if missing (atomically exclusive)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    os.chmod(path, 0o600)


class Vault:
    """Key + mapping store. ``repr`` never shows the key or any mapped value."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        old_umask = os.umask(0o077)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.path, 0o700)
            self._key = self._load_or_create_key()
            db = self.path / DB_FILE
            _touch_private(db)
            self._pid = os.getpid()
            self._lock = threading.RLock()
            self._conn = self._connect()
            for suffix in ("-wal", "-shm"):
                p = Path(str(db) + suffix)
                if p.exists():
                    os.chmod(p, 0o600)
        finally:
            os.umask(old_umask)
        self._known: set[str] = set()   # pseudonyms already persisted by this process
        self._pending: dict[str, tuple[str, str, str | None]] = {}

    # -- setup -------------------------------------------------------------------------
    def _create_key(self, kp: Path) -> None:
        """Write a new key whole, then link it into place: a process racing this one finds either no
        key or the complete key, never the empty file an exclusive create shows before its write."""
        tmp = kp.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32).hex().encode())
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, kp)  # atomic, and fails if another process linked its key first
            log.info("created a new vault key in %s", self.path)
        except FileExistsError:  # another process won the race: its key is the vault's
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def _load_or_create_key(self) -> bytes:
        kp = self.path / KEY_FILE
        if not kp.exists():
            self._create_key(kp)
        os.chmod(kp, 0o600)
        raw = kp.read_bytes().strip()
        try:
            key = bytes.fromhex(raw.decode())
        except ValueError:
            raise VaultError(f"vault key file {kp} is corrupt; restore it from backup") from None
        if len(key) < 16:
            raise VaultError(f"vault key file {kp} is too short; restore it from backup")
        return key

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path / DB_FILE, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked worker: never share a sqlite handle across fork
            self._pid = os.getpid()
            self._lock = threading.RLock()
            self._conn = self._connect()
            self._pending = {}
        return self._conn

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r})"

    __str__ = __repr__

    def __getstate__(self):
        raise TypeError("Vault is not picklable (it holds the secret key); pass the path instead")

    # -- pseudonyms --------------------------------------------------------------------
    def pseudonym(self, kind: str, normalized: str) -> str:
        """Keyed pseudonym of an already normalized value (no storage)."""
        digest = hmac.new(self._key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()
        return f"{PREFIX[kind]}-{digest[:8]}"

    def register(self, kind: str, normalized: str, real: str, role: str | None = None) -> str:
        """Pseudonym for a value; remembers pseudonym -> real value (buffered, see flush)."""
        p = self.pseudonym(kind, normalized)
        if p not in self._known:
            self._pending.setdefault(p, (real, kind, role))
            if len(self._pending) >= 500:
                self.flush()
        return p

    def flush(self) -> None:
        """Write buffered mappings (INSERT OR IGNORE: first real spelling wins)."""
        conn = self.conn
        if not self._pending:
            return
        pending, self._pending = self._pending, {}   # atomic swap: other threads keep registering
        rows = [(p, v, k, r) for p, (v, k, r) in pending.items()]
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO mapping(pseudonym, value, kind, role) VALUES (?,?,?,?)", rows)
                conn.executemany(
                    "UPDATE mapping SET role=? WHERE pseudonym=? AND role IS NULL AND ? IS NOT NULL",
                    [(r, p, r) for p, _, _, r in rows if r])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                for p, v, k, r in rows:
                    self._pending.setdefault(p, (v, k, r))
                raise
        self._known.update(p for p, *_ in rows)

    def upsert_person(self, pseudonym: str, real: str, role: str | None) -> None:
        """A learned person (from CRM structured fields): canonical spelling and role win."""
        with self._lock:
            self.conn.execute(
                "INSERT INTO mapping(pseudonym, value, kind, role) VALUES (?,?,?,?) "
                "ON CONFLICT(pseudonym) DO UPDATE SET value=excluded.value, "
                "role=CASE WHEN mapping.role='manager' THEN 'manager' ELSE COALESCE(excluded.role, mapping.role) END",
                (pseudonym, real, "person", role))
        self._known.add(pseudonym)
        self._pending.pop(pseudonym, None)

    def add_companies(self, names: Iterable[str]) -> None:
        with self._lock:
            self.conn.executemany("INSERT OR IGNORE INTO companies(name) VALUES (?)",
                                  [(n,) for n in names if n and n.strip()])

    def companies(self) -> list[str]:
        self.flush()
        return [r[0] for r in self.conn.execute("SELECT name FROM companies ORDER BY name")]

    # -- lookups -----------------------------------------------------------------------
    def real(self, pseudonym: str) -> str | None:
        """Real value behind one pseudonym, or None if unknown to this vault."""
        self.flush()
        row = self.conn.execute("SELECT value FROM mapping WHERE pseudonym=?", (pseudonym,)).fetchone()
        return row[0] if row else None

    def kind(self, pseudonym: str) -> str | None:
        self.flush()
        row = self.conn.execute("SELECT kind FROM mapping WHERE pseudonym=?", (pseudonym,)).fetchone()
        return row[0] if row else None

    def real_many(self, pseudonyms: Iterable[str]) -> dict[str, str]:
        """pseudonym -> real value for the known ones among `pseudonyms`."""
        found = list(set(pseudonyms))
        if not found:
            return {}
        self.flush()
        q = ",".join("?" * len(found))
        return dict(self.conn.execute(f"SELECT pseudonym, value FROM mapping WHERE pseudonym IN ({q})",
                                      tuple(found)).fetchall())

    def resolve(self, text: str) -> str:
        """Replace every known pseudonym in text by the real value. Readers see text through
        `crmsum.privacy.display.resolve` (the policy of what may be shown), not through this."""
        if not text:
            return text
        found = set(PSEUDONYM_RE.findall(text))
        if not found:
            return text
        self.flush()
        q = ",".join("?" * len(found))
        real = dict(self.conn.execute(f"SELECT pseudonym, value FROM mapping WHERE pseudonym IN ({q})",
                                      tuple(found)).fetchall())
        return PSEUDONYM_RE.sub(lambda m: real.get(m.group(0), m.group(0)), text)

    def people(self, role: str | None = None) -> list[tuple[str, str]]:
        """(pseudonym, real full name) of learned people, optionally of one role."""
        self.flush()
        if role is None:
            rows = self.conn.execute(
                "SELECT pseudonym, value FROM mapping WHERE kind='person' AND role IS NOT NULL ORDER BY value")
        else:
            rows = self.conn.execute(
                "SELECT pseudonym, value FROM mapping WHERE kind='person' AND role=? ORDER BY value", (role,))
        return [(p, v) for p, v in rows]

    def known_people(self) -> list[tuple[str, str]]:
        """(real full name, role) of every learned person, to rebuild the gazetteer."""
        self.flush()
        return [(v, r) for v, r in self.conn.execute(
            "SELECT value, role FROM mapping WHERE kind='person' AND role IS NOT NULL ORDER BY pseudonym")]

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.conn.close()
