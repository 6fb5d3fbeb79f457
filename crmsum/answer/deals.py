"""`deals` and `stalled` answers: every matching deal with its amount and its stage or loss reason.

`deals` lists all deals of the scope and filters (outcome, loss reason, stage, amount), biggest
first; the text carries every one (the bot pages it with buttons, `PAGE` per page). `stalled` lists
the open deals without activity for `STALE_DAYS` days or more — and, when the precomputed
`deal_features` holds the model's win probability, the riskiest first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crmsum.answer import dealset
from crmsum.answer.figures import heading, make_answer, scope_of
from crmsum.answer.model import Answer, Prepared
from crmsum.ru import count, money

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

PAGE = 10
STALE_DAYS = 14
_OUTCOME_WORD = {"won": "выиграна", "lost": "проиграна", "open": "в работе"}
_COLS = ("lead_id, name, manager, company, outcome, amount, stage, loss_reason, "
         "CAST(closed_at AS DATE) AS closed, CAST(last_activity AS DATE) AS last_day, win_probability")


def deal_line(n: int, d: dict) -> str:
    """«3. «Поставка труб» #123 — Теххренмаш — 250 000 ₽ — проиграна: Дорого (12.03.2024) — PER-…»."""
    state = _OUTCOME_WORD.get(d["outcome"], d["outcome"])
    if d["outcome"] == "lost" and d.get("loss_reason"):
        state += f": {d['loss_reason']}"
    elif d["outcome"] == "open" and d.get("stage"):
        state += f", этап «{d['stage']}»"
    if d.get("closed"):
        state += f" ({d['closed']:%d.%m.%Y})"
    title = d["name"] or "без названия"
    ref = "" if f"#{d['lead_id']}" in title else f" #{d['lead_id']}"  # the title may carry the id already
    parts = [f"{n}. «{title}»{ref}"]
    if d.get("company"):
        parts.append(str(d["company"]))
    parts += [money(d["amount"] or 0), state]
    if d.get("manager"):
        parts.append(str(d["manager"]))
    return " — ".join(parts)


def _rows(ctx: AnswerContext, cond: str, args: list, order: str) -> list[dict]:
    cur = ctx.cursor()
    cur.execute(f"SELECT {_COLS} FROM answer_deals WHERE {cond} ORDER BY {order}", args)
    cols = [d[0] for d in cur.description]
    seen, out = set(), []
    for r in cur.fetchall():
        d = dict(zip(cols, r))
        if d["lead_id"] not in seen:  # a deal once per list
            seen.add(d["lead_id"])
            out.append(d)
    return out


def _title(s: dealset.Scope) -> str:
    what = dealset.OUTCOME_ADJ.get(s.outcome or "", "")
    extra = dealset.describe(s)
    return f"Сделки{': ' + what if what else ''}" + (f" ({', '.join(extra)})" if extra else "")


def answer_deals(prep: Prepared, ctx: AnswerContext) -> Answer:
    source = dealset.ensure(ctx)
    s = scope_of(prep)
    cond, args = dealset.where(s)
    rows = _rows(ctx, cond, args, "amount DESC, lead_id")
    total = sum(int(d["amount"] or 0) for d in rows)
    lines = [f"Найдено {count(len(rows), 'сделка', 'сделки', 'сделок')} на {money(total)}" + (":" if rows else ".")]
    lines += [deal_line(i, d) for i, d in enumerate(rows, 1)]
    if not rows:
        lines.append("Таких сделок в этом периоде нет.")
    return make_answer(prep, source, heading(_title(s), prep, source), lines, items=rows, value=len(rows))


def answer_stalled(prep: Prepared, ctx: AnswerContext, today: dt.date) -> Answer:
    """Open deals without movement (no event, note or completed task for `STALE_DAYS` days)."""
    source = dealset.ensure(ctx)
    s = scope_of(prep)
    s.outcome, s.start, s.end = "open", None, None
    cond, args = dealset.where(s)
    cut = dt.datetime.combine(today - dt.timedelta(days=STALE_DAYS), dt.time.max)
    rows = _rows(ctx, cond + " AND last_activity <= ?", args + [cut],
                 "coalesce(win_probability, 1) ASC, last_activity ASC, amount DESC")
    total = sum(int(d["amount"] or 0) for d in rows)
    prep.start = prep.end = None
    lines = [f"Открытые сделки без движения {STALE_DAYS} дней и дольше (на {today:%d.%m.%Y}): "
             f"{count(len(rows), 'сделка', 'сделки', 'сделок')} на {money(total)}" + (":" if rows else ".")]
    for i, d in enumerate(rows, 1):
        days = (today - d["last_day"]).days if d.get("last_day") else None
        extra = f" — без движения {count(days, 'день', 'дня', 'дней')}" if days is not None else ""
        if d.get("win_probability") is not None:
            extra += f", шанс выиграть {d['win_probability']:.0%}"
        lines.append(deal_line(i, d) + extra)
    from crmsum.answer.insight import risk_lines

    risk = risk_lines(ctx, prep)
    if risk:
        lines = risk + [""] + lines
        source = "precomputed" if dealset.has_rows(ctx, "deal_features") else source
    head = heading("Сделки под угрозой и без движения", prep, source)
    head[0] = head[0].replace("Период: вся история", f"На дату: {today:%d.%m.%Y}")
    return make_answer(prep, source, head, lines, items=rows, value=len(rows))
