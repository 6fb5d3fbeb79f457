"""The shape of a summary: sections of points, each point with its kind, figures and citations.

Summaries travel as these records from `summarize/` to the lake (`summaries.sections`, JSON) and to
every edge that shows them (digest, bot, `crmsum ask`), which render them once. Nothing parses
summary text back into structure. The offline and the LLM backends fill the same records; other
producers (insights, briefs) build sections of the same type.

The four sections of a scope summary and their titles are defined here only (`SUMMARY_SECTIONS`);
renderers select by `Section.key`, never by title.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

# stable keys -> shown titles, in reading order
SUMMARY_SECTIONS: dict[str, str] = {
    "happened": "Что произошло",
    "worked": "Что сработало",
    "failed": "Что не получилось",
    "next": "Что делать дальше",
}

# point kinds written by summarize/ (other producers add their own: risk, driver, habit, ...)
FACT = "fact"  # a sentence computed from the SQL facts
DEAL_WON = "deal_won"  # the won deals of the period, citing their status changes
DEAL_LOST = "deal_lost"  # the lost deals of the period, citing their status changes
KEYPOINT = "keypoint"  # an extractive sentence from the cited record
LLM = "llm"  # a point written by the LLM backend


@dataclass(frozen=True)
class Point:
    """One statement: `text` holds pseudonyms only; `figures` the numbers it states (with their bases)."""

    kind: str  # e.g. fact, deal_won, deal_lost, keypoint, llm, risk, driver, habit
    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    cites: tuple[str, ...] = ()  # record ids: note:1, task:2, msg:-100:3, event:4, lead:5
    lead_id: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        return cls(kind=d["kind"], text=d["text"], figures=dict(d.get("figures") or {}),
                   cites=tuple(d.get("cites") or ()), lead_id=d.get("lead_id"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (written by hand: `dataclasses.asdict` deep-copies and costs more than the summary)."""
        return {"kind": self.kind, "text": self.text, "figures": self.figures, "cites": list(self.cites),
                "lead_id": self.lead_id}

    def with_text(self, text: str) -> Point:
        """The same point saying `text` (the grounding check drops sentences of a point)."""
        return replace(self, text=text)


@dataclass(frozen=True)
class Section:
    """A titled group of points; `key` is stable (renderers and tests select by it), `title` is shown."""

    key: str
    title: str
    points: tuple[Point, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Section:
        return cls(key=d["key"], title=d["title"], points=tuple(Point.from_dict(p) for p in d.get("points") or ()))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "points": [p.to_dict() for p in self.points]}

    def with_points(self, points: Iterable[Point]) -> Section:
        return replace(self, points=tuple(points))

    @property
    def cited(self) -> tuple[Point, ...]:
        """The points that cite at least one record (what a digest shows per manager)."""
        return tuple(p for p in self.points if p.cites)


def summary_sections(points: dict[str, list[Point]]) -> list[Section]:
    """The non-empty summary sections, in `SUMMARY_SECTIONS` order, from points per section key."""
    return [Section(key, title, tuple(points[key])) for key, title in SUMMARY_SECTIONS.items() if points.get(key)]


def section(sections: Iterable[Section], key: str) -> Section | None:
    """The section with `key`, or None."""
    return next((s for s in sections if s.key == key), None)


def points_of(sections: Iterable[Section], *keys: str) -> list[Point]:
    """The points of the sections named by `keys`, in the order of `keys`."""
    by_key = {s.key: s for s in sections}
    return [p for k in keys if k in by_key for p in by_key[k].points]


def sections_to_json(sections: list[Section] | tuple[Section, ...]) -> str:
    """The `summaries.sections` column."""
    return json.dumps([s.to_dict() for s in sections], ensure_ascii=False, default=str)


def sections_from_json(text: str | None) -> list[Section]:
    return [Section.from_dict(d) for d in json.loads(text or "[]")]
