"""The per-process lake context of the answer path: one DuckDB connection, a snapshot of `summaries`
and the name lists per lake, refreshed when the lake's part files change, so that a precomputed
answer costs a few milliseconds and the bot never re-reads the vault per question."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Callable

from crmsum.answer.record import BatchWriter, hand_off
from crmsum.config import Settings, get_settings
from crmsum.ru import today as today_in  # noqa: F401 - re-exported: the answer path's «today»

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
LIVE_SQL_THREADS = 1  # DuckDB threads of live summaries: the other core stays free for quick answers


class AnswerContext:
    """Connection, summaries snapshot and name lists for one lake (thread-safe, refreshed on change)."""

    def __init__(self, settings: Settings, lake) -> None:
        from crmsum.privacy.vault import Vault

        self.settings = settings
        self.lake = lake
        self.vault = Vault(settings.vault_dir)
        self.con = lake.connect()
        self._live_con = None  # `live_cursor`'s database
        self._lock = threading.RLock()
        self._sig: tuple = ()
        self._checked = 0.0
        self._anonymizer = None
        self._anonymizer_lock = threading.Lock()  # not `_lock`: NER must never hold up a lookup
        self._writer: BatchWriter | None = None  # recording never delays an answer
        self._detached: list | None = None  # rows kept for a detached recorder (`detach_recording`)
        self._memo: dict = {}  # per-snapshot results of derived lookups (loss reasons, stages, insights)
        self._gates: dict = {}  # key -> lock of the one thread computing it
        self._warm: Callable[[AnswerContext], None] | None = None
        self._closed = False
        self.summary_ids: set[str] = set()
        self._snapshot: str | None = None  # the in-memory copy of `summaries`, once built
        self._retired: list[str] = []  # copies replaced since the last build, dropped by the next
        self._generation, self._lookups = 0, 0
        self.managers: list[tuple[str, str]] = []  # (pseudonym, real name)
        self.companies: dict[str, int] = {}  # name -> id
        self.refresh(force=True)

    def cursor(self):
        """A connection of this context's database for the calling thread (DuckDB connections are not shared)."""
        with self._lock:
            return self.con.cursor()

    def live_cursor(self):
        """A connection for live summaries: a database of its own (made once), running on one DuckDB thread.
        Why not `cursor()`: a live summary's scans would share the scheduler and both cores with the point
        lookups of precomputed answers, which then wait behind them; here live SQL takes at most one core."""
        with self._lock:
            if self._live_con is None:
                self._live_con = self.lake.connect()
                self._live_con.execute(f"SET threads = {LIVE_SQL_THREADS}")
            return self._live_con.cursor()

    def _signature(self) -> tuple:
        return tuple(tuple(self.lake.parts(t)) for t in ("summaries", "crm_users", "crm_companies", "crm_leads",
                                                         "deal_features", "drivers"))

    def refresh(self, force: bool = False) -> None:
        """Reload the snapshot and the names when the lake's part files changed."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            self._checked = now
            sig = self._signature()
            if not force and sig == self._sig:
                return
            self._load(self.cursor())
            self._memo = {}
            self._sig = sig
        if not force:
            self._start_warm()

    def _load(self, cur) -> None:
        # the ids only (one Parquet column): a one-shot `crmsum ask` reads one row; the in-memory copy of
        # the whole table is made on the second lookup, i.e. in the bot's long-lived process
        self.summary_ids = {r[0] for r in cur.execute("SELECT summary_id FROM summaries").fetchall()}
        if self._snapshot:  # stale now: lookups read the lake until the copy is rebuilt
            self._retired.append(self._snapshot)
        self._snapshot, self._lookups = None, 0
        in_lake = {r[0] for r in cur.execute("SELECT DISTINCT name FROM crm_users WHERE name IS NOT NULL").fetchall()}
        people = self.vault.people("manager")
        self.managers = [(p, n) for p, n in people if p in in_lake] or list(people)
        rows = cur.execute("SELECT company_id, any_value(name) FROM crm_companies WHERE name IS NOT NULL "
                           "GROUP BY company_id ORDER BY company_id").fetchall()
        self.companies = {}
        for cid, name in rows:
            self.companies.setdefault(name, int(cid))

    def memo(self, key, compute):
        """`compute()` once per lake snapshot (cleared on refresh). Computed outside the context's lock,
        one thread per key: a second-long insights fit must not hold up every other chat's answer."""
        with self._lock:
            memo = self._memo
            if key in memo:
                return memo[key]
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            if key in memo:  # another thread computed it while this one waited
                return memo[key]
            value = compute()
            with self._lock:
                memo[key] = value  # into the snapshot it was computed on: a refresh meanwhile starts afresh
                self._gates.pop(key, None)
            return value

    def keep_warm(self, warm: Callable[[AnswerContext], None], wait: bool = False) -> None:
        """Run `warm(self)` in the background now (or here, with `wait`) and after every reload (the bot: the
        first question of a night must not pay for what can be computed before anyone asks)."""
        self._warm = warm
        if wait:
            self._warm_all()
        else:
            self._start_warm()

    def _start_warm(self) -> None:
        if self._warm is not None:
            threading.Thread(target=self._warm_all, name="crmsum-warm", daemon=True).start()

    def _warm_all(self) -> None:
        try:
            self.snapshot_summaries()
            if self._warm is not None:
                self._warm(self)
        except Exception:  # noqa: BLE001 - warming is a head start, never a failure
            if not self._closed:  # closed under it (exit, a test's reset): nothing left to warm
                log.exception("warming the answer context failed")

    @property
    def manager_names(self) -> list[str]:
        return [n for _, n in self.managers]

    def pseudonym_of(self, real: str | None) -> str | None:
        if real is None:
            return None
        return next((p for p, n in self.managers if n == real), None)

    def real_of(self, pseudonym: str | None) -> str | None:
        return next((n for p, n in self.managers if p == pseudonym), None)

    def summary(self, summary_id: str) -> dict | None:
        """One precomputed row (from the in-memory snapshot once it is built, else the lake), or None."""
        if summary_id not in self.summary_ids:
            return None
        with self._lock:
            self._lookups += 1
            table = self._snapshot or "summaries"
            build = self._snapshot is None and self._lookups == 2  # a long-lived process: worth a copy
        if build:
            threading.Thread(target=self.snapshot_summaries, name="crmsum-snapshot", daemon=True).start()
        cur = self.cursor()
        try:
            cur.execute(f"SELECT * FROM {table} WHERE summary_id = ?", [summary_id])
        except Exception:  # noqa: BLE001 - a copy dropped under this lookup (a nightly reload): the lake
            cur.execute("SELECT * FROM summaries WHERE summary_id = ?", [summary_id])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def snapshot_summaries(self) -> None:
        """Copy `summaries` into memory, indexed (a lookup in ~1.5 ms instead of ~30 ms from Parquet). Built
        beside the answers and swapped in by name, so no answer waits for the copy; a replaced copy is
        dropped by the next build (a lookup that still names it falls back to the lake)."""
        with self._lock:
            self._generation += 1
            name, old, self._retired = f"answer_summaries_{self._generation}", self._retired, []
        cur = self.cursor()
        try:
            cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM summaries")
            cur.execute(f"CREATE INDEX {name}_id ON {name} (summary_id)")
            for table in old:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
        except Exception:  # noqa: BLE001 - lookups go on reading the lake
            log.exception("could not snapshot the summaries")
            return
        with self._lock:
            if self._snapshot:
                self._retired.append(self._snapshot)
            self._snapshot = name

    def record(self, table: str, row: dict) -> None:
        """Queue a row for the lake (written in the background, batched, `record.ANONYMIZED` fields anonymized)."""
        with self._lock:
            if self._detached is not None:
                self._detached.append((table, row))
                return
            if self._writer is None:
                self._writer = BatchWriter(self.lake, self.anonymize)
        self._writer.put(table, row)

    def detach_recording(self) -> None:
        """Keep recorded rows for a detached recorder process (a one-shot CLI process: `finish_recording`)."""
        with self._lock:
            self._detached = []

    def finish_recording(self) -> None:
        """Hand kept rows to a detached recorder, or wait until the background writer has written them."""
        with self._lock:
            items, self._detached = self._detached, None
        if items is not None:
            hand_off(items)
        else:
            self.flush()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued row is in the lake."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def anonymize(self, text: str) -> str:
        """The question as it may be stored: the same anonymizer (with NER) as every other text. Under its own
        lock: loading the NER models takes seconds and each text tens of milliseconds, and the context's
        lock is taken by every precomputed lookup."""
        with self._anonymizer_lock:
            if self._anonymizer is None:
                from crmsum.privacy import Anonymizer

                self._anonymizer = Anonymizer(self.vault, workers=1)
            return self._anonymizer.text(text) or ""

    def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._live_con is not None:
            self._live_con.close()
        self.con.close()


_contexts: dict[tuple[str, str], AnswerContext] = {}
_contexts_lock = threading.Lock()


def get_context(settings: Settings | None = None, lake=None) -> AnswerContext:
    """The cached context of a lake (one per process and lake)."""
    from crmsum.lake import open_lake

    s = settings or get_settings()
    key = (lake.root if lake is not None else str(s.lake_dir).rstrip("/"), str(s.vault_dir))
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = AnswerContext(s, lake or open_lake(s))
    ctx.settings = s
    ctx.refresh()
    return ctx


def reset_contexts() -> None:
    """Close and forget cached contexts (tests; after the lake was rebuilt): their writers write what
    is queued and stop, their connections close."""
    _shutdown()


def flush(timeout: float = 30.0) -> None:
    """Wait until all recorded answers are written (the CLI and tests call this)."""
    with _contexts_lock:
        ctxs = list(_contexts.values())
    for ctx in ctxs:
        ctx.flush(timeout)


def _shutdown() -> None:
    """At exit (and on reset): write what is queued, then close the DuckDB connections."""
    with _contexts_lock:
        ctxs = list(_contexts.values())
        _contexts.clear()
    for ctx in ctxs:
        try:
            ctx.close()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_shutdown)
