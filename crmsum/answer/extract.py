"""The optional LLM extractor on the answer path: when an LLM is configured and the offline rules left
the manager, the company or the period empty, `crmsum.query.llm_extract` asks the model for the
mentions as written and maps them onto the same canonical lists — a name the model invents is
dropped. The rules' intent and filters stay; only the empty fields are filled."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

log = logging.getLogger(__name__)


def _chat(ctx: AnswerContext):
    from crmsum.query.llm_extract import make_chat

    s = ctx.settings
    key = s.openai_api_key.get_secret_value() if s.openai_api_key else None
    return ctx.memo(("extract-chat", s.llm_model, s.openai_base_url),
                    lambda: make_chat(s.llm_model, s.openai_base_url, key, timeout=min(s.llm_timeout, 20.0),
                                      max_retries=1))


def with_llm(ctx: AnswerContext, parsed, question: str, today: dt.date):
    """`parsed` with its empty manager / company / period filled from the LLM when it can (validated)."""
    if parsed.manager and parsed.company and parsed.start:
        return parsed
    if parsed.ambiguous_managers:
        return parsed  # a choice for the user, not for the model
    from crmsum.query.llm_extract import llm_parse_question

    try:
        llm = llm_parse_question(question, ctx.manager_names, list(ctx.companies), today, chat=_chat(ctx))
    except Exception as exc:  # noqa: BLE001 - the offline parse stands
        log.warning("LLM extraction failed: %s", type(exc).__name__)
        return parsed
    if llm.source == "rules":
        return parsed
    if parsed.manager is None and llm.manager:
        parsed.manager = llm.manager
        parsed.managers_mentioned = parsed.managers_mentioned or [llm.manager]
    if parsed.company is None and llm.company:
        parsed.company = llm.company
        parsed.companies_mentioned = parsed.companies_mentioned or [llm.company]
    if parsed.start is None and llm.start is not None:
        parsed.start, parsed.end, parsed.period_label = llm.start, llm.end, "llm"
        parsed.period_defaulted = False
    parsed.source = "rules+llm"
    return parsed
