"""Weekly digest: render each chat's digest for the latest complete ISO week and deliver it once.

Thin orchestration over `crmsum.delivery.deliver_digests`; run with `python flows/weekly_digest.py`,
through `crmsum demo`, or as the `weekly-digest` deployment in prefect.yaml. Exactly-once lives in
the library (the `deliveries` table), so a retried task never resends to a chat that got it. A
chat that could not be served makes the run Failed.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crmsum.config import Settings
from crmsum.delivery import deliver_digests
from flows.shell import flow_logging, flow_settings


class DeliveryFailed(RuntimeError):
    """Some chats did not get their digest; a rerun sends only to those."""


@task(retries=1, retry_delay_seconds=60, cache_policy=NO_CACHE)
def deliver(settings: Settings, week: str | None, force: bool) -> dict:
    return deliver_digests(week, force=force, settings=settings).as_dict()


@flow(name="crmsum-weekly-digest", log_prints=True)
def weekly_digest(settings: Settings | None = None, week: str | None = None, force: bool = False,
                  data_dir: str | None = None) -> dict:
    s = flow_settings(settings, data_dir)
    with flow_logging(s):
        report = deliver(s, week, force)
    print(f"digest {report['week']} ({report['mode']}): {report['sent']} sent, {report['outbox']} outbox, "
          f"{report['skipped']} already delivered, {report['failed']} failed")
    if report["failed"]:
        raise DeliveryFailed(f"{report['failed']} digest(s) not delivered: " + "; ".join(report["errors"][:3]))
    return report


if __name__ == "__main__":
    weekly_digest()
