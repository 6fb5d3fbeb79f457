"""Nightly: amoCRM sync, new Telegram exports from the inbox, record embeddings and insights,
precompute, deal briefs (hand-overs, decisive stage), lake compaction; then a markdown artifact of
what the night did. Any failed step makes the run Failed (the later steps still run: a broken export
must not stop the summaries).

Thin orchestration over `crmsum.pipeline`; run with `python flows/nightly.py`, through
`crmsum demo`, or as the `nightly` deployment in prefect.yaml. Settings come as a parameter
(`settings`, in-process callers) or from the worker's environment (`data_dir` may override the root).

With `CRMSUM_DASK_ADDRESS` set, precompute runs as the `crmsum-precompute-fanout` subflow whose work
items are mapped over Prefect's DaskTaskRunner (flows/fanout.py). One nightly at a time: the file
lock in DATA_DIR/state on one machine, plus the Prefect global concurrency limit `crmsum-nightly`
when it exists (several workers on several machines; see docs/DEPLOY.md).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from crmsum import pipeline, scale
from crmsum.config import Settings
from crmsum.lake import open_lake
from crmsum.night import night_report
from crmsum.runs import tracked
from crmsum.state import run_lock
from flows.shell import flow_logging, flow_settings

log = logging.getLogger("crmsum.flows.nightly")
ARTIFACT_KEY = "crmsum-nightly"


class NightFailed(RuntimeError):
    """A step of the night failed; the artifact says which."""


@task(retries=2, retry_delay_seconds=60, cache_policy=NO_CACHE)
def sync_amocrm(settings: Settings) -> dict:
    return pipeline.plain(pipeline.sync_amocrm(settings))


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def import_inbox(settings: Settings) -> dict:
    failed: list[str] = []
    reports = [pipeline.plain(r) for r in pipeline.import_inbox(settings, failed=failed)]
    return {"reports": reports, "failed": failed}


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def insights(settings: Settings) -> dict:
    return pipeline.plain(pipeline.insights(settings))


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def embed_records(settings: Settings) -> dict:
    return pipeline.plain(pipeline.embed_records(settings))


@task(retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def precompute(settings: Settings) -> dict:
    return pipeline.plain(pipeline.precompute(settings))


@task(cache_policy=NO_CACHE)
def compact(settings: Settings) -> dict:
    return pipeline.compact_lake(settings)


def _step(name: str, fn, failures: list[str], *args: Any) -> Any:
    state = fn(*args, return_state=True)
    if state.is_failed():
        failures.append(f"{name}: {state.message or 'failed'}")
        return None
    return state.result()


@task(retries=1, retry_delay_seconds=60, cache_policy=NO_CACHE)
def briefs(settings: Settings) -> dict:
    return pipeline.plain(pipeline.briefs(settings))


@flow(name="crmsum-nightly", log_prints=True)
def nightly(amocrm: bool = True, settings: Settings | None = None, data_dir: str | None = None) -> dict:
    s = flow_settings(settings, data_dir)
    with flow_logging(s), scale.nightly_slot(s), run_lock(s.state_dir, "nightly"), \
            tracked(s.state_dir, "nightly") as run:
        failures: list[str] = []
        steps: dict[str, Any] = {"amocrm": _step("amoCRM sync", sync_amocrm, failures, s)
                                 if amocrm and s.amocrm_base_url else None}
        inbox = _step("Telegram inbox", import_inbox, failures, s) or {}
        steps["telegram"] = inbox.get("reports", [])
        failures += [f"Telegram export {name} not imported (see the log)" for name in inbox.get("failed", [])]
        steps["embeddings"] = _step("record embeddings", embed_records, failures, s)
        steps["insights"] = _step("insights", insights, failures, s)
        if scale.uses_dask(s):
            from flows.fanout import run_precompute

            try:
                steps["precompute"] = run_precompute(s)
            except Exception as exc:  # noqa: BLE001 - reported in the artifact, fails the run below
                failures.append(f"precompute: {type(exc).__name__}: {exc}")
        else:
            steps["precompute"] = _step("precompute", precompute, failures, s)
        steps["briefs"] = _step("deal briefs", briefs, failures, s)
        steps["compact"] = _step("lake compaction", compact, failures, s)
        with contextlib.closing(open_lake(s).connect()) as con:
            report = night_report(steps, failures, con)
        create_markdown_artifact(report.markdown(), key=ARTIFACT_KEY, description="What the night did")
        print(report.markdown())
        run.counts = {"records_synced": report.records_synced, "messages_imported": report.messages_imported,
                      "summaries_computed": report.summaries_computed, "llm_calls": report.llm_calls}
        if report.failed:
            raise NightFailed("; ".join(report.failures))
    return steps


if __name__ == "__main__":
    nightly()
