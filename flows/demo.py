"""The demo's parent flow: the nightly and weekly flows as subflows of one run (one Prefect API session)."""

from __future__ import annotations

from prefect import flow

from flows.nightly import nightly
from flows.weekly_digest import weekly_digest


@flow(name="crmsum-demo", log_prints=True)
def demo_flows() -> dict:
    return {"nightly": nightly(), "weekly": weekly_digest()}


if __name__ == "__main__":
    demo_flows()
