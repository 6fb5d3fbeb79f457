"""The deployments for real: a Prefect server, `prefect deploy --all` from prefect.yaml, a process worker,
and the `nightly` deployment run end to end on a small sample account against the amoCRM emulator.

Proves: the deployment loads and runs from prefect.yaml (pull step, entrypoint, parameters); the flow
gets its settings from the worker's environment; crmsum's log lines reach the Prefect API and the
redacted log file; the run publishes the nightly markdown artifact; a failed step makes it Failed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import e2e
from crmsum.sandbox.amocrm_emulator import AmoEmulator

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "prefect", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_home")
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CRMSUM_", "OPENAI_", "PREFECT_"))},
           "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=home, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the Prefect server did not start"
                time.sleep(1)
        _prefect(env, "work-pool", "create", "crmsum", "--type", "process")
        yield env
    finally:
        proc.terminate()
        proc.wait(60)


def test_nightly_deployment_runs_end_to_end(server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    account = e2e.make_account(tmp_path / "account", leads=15, chat_days=20)
    data_dir = e2e.prepare_data_dir(tmp_path / "data", account)
    env = {**server, "CRMSUM_HOME": str(ROOT)}
    deployed = _prefect(env, "--no-prompt", "deploy", "--all")
    assert "nightly" in deployed.stdout
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN) as amo:
        worker_env = {**env, **{k: v for k, v in e2e.child_env(data_dir, amo.url).items() if k.startswith("CRMSUM_")}}
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "crmsum"],
                                  env=worker_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):  # this process's client
                run = run_deployment("crmsum-nightly/nightly", timeout=900, poll_interval=3)
                with get_client(sync_client=True) as client:
                    nightly = [a for a in client.read_artifacts() if a.key == "crmsum-nightly"]
                    logs = client.read_logs()
                broken = e2e.prepare_data_dir(tmp_path / "broken", account)
                (broken / "inbox" / "team_export.json").write_text('{"name": "cut', encoding="utf-8")
                failed = run_deployment("crmsum-nightly/nightly", timeout=900, poll_interval=3,
                                        parameters={"data_dir": str(broken), "amocrm": False})
        finally:
            worker.terminate()
            worker.wait(60)
    assert run.state.is_completed(), run.state.message
    assert nightly and "amoCRM records synced" in nightly[0].data and "**OK**" in nightly[0].data
    assert any(log.name.startswith("crmsum") for log in logs), "no crmsum log line reached the Prefect API"
    assert "telegram import" in (data_dir / "logs" / "crmsum.log").read_text(encoding="utf-8")
    assert failed.state.is_failed() and "not imported" in (failed.state.message or "")
    shutil.rmtree(tmp_path / "broken", ignore_errors=True)
