"""Weekly digest: render each chat's digest for the latest complete ISO week and deliver it once.

Thin orchestration over `crmsum.delivery.deliver_digests`; run with `python flows/weekly_digest.py`,
through `crmsum demo`, or as the `weekly-digest` deployment in prefect.yaml. Exactly-once lives in
the library (the `deliveries` table), so a retried task never resends to a chat that got it. When
every due delivery failed the run ends Failed.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crmsum.config import Settings
from crmsum.delivery import deliver_digests, require_delivered
from flows.shell import flow_logging, flow_settings


@task(retries=1, retry_delay_seconds=60, cache_policy=NO_CACHE)
def deliver(week: str | None, force: bool, settings: Settings | None = None) -> dict:
    return deliver_digests(week, force=force, settings=settings).as_dict()


@flow(name="crmsum-weekly-digest", log_prints=True)
def weekly_digest(week: str | None = None, force: bool = False, settings: Settings | None = None,
                  data_dir: str | None = None) -> dict:
    s = flow_settings(settings, data_dir)
    with flow_logging(s):
        report = deliver(week, force, s)
    print(f"digest {report['week']} ({report['mode']}): {report['sent']} sent, {report['outbox']} outbox, "
          f"{report['skipped']} already delivered, {report['failed']} failed")
    require_delivered(report)  # every delivery failed: the flow run ends Failed
    return report


if __name__ == "__main__":
    weekly_digest()
