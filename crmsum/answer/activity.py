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


def header(p: Prepared, source: str, backend: str | None) -> str:
    parts = [f"Менеджер: {p.manager or 'все'}", f"Компания: {p.company or 'все'}",
             f"Период: {period_text(p.start, p.end)}"]
    src = "готовая сводка (precomputed)" if source == "precomputed" else "собрано по запросу (live)"
    if backend == "llm":
        src += ", LLM"
    return " · ".join(parts) + f"\nИсточник: {src}"


def body(summary_text: str) -> str:
    lines = (summary_text or "").splitlines()
    if lines and not lines[0].startswith("•") and ":" in lines[0] and not lines[0].rstrip().endswith(":"):
        lines = lines[1:]  # the summary's own title (label: period) — the header says it already
    return "\n".join(lines).strip()


def answer_activity(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The summary of one scope and period (not yet recorded)."""
    s = ctx.settings
    if prep.summary_id is not None and (row := ctx.summary(prep.summary_id)) is not None:
        source, backend, text = "precomputed", row.get("backend"), body(row.get("text") or "")
    else:
        from crmsum.summarize import summarize_scope

        target = ctx.lake if s.use_llm else ctx.cursor()
        summ = summarize_scope(target, manager=prep.manager, company=prep.company_id, start=prep.start,
                               end=prep.end, settings=s)
        source, backend, text = "live", summ.backend, body(summ.text)
    a = Answer(text=header(prep, source, backend) + "\n\n" + text, source=source, manager=prep.manager,
               company=prep.company, start=prep.start, end=prep.end, backend=backend,
               answer_id=uuid.uuid4().hex[:16], period=prep.period, question=prep.question, chat_id=prep.chat_id,
               manager_name=prep.manager_name)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    return a
