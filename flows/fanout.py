"""Fan-out flow: precompute work items mapped over a Prefect task runner.

The runner comes from `CRMSUM_DASK_ADDRESS` (`crmsum.scale.task_runner`): unset = threads on this
machine, `local` = a 2-worker Dask LocalCluster, `tcp://host:8786` = a Dask cluster. The nightly flow
calls `run_precompute()` when a Dask address is set; usable on its own:

    CRMSUM_DASK_ADDRESS=local python flows/fanout.py            # precompute over a local Dask cluster
"""

from __future__ import annotations

from prefect import flow

from crmsum import scale
from crmsum.config import Settings
from flows.shell import flow_logging, flow_settings


@flow(name="crmsum-precompute-fanout", log_prints=True)
def precompute_fanout(settings: Settings | None = None, force: bool = False,
                      chunk_size: int = scale.PRECOMPUTE_CHUNK) -> dict:
    """(Re)compute changed summaries; each chunk of work items is one task on the runner."""
    s = flow_settings(settings)
    with flow_logging(s):
        report = scale.precompute_fanout(s, force=force, chunk_size=chunk_size)
    print(report)
    return report.as_dict()


def with_runner(f, settings: Settings):
    """The flow bound to the task runner of the settings (Dask when configured)."""
    return f.with_options(task_runner=scale.task_runner(settings))


def run_precompute(settings: Settings | None = None, **kw) -> dict:
    s = flow_settings(settings)
    return with_runner(precompute_fanout, s)(settings=s, **kw)


if __name__ == "__main__":
    run_precompute()
