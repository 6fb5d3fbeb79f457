"""Past one machine: Prefect task-runner selection, and the fan-out of precompute and anonymization.

    task_runner(settings)          # DaskTaskRunner when CRMSUM_DASK_ADDRESS is set, else Prefect's default
    precompute_mapper(settings)    # a `crmsum.precompute.precompute(mapper=...)` that submits chunk tasks
    anonymize_fanout(anon, texts)  # `anon.texts(texts)`, in chunks over the flow's task runner

`CRMSUM_DASK_ADDRESS`: unset -> ThreadPoolTaskRunner (one machine, the default); `local` -> a
LocalCluster of 2 worker processes on this machine; anything else -> the address of a running
Dask scheduler (`tcp://10.0.0.5:8786`), whose workers run on as many machines as you like.

What travels to workers and why it is safe:
- precompute: `WorkItem`s (facts + records, pseudonyms only) out, `summaries` rows back; the
  *driver* writes the lake (one writer per table, so the lake's merge stays the single place that
  decides what changed). LLM calls made on workers come back as `llm_calls` rows the driver writes.
- anonymization: raw texts out, scrubbed texts back. Each worker rebuilds its Anonymizer from the
  vault directory, so anonymization tasks must run where the vault is mounted (same machine, or a
  shared volume; see docs/DEPLOY.md: `dask worker --resources vault=1` on those hosts). The vault
  object itself never pickles (it holds the key).
The task functions live here (not in flows/) so Dask workers import them from the installed package.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

log = logging.getLogger(__name__)

LOCAL = "local"
LOCAL_WORKERS = 2
PRECOMPUTE_CHUNK = 100  # work items per task: big enough to amortize task overhead, small enough to spread
ANONYMIZE_CHUNK = 500  # texts per task
NIGHTLY_LIMIT = "crmsum-nightly"  # Prefect global concurrency limit that serializes nightly runs across machines
VAULT_RESOURCE = "vault"  # Dask worker resource: hosts that have the vault mounted


# -- runner selection ---------------------------------------------------------------------------
def dask_address(settings=None) -> str | None:
    from crmsum.config import get_settings

    s = settings or get_settings()
    addr = (s.dask_address or "").strip()
    return addr or None


def task_runner(settings=None):
    """Prefect's DaskTaskRunner when `Settings.dask_address` is set, else the default thread pool."""
    addr = dask_address(settings)
    if addr is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if addr.lower() == LOCAL:
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": LOCAL_WORKERS, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None,
                                              # every worker may anonymize: the vault is on this machine
                                              "resources": {VAULT_RESOURCE: 1}})
    return DaskTaskRunner(address=addr)


def uses_dask(settings=None) -> bool:
    return dask_address(settings) is not None


def chunks(seq: Sequence, size: int) -> list[list]:
    size = max(1, int(size))
    return [list(seq[i:i + size]) for i in range(0, len(seq), size)]


def _in_flow() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def _vault_annotation(settings=None):
    """Pin anonymization tasks to vault hosts on a remote cluster (Dask resource annotation)."""
    if not uses_dask(settings):
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={VAULT_RESOURCE: 1})


# -- precompute ---------------------------------------------------------------------------------
def _precompute_chunk(items: list, settings) -> dict[str, list]:
    """Summarize a chunk of work items (on whichever worker); returns summary rows and LLM call rows."""
    from crmsum.precompute import run_item
    from crmsum.summarize import backend_of

    llm = None
    if backend_of(settings)[0] == "llm":
        from crmsum.summarize.llm import LLMClient

        llm = LLMClient(settings)
    rows: list[dict] = []
    for item in items:
        try:
            rows.append(run_item(item, settings, llm))
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail the chunk (same as in-process)
            log.exception("summary %s failed", item.summary_id)
            rows.append({"_error": f"{item.summary_id}: {type(exc).__name__}: {exc}"})
    return {"rows": rows, "llm": list(llm.rows) if llm is not None else []}


# the plain functions keep their own module names, so workers unpickle them by reference (import crmsum)
precompute_chunk = task(_precompute_chunk, name="precompute-chunk", retries=1, retry_delay_seconds=10,
                        cache_policy=NO_CACHE, persist_result=False)


class PrecomputeMapper:
    """`mapper(fn, items)` for `crmsum.precompute.precompute`: chunks become Prefect tasks.

    The in-process `fn` (a closure holding the driver's LLM client) is not shipped; each chunk task
    runs `run_item` with a worker-local client. LLM call rows collected from the workers are kept
    in `llm_rows` for the caller to write (`flush_llm`). Must be called inside a flow run.
    """

    def __init__(self, settings, chunk_size: int = PRECOMPUTE_CHUNK) -> None:
        self.settings = settings
        self.chunk_size = chunk_size
        self.llm_rows: list[dict] = []
        self.tasks = 0

    def __call__(self, fn: Callable, items: list) -> Iterator[dict]:
        parts = chunks(items, self.chunk_size)
        futures = [precompute_chunk.submit(part, self.settings) for part in parts]
        self.tasks += len(futures)
        for fut in futures:  # in order: rows line up with items
            out = fut.result()
            self.llm_rows.extend(out["llm"])
            yield from out["rows"]

    def flush_llm(self, lake, report=None) -> int:
        """Write the workers' LLM call rows to `llm_calls`; add their counts to a PrecomputeReport."""
        rows, self.llm_rows = self.llm_rows, []
        if report is not None:
            real = [r for r in rows if not r.get("cache_hit")]
            report.llm_calls += len(real)
            report.cache_hits += len(rows) - len(real)
            report.tokens_in += sum(int(r.get("tokens_in") or 0) for r in real)
            report.tokens_out += sum(int(r.get("tokens_out") or 0) for r in real)
        if not rows:
            return 0
        import pandas as pd

        return lake.write("llm_calls", pd.DataFrame(rows))


def precompute_fanout(settings=None, lake=None, progress=None, chunk_size: int = PRECOMPUTE_CHUNK, **kw):
    """`crmsum.precompute.precompute` with the per-item work mapped over the flow's task runner.

    Call inside a flow (see flows/fanout.py); outside one it runs in-process like the plain function.
    """
    from crmsum.config import get_settings
    from crmsum.lake import open_lake
    from crmsum.precompute import precompute

    s = settings or get_settings()
    lake = lake or open_lake(s)
    if not _in_flow():
        return precompute(settings=s, lake=lake, progress=progress, **kw)
    mapper = PrecomputeMapper(s, chunk_size)
    report = precompute(settings=s, lake=lake, progress=progress, mapper=mapper, **kw)
    mapper.flush_llm(lake, report)
    return report


# -- anonymization ------------------------------------------------------------------------------
_anons: dict[tuple, Any] = {}
_anons_lock = threading.Lock()


def _worker_anonymizer(vault_dir: str, use_ner: bool, version: tuple):
    """One Anonymizer per worker process and vault state (rebuilt when people/companies were learned)."""
    from crmsum.privacy import Anonymizer, Vault

    key = (vault_dir, use_ner, version)
    with _anons_lock:
        anon = _anons.get(key)
        if anon is None:
            for old in [k for k in _anons if k[:2] == key[:2]]:
                _anons.pop(old).close()
            anon = _anons[key] = Anonymizer(Vault(vault_dir), use_ner=use_ner, workers=1)
        return anon


def _anonymize_chunk(texts: list, vault_dir: str, use_ner: bool = True, version: tuple = ()) -> list:
    """Scrub a chunk of texts with the vault at `vault_dir`; mappings are flushed before returning."""
    anon = _worker_anonymizer(vault_dir, use_ner, version)
    out = anon.texts(texts)
    anon.vault.flush()  # every pseudonym handed back is resolvable before the driver writes the lake
    return out


anonymize_chunk = task(_anonymize_chunk, name="anonymize-chunk", retries=1, retry_delay_seconds=5,
                       cache_policy=NO_CACHE, persist_result=False)


def anonymizer_version(anon) -> tuple:
    """What a worker-side Anonymizer must have learned to agree with `anon` (people, company words)."""
    return (len(anon.gaz.people), len(anon.company_words))


def anonymize_fanout(anon, texts: Iterable[str | None], chunk_size: int = ANONYMIZE_CHUNK,
                     settings=None) -> list[str | None]:
    """Same output as `anon.texts(texts)`, computed in chunks over the flow's task runner.

    People and companies `anon` learned are already in its vault (learning persists), so workers
    that open the same vault directory scrub identically. Outside a flow run: `anon.texts(texts)`.
    """
    items = list(texts)
    if not items:
        return []
    if not _in_flow():
        return anon.texts(items)
    anon.vault.flush()
    version = anonymizer_version(anon)
    vault_dir = str(anon.vault.path)
    with _vault_annotation(settings):
        futures = [anonymize_chunk.submit(part, vault_dir, anon.use_ner, version)
                   for part in chunks(items, chunk_size)]
    out: list[str | None] = []
    for fut in futures:
        out.extend(fut.result())
    return out


class FanoutAnonymizer:
    """An Anonymizer whose big `texts()` batches fan out over the flow's task runner.

    Drop-in for the ingest code (`sync(..., anonymizer)`, `import_export(..., anonymizer)`): every
    other method is the wrapped Anonymizer's. Batches below `threshold` stay in-process.
    """

    def __init__(self, inner, threshold: int = 2 * ANONYMIZE_CHUNK, chunk_size: int = ANONYMIZE_CHUNK,
                 settings=None) -> None:
        self._inner = inner
        self.threshold = threshold
        self.chunk_size = chunk_size
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def texts(self, items: Sequence[str | None]) -> list[str | None]:
        items = list(items)
        if len(items) < self.threshold or not _in_flow():
            return self._inner.texts(items)
        return anonymize_fanout(self._inner, items, self.chunk_size, self.settings)


# -- one nightly at a time, across machines -------------------------------------------------------
@contextlib.contextmanager
def nightly_slot(settings=None, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold the Prefect global concurrency limit `crmsum-nightly` (if it exists) for the block.

    The file lock in DATA_DIR/state only serializes runs on one machine; workers on several
    machines share the Prefect server, so its concurrency limit is the cross-machine lock. Create it
    once with `prefect gcl create crmsum-nightly --limit 1`. Without that limit (or outside a
    flow run) this is a no-op, so single-machine installs need nothing.
    """
    if not _in_flow() or not _limit_exists(NIGHTLY_LIMIT):
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(NIGHTLY_LIMIT, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield


def _limit_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True
