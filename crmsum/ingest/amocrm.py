"""Nightly amoCRM -> lake sync: full first, then incremental by watermarks, crash-safe and idempotent.

How it stays correct and fast:
- one fetcher thread walks the lists in a fixed order (users, pipelines, companies, contacts, leads,
  notes, tasks, events) and feeds pages into a bounded queue, so the request loop keeps the rate
  limiter saturated while this thread maps, anonymizes and writes (memory stays flat: at most
  `queue_pages` pages plus one batch are held);
- people and company names are taught to the anonymizer as their pages are processed, and the queue
  is FIFO, so every name is known before any lead/note/task/event text is scrubbed;
- each list's window is `[watermark, run start]`; the upper bound keeps paging stable while new data
  arrives, and the watermark moves to the run start only after the whole list is in the lake
  (state committed after data), so a crash re-fetches at most one window and the lake's
  primary-key merge turns the overlap into no-ops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from crmsum.failpoints import failpoint
from crmsum.schema import table as table_spec
from crmsum.sources import amocrm_rows as rows
from crmsum.sources.amocrm import EVENTS_LIMIT, PAGE_LIMIT, AmoClient
from crmsum.state import StateStore, run_lock

log = logging.getLogger(__name__)

SYNC_STATE = "amocrm_sync"
Progress = Callable[..., Any]  # crmsum.progress contract: progress(step, advance=1, total=None)
LOCK = "amocrm"  # DATA_DIR/state/amocrm.lock: one sync at a time owns the watermarks and the OAuth pair


@dataclass(frozen=True)
class Stream:
    name: str                 # list name, also the watermark key
    path: str
    embedded: str             # key under _embedded
    tables: tuple[str, ...]
    watermark: str | None     # filter field for incremental runs, None = full every run
    limit: int = PAGE_LIMIT
    params: tuple[tuple[str, str], ...] = ()


STREAMS: tuple[Stream, ...] = (
    Stream("users", "/api/v4/users", "users", ("crm_users",), None),
    Stream("pipelines", "/api/v4/leads/pipelines", "pipelines", ("crm_pipelines", "crm_statuses"), None),
    Stream("companies", "/api/v4/companies", "companies", ("crm_companies",), "updated_at"),
    Stream("contacts", "/api/v4/contacts", "contacts", ("crm_contacts",), "updated_at"),
    Stream("leads", "/api/v4/leads", "leads", ("crm_leads",), "updated_at",
           params=(("with", "contacts,loss_reason"),)),
    Stream("notes", "/api/v4/leads/notes", "notes", ("crm_notes",), "updated_at"),
    Stream("tasks", "/api/v4/tasks", "tasks", ("crm_tasks",), "updated_at"),
    Stream("events", "/api/v4/events", "events", ("crm_events",), "created_at", limit=EVENTS_LIMIT,
           params=(("filter[entity][]", "lead"),)),
)


@dataclass
class SyncReport:
    """What one sync did; `summary()` is a one-line human version."""

    full: bool = False                      # at least one list had no watermark (first run)
    window_to: int = 0                      # unix seconds: upper bound of this run's window
    windows_from: dict[str, int | None] = field(default_factory=dict)
    fetched: dict[str, int] = field(default_factory=dict)   # records received per list
    pages: dict[str, int] = field(default_factory=dict)     # non-empty pages per list
    written: dict[str, int] = field(default_factory=dict)   # new or changed lake rows per table
    requests: int = 0                       # HTTP attempts, retries and token refreshes included
    retries: int = 0
    token_refreshes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)   # unknown fields/types seen (tolerated)
    skipped: int = 0                        # records without an id (cannot be merged)
    malformed: dict[str, int] = field(default_factory=dict)  # list.field -> values that became nulls
    seconds: float = 0.0
    api_seconds: float = 0.0                # time inside HTTP calls
    limiter_wait_seconds: float = 0.0       # time request threads waited for a rate-limit slot
    consumer_wait_seconds: float = 0.0      # time the processing thread waited for pages
    anonymize_seconds: float = 0.0
    write_seconds: float = 0.0
    map_seconds: float = 0.0                # mapping incl. anonymization

    @property
    def records(self) -> int:
        return sum(self.fetched.values())

    def summary(self) -> str:
        wr = sum(self.written.values())
        kind = "full" if self.full else "incremental"
        return (f"amoCRM {kind} sync: {self.records} records fetched, {wr} lake rows new/changed, "
                f"{self.requests} requests ({self.retries} retries) in {self.seconds:.1f}s")

    def as_dict(self) -> dict:
        return asdict(self)


class _TimedAnonymizer:
    """Wraps the anonymizer to measure the time spent in it (for the report and the bench)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed


_END = object()


class _Fetcher(threading.Thread):
    """Walks every list in order, putting ("page", stream, items) / ("end", stream, None) on a queue."""

    def __init__(self, client: AmoClient, plan: list[tuple[Stream, list[tuple[str, Any]]]], q: queue.Queue,
                 stop: threading.Event, preloaded: dict[str, list[list[dict]]] | None = None) -> None:
        super().__init__(name="amocrm-fetcher", daemon=True)
        self.client, self.plan, self.q, self.stop = client, plan, q, stop
        self.preloaded = preloaded or {}

    def _put(self, item: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for stream, params in self.plan:
                if self.stop.is_set():
                    return
                if stream.name in self.preloaded:
                    for items in self.preloaded.pop(stream.name):
                        if not self._put(("page", stream, items)):
                            return
                elif stream.name == "pipelines":
                    if not self._put(("page", stream, self.client.pipelines())):
                        return
                else:
                    for items in self.client.pages(stream.path, stream.embedded, params, stream.limit,
                                                   stop=self.stop):
                        if not self._put(("page", stream, items)):
                            return
                if not self._put(("end", stream, None)):
                    return
            self._put(("done", None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            self._put(("error", None, exc))


def _params(stream: Stream, since: int | None, until: int) -> list[tuple[str, Any]]:
    p: list[tuple[str, Any]] = list(stream.params)
    if stream.watermark:
        if since is not None:
            p.append((f"filter[{stream.watermark}][from]", since))
        p.append((f"filter[{stream.watermark}][to]", until))
    return p


def sync(settings: Any, lake: Any, anonymizer: Any, progress: Progress | None = None, *,
         client: AmoClient | None = None, now: int | None = None, full: bool = False,
         batch_rows: int = 2000, queue_pages: int = 64, lock_wait: bool | float = False) -> SyncReport:
    """Sync amoCRM into the lake; returns a SyncReport. Raises AmoError subclasses on fatal API errors
    and RunInProgressError when another run holds DATA_DIR/state/nightly.lock.

    `progress(list_name, advance=records, total=None)` (the `crmsum.progress` contract) is called from
    this thread after every page, and with `total` at the end of each list. `full=True` ignores the
    watermarks (a re-sync; unchanged rows are still skipped). The sync holds DATA_DIR/state/amocrm.lock
    (LockedError if another sync runs; `lock_wait` seconds or True to wait instead).
    """
    state = StateStore(settings.state_dir)
    with run_lock(settings.state_dir, LOCK, wait=lock_wait):
        own_client = client is None
        client = client or AmoClient.from_settings(settings, state)
        try:
            return _run(settings, lake, anonymizer, progress, client, state, now, full, batch_rows, queue_pages)
        finally:
            if own_client:
                client.close()


def _run(settings: Any, lake: Any, anonymizer: Any, progress: Progress | None, client: AmoClient,
         state: StateStore, now: int | None, full: bool, batch_rows: int, queue_pages: int) -> SyncReport:
    t_start = time.perf_counter()
    tz = settings.timezone
    anon = _TimedAnonymizer(anonymizer)
    doc = state.load(SYNC_STATE, {}) or {}
    marks: dict[str, int] = dict(doc.get("watermarks") or {})
    req0, retry0, ref0 = client.stats.requests, client.stats.retries, client.tokens.refreshes
    wait0, api0 = client.limiter.waited, client.stats.api_seconds
    # Users first, synchronously: their answer carries the server's clock, which cuts the window
    # (record stamps come from that clock; a client clock running ahead would skip updates).
    users = STREAMS[0]
    preloaded = {users.name: list(client.pages(users.path, users.embedded, list(users.params), users.limit))}
    if now is None:
        server = client.server_now()
        now = server if server is not None else time.time()
    until = int(now)
    report = SyncReport(window_to=until)
    plan = []
    for s in STREAMS:
        since = None if full else marks.get(s.name)
        if s.watermark and since is None:
            report.full = True
        report.windows_from[s.name] = since
        plan.append((s, _params(s, since, until)))

    unknown = rows.Unknown()
    malformed: Counter = Counter()
    q: queue.Queue = queue.Queue(maxsize=max(1, queue_pages))
    stop = threading.Event()
    fetcher = _Fetcher(client, plan, q, stop, preloaded)
    buffer: list[dict] = []
    fetched = {s.name: 0 for s in STREAMS}
    written = {t: 0 for s in STREAMS for t in s.tables}

    def flush(stream: Stream) -> None:
        nonlocal buffer
        items, buffer = buffer, []
        if not items:
            return
        t0 = time.perf_counter()
        with rows.counting_malformed(stream.name, malformed):
            frames = _map(stream, items, anon, tz, unknown)
        report.map_seconds += time.perf_counter() - t0
        t1 = time.perf_counter()
        for name, df in frames.items():
            df, bad = rows.drop_keyless(df, table_spec(name).key)
            report.skipped += bad
            written[name] += lake.write(name, df)
        report.write_seconds += time.perf_counter() - t1

    _warm_up()
    fetcher.start()
    try:
        while True:
            t0 = time.perf_counter()
            kind, stream, payload = q.get()
            report.consumer_wait_seconds += time.perf_counter() - t0
            if kind == "page":
                items = [it for it in payload if isinstance(it, dict)]
                unknown.scan(stream.name, items)
                fetched[stream.name] += len(items)
                report.pages[stream.name] = report.pages.get(stream.name, 0) + 1
                buffer.extend(items)
                if len(buffer) >= batch_rows:
                    flush(stream)
                if progress:
                    progress(stream.name, len(items))
                failpoint("amocrm.page")
            elif kind == "end":
                flush(stream)
                _flush_vault(anonymizer)  # pseudonyms in the lake must be resolvable before we move on
                failpoint("amocrm.list_end")
                if stream.watermark:  # the data of [since, until] is in the lake: commit after data
                    marks[stream.name] = until
                    doc["watermarks"] = marks
                    state.save(SYNC_STATE, doc)
                if progress:
                    progress(stream.name, 0, total=fetched[stream.name])
            elif kind == "error":
                raise payload
            else:
                break
    finally:
        stop.set()
        fetcher.join(timeout=60)

    report.fetched = fetched
    report.written = written
    report.unknown = dict(unknown)
    report.malformed = dict(malformed)
    st = client.stats
    report.requests = st.requests - req0
    report.retries = st.retries - retry0
    report.token_refreshes = client.tokens.refreshes - ref0
    report.statuses = dict(st.by_status)
    report.limiter_wait_seconds = client.limiter.waited - wait0
    report.api_seconds = st.api_seconds - api0
    report.anonymize_seconds = anon.seconds
    report.seconds = time.perf_counter() - t_start
    if unknown:
        top = ", ".join(f"{k}×{v}" for k, v in unknown.most_common(8))
        log.warning("amoCRM payloads had %d unknown fields/types (kept as JSON or ignored): %s",
                    sum(unknown.values()), top)
    if report.skipped:
        log.warning("amoCRM: %d records without an id were skipped", report.skipped)
    if malformed:
        top = ", ".join(f"{k}×{v}" for k, v in malformed.most_common(8))
        log.warning("amoCRM: %d malformed values (floats where integers belong, ids out of range, wrong "
                    "types) became nulls: %s", sum(malformed.values()), top)
    doc["last_run"] = {"finished_at": int(time.time()), "window_to": until, "full": report.full,
                       "fetched": fetched, "written": sum(written.values()), "requests": report.requests}
    state.save(SYNC_STATE, doc)
    log.info("%s", report.summary())
    return report


def _map(stream: Stream, items: list[dict], anon: Any, tz: str, unknown: rows.Unknown) -> dict[str, pd.DataFrame]:
    """Teach names first, then map one batch of a list to lake frames."""
    n = stream.name
    if n == "users":
        anon.learn_people(rows.people_of(items, "manager"))
        return {"crm_users": rows.users_rows(items, anon)}
    if n == "pipelines":
        for p in items:
            unknown.scan("statuses", rows._l(rows._d(p.get("_embedded")).get("statuses")))
        pipes, statuses = rows.pipelines_rows(items)
        return {"crm_pipelines": pipes, "crm_statuses": statuses}
    if n == "companies":
        anon.learn_companies(rows.company_names(items))
        return {"crm_companies": rows.companies_rows(items, anon, tz)}
    if n == "contacts":
        anon.learn_people(rows.people_of(items, "contact"))
        return {"crm_contacts": rows.contacts_rows(items, anon, tz)}
    if n == "leads":
        return {"crm_leads": rows.leads_rows(items, anon, tz)}
    if n == "notes":
        return {"crm_notes": rows.notes_rows(items, anon, tz, unknown)}
    if n == "tasks":
        return {"crm_tasks": rows.tasks_rows(items, anon, tz)}
    if n == "events":
        return {"crm_events": rows.events_rows(items, anon, tz, unknown)}
    raise ValueError(f"unknown amoCRM list {n}")


def _warm_up() -> None:
    """Load the NER model in the background while the first pages are in flight (it takes seconds,
    and a consumer stalled on it would leave the rate limiter idle). Failure is not our business."""
    def load() -> None:
        try:
            from crmsum.privacy.people import ner_tagger

            ner_tagger()
        except Exception:  # noqa: BLE001
            log.debug("NER warm-up failed", exc_info=True)

    threading.Thread(target=load, name="ner-warm-up", daemon=True).start()


def _flush_vault(anonymizer: Any) -> None:
    vault = getattr(anonymizer, "vault", None)
    flush = getattr(vault, "flush", None)
    if callable(flush):
        flush()


def watermarks(settings: Any) -> dict[str, int]:
    """The committed watermarks (unix seconds per list)."""
    return dict((StateStore(settings.state_dir).load(SYNC_STATE, {}) or {}).get("watermarks") or {})
