"""prefect.yaml must describe deployments Prefect can load: every entrypoint imports to a flow."""

from pathlib import Path

import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

ROOT = Path(__file__).parent.parent


def test_deployments_point_at_flows_with_schedules(monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert {"nightly", "weekly-digest", "monthly-feedback"} <= names
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert isinstance(flow, Flow), deployment["entrypoint"]
        crons = [s["cron"] for s in deployment["schedules"]]
        assert crons and all(len(c.split()) == 5 for c in crons)
