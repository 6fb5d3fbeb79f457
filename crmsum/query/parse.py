"""``parse_question``: manager, company and period of a free-form question, offline."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Sequence

from .entities import _caps_meaningful, get_index, match_companies, match_managers, tokenize
from .periods import parse_period

__all__ = ["ParsedQuestion", "parse_question", "MAX_QUESTION_CHARS"]

log = logging.getLogger(__name__)

# Questions are short; anything longer is cut so a pasted novel cannot stall the bot.
MAX_QUESTION_CHARS = 2000
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
) -> ParsedQuestion:
    """Parse a question; ``managers``/``companies`` are canonical names, the answer uses them.

    Never raises on odd input: anything it cannot read yields None fields.
    """
    res = ParsedQuestion()
    try:
        text = _clean(text)
        if not text.strip():
            return res
        idx = get_index(managers, companies)
        tokens = tokenize(text)[:MAX_TOKENS]
        caps = _caps_meaningful(tokens)
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
