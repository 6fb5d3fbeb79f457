"""Monthly ratings summary: the month's 1–5 ratings of the bot's answers, to the team lead's chat once.

Thin orchestration over `crmsum.delivery.deliver_feedback_summary`; run with
`python flows/monthly_feedback.py` or as the `monthly-feedback` deployment in prefect.yaml (on the
1st, about the month that just ended). Exactly-once lives in the library (the `deliveries` row with
week="YYYY-MM", kind="feedback-month"), so a retried task never resends.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crmsum.config import Settings
from crmsum.delivery import deliver_feedback_summary, require_delivered
from flows.shell import flow_logging, flow_settings


@task(retries=1, retry_delay_seconds=60, cache_policy=NO_CACHE)
def deliver(month: str | None, force: bool, settings: Settings | None = None) -> dict:
    return deliver_feedback_summary(month, force=force, settings=settings).as_dict()


@flow(name="crmsum-monthly-feedback", log_prints=True)
def monthly_feedback(month: str | None = None, force: bool = False, settings: Settings | None = None,
                     data_dir: str | None = None) -> dict:
    s = flow_settings(settings, data_dir)
    with flow_logging(s):
        report = deliver(month, force, s)
    print(f"ratings summary {report['week']} ({report['mode']}): {report['sent']} sent, {report['outbox']} outbox, "
          f"{report['skipped']} already delivered, {report['failed']} failed"
          + "".join(f"\nwarning: {w}" for w in report["warnings"]))
    require_delivered(report)  # every delivery failed: the flow run ends Failed
    return report


if __name__ == "__main__":
    monthly_feedback()
