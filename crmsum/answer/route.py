"""Routing: a question is parsed (`crmsum.query.parse_question`), its names mapped to pseudonyms, its
period chosen, and it is handed to the answerer of its intent; the answer is recorded.

`prepare` decides (cheaply) how a question will be answered so that the bot can show «Собираю
данные…» before a slow live answer; `finish` produces the answer.
"""

from __future__ import annotations

import datetime as dt
import time

from crmsum.answer.activity import answer_activity
from crmsum.answer.compare import answer_compare, compare_metric, compare_parts
from crmsum.answer.context import AnswerContext, get_context, today_in
from crmsum.answer.model import Answer, Prepared
from crmsum.answer.periods import covering_period
from crmsum.answer.record import record_answer
from crmsum.config import Settings, get_settings

_NAME_LIST_MAX = 12


def _clarify(ctx: AnswerContext, question: str, chat_id: int | None, ambiguous: list[str]) -> Answer:
    if ambiguous:
        opts = [ctx.pseudonym_of(n) or n for n in ambiguous]
        text = ("Уточните, кого вы имеете в виду: " + ", ".join(opts) + "? "
                "Напишите имя и фамилию, например: «Что " + opts[0] + " делал(а) в марте?»")
        return Answer(text=text, source="clarify", question=question, chat_id=chat_id, candidates=opts,
                      intent="clarify")
    names = [p for p, _ in ctx.managers][:_NAME_LIST_MAX]
    comps = list(ctx.companies)[:_NAME_LIST_MAX]
    text = "Не понял, о ком или о каком периоде вопрос."
    if names:
        text += " Я знаю менеджеров: " + ", ".join(names) + ("…" if len(ctx.managers) > _NAME_LIST_MAX else "") + "."
    if comps:
        text += " Компании: " + ", ".join(comps) + ("…" if len(ctx.companies) > _NAME_LIST_MAX else "") + "."
    example_m = names[0] if names else "Ева"
    example_c = comps[0] if comps else "Теххренмаш"
    text += f" Спросите, например: «Что {example_m} делал(а) в марте по {example_c}?» или «Итоги команды за прошлую неделю»."
    return Answer(text=text, source="clarify", question=question, chat_id=chat_id, candidates=names,
                  intent="clarify")


def prepare(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
            chat_id: int | None = None) -> Prepared:
    """Parse a question and decide how it is answered (clarify / precomputed / live)."""
    from crmsum.digest import DigestError, latest_complete_week
    from crmsum.facts import period_bounds
    from crmsum.query import parse_question

    t0 = time.perf_counter()
    s = settings or get_settings()
    ctx = get_context(s, lake)
    today = today or today_in(s)
    question = (question or "").strip()
    parsed = parse_question(question, ctx.manager_names, list(ctx.companies), today)
    manager = ctx.pseudonym_of(parsed.manager)
    company = parsed.company
    prep = Prepared(question=question, chat_id=chat_id, manager=manager, manager_name=parsed.manager,
                    company=company, company_id=ctx.companies.get(company) if company else None,
                    start=parsed.start, end=parsed.end, summary_id=None, period=None, t0=t0)
    if manager is None and parsed.ambiguous_managers:
        prep.clarification = _clarify(ctx, question, chat_id, parsed.ambiguous_managers)
        return prep
    if manager is None and company is None and parsed.start is None:
        prep.clarification = _clarify(ctx, question, chat_id, [])
        return prep
    if prep.start is None or prep.end is None:
        # no period: the latest complete week with data (what the weekly digest covers)
        try:
            wk = latest_complete_week(ctx.cursor(), today)
            prep.start, prep.end = period_bounds("week", wk)
        except DigestError:
            prep.end = today
            prep.start = today - dt.timedelta(days=today.weekday())
    cov = covering_period(prep.start, prep.end)
    prep.period = cov[1] if cov else f"{prep.start.isoformat()}..{prep.end.isoformat()}"
    parts = compare_parts(ctx, parsed)
    if parts:
        prep.compare, prep.metric = parts, compare_metric(question)
        prep.manager = next((p.manager for p in parts if p.manager), None)
        prep.manager_name = next((n for p_, n in ctx.managers if p_ == prep.manager), None)
        prep.company = next((p.company for p in parts if p.company), None)
        prep.company_id = ctx.companies.get(prep.company) if prep.company else None
        if cov:
            for p in parts:
                if p.scope == "manager" and p.company is None:
                    sid = f"manager:{p.manager}:{cov[1]}"
                elif p.scope == "company" and p.manager is None:
                    sid = f"company:{p.company_id}:{cov[1]}"
                else:
                    continue  # manager within a company: never precomputed
                if sid in ctx.summary_ids:
                    p.summary_id = sid
        return prep
    if cov and not (manager and company):
        scope, key = ("manager", manager) if manager else ("company", str(prep.company_id)) if company else ("team", "team")
        sid = f"{scope}:{key}:{cov[1]}"
        if sid in ctx.summary_ids:
            prep.summary_id = sid
    return prep




def finish(prep: Prepared, settings: Settings | None = None, lake=None, record: bool = True) -> Answer:
    """Answer a prepared question (reads the precomputed row or computes a live summary) and record it."""
    s = settings or get_settings()
    ctx = get_context(s, lake)
    if prep.clarification is not None:
        a = prep.clarification
        a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
        return a
    a = answer_compare(prep, ctx) if prep.compare else answer_activity(prep, ctx)
    if record:
        record_answer(a, ctx)
    return a


def answer_question(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
                    chat_id: int | None = None, record: bool = True) -> Answer:
    """Answer one question (the shared path of the bot and `crmsum ask`)."""
    s = settings or get_settings()
    prep = prepare(question, s, lake, today, chat_id)
    return finish(prep, s, lake, record=record)
