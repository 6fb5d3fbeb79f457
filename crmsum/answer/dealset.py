"""The deals the `deals`, `metric`, `ranking` and `stalled` answers read: one row per lead, built once
per lake snapshot into the context's in-memory database (`answer_deals`), so each answer is one small
SQL query.

A row: lead id and title, manager pseudonym, company, pipeline, stage name, outcome (won / lost /
open), amount, loss reason, created and closed times, cycle days, days since the last activity, and —
when engineer insights' precomputed `deal_features` is in the lake — the model's win probability.
The outcome attribution follows `crmsum.facts`: a close counts in the period of `closed_at` (falling
back to `updated_at`), for the lead's current responsible manager.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmsum.facts_sql import LOST, WON

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext


_BUILD = f"""
CREATE OR REPLACE TABLE answer_deals AS
WITH users AS (SELECT user_id, any_value(name) AS manager FROM crm_users GROUP BY user_id),
comps AS (SELECT company_id, any_value(name) AS company FROM crm_companies GROUP BY company_id),
stages AS (SELECT pipeline_id, status_id, any_value(name) AS stage FROM crm_statuses GROUP BY ALL),
pipes AS (SELECT pipeline_id, any_value(name) AS pipeline FROM crm_pipelines GROUP BY pipeline_id),
touch AS (
    SELECT lead_id, max(ts) AS last_ts FROM (
        SELECT lead_id, created_at AS ts FROM crm_events
        UNION ALL SELECT lead_id, created_at FROM crm_notes
        UNION ALL SELECT lead_id, updated_at FROM crm_tasks WHERE is_completed)
    GROUP BY lead_id)
SELECT l.lead_id, l.name, u.manager, l.company_id, c.company, l.pipeline_id, p.pipeline, s.stage,
       CASE WHEN l.status_id = {WON} THEN 'won' WHEN l.status_id = {LOST} THEN 'lost' ELSE 'open' END AS outcome,
       coalesce(l.price, 0) AS amount, l.loss_reason, l.created_at,
       CASE WHEN l.status_id IN ({WON}, {LOST}) THEN coalesce(l.closed_at, l.updated_at) END AS closed_at,
       CASE WHEN l.status_id IN ({WON}, {LOST})
            THEN date_diff('hour', l.created_at, coalesce(l.closed_at, l.updated_at)) / 24.0 END AS cycle_days,
       coalesce(t.last_ts, l.updated_at, l.created_at) AS last_activity
FROM crm_leads l
LEFT JOIN users u ON u.user_id = l.responsible_user_id
LEFT JOIN comps c ON c.company_id = l.company_id
LEFT JOIN stages s ON s.pipeline_id = l.pipeline_id AND s.status_id = l.status_id
LEFT JOIN pipes p ON p.pipeline_id = l.pipeline_id
LEFT JOIN touch t ON t.lead_id = l.lead_id
WHERE NOT coalesce(l.is_deleted, false)
"""


def ensure(ctx: AnswerContext) -> str:
    """Build `answer_deals` once per snapshot; returns 'precomputed' when `deal_features` backs it."""
    def build() -> str:
        cur = ctx.cursor()
        cur.execute(_BUILD)
        src = "live"
        if has_rows(ctx, "deal_features"):
            try:
                cur.execute("""CREATE OR REPLACE TABLE answer_deals AS
                               SELECT d.*, f.win_probability FROM answer_deals d
                               LEFT JOIN deal_features f USING (lead_id)""")
                src = "precomputed"
            except Exception:  # noqa: BLE001 - an older deal_features without the column: no probabilities
                cur.execute("ALTER TABLE answer_deals ADD COLUMN win_probability DOUBLE")
        else:
            cur.execute("ALTER TABLE answer_deals ADD COLUMN win_probability DOUBLE")
        return src
    return ctx.memo("answer_deals", build)


def has_rows(ctx: AnswerContext, table: str) -> bool:
    """Whether a precomputed table holds anything (an empty table still has its schema part)."""
    def q() -> bool:
        try:
            return ctx.cursor().execute(f"SELECT count(*) > 0 FROM (SELECT 1 FROM {table} LIMIT 1)").fetchone()[0]
        except Exception:  # noqa: BLE001 - a lake older than the table
            return False
    return ctx.memo(("has_rows", table), q)


def loss_reasons(ctx: AnswerContext) -> list[str]:
    """The account's loss reasons as recorded on lost deals (most used first)."""
    def q() -> list[str]:
        rows = ctx.cursor().execute("SELECT loss_reason FROM crm_leads WHERE loss_reason IS NOT NULL AND "
                                    "loss_reason <> '' GROUP BY 1 ORDER BY count(*) DESC").fetchall()
        return [r[0] for r in rows]
    return ctx.memo("loss_reasons", q)


def stages(ctx: AnswerContext) -> list[str]:
    def q() -> list[str]:
        rows = ctx.cursor().execute("SELECT DISTINCT name FROM crm_statuses WHERE name IS NOT NULL "
                                    f"AND status_id NOT IN ({WON}, {LOST}) ORDER BY 1").fetchall()
        return [r[0] for r in rows]
    return ctx.memo("stages", q)


def history(ctx: AnswerContext, today: dt.date) -> tuple[dt.date, dt.date]:
    """The whole history: the first deal's creation day to today (the «all history» default)."""
    def q():
        return ctx.cursor().execute("SELECT CAST(min(created_at) AS DATE) FROM crm_leads").fetchone()[0]
    first = ctx.memo("first_day", q)
    return (first or today), today


@dataclass
class Scope:
    """Which deals: whose, of which company, when, with which outcome / reason / stage / amount."""

    manager: str | None = None
    company_id: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    outcome: str | None = None
    loss_reason: str | None = None
    stage: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None


OUTCOME_ADJ = {"won": "выигранные", "lost": "проигранные", "open": "открытые"}


def describe(s: Scope, outcome: bool = False) -> list[str]:
    """The scope's filters in words («причина «Дорого»», «от 1 000 000 ₽»), the outcome first if asked."""
    from crmsum.ru import money

    out = [OUTCOME_ADJ[s.outcome]] if outcome and s.outcome in OUTCOME_ADJ else []
    if s.loss_reason:
        out.append(f"причина «{s.loss_reason}»")
    if s.stage:
        out.append(f"этап «{s.stage}»")
    if s.amount_min is not None:
        out.append(f"от {money(s.amount_min)}")
    if s.amount_max is not None:
        out.append(f"до {money(s.amount_max)}")
    return out


_FILTERS = (  # a scope's field, its condition, and how its value is passed
    ("manager", "manager = ?", str), ("company_id", "company_id = ?", int), ("outcome", "outcome = ?", str),
    ("loss_reason", "loss_reason = ?", str), ("stage", "stage = ?", str), ("amount_min", "amount >= ?", int),
    ("amount_max", "amount <= ?", int))


def where(s: Scope, *, by_close: bool | None = None) -> tuple[str, list]:
    """SQL condition and parameters for a scope. In a period, closed outcomes count by their close
    date, open deals by being open at the period's end, and «any outcome» by creation or close."""
    cond, args = ["TRUE"], []
    for attr, sql, cast in _FILTERS:
        value = getattr(s, attr)
        if value is not None and value != "":
            cond.append(sql)
            args.append(cast(value))
    if s.start is not None and s.end is not None:
        lo = dt.datetime.combine(s.start, dt.time.min)
        hi = dt.datetime.combine(s.end + dt.timedelta(days=1), dt.time.min)
        closed = by_close if by_close is not None else s.outcome in ("won", "lost")
        if s.outcome == "open":
            cond.append("created_at < ? AND (closed_at IS NULL OR closed_at >= ?)")
            args += [hi, hi]
        elif closed:
            cond.append("closed_at >= ? AND closed_at < ?")
            args += [lo, hi]
        else:
            cond.append("((created_at >= ? AND created_at < ?) OR (closed_at >= ? AND closed_at < ?))")
            args += [lo, hi, lo, hi]
    return " AND ".join(cond), args
