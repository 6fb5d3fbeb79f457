"""`what_wins`, `why` and `similar` answers.

- `what_wins`: the drivers of `crmsum.insights.report` (win rate with and without, base, interval)
  and the loss reasons of the period's lost deals;
- `why` about a company (or a deal): every lost / won deal of it with its loss reason and last notes;
  about a manager: where the manager differs from the team (win rate, deal size, cycle, loss reasons)
  plus the habits `crmsum.insights` finds;
- `similar`: the closest past deals and records, from `crmsum.retrieval` (similar_deals, search).
What is not available yet (a package not installed, a table not computed) is said plainly, never
replaced by a guess.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from crmsum.answer import dealset
from crmsum.answer.deals import deal_line
from crmsum.answer.figures import MIN_BASE, heading, make_answer, value_and_base
from crmsum.answer.model import Answer, Prepared
from crmsum.ru import count, money

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

NOTES_PER_DEAL = 2


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _reasons(ctx: AnswerContext, s: dealset.Scope) -> list[str]:
    s = dealset.Scope(**{**s.__dict__, "outcome": "lost", "loss_reason": None})
    cond, args = dealset.where(s)
    rows = ctx.cursor().execute(f"SELECT coalesce(loss_reason, 'без причины'), count(*), sum(amount) FROM answer_deals "
                                f"WHERE {cond} GROUP BY 1 ORDER BY 2 DESC, 1", args).fetchall()
    total = sum(r[1] for r in rows)
    return [f"• {r[0]} — {count(r[1], 'сделка', 'сделки', 'сделок')} из {total} ({r[1] / total:.0%}), {money(r[2] or 0)}"
            for r in rows]


def _drivers(ctx: AnswerContext, prep: Prepared) -> tuple[list[str], str]:
    """Lines about what wins (from crmsum.insights), and the source."""
    if not _have("crmsum.insights"):
        return ["Что влияет на исход сделок (звонки, скорость ответа, встречи, скидки), пока не посчитано: модуль "
                "анализа crmsum.insights (таблицы deal_features и drivers) ещё не подключён."], "live"
    from crmsum.insights import report

    rep = ctx.memo(("insights", prep.start, prep.end, prep.manager),
                   lambda: report(ctx.cursor(), start=prep.start, end=prep.end, manager=prep.manager))
    d = rep.to_dict()
    out = [f"Закрыто {count(int(d.get('closed') or 0), 'сделка', 'сделки', 'сделок')}, выиграно "
           f"{int(d.get('won') or 0)} (доля {float(d.get('win_rate') or 0):.0%})."]
    drivers = [x for x in d.get("drivers") or [] if x.get("significant")] or (d.get("drivers") or [])[:5]
    if not drivers:
        out.append("Устойчивых факторов не найдено: данных мало или различия в пределах случайности.")
    for x in drivers[:6]:
        ci = x.get("ci95") or [None, None]
        ci_t = f", 95% интервал разницы {ci[0]:+.0%}…{ci[1]:+.0%}" if None not in ci else ""
        out.append(f"• {x.get('label') or x.get('feature')}: побед {x['win_rate_with']:.0%} при n={x['n_with']} "
                   f"против {x['win_rate_without']:.0%} при n={x['n_without']}{ci_t}"
                   + ("" if x.get("significant") else " — не значимо"))
    return out, "precomputed"


def answer_what_wins(prep: Prepared, ctx: AnswerContext) -> Answer:
    """Loss reasons of the period first (what the lake says for sure), then the drivers."""
    dealset.ensure(ctx)
    drivers, source = _drivers(ctx, prep)
    s = dealset.Scope(manager=prep.manager, company_id=prep.company_id, start=prep.start, end=prep.end)
    reasons = _reasons(ctx, s)
    lines = ["Причины проигрышей:"] + (reasons or ["• проигранных сделок в этом периоде нет"]) + [""] + drivers
    return make_answer(prep, source, heading("Что выигрывает и что проигрывает сделки", prep, source), lines)


def _last_notes(ctx: AnswerContext, lead_id: int) -> list[str]:
    rows = ctx.cursor().execute("SELECT text FROM crm_notes WHERE lead_id = ? AND text IS NOT NULL AND text <> '' "
                                "ORDER BY created_at DESC LIMIT ?", [int(lead_id), NOTES_PER_DEAL]).fetchall()
    return [f"   — {r[0][:200]}" for r in rows]


def _why_deals(prep: Prepared, ctx: AnswerContext) -> list[str]:
    """Each closed deal of the company (lost ones first when the question is about losing)."""
    outcome = getattr(prep.parsed, "outcome", None) or "lost"
    s = dealset.Scope(manager=prep.manager, company_id=prep.company_id, start=prep.start, end=prep.end,
                      outcome=outcome)
    cond, args = dealset.where(s)
    cur = ctx.cursor()
    cur.execute("SELECT lead_id, name, manager, company, outcome, amount, stage, loss_reason, "
                f"CAST(closed_at AS DATE) AS closed FROM answer_deals WHERE {cond} ORDER BY closed_at DESC", args)
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    word = "проиграно" if outcome == "lost" else "выиграно"
    lines = [f"Всего {word} {count(len(rows), 'сделка', 'сделки', 'сделок')} на "
             f"{money(sum(int(r['amount'] or 0) for r in rows))}."]
    if outcome == "lost" and rows:
        lines += ["Причины:"] + _reasons(ctx, s)
    for i, r in enumerate(rows, 1):
        lines.append(deal_line(i, r))
        lines += _last_notes(ctx, r["lead_id"])
    return lines


def _why_manager(prep: Prepared, ctx: AnswerContext) -> list[str]:
    """Where the manager differs from the team, on the same period."""
    lines = []
    agg = ("count(*) FILTER (WHERE outcome='won') AS won, count(*) FILTER (WHERE outcome='lost') AS lost, "
           "avg(amount) FILTER (WHERE outcome='won') AS avg_deal, median(cycle_days) FILTER (WHERE outcome='won') AS cycle")
    rows = {}
    for who, mgr in (("manager", prep.manager), ("team", None)):
        cond, args = dealset.where(dealset.Scope(manager=mgr, start=prep.start, end=prep.end), by_close=True)
        cur = ctx.cursor()
        cur.execute(f"SELECT {agg} FROM answer_deals WHERE {cond}", args)
        rows[who] = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    me, team = rows["manager"], rows["team"]
    wr_me, n_me, _ = value_and_base(me, "win_rate")
    wr_t, n_t, _ = value_and_base(team, "win_rate")
    if wr_me is None:
        return ["У менеджера нет закрытых сделок в этом периоде — сравнивать не с чем."]
    lines.append(f"• Доля побед: {wr_me:.0%} (n={n_me}) против {wr_t:.0%} у команды (n={n_t})"
                 + (" — мало данных" if n_me < MIN_BASE else ""))
    if me.get("avg_deal") is not None and team.get("avg_deal") is not None:
        lines.append(f"• Средний чек: {money(me['avg_deal'])} против {money(team['avg_deal'])} у команды")
    if me.get("cycle") is not None and team.get("cycle") is not None:
        lines.append(f"• Цикл до победы (медиана): {me['cycle']:.0f} дн. против {team['cycle']:.0f} дн. у команды")
    s = dealset.Scope(manager=prep.manager, start=prep.start, end=prep.end)
    reasons = _reasons(ctx, s)
    if reasons:
        lines += ["Причины проигрышей менеджера:"] + reasons
    if _have("crmsum.insights"):
        drv, _src = _drivers(ctx, prep)
        lines += ["Привычки, которые отличают сделки менеджера (по модели):"] + drv
    else:
        lines.append("Пока нет данных о привычках менеджера против команды (звонки, скорость ответа, встречи): "
                     "модуль анализа crmsum.insights ещё не подключён.")
    return lines


def answer_why(prep: Prepared, ctx: AnswerContext) -> Answer:
    source = dealset.ensure(ctx)
    if prep.company_id is not None:
        lines = _why_deals(prep, ctx)
        title = "Почему так закрылись сделки"
    elif prep.manager:
        lines = _why_manager(prep, ctx)
        title = "Чем менеджер отличается от команды"
    else:
        return answer_what_wins(prep, ctx)
    return make_answer(prep, source, heading(title, prep, source), lines)


OUTCOME_WORD = {"won": "выиграна", "lost": "проиграна", "open": "в работе"}


def answer_similar(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The closest past deals (outcome, amount, loss reason, deciding records) and records, cited."""
    from crmsum.retrieval import RetrievalError, search, similar_deals

    question = ctx.anonymize(prep.question)  # the query may leave the machine (openai embeddings)
    scope = {"manager": prep.manager, "company_id": prep.company_id, "since": prep.start, "until": prep.end}
    head = heading("Похожие сделки", prep, "live")
    try:
        deals = similar_deals(ctx.lake, question, k=5, settings=ctx.settings, **scope)
        hits = search(ctx.lake, question, k=20, settings=ctx.settings, **scope)
    except RetrievalError as exc:
        line = ("Поиск похожего пока недоступен: записи ещё не проиндексированы (это делает ночной поток)."
                if "run the nightly flow" in str(exc) else "Не понял, что искать: опишите ситуацию парой слов.")
        return make_answer(prep, "live", head, [line])
    texts: set[str] = set()
    hits = [h for h in hits if not (h.text in texts or texts.add(h.text))][:5]  # templates repeat: one of each
    if not deals and not hits:
        return make_answer(prep, "live", head, ["Похожих сделок и записей не нашлось."])
    lines = [f"Ближайшие прошлые сделки ({count(len(deals), 'сделка', 'сделки', 'сделок')}), самые похожие первыми:"]
    for d in deals:
        reason = f", причина: {d.loss_reason}" if d.loss_reason else ""
        amount = f", {money(d.amount)}" if d.amount else ""
        lines.append(f"• «{d.name}» — {OUTCOME_WORD.get(d.outcome, d.outcome)}{amount}{reason}")
        lines += [f"  – {r.text[:160]} [{r.id}]" for r in d.records[:NOTES_PER_DEAL]]
    if hits:
        lines.append("Записи о той же ситуации:")
        lines += [f"• {h.text[:160]} [{h.id}]" for h in hits]
    items = [d.to_json() for d in deals] + [h.to_json() for h in hits]
    return make_answer(prep, "live", head, lines, items=items)


def answer(prep: Prepared, ctx: AnswerContext) -> Answer:
    if prep.intent == "similar":
        return answer_similar(prep, ctx)
    if prep.intent == "why":
        return answer_why(prep, ctx)
    return answer_what_wins(prep, ctx)
