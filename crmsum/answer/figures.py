"""`metric` and `ranking` answers: one figure with its base, or managers (companies) ordered by it.

Definitions (one place, the eval's references use the same):
- won / lost: deals closed won / lost in the period (base: deals closed in the period);
- won_amount / lost_amount: the sum of their amounts (base: how many);
- win_rate: won / (won + lost) of the deals closed in the period (base: closed);
- avg_deal («средний чек»): the mean amount of the deals won in the period (base: won);
- cycle («цикл сделки»): the median days from creation to the win (base: won);
- count («сколько»): how many deals match the question's filters.
A rate over fewer than `MIN_BASE` closed deals is shown but ranked after the others and flagged.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from crmsum.answer import dealset
from crmsum.answer.model import Answer, Prepared
from crmsum.answer.periods import period_text
from crmsum.ru import count, money, number, plural

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

MIN_BASE = 5
RANK_MAX = 15

METRIC_NAMES = {
    "won": "выигранные сделки", "lost": "проигранные сделки", "won_amount": "сумма выигранных сделок",
    "lost_amount": "сумма проигранных сделок", "win_rate": "доля выигранных сделок (конверсия)",
    "avg_deal": "средний чек (выигранные сделки)", "cycle": "цикл сделки (медиана, дни до победы)",
    "count": "число сделок", "activity": "выигранные сделки",
}
_AGG = """count(*) FILTER (WHERE outcome = 'won') AS won,
          count(*) FILTER (WHERE outcome = 'lost') AS lost,
          coalesce(sum(amount) FILTER (WHERE outcome = 'won'), 0) AS won_amount,
          coalesce(sum(amount) FILTER (WHERE outcome = 'lost'), 0) AS lost_amount,
          avg(amount) FILTER (WHERE outcome = 'won') AS avg_deal,
          median(cycle_days) FILTER (WHERE outcome = 'won') AS cycle,
          count(*) AS n"""


def scope_of(prep: Prepared) -> dealset.Scope:
    p = prep.parsed
    return dealset.Scope(manager=prep.manager, company_id=prep.company_id, start=prep.start, end=prep.end,
                         outcome=getattr(p, "outcome", None), loss_reason=getattr(p, "loss_reason", None),
                         stage=getattr(p, "stage", None), amount_min=getattr(p, "amount_min", None),
                         amount_max=getattr(p, "amount_max", None))


def _metric_of(prep: Prepared) -> str:
    m = getattr(prep.parsed, "metric", None) or "won"
    return "won" if m == "activity" else m


def value_and_base(row: dict, metric: str) -> tuple[float | None, int, str]:
    """(value, base n, what the base counts) of one aggregate row."""
    won, lost = int(row.get("won") or 0), int(row.get("lost") or 0)
    closed = won + lost
    if metric == "win_rate":
        return (won / closed if closed else None), closed, "closed"
    if metric in ("avg_deal", "cycle"):
        v = row.get(metric)
        return (None if v is None or won == 0 else float(v)), won, "won"
    if metric == "won_amount":
        return float(row.get("won_amount") or 0), won, "won"
    if metric == "lost_amount":
        return float(row.get("lost_amount") or 0), lost, "lost"
    if metric == "lost":
        return float(lost), closed, "closed"
    if metric == "count":
        return float(row.get("n") or 0), int(row.get("n") or 0), "all"
    return float(won), closed, "closed"


def fmt_value(v: float | None, metric: str) -> str:
    if v is None:
        return "нет данных"
    if metric in ("won_amount", "lost_amount", "avg_deal"):
        return money(v)
    if metric == "win_rate":
        return f"{v:.0%}"
    if metric == "cycle":
        return f"{number(v)} {plural(v, 'день', 'дня', 'дней')}"
    return count(int(v), "сделка", "сделки", "сделок")


def fmt_base(n: int, kind: str) -> str:
    if kind == "all":
        return ""
    word = {"closed": ("закрытая", "закрытые", "закрытых"), "won": ("выигранная", "выигранные", "выигранных"),
            "lost": ("проигранная", "проигранные", "проигранных")}[kind]
    return f"база: {n} {plural(n, *word)} {plural(n, 'сделка', 'сделки', 'сделок')}"


def heading(title: str, prep: Prepared, source: str) -> list[str]:
    parts = [title]
    if prep.manager:
        parts.append(f"Менеджер: {prep.manager}")
    if prep.company:
        parts.append(f"Компания: {prep.company}")
    parts.append(f"Период: {period_text(prep.start, prep.end)}")
    src = "готовые таблицы (precomputed)" if source == "precomputed" else "собрано по запросу (live)"
    return [" · ".join(parts), f"Источник: {src}"]


def make_answer(prep: Prepared, source: str, head: list[str], lines: list[str], **kw) -> Answer:
    from crmsum.summarize.render import answer_layout, layout_text

    lines = list(prep.notes) + ([""] if prep.notes else []) + lines
    a = Answer(text=layout_text(answer_layout(head, lines=lines)), source=source, manager=prep.manager,
               company=prep.company, start=prep.start, end=prep.end, backend="offline",
               answer_id=uuid.uuid4().hex[:16], period=prep.period, question=prep.question, chat_id=prep.chat_id,
               manager_name=prep.manager_name, intent=prep.intent, unresolved=list(prep.unresolved),
               period_defaulted=prep.period_defaulted, heading=head, lines=lines, **kw)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    return a


def answer_metric(prep: Prepared, ctx: AnswerContext) -> Answer:
    """One figure for the asked scope, with its base."""
    source = dealset.ensure(ctx)
    metric = _metric_of(prep)
    s = scope_of(prep)
    count_only = metric == "count"
    if not count_only:
        s.outcome = None  # rates and sums look at every closed deal of the scope
    cond, args = dealset.where(s, by_close=None if count_only else True)
    cur = ctx.cursor()
    cur.execute(f"SELECT {_AGG} FROM answer_deals WHERE {cond}", args)
    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    v, n, kind = value_and_base(row, metric)
    name = METRIC_NAMES[metric]
    filt = dealset.describe(s, outcome=count_only)
    label = name + (f" ({', '.join(filt)})" if filt else "")
    line = f"{label[:1].upper()}{label[1:]}: {fmt_value(v, metric)}"
    base = fmt_base(n, kind)
    lines = [line + (f" — {base}" if base else "")]
    if v is None:
        lines.append("Нет закрытых сделок в этом периоде — показателю не на чем считаться.")
    elif kind != "all" and n < MIN_BASE:
        lines.append(f"Мало данных (меньше {MIN_BASE} сделок): цифра неустойчива.")
    return make_answer(prep, source, heading("Показатель", prep, source), lines, value=v,
                       items=[{"metric": metric, "value": v, "n": n}])


def ranking_rows(ctx: AnswerContext, prep: Prepared, metric: str, by: str) -> list[dict]:
    """[{key, value, n, kind}] ordered as asked (small bases after the others)."""
    s = scope_of(prep)
    key = "manager" if by == "manager" else "company"
    if by == "manager":
        s.manager = None
    else:
        s.company_id = None
    count_only = metric == "count"
    if not count_only:
        s.outcome = None
    cond, args = dealset.where(s, by_close=None if count_only else True)
    cur = ctx.cursor()
    cur.execute(f"SELECT {key} AS key, {_AGG} FROM answer_deals WHERE {cond} AND {key} IS NOT NULL GROUP BY 1", args)
    cols = [d[0] for d in cur.description]
    rows = []
    for r in cur.fetchall():
        row = dict(zip(cols, r))
        v, n, kind = value_and_base(row, metric)
        rows.append({"key": row["key"], "value": v, "n": n, "kind": kind})
    desc = prep.parsed.order != "asc" if prep.parsed is not None else True
    if metric == "cycle":
        desc = not desc  # «лучший по циклу» — the shortest
    rate = metric in ("win_rate", "avg_deal", "cycle")

    def order(r):
        small = rate and r["n"] < MIN_BASE
        missing = r["value"] is None
        v = r["value"] if r["value"] is not None else 0.0
        return (missing, small, -v if desc else v, str(r["key"]))
    return sorted(rows, key=order)


def answer_ranking(prep: Prepared, ctx: AnswerContext) -> Answer:
    """Managers (or companies) ordered by the asked metric, each with its base."""
    source = dealset.ensure(ctx)
    metric = _metric_of(prep)
    by = getattr(prep.parsed, "by", "manager") or "manager"
    rows = ranking_rows(ctx, prep, metric, by)
    known = {p for p, _ in ctx.managers}
    if by == "manager" and known:
        rows = [r for r in rows if r["key"] in known] or rows
    who = "менеджеров" if by == "manager" else "компаний"
    head = heading(f"Рейтинг {who}: {METRIC_NAMES[metric]}", prep, source)
    lines = []
    if not rows:
        lines.append("Нет сделок за этот период — рейтинг не из чего составить.")
    shown = rows if by == "manager" else rows[:RANK_MAX]
    for i, r in enumerate(shown, 1):
        base = fmt_base(r["n"], r["kind"])
        flag = " — мало данных" if metric in ("win_rate", "avg_deal", "cycle") and r["n"] < MIN_BASE else ""
        lines.append(f"{i}. {r['key']} — {fmt_value(r['value'], metric)}" + (f" ({base})" if base else "") + flag)
    if len(rows) > len(shown):
        lines.append(f"… и ещё {count(len(rows) - len(shown), 'компания', 'компании', 'компаний')}.")
    return make_answer(prep, source, head, lines, items=rows,
                       leader=[rows[0]["key"]] if rows and rows[0]["value"] else [])
