"""The answer path's records: an `Answer`, a `Prepared` question and one side of a comparison."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """One answer; `text` and `manager` carry pseudonyms only."""

    text: str
    source: str  # precomputed | live | clarify
    manager: str | None = None  # pseudonym
    company: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    backend: str | None = None
    answer_id: str | None = None
    period: str | None = None  # 2024-W10, 2024-03 or 2024-03-01..2024-03-15
    latency_ms: float = 0.0
    question: str = ""
    chat_id: int | None = None
    manager_name: str | None = None  # real name: display only, never stored
    candidates: list[str] = field(default_factory=list)  # clarifications: names to choose from
    compared: list[str] = field(default_factory=list)  # comparisons: the parts (pseudonyms / company names)
    leader: list[str] = field(default_factory=list)  # comparisons: who leads (several on a tie, none if all zero)
    intent: str = "activity"
    unresolved: list[str] = field(default_factory=list)  # words that looked like a name/company/period, unmatched
    period_defaulted: bool = False  # the question named no period and the answer chose one
    items: list[dict] = field(default_factory=list)  # deals / rankings: the rows behind the text (for paging, eval)
    value: Any = None  # metric: the figure asked
    heading: list[str] = field(default_factory=list)  # what and when, then the source (empty: a clarification)
    lines: list[str] = field(default_factory=list)  # free lines before the sections (a comparison's body)
    sections: list = field(default_factory=list)  # the summary records (crmsum.summarize.model.Section)

    def layout(self) -> list[tuple[str, str]]:
        """(style, line) pairs every edge renders (`crmsum.summarize.render.answer_layout`)."""
        from crmsum.summarize.render import TEXT, answer_layout

        if not self.heading:
            return [(TEXT, line) for line in self.text.split("\n")]
        return answer_layout(self.heading, self.sections, self.lines)

    @property
    def clarify(self) -> bool:
        return self.source == "clarify"

    def display(self, vault=None) -> str:
        """The text with pseudonyms resolved (for allowed chats and the operator's terminal)."""
        from crmsum.answer.display import resolve_in_case

        return resolve_in_case(vault, self.text)

    def to_json(self, vault=None) -> dict[str, Any]:
        """The `crmsum ask --json` object (design: answer, source, manager, company, start, end,
        intent, unresolved, period_defaulted)."""
        manager = self.manager
        if manager and vault is not None:
            manager = vault.real(manager) or manager
        return {"answer": self.display(vault), "source": "live" if self.clarify else self.source,
                "manager": manager, "company": self.company,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None,
                "intent": self.intent, "unresolved": list(self.unresolved),
                "period_defaulted": bool(self.period_defaulted)}


@dataclass
class ComparePart:
    """One side of a comparison: a manager (optionally within a company) or a company (optionally of a manager)."""

    scope: str  # manager | company
    label: str  # manager pseudonym or company name
    manager: str | None = None  # pseudonym
    company: str | None = None
    company_id: int | None = None
    summary_id: str | None = None  # set when a precomputed summary covers this part


@dataclass
class Prepared:
    """A parsed question and how it will be answered (the bot shows «Собираю данные…» before `finish`)."""

    question: str
    chat_id: int | None
    manager: str | None
    manager_name: str | None
    company: str | None
    company_id: int | None
    start: dt.date | None
    end: dt.date | None
    summary_id: str | None  # set when precomputed covers it
    period: str | None
    clarification: Answer | None = None
    t0: float = 0.0
    compare: list[ComparePart] = field(default_factory=list)  # two or more parts: a comparison
    metric: str = "won"  # what the comparison ranks by (see COMPARE_METRICS)
    intent: str = "activity"
    parsed: Any = None  # the ParsedQuestion (filters, unresolved words)
    unresolved: list[str] = field(default_factory=list)
    period_defaulted: bool = False
    notes: list[str] = field(default_factory=list)  # what the answer must say first (unresolved words, defaults)
    today: dt.date | None = None

    @property
    def live(self) -> bool:
        if self.clarification is not None:
            return False
        if self.compare:
            return not all(p.summary_id for p in self.compare)
        if self.intent in ("what_wins", "why", "stalled", "similar"):
            return True  # models and vector search may take seconds: the bot says it is working
        if self.intent != "activity":
            return False  # metric, ranking, deals read one in-memory table — no «working» message
        return self.summary_id is None
