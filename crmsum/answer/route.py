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


_PROBLEMS = {
    "empty": "Напишите вопрос словами, например: «Что {m} делал(а) в марте?» или «Какие сделки проиграли в этом году?»",
    "too_long": "Вопрос слишком длинный ({n} символов). Спросите коротко: о ком, о чём и за какой период.",
    "bad_date": "Даты «{w}» не существует. Уточните период, например: «в феврале» или «с 1 по 28 февраля».",
    "future": "Период «{w}» ещё не наступил (сегодня {today:%d.%m.%Y}). Спросите о прошедшем периоде.",
    "mixed": "Не разобрал слово «{w}»: в нём смешаны латиница и кириллица. Напишите его одним алфавитом.",
}
ALL_HISTORY = ("compare", "ranking", "metric", "what_wins", "why", "deals")


def _problem(ctx: AnswerContext, parsed, question: str, chat_id: int | None, today: dt.date) -> Answer:
    """A short clarification for input that cannot be answered as asked."""
    names = [p for p, _ in ctx.managers]
    w = next((u for u, k in zip(parsed.unresolved, parsed.unresolved_kinds)
              if k == ("period" if parsed.problem in ("bad_date", "future") else "company")), "")
    text = _PROBLEMS[parsed.problem].format(m=names[0] if names else "Ева", n=len(question), w=w, today=today)
    return Answer(text=text, source="clarify", question=question[:200], chat_id=chat_id, intent="clarify",
                  unresolved=list(parsed.unresolved), period_defaulted=parsed.period_defaulted)


def _similar_names(name: str, options: list[str], limit: int = 3) -> list[str]:
    from rapidfuzz import fuzz, process

    return [o for o, _s, _i in process.extract(name, options, scorer=fuzz.WRatio, limit=limit, score_cutoff=60)]


def unresolved_notes(ctx: AnswerContext, parsed, prep: Prepared) -> list[str]:
    """«Не нашёл менеджера «Ева» — вот кого знаю: …» for each word that matched nothing."""
    notes = []
    for word, kind in zip(parsed.unresolved, parsed.unresolved_kinds):
        if kind == "manager":
            known = [p for p, _ in ctx.managers][:_NAME_LIST_MAX]
            more = "…" if len(ctx.managers) > _NAME_LIST_MAX else ""
            whom = f"вот кого знаю: {', '.join(known)}{more}." if known else "в CRM пока нет ни одного менеджера."
            notes.append(f"Не нашёл менеджера «{word}» — {whom}" + ("" if prep.manager else " Ниже — по всем менеджерам."))
        elif kind == "company":
            close = _similar_names(word, list(ctx.companies))
            hint = f" Похожие: {', '.join(close)}." if close else " Похожих в CRM нет."
            notes.append(f"Не нашёл компанию «{word}».{hint}" + ("" if prep.company else " Ниже — по всем компаниям."))
    return notes


def _default_period(ctx: AnswerContext, prep: Prepared, today: dt.date) -> None:
    """No period named: the intent's default, and the answer says which."""
    from crmsum.answer import dealset
    from crmsum.answer.periods import period_text

    prep.period_defaulted = True
    if prep.intent in ("stalled", "similar"):
        return  # as of today / the whole history, without a period to name
    if prep.intent in ALL_HISTORY:
        prep.start, prep.end = dealset.history(ctx, today)
        prep.notes.append(f"Период не указан — беру всю историю: {period_text(prep.start, prep.end)}.")
        return
    from crmsum.digest import DigestError, latest_complete_week
    from crmsum.facts import period_bounds

    try:  # the latest complete week with data (what the weekly digest covers)
        wk = latest_complete_week(ctx.cursor(), today)
        prep.start, prep.end = period_bounds("week", wk)
    except DigestError:
        prep.end = today
        prep.start = today - dt.timedelta(days=today.weekday())
    prep.notes.append(f"Период не указан — беру последнюю полную неделю: {period_text(prep.start, prep.end)}.")


def _parse(ctx: AnswerContext, question: str, today: dt.date, llm: bool = True):
    from crmsum.answer import dealset
    from crmsum.query import parse_question

    parsed = parse_question(question, ctx.manager_names, list(ctx.companies), today,
                            loss_reasons=dealset.loss_reasons(ctx), stages=dealset.stages(ctx))
    if llm and ctx.settings.use_llm and not parsed.problem:
        from crmsum.answer.extract import with_llm

        parsed = with_llm(ctx, parsed, question, today)
    return parsed


def warm(ctx: AnswerContext) -> None:
    """Build, before anyone asks, what the first questions would otherwise all pay for at once: the parser's
    name index and lookups, the recorder's NER models, the live database and LLM client, the insights fits.
    The bot runs this at start and after each nightly reload (`AnswerContext.keep_warm`)."""
    from crmsum.answer import insight
    from crmsum.answer.activity import live_llm

    _parse(ctx, "Что делала команда на прошлой неделе?", today_in(ctx.settings), llm=False)
    ctx.anonymize("Что делала команда на прошлой неделе?")
    ctx.live_cursor()
    if ctx.settings.use_llm:
        live_llm(ctx)
    insight.warm(ctx)


def prepare(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
            chat_id: int | None = None) -> Prepared:
    """Parse a question and decide how it is answered (clarify / precomputed / live)."""
    t0 = time.perf_counter()
    s = settings or get_settings()
    ctx = get_context(s, lake)
    today = today or today_in(s)
    question = (question or "").strip()
    parsed = _parse(ctx, question, today)
    manager = ctx.pseudonym_of(parsed.manager)
    company = parsed.company
    prep = Prepared(question=question[:2000], chat_id=chat_id, manager=manager, manager_name=parsed.manager,
                    company=company, company_id=ctx.companies.get(company) if company else None,
                    start=parsed.start, end=parsed.end, summary_id=None, period=None, t0=t0,
                    intent=parsed.intent, parsed=parsed, unresolved=list(parsed.unresolved), today=today)
    if parsed.problem:
        prep.clarification = _problem(ctx, parsed, question, chat_id, today)
        return prep
    if manager is None and parsed.ambiguous_managers:
        prep.clarification = _clarify(ctx, question, chat_id, parsed.ambiguous_managers)
        return prep
    nothing = manager is None and company is None and parsed.start is None and not parsed.unresolved
    if parsed.intent == "clarify" or (parsed.intent == "activity" and nothing):
        prep.clarification = _clarify(ctx, question, chat_id, [])
        return prep
    prep.notes = unresolved_notes(ctx, parsed, prep)
    if prep.start is None or prep.end is None:
        _default_period(ctx, prep, today)
    if prep.start is not None:
        cov = covering_period(prep.start, prep.end)
        prep.period = cov[1] if cov else f"{prep.start.isoformat()}..{prep.end.isoformat()}"
    else:
        cov = None
    parts = compare_parts(ctx, parsed) if prep.intent in ("compare", "activity", "ranking") else []
    if parts:
        prep.intent = "compare"
        _prepare_compare(ctx, prep, parts, cov, question)
        return prep
    if prep.intent == "compare":
        prep.intent = "activity"  # «сравни» with one side only: what that side did, said so
        prep.notes.append("Для сравнения нужны хотя бы двое (менеджеры или компании) — показываю одного.")
    if prep.intent == "activity" and cov and not (manager and company):
        scope, key = ("manager", manager) if manager else ("company", str(prep.company_id)) if company else ("team", "team")
        sid = f"{scope}:{key}:{cov[1]}"
        if sid in ctx.summary_ids:
            prep.summary_id = sid
    return prep


def _prepare_compare(ctx: AnswerContext, prep: Prepared, parts, cov, question: str) -> None:
    prep.compare, prep.metric = parts, compare_metric(question)
    prep.manager = next((p.manager for p in parts if p.manager), None)
    prep.manager_name = ctx.real_of(prep.manager)
    prep.company = next((p.company for p in parts if p.company), None)
    prep.company_id = ctx.companies.get(prep.company) if prep.company else None
    if not cov:
        return
    for p in parts:
        if p.scope == "manager" and p.company is None:
            sid = f"manager:{p.manager}:{cov[1]}"
        elif p.scope == "company" and p.manager is None:
            sid = f"company:{p.company_id}:{cov[1]}"
        else:
            continue  # manager within a company: never precomputed
        if sid in ctx.summary_ids:
            p.summary_id = sid


def _dispatch(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The answerer of the prepared question's intent."""
    if prep.compare:
        return answer_compare(prep, ctx)
    if prep.intent in ("metric", "ranking", "deals", "stalled"):
        from crmsum.answer import deals, figures

        if prep.intent == "metric":
            return figures.answer_metric(prep, ctx)
        if prep.intent == "ranking":
            return figures.answer_ranking(prep, ctx)
        if prep.intent == "deals":
            return deals.answer_deals(prep, ctx)
        return deals.answer_stalled(prep, ctx, prep.today or today_in(ctx.settings))
    if prep.intent in ("what_wins", "why", "similar"):
        from crmsum.answer import insight

        return insight.answer(prep, ctx)
    return answer_activity(prep, ctx)


def finish(prep: Prepared, settings: Settings | None = None, lake=None, record: bool = True) -> Answer:
    """Answer a prepared question (reads the precomputed row or computes a live summary) and record it."""
    s = settings or get_settings()
    ctx = get_context(s, lake)
    if prep.clarification is not None:
        a = prep.clarification
        a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
        return a
    a = _dispatch(prep, ctx)
    if record:
        record_answer(a, ctx)
    return a


def answer_question(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
                    chat_id: int | None = None, record: bool = True) -> Answer:
    """Answer one question (the shared path of the bot and `crmsum ask`)."""
    s = settings or get_settings()
    prep = prepare(question, s, lake, today, chat_id)
    return finish(prep, s, lake, record=record)
