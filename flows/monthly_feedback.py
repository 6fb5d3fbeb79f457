"""Monthly ratings summary: the month's 1–5 ratings of the bot's answers, to the team lead's chat once.

Thin orchestration over `crmsum.delivery.deliver_feedback_summary`; run with
`python flows/monthly_feedback.py` or as the `monthly-feedback` deployment in prefect.yaml (on the
1st, about the month that just ended). Exactly-once lives in the library (the `deliveries` row with
week="YYYY-MM", kind="feedback-month"), so a retried task never resends.
"""

from __future__ import annotations

from prefect import flow, task

from crmsum.delivery import deliver_feedback_summary, require_delivered


@task(retries=1, retry_delay_seconds=60)
def deliver(month: str | None, force: bool) -> dict:
    return deliver_feedback_summary(month, force=force).as_dict()


@flow(name="crmsum-monthly-feedback", log_prints=True)
def monthly_feedback(month: str | None = None, force: bool = False) -> dict:
    report = deliver(month, force)
    print(f"ratings summary {report['week']} ({report['mode']}): {report['sent']} sent, {report['outbox']} outbox, "
          f"{report['skipped']} already delivered, {report['failed']} failed"
          + "".join(f"\nwarning: {w}" for w in report["warnings"]))
    require_delivered(report)  # every delivery failed: the flow run ends Failed
    return report


if __name__ == "__main__":
    monthly_feedback()
