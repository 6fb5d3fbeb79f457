"""The `activity` answer: what a manager, a company or the team did in a period — the precomputed
summary when one covers it exactly, else a live summary (`crmsum.summarize.summarize_scope`)."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from crmsum.answer.model import Answer, Prepared
from crmsum.answer.periods import period_text

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext


def header(p: Prepared, source: str, backend: str | None) -> list[str]:
    parts = [f"Менеджер: {p.manager or 'все'}", f"Компания: {p.company or 'все'}",
             f"Период: {period_text(p.start, p.end)}"]
    src = "готовая сводка (precomputed)" if source == "precomputed" else "собрано по запросу (live)"
    if backend == "llm":
        src += ", LLM"
    return [" · ".join(parts), f"Источник: {src}"]


def live_llm(ctx: AnswerContext):
    """The context's one LLM client for live summaries (thread-safe; its HTTP pool and TLS context are made
    once, not per answer)."""
    from crmsum.summarize.llm import LLMClient

    s = ctx.settings
    return ctx.memo(("live-llm", s.llm_model, s.openai_base_url), lambda: LLMClient(s))


def answer_activity(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The summary of one scope and period (not yet recorded)."""
    from crmsum.summarize.model import sections_from_json
    from crmsum.summarize.render import answer_layout, layout_text

    s = ctx.settings
    if prep.summary_id is not None and (row := ctx.summary(prep.summary_id)) is not None:
        stored = row.get("sections")
        sections = sections_from_json(stored if isinstance(stored, str) else None)
        source, backend = "precomputed", row.get("backend")
    else:
        from crmsum.summarize import summarize_scope

        llm = live_llm(ctx) if s.use_llm else None
        summ = summarize_scope(ctx.live_cursor(), manager=prep.manager, company=prep.company_id, start=prep.start,
                               end=prep.end, settings=s, question=ctx.anonymize(prep.question) if llm else None,
                               lake=ctx.lake if llm else None, llm=llm)
        source, backend, sections = "live", summ.backend, summ.sections
    heading = header(prep, source, backend)
    notes = list(prep.notes) + ([""] if prep.notes and sections else [])
    a = Answer(text=layout_text(answer_layout(heading, sections, notes)), source=source, manager=prep.manager,
               company=prep.company, start=prep.start, end=prep.end, backend=backend,
               answer_id=uuid.uuid4().hex[:16], period=prep.period, question=prep.question, chat_id=prep.chat_id,
               manager_name=prep.manager_name, heading=heading, sections=sections, lines=notes,
               intent=prep.intent, unresolved=list(prep.unresolved), period_defaulted=prep.period_defaulted)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    return a
