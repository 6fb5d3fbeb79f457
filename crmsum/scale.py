"""Past one machine: Prefect task-runner selection and the fan-out of precompute.

    task_runner(settings)          # DaskTaskRunner when CRMSUM_DASK_ADDRESS is set, else Prefect's default
    PrecomputeMapper(settings)     # a `crmsum.precompute.precompute(mapper=...)` that submits chunk tasks
    precompute_fanout(settings)    # precompute with that mapper inside a flow run

`CRMSUM_DASK_ADDRESS`: unset -> ThreadPoolTaskRunner (one machine, the default); `local` -> a
LocalCluster of 2 worker processes on this machine; anything else -> the address of a running
Dask scheduler (`tcp://10.0.0.5:8786`), whose workers run on as many machines as you like.

What travels to workers and why it is safe: `WorkItem`s (facts + records, pseudonyms only) out,
`summaries` rows back; the *driver* writes the lake (one writer per table, so the lake's merge stays
the single place that decides what changed). LLM calls made on workers come back as `llm_calls`
rows the driver writes.

Anonymization is not fanned out, by measurement (4,000 chat/CRM texts, same 2-core machine and
load): the Anonymizer's own process pool took 18 s, a 2-worker Dask LocalCluster 42 s warm and
258 s cold (each worker loads the NER models and the vault), plus 28 s to start the cluster. Across
machines every worker would also have to write the one SQLite vault over a shared volume.
The task functions live here (not in flows/) so Dask workers import them from the installed package.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

log = logging.getLogger(__name__)

LOCAL = "local"
LOCAL_WORKERS = 2
PRECOMPUTE_CHUNK = 100  # work items per task: big enough to amortize task overhead, small enough to spread
NIGHTLY_LIMIT = "crmsum-nightly"  # Prefect global concurrency limit that serializes nightly runs across machines


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
                                              "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=addr)


def uses_dask(settings=None) -> bool:
    return dask_address(settings) is not None


def chunks(seq: Sequence, size: int) -> list[list]:
    size = max(1, int(size))
    return [list(seq[i:i + size]) for i in range(0, len(seq), size)]


def _in_flow() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


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
