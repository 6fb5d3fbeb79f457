"""`what_wins`, `why` and `similar` answers.

- `what_wins`: the drivers of `crmsum.insights.report` (win rate with and without, base, interval)
  and the loss reasons of the period's lost deals;
- `why` about a company (or a deal): every lost / won deal of it with its loss reason and last notes;
  about a manager: where the manager differs from the team (win rate, deal size, cycle, loss reasons)
  plus the habits `crmsum.insights` finds;
- `similar`: the closest past deals and records, from `crmsum.retrieval` (similar_deals, search).
What is not available yet (a table not computed, too few closed deals) is said plainly, never
replaced by a guess.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from crmsum.answer import dealset
from crmsum.answer.deals import deal_line
from crmsum.answer.figures import MIN_BASE, heading, make_answer, value_and_base
from crmsum.answer.model import Answer, Prepared
from crmsum.ru import count, money

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

log = logging.getLogger(__name__)

NOTES_PER_DEAL = 2
GAPS_DEALS = 5  # deals of a «why» answer compared feature by feature with the won ones


def _reasons(ctx: AnswerContext, s: dealset.Scope) -> list[str]:
    s = dealset.Scope(**{**s.__dict__, "outcome": "lost", "loss_reason": None})
    cond, args = dealset.where(s)
    rows = ctx.cursor().execute(f"SELECT coalesce(loss_reason, 'без причины'), count(*), sum(amount) FROM answer_deals "
                                f"WHERE {cond} GROUP BY 1 ORDER BY 2 DESC, 1", args).fetchall()
    total, amount = sum(r[1] for r in rows), sum(r[2] or 0 for r in rows)
    if not rows:
        return []
    return ([f"Проиграно {count(total, 'сделка', 'сделки', 'сделок')} на {money(amount)}, по причинам:"]
            + [f"• {r[0]} — {count(r[1], 'сделка', 'сделки', 'сделок')} из {total}" for r in rows])


def _report(ctx: AnswerContext, start=None, end=None, manager: str | None = None):
    """`crmsum.insights.report` for a period and manager, once per lake snapshot (None: all of it)."""
    from crmsum.insights import report

    return ctx.memo(("insights", start, end, manager),
                    lambda: report(ctx.cursor(), start=start, end=end, manager=manager))


def warm(ctx: AnswerContext) -> None:
    """Fit what `what_wins`, `why` and `stalled` look up — the team and each manager, all history and as of
    today — before anyone asks (the bot runs this after each nightly reload)."""
    from crmsum.ru import today

    start, end = dealset.history(ctx, today(ctx.settings))
    try:
        for manager in [None, *(p for p, _ in ctx.managers)]:
            _report(ctx, manager=manager)
            _report(ctx, start, end, manager)
            if manager is not None:
                _habits_of(ctx, manager, start, end)
    except Exception:  # noqa: BLE001 - warming is an optimisation: the question computes it and says why
        log.exception("could not precompute the insights reports")


def _drivers(ctx: AnswerContext, prep: Prepared) -> tuple[list[str], str]:
    """Lines about what wins (from crmsum.insights), and the source."""
    rep = _report(ctx, prep.start, prep.end, prep.manager)
    source = "precomputed" if dealset.has_rows(ctx, "drivers") else "live"
    out = [f"Что влияет на исход (закрыто {count(rep.closed, 'сделка', 'сделки', 'сделок')}, выиграно {rep.won}"
           + (f", доля побед {rep.win_rate:.0%}" if rep.win_rate is not None else "") + "):"]
    if rep.reason:
        return out + [f"• {rep.reason}"], source
    drivers = rep.significant or []
    if not drivers:
        out.append("• Устойчивых факторов не найдено: различия в пределах случайности или данных мало.")
    for d in drivers[:6]:
        ci = f", 95% интервал разницы {d.ci95[0]:+.0%}…{d.ci95[1]:+.0%}" if d.ci95 else ""
        out.append(f"• {d.label}: побед {d.win_rate_with:.0%} (n={d.n_with}) против {d.win_rate_without:.0%} "
                   f"(n={d.n_without}){ci}")
    return out, source


def risk_lines(ctx: AnswerContext, prep: Prepared, limit: int = 10) -> list[str]:
    """Open deals at risk by the out-of-time validated model of crmsum.insights."""
    rep = _report(ctx, manager=prep.manager)
    risks = rep.risks[:limit]
    if not risks:
        return [] if not rep.reason else [f"Модель риска: {rep.reason}"]
    m = rep.model
    head = "Под угрозой по модели" + (f" (AUC {m.auc:.2f} на {m.validated_on} сделках после {m.cutoff})"
                                      if m and m.auc is not None else "") + ":"
    out = [head]
    for i, r in enumerate(risks, 1):
        why = "; ".join(r.reasons[:3])
        out.append(f"{i}. «{r.name or 'без названия'}» #{r.lead_id} — {money(r.amount)} — шанс {r.win_probability:.0%}"
                   + (f" — {why}" if why else "") + (f" — {r.manager}" if r.manager else ""))
    return out


def answer_what_wins(prep: Prepared, ctx: AnswerContext) -> Answer:
    """Loss reasons of the period first (what the lake says for sure), then the drivers."""
    dealset.ensure(ctx)
    drivers, source = _drivers(ctx, prep)
    s = dealset.Scope(manager=prep.manager, company_id=prep.company_id, start=prep.start, end=prep.end)
    reasons = _reasons(ctx, s)
    lines = (reasons or ["Проигранных сделок в этом периоде нет."]) + [""] + drivers
    return make_answer(prep, source, heading("Что выигрывает и что проигрывает сделки", prep, source), lines)


def _deciding_notes(ctx: AnswerContext, lead_id: int, query: str) -> list[str]:
    """The deal's records closest to what was asked (its loss reason and the question) through the
    retriever, cited; the latest notes when the lake has no embeddings yet."""
    from crmsum.retrieval import RetrievalError, search

    try:
        hits = search(ctx.lake, query, k=NOTES_PER_DEAL, lead_id=int(lead_id), settings=ctx.settings)
        return [f"   — {h.text[:200]} [{h.id}]" for h in hits]
    except RetrievalError:
        rows = ctx.cursor().execute("SELECT note_id, text FROM crm_notes WHERE lead_id = ? AND text IS NOT NULL "
                                    "AND text <> '' ORDER BY created_at DESC LIMIT ?",
                                    [int(lead_id), NOTES_PER_DEAL]).fetchall()
        return [f"   — {r[1][:200]} [note:{r[0]}]" for r in rows]


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
    if outcome == "lost" and rows:
        lines = _reasons(ctx, s) + [""]  # the total and the reasons, then each deal
    else:
        word = "проиграно" if outcome == "lost" else "выиграно"
        lines = [f"Всего {word} {count(len(rows), 'сделка', 'сделки', 'сделок')} на "
                 f"{money(sum(int(r['amount'] or 0) for r in rows))}."]
    for i, r in enumerate(rows, 1):
        lines.append(deal_line(i, r))
        if i <= GAPS_DEALS:
            lines += _gaps(ctx, r["lead_id"])
        query = " ".join(x for x in (r.get("loss_reason"), ctx.anonymize(prep.question)) if x)
        lines += _deciding_notes(ctx, r["lead_id"], query)
    return lines


def _gaps(ctx: AnswerContext, lead_id: int) -> list[str]:
    """Where the deal differs from the won deals of its pipeline (crmsum.insights.deal_vs_won)."""
    from crmsum.insights import deal_vs_won
    from crmsum.insights.analysis import load_features
    from crmsum.insights.compare import won_profile

    try:
        profile = ctx.memo("won_profile", lambda: won_profile(load_features(ctx.cursor())))
        cmp = deal_vs_won(ctx.cursor(), int(lead_id), profile)
    except Exception:  # noqa: BLE001 - a deal the features do not cover: its notes still speak
        return []
    if cmp.reason:
        return [f"   · {cmp.reason}"]
    return [f"   · {g.note}" for g in cmp.gaps[:3]]


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
        lines.append(f"• Средний чек: {money(me['avg_deal'])} (n={int(me['won'])}) против {money(team['avg_deal'])} "
                     f"у команды (n={int(team['won'])})")
    if me.get("cycle") is not None and team.get("cycle") is not None:
        lines.append(f"• Цикл до победы (медиана): {count(round(me['cycle']), 'день', 'дня', 'дней')} против "
                     f"{count(round(team['cycle']), 'день', 'дня', 'дней')} у команды")
    s = dealset.Scope(manager=prep.manager, start=prep.start, end=prep.end)
    reasons = _reasons(ctx, s)
    if reasons:
        lines += [""] + reasons
    return lines + [""] + _habits(ctx, prep)


def _habits_of(ctx: AnswerContext, manager: str, start=None, end=None):
    """`crmsum.insights.manager_habits`, once per lake snapshot."""
    from crmsum.insights import manager_habits

    return ctx.memo(("habits", manager, start, end),
                    lambda: manager_habits(ctx.cursor(), manager, start=start, end=end))


def _habits(ctx: AnswerContext, prep: Prepared) -> list[str]:
    """The manager's habits beside the team's (crmsum.insights.manager_habits)."""
    h = _habits_of(ctx, prep.manager, prep.start, prep.end)
    if h.reason:
        return [f"Привычки против команды: {h.reason}"]
    out = [f"Привычки против команды ({h.closed} закрытых сделок менеджера, {h.team_closed} у команды):"]
    out += [f"• {g.note}" for g in h.habits[:6]]
    if h.top is not None:
        out.append(f"Главное, что стоит изменить: {h.top.note}")
    return out


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


_SIMILAR_CUES = re.compile(r"(?i)\b(?:покажи|найди|были ли|было ли|есть ли|напомни|похож\w*|подобн\w*|аналогичн\w*|"
                           r"такие же|такой же|такая же|сделк\w*|ситуаци\w*|случа\w*|similar|deals?|to|на|как|с|по|у)\b")


def _situation(prep: Prepared, ctx: AnswerContext):
    """What to look for: the company's latest deal when a company is named, else the question's own
    words (anonymized: an embedding endpoint may be remote)."""
    if prep.company_id is not None:
        row = ctx.cursor().execute("SELECT lead_id FROM answer_deals WHERE company_id = ? ORDER BY "
                                   "(outcome = 'open') DESC, created_at DESC LIMIT 1", [int(prep.company_id)]).fetchone()
        if row:
            return int(row[0])
    text = _SIMILAR_CUES.sub(" ", ctx.anonymize(prep.question))
    text = " ".join(text.replace(":", " ").split()).strip(" ,.?!;—-")
    return re.sub(r"(?i)^(?:когда|где|чтобы)\s+", "", text)


def answer_similar(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The closest past deals (outcome, amount, loss reason, deciding records) and the records about the same
    situation, each cited; a named company stands for its latest deal."""
    from crmsum.retrieval import RetrievalError, search, similar_deals

    dealset.ensure(ctx)
    head = heading("Похожие сделки", prep, "live")
    what = _situation(prep, ctx)
    scope = {"manager": prep.manager, "since": prep.start, "until": prep.end}
    try:
        deals = [d for d in similar_deals(ctx.lake, what, k=6, settings=ctx.settings, **scope) if d.lead_id != what][:5]
        hits = [] if isinstance(what, int) else search(ctx.lake, what, k=20, settings=ctx.settings,
                                                        company_id=prep.company_id, **scope)
    except RetrievalError as exc:
        line = ("Поиск похожего пока недоступен: записи ещё не проиндексированы (это делает ночной поток)."
                if "run the nightly flow" in str(exc) else "Не понял, что искать: опишите ситуацию парой слов.")
        return make_answer(prep, "live", head, [line])
    texts: set[str] = set()
    hits = [h for h in hits if not (h.text in texts or texts.add(h.text))][:5]  # templates repeat: one of each
    if not deals and not hits:
        return make_answer(prep, "live", head, ["Похожих сделок и записей не нашлось."])
    like = f"сделку #{what}" if isinstance(what, int) else f"«{what}»"
    lines = [f"Ближайшие прошлые сделки, похожие на {like}: {count(len(deals), 'сделка', 'сделки', 'сделок')}, "
             "самые похожие первыми:"]
    for d in deals:
        reason = f", причина: {d.loss_reason}" if d.outcome == "lost" and d.loss_reason else ""
        amount = f", {money(d.amount)}" if d.amount else ""
        lines.append(f"• «{d.name}» — {OUTCOME_WORD.get(d.outcome, d.outcome)}{amount}{reason} (сходство {d.score:.2f})")
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
