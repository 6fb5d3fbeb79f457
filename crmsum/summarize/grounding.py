"""Grounding check: every number, date, amount and pseudonym in a summary must be supported.

Support comes from the facts (all numbers in them, including derived forms: a ratio as a percent,
seconds as minutes, rounding) and from the records the sentence cites (or, for a sentence that
cites nothing, any record given as input). Cited ids must exist among the input records.
The check runs on the summary records (`Section` / `Point`), sentence by sentence of each point.
Unsupported sentences are removed (or kept and flagged with `remove=False`); the share of
claim-bearing sentences that were supported is the summary's `grounding` score.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from razdel import sentenize

from crmsum.cites import PSEUDONYM_RE, cited_ids, strip_citations
from crmsum.summarize.keypoints import TEXT_CACHE
from crmsum.summarize.model import Point, Section

DATE_RE = re.compile(r"\b(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?\b|\b(\d{4})-(\d{2})-(\d{2})\b")
NUM_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d+))?(?![\d])\s*(млн|тыс|%)?", re.I)
PERIOD_RE = re.compile(r"\b\d{4}-W\d{2}\b|\b\d{4}-\d{2}\b")
FLAG = "⚠"


@dataclass
class Grounding:
    sections: list[Section]
    score: float
    claims: int
    supported: int
    removed: list[str] = field(default_factory=list)


def _numbers(text: str) -> list[tuple[float, str | None]]:
    text = PSEUDONYM_RE.sub(" ", text)
    text = PERIOD_RE.sub(" ", text)
    out = []
    for m in NUM_RE.finditer(text):
        whole = re.sub(r"[ \u00a0\u202f]", "", m.group(1))
        val = float(f"{whole}.{m.group(2)}") if m.group(2) else float(whole)
        out.append((val, (m.group(3) or "").lower() or None))
    return out


def _dates(text: str) -> tuple[set[tuple[int, int]], str]:
    """(day, month) pairs of the dates in a text, and the text with the dates blanked."""
    found = set()

    def repl(m: re.Match) -> str:
        if m.group(4):
            found.add((int(m.group(6)), int(m.group(5))))
        else:
            d, mo = int(m.group(1)), int(m.group(2))
            if 1 <= d <= 31 and 1 <= mo <= 12:
                found.add((d, mo))
            else:
                return m.group(0)
        return " "
    return found, DATE_RE.sub(repl, text)


class Support:
    """The numbers, dates and names a text may mention."""

    def __init__(self) -> None:
        self.values: set[float] = set()
        self.dates: set[tuple[int, int]] = set()
        self.names: set[str] = set()
        self._sorted: list[float] | None = None

    def add_text(self, text: str) -> None:
        names, dates, values = _text_support(text)
        self.names |= names
        self.dates |= dates
        self.values |= values

    def _add_text(self, text: str) -> None:
        self.names.update(PSEUDONYM_RE.findall(text))
        dates, rest = _dates(text)
        self.dates |= dates
        for y, mo, d in re.findall(r"(\d{4})-(\d{2})-(\d{2})", text):
            self.dates.add((int(d), int(mo)))
        for v, unit in _numbers(rest):
            self.add_number(v)
        for y, w in re.findall(r"(\d{4})-W(\d{2})", text):
            self.add_number(float(y))
            self.add_number(float(w))

    def add_number(self, v: float) -> None:
        self.values.add(round(v, 4))
        if 0 <= v <= 1:
            self.values.add(round(v * 100, 4))
        if v >= 60:
            self.values.add(round(v / 60, 4))  # seconds -> minutes

    def add(self, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "call_seconds" and isinstance(v, (int, float)):
                    self.add_number(v / 60)
                self.add(v)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                self.add(v)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, (int, float)):
            self.add_number(float(value))
        elif isinstance(value, str):
            self.add_text(value)

    def _any_within(self, lo: float, hi: float) -> bool:
        if self._sorted is None or len(self._sorted) != len(self.values):
            self._sorted = sorted(self.values)
        i = bisect.bisect_left(self._sorted, lo)
        return i < len(self._sorted) and self._sorted[i] <= hi

    def supports_number(self, x: float, unit: str | None) -> bool:
        if unit == "млн":
            x *= 1e6
            return self._any_within(x / 1.05, x * 1.05)
        if unit == "тыс":
            x *= 1e3
            return self._any_within(x / 1.05, x * 1.05)
        if x == int(x):  # integers: exact, or a fact that rounds to it (54.55 -> 55)
            return self._any_within(max(x - 0.5, 0.5) if x else 0, x + 0.5 - 1e-9 if x else 0.4999)
        return self._any_within(x - 0.051, x + 0.051)


@lru_cache(maxsize=TEXT_CACHE)
def _text_support(text: str) -> tuple[frozenset, frozenset, frozenset]:
    """(names, dates, values) a text supports; cached (record texts recur across summaries)."""
    s = Support()
    s._add_text(text)
    return frozenset(s.names), frozenset(s.dates), frozenset(s.values)


@lru_cache(maxsize=1 << 14)
def _claims(body: str) -> tuple[tuple[str, tuple, tuple, frozenset, frozenset], ...]:
    """(sentence, cited ids, numbers, dates, names) per sentence of a line body (cached)."""
    out = []
    for s in sentenize(body):
        sent = s.text
        ids = tuple(cited_ids(sent))
        bare = strip_citations(sent)
        dates, rest = _dates(bare)
        out.append((sent, ids, tuple(_numbers(rest)), frozenset(dates), frozenset(PSEUDONYM_RE.findall(bare))))
    return tuple(out)


def _supported(base: Support, sup: Support, nums, dates, names) -> bool:
    return (all(base.supports_number(v, u) or sup.supports_number(v, u) for v, u in nums)
            and all(d in base.dates or d in sup.dates for d in dates)
            and all(n in base.names or n in sup.names for n in names))


def check(sections: list[Section], facts: dict, records: list[dict], remove: bool = True) -> Grounding:
    """Check every sentence of every point; drop (or flag) the unsupported ones.

    A point's citations apply to each of its sentences. Points left without sentences and
    sections left without points are dropped.
    """
    v = _Verifier(facts, records)
    out: list[Section] = []
    for sec in sections:
        points = [p for p in (v.point(p, remove) for p in sec.points) if p is not None]
        if points:
            out.append(sec.with_points(points))
    score = round(v.supported / v.claims, 4) if v.claims else 1.0
    return Grounding(out, score, v.claims, v.supported, v.removed)


class _Verifier:
    """Support of the facts and records of one summary, and the tally of its claims."""

    def __init__(self, facts: dict, records: list[dict]) -> None:
        self.by_id = {r["id"]: r for r in records}
        self.records = records
        self.base = Support()
        self.base.add(facts)
        self._everything: Support | None = None
        self.claims = self.supported = 0
        self.removed: list[str] = []

    def everything(self) -> Support:
        """Support of all input records (for a sentence that cites nothing), built once."""
        if self._everything is None:
            self._everything = Support()
            for r in self.records:
                self._everything.add_text(r.get("text") or "")
                if r.get("author"):
                    self._everything.names.add(r["author"])
        return self._everything

    def cited(self, ids: tuple[str, ...]) -> Support | None:
        """Support of the cited records, or None when an id is not among the inputs."""
        if any(i not in self.by_id for i in ids):
            return None
        sup = Support()
        for i in ids:
            rec = self.by_id[i]
            sup.add_text(rec.get("text") or "")
            if rec.get("author"):
                sup.names.add(rec["author"])
            if rec.get("ts"):
                sup.add_text(rec["ts"][:10])
        return sup

    def sentence(self, ids: tuple[str, ...], nums, dates, names) -> bool:
        if ids:
            sup = self.cited(ids)
            return sup is not None and _supported(self.base, sup, nums, dates, names)
        if _supported(self.base, Support(), nums, dates, names):
            return True  # fact sentences: no need to index every record
        return _supported(self.base, self.everything(), nums, dates, names)

    def point(self, p: Point, remove: bool) -> Point | None:
        kept: list[str] = []
        for sent, inline, nums, dates, names in _claims(p.text):
            ids = tuple(dict.fromkeys(p.cites + inline))
            if not (nums or dates or names or ids):
                kept.append(sent)
                continue
            self.claims += 1
            if self.sentence(ids, nums, dates, names):
                self.supported += 1
                kept.append(sent)
            else:
                self.removed.append(sent)
                if not remove:
                    kept.append(f"{FLAG} {sent}")
        return p.with_text(" ".join(kept)) if kept else None
