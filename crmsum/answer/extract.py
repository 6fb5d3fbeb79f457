"""The optional LLM extractor on the answer path: when an LLM is configured and the offline rules left
the company or the period empty, `crmsum.query.llm_extract` asks the model for the mentions as
written and maps them onto the same canonical lists — a name the model invents is dropped. The rules'
intent and filters stay; only the empty fields are filled.

Privacy: the model gets the question anonymized (people, phones, e-mails as pseudonyms, the same
scrubber as the `answers` log) and fenced as untrusted data; managers are never resolved by the
model (their real names must not reach it), only companies (business data) and periods."""

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
    if parsed.company and parsed.start:
        return parsed
    if parsed.intent != "clarify" and not parsed.unresolved:
        return parsed  # the rules understood it: no model call, no added latency
    if parsed.ambiguous_managers:
        return parsed  # a choice for the user, not for the model
    from crmsum.query.llm_extract import llm_parse_question

    try:
        safe = ctx.anonymize(question)
        llm = llm_parse_question(safe, [], list(ctx.companies), today, chat=_chat(ctx))
    except Exception as exc:  # noqa: BLE001 - the offline parse stands
        log.warning("LLM extraction failed: %s", type(exc).__name__)
        return parsed
    if llm.source == "rules":
        return parsed
    if parsed.company is None and llm.company:
        parsed.company = llm.company
        parsed.companies_mentioned = parsed.companies_mentioned or [llm.company]
        keep = [(w, k) for w, k in zip(parsed.unresolved, parsed.unresolved_kinds) if k != "company"]
        parsed.unresolved, parsed.unresolved_kinds = [w for w, _ in keep], [k for _, k in keep]
    if parsed.start is None and llm.start is not None:
        parsed.start, parsed.end, parsed.period_label = llm.start, llm.end, "llm"
        parsed.period_defaulted = False
    if parsed.intent == "clarify" and (parsed.company or parsed.start):
        parsed.intent = "activity"
    parsed.source = "rules+llm"
    return parsed
