"""The shape of a summary: sections of points, each point with its kind, figures and citations.

Summaries travel as these records from `summarize/` to the lake (`summaries.sections`, JSON) and to
every edge that shows them (digest, bot, `crmsum ask`), which render them once. Nothing parses
summary text back into structure. The offline and the LLM backends fill the same records; other
producers (insights, briefs) build sections of the same type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Point:
    """One statement: `text` holds pseudonyms only; `figures` the numbers it states (with their bases)."""

    kind: str  # e.g. fact, deal_won, deal_lost, keypoint, risk, driver, habit
    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    cites: tuple[str, ...] = ()  # record ids: note:1, task:2, msg:-100:3, event:4, lead:5
    lead_id: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        return cls(kind=d["kind"], text=d["text"], figures=dict(d.get("figures") or {}),
                   cites=tuple(d.get("cites") or ()), lead_id=d.get("lead_id"))


@dataclass(frozen=True)
class Section:
    """A titled group of points; `key` is stable (renderers and tests select by it), `title` is shown."""

    key: str
    title: str
    points: tuple[Point, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Section:
        return cls(key=d["key"], title=d["title"], points=tuple(Point.from_dict(p) for p in d.get("points") or ()))


def sections_to_json(sections: list[Section] | tuple[Section, ...]) -> str:
    """The `summaries.sections` column."""
    return json.dumps([asdict(s) for s in sections], ensure_ascii=False, default=str)


def sections_from_json(text: str | None) -> list[Section]:
    return [Section.from_dict(d) for d in json.loads(text or "[]")]
