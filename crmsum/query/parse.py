"""``parse_question``: manager, company, period, intent and filters of a free-form question, offline.

Besides what it recognised, the result says what it did not: ``unresolved`` (name-like words that
match nothing), ``period_defaulted`` (no period named: the answer picks its intent's default) and
``problem`` (input that cannot be answered as asked: empty, too long, a date that does not exist,
a period in the future, an unreadable word).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Sequence

from .entities import match_companies, match_managers
from .entity_index import get_index
from .intent import classify
from .periods import parse_period
from .tokens import caps_meaningful, tokenize
from .unresolved import bad_date, find_unresolved, fix_mixed, future_period

__all__ = ["ParsedQuestion", "parse_question", "MAX_QUESTION_CHARS"]

log = logging.getLogger(__name__)

# Questions are short; anything longer is cut so a pasted novel cannot stall the bot.
MAX_QUESTION_CHARS = 2000
# A question longer than this is not a question: the answer asks for a short one.
LONG_QUESTION_CHARS = 1000
# Names are looked for in the first words only: bounds the cost of pasted walls of text.
MAX_TOKENS = 80


@dataclass
class ParsedQuestion:
    """What a question asks about. ``start``/``end`` are inclusive; None means not mentioned."""

    manager: str | None = None
    company: str | None = None
    start: date | None = None
    end: date | None = None
    period_label: str | None = None
    ambiguous_managers: list[str] = field(default_factory=list)
    ambiguous_companies: list[str] = field(default_factory=list)
    managers_mentioned: list[str] = field(default_factory=list)
    companies_mentioned: list[str] = field(default_factory=list)
    confidence: float = 0.0
    source: str = "rules"
    intent: str = "clarify"  # see crmsum.query.intent.INTENTS
    metric: str | None = None
    outcome: str | None = None  # won | lost | open
    loss_reason: str | None = None
    stage: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    by: str = "manager"  # ranking: manager | company
    order: str = "desc"  # ranking: desc | asc
    unresolved: list[str] = field(default_factory=list)  # words that looked like a name / company / date
    unresolved_kinds: list[str] = field(default_factory=list)  # manager | company | period, per word
    period_defaulted: bool = True  # no period named
    problem: str | None = None  # empty | too_long | bad_date | future | mixed

    @property
    def filters(self) -> dict:
        """The deal filters the question set (only those set)."""
        f = {"outcome": self.outcome, "loss_reason": self.loss_reason, "stage": self.stage,
             "amount_min": self.amount_min, "amount_max": self.amount_max}
        return {k: v for k, v in f.items() if v is not None}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat() if self.start else None
        d["end"] = self.end.isoformat() if self.end else None
        return d


def _clean(text: object) -> str:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:MAX_QUESTION_CHARS]
    # control characters and zero-width joiners split words silently; make them spaces
    return "".join(ch if (ch.isprintable() or ch in " ") else " " for ch in text)


def parse_question(
    text: str,
    managers: Sequence[str],
    companies: Sequence[str],
    today: date,
    *,
    loss_reasons: Sequence[str] = (),
    stages: Sequence[str] = (),
) -> ParsedQuestion:
    """Parse a question; ``managers``/``companies`` (and the account's ``loss_reasons`` / ``stages``)
    are canonical names, the answer uses them.

    Never raises on odd input: anything it cannot read yields None fields and ``problem``.
    """
    res = ParsedQuestion()
    try:
        raw = text if isinstance(text, str) else ("" if text is None else str(text))
        text = _clean(text)
        if not any(ch.isalnum() for ch in text) or re.fullmatch(r"\s*/\w+(?:@\w+)?\s*", text):
            res.problem = "empty"  # only emoji, digits, punctuation or a bare command
            return res
        if len(raw) > LONG_QUESTION_CHARS:
            res.problem = "too_long"
            return res
        text, mixed = fix_mixed(text)
        idx = get_index(managers, companies)
        tokens = tokenize(text)[:MAX_TOKENS]
        caps = caps_meaningful(tokens)
        cm = match_companies(idx, tokens, text, caps)
        mm = match_managers(idx, tokens, caps, exclude=cm.span if cm.value else None)
        res.company = cm.value
        res.ambiguous_companies = cm.candidates if cm.value is None and len(cm.candidates) > 1 else []
        res.companies_mentioned = cm.mentioned
        res.manager = mm.value
        # several equally good managers, or one we are not sure about («Ольга Сергеевна»)
        res.ambiguous_managers = mm.candidates if mm.value is None else []
        res.managers_mentioned = mm.mentioned
        if isinstance(today, date):
            p = parse_period(text, today)
            if p is not None:
                res.start, res.end, res.period_label = p.start, p.end, p.label
                res.period_defaulted = False
        _understand(res, text, idx, tokens, caps, today, mixed, loss_reasons, stages)
        conf = []
        if res.manager:
            conf.append(min(1.0, mm.score if mm.score <= 1 else 1.0))
        if res.company:
            conf.append(min(1.0, cm.score))
        if res.start:
            conf.append(1.0)
        res.confidence = round(min(conf), 3) if conf else 0.0
    except Exception:  # noqa: BLE001 - a question must never crash the bot
        log.exception("parse_question failed; returning an empty parse")
        return ParsedQuestion()
    return res


def _understand(res: ParsedQuestion, text: str, idx, tokens, caps: bool, today, mixed: list[str],
                loss_reasons: Sequence[str], stages: Sequence[str]) -> None:
    """Intent, filters, unresolved words and problems (after names and period are known)."""
    un = find_unresolved(idx, tokens, text, caps)
    if bad := bad_date(text):
        un.append((bad, "period"))
        res.problem = "bad_date"
        res.start = res.end = res.period_label = None  # the date does not exist: no period was read
        res.period_defaulted = True
    elif isinstance(today, date) and future_period(res.start, today):
        un.append((res.period_label or res.start.isoformat(), "period"))
        res.problem = "future"
    for w in mixed:
        if not any(w in u for u, _k in un):
            un.append((w, "company"))
        res.problem = res.problem or "mixed"
    res.unresolved = [w for w, _k in un]
    res.unresolved_kinds = [k for _w, k in un]
    it = classify(text, n_managers=len(res.managers_mentioned) or (1 if res.manager else 0),
                  n_companies=len(res.companies_mentioned) or (1 if res.company else 0),
                  has_period=res.start is not None, loss_reasons=loss_reasons, stages=stages)
    res.intent = "clarify" if res.problem else it.intent
    if res.intent == "clarify" and not res.problem and res.unresolved:
        res.intent = "activity"  # «Что Ева делала в марте?» with no Ева: answered as asked, and said
    if res.intent == "similar":  # «как отрабатывали «дорого»?»: a quoted situation or deal title, not a company
        kept = [(w, k) for w, k in zip(res.unresolved, res.unresolved_kinds) if k != "company"]
        res.unresolved, res.unresolved_kinds = [w for w, _k in kept], [k for _w, k in kept]
    res.metric, res.outcome, res.loss_reason, res.stage = it.metric, it.outcome, it.loss_reason, it.stage
    res.amount_min, res.amount_max, res.by, res.order = it.amount_min, it.amount_max, it.by, it.order
