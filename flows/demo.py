"""The demo's parent flow: the nightly and weekly flows as subflows of one run (one Prefect API session).

`crmsum demo` runs this module as a child process (`python -m flows.demo`), its settings in the child's
environment like a deployment's worker, and reads the JSON report from the last line of stdout:
the library never imports flows/.
"""

from __future__ import annotations

import json

from prefect import flow

from crmsum.config import Settings
from flows.nightly import nightly
from flows.shell import flow_settings
from flows.weekly_digest import weekly_digest


@flow(name="crmsum-demo", log_prints=True)
def demo_flows(settings: Settings | None = None) -> dict:
    s = flow_settings(settings)
    return {"nightly": nightly(settings=s), "weekly": weekly_digest(settings=s)}


if __name__ == "__main__":
    print(json.dumps(demo_flows(), ensure_ascii=False, default=str))
