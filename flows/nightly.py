"""Nightly ingestion: amoCRM sync, then new Telegram exports from the inbox, then record embeddings and
insights, then precompute, then deal briefs (hand-overs, decisive stage).

Thin orchestration over `crmsum.pipeline`; run with `python flows/nightly.py`, through
`crmsum demo`, or as the `nightly` deployment in prefect.yaml.

With `CRMSUM_DASK_ADDRESS` set, precompute runs as the `crmsum-precompute-fanout` subflow whose work
items are mapped over Prefect's DaskTaskRunner (flows/fanout.py). One nightly at a time: the file
lock in DATA_DIR/state on one machine, plus the Prefect global concurrency limit `crmsum-nightly`
when it exists (several workers on several machines; see docs/DEPLOY.md).
"""

from __future__ import annotations

from prefect import flow, task

from crmsum import pipeline, scale
from crmsum.config import get_settings
from crmsum.runs import tracked
from crmsum.state import run_lock


@task(retries=2, retry_delay_seconds=60)
def sync_amocrm() -> dict:
    return pipeline.plain(pipeline.sync_amocrm())


@task(retries=1, retry_delay_seconds=30)
def import_inbox() -> list[dict]:
    return [pipeline.plain(r) for r in pipeline.import_inbox()]


@task(retries=1, retry_delay_seconds=30)
def insights() -> dict:
    return pipeline.plain(pipeline.insights())


@task(retries=1, retry_delay_seconds=30)
def embed_records() -> dict:
    return pipeline.plain(pipeline.embed_records())


@task(retries=1, retry_delay_seconds=30)
def precompute() -> dict:
    return pipeline.plain(pipeline.precompute())


@task(retries=1, retry_delay_seconds=60)
def briefs() -> dict:
    return pipeline.plain(pipeline.briefs())


@flow(name="crmsum-nightly", log_prints=True)
def nightly(amocrm: bool = True) -> dict:
    settings = get_settings()
    with scale.nightly_slot(settings), run_lock(settings.state_dir, "nightly"), tracked(settings.state_dir, "nightly"):
        report = {"amocrm": sync_amocrm() if amocrm and settings.amocrm_base_url else None}
        report["telegram"] = import_inbox()
        report["embeddings"] = embed_records()
        report["insights"] = insights()
        if scale.uses_dask(settings):
            from flows.fanout import run_precompute

            report["precompute"] = run_precompute(settings)
        else:
            report["precompute"] = precompute()
        report["briefs"] = briefs()
    return report


if __name__ == "__main__":
    nightly()
