"""Past one machine: precompute fanned out over Prefect's Dask task runner.

One local Dask cluster (2 worker processes) serves the whole module. Results must equal the
in-process ones exactly: same summaries (ids, hashes, texts).
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmsum import scale
from crmsum.config import Settings
from crmsum.precompute import precompute
from lake_fixture import AS_OF, build_lake

pytest.importorskip("prefect_dask")
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def prefect_api():
    """A throwaway Prefect API (own database); generous start-up timeout for a loaded 2-core machine."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def dask_address(prefect_api):
    """A LocalCluster of 2 single-threaded worker processes (what CRMSUM_DASK_ADDRESS=local builds)."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_runner_selection(tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(scale.task_runner(Settings(data_dir=tmp_path)), ThreadPoolTaskRunner)
    local = scale.task_runner(Settings(data_dir=tmp_path, dask_address="local"))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 2
    remote = scale.task_runner(Settings(data_dir=tmp_path, dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    assert scale.chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


def _summaries(lake) -> pd.DataFrame:
    cols = ["summary_id", "scope", "key", "period", "input_hash", "text", "facts"]
    return lake.read("summaries")[cols].sort_values("summary_id").reset_index(drop=True)


@pytest.mark.slow  # a Prefect API and a Dask cluster
def test_precompute_over_dask_equals_default(tmp_path, dask_address):
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    s = Settings(llm="offline", data_dir=tmp_path, dask_address=dask_address)
    import shutil

    from crmsum.lake import Lake

    plain = build_lake(tmp_path / "plain", leads=10)
    shutil.copytree(tmp_path / "plain", tmp_path / "dask")
    fanned = Lake(tmp_path / "dask")
    r0 = precompute(s, plain, as_of=AS_OF)

    @flow(task_runner=DaskTaskRunner(address=dask_address))
    def run(force: bool = False):
        return scale.precompute_fanout(s, fanned, as_of=AS_OF, chunk_size=25, force=force)

    r1 = run()
    assert r1.failed == 0 and r1.computed == r0.computed == r1.total > 25  # several chunks
    pd.testing.assert_frame_equal(_summaries(fanned), _summaries(plain))
    again = run()
    assert again.computed == 0 and again.skipped == r0.computed


@pytest.mark.slow  # a Prefect API and a Dask cluster
def test_nightly_slot_is_a_cross_machine_lock(prefect_api):
    """With the global concurrency limit `crmsum-nightly` (limit 1), a second nightly cannot start."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    @flow
    def two_nightlies() -> str:
        with scale.nightly_slot():  # no limit yet: a no-op
            pass
        with get_client(sync_client=True) as c:
            c.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=scale.NIGHTLY_LIMIT, limit=1))
        with scale.nightly_slot():
            try:
                with scale.nightly_slot(timeout_seconds=2):
                    return "second run got in"
            except TimeoutError:
                return "second run waited"

    assert two_nightlies() == "second run waited"
