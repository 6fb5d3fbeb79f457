"""Grounding check: every number, date, amount and pseudonym in a summary must be supported.

Support comes from the facts (all numbers in them, including derived forms: a ratio as a percent,
seconds as minutes, rounding) and from the records the sentence cites (or, for a sentence that
cites nothing, any record given as input). Cited ids must exist among the input records.
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

from crmsum.cites import PSEUDONYM_RE, cited_ids
from crmsum.cites import strip_citations as _strip_citations

DATE_RE = re.compile(r"\b(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?\b|\b(\d{4})-(\d{2})-(\d{2})\b")
NUM_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d+))?(?![\d])\s*(млн|тыс|%)?", re.I)
PERIOD_RE = re.compile(r"\b\d{4}-W\d{2}\b|\b\d{4}-\d{2}\b")
FLAG = "⚠"


@dataclass
class Grounding:
    text: str
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


@lru_cache(maxsize=1 << 17)
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
        bare = _strip_citations(sent)
        dates, rest = _dates(bare)
        out.append((sent, ids, tuple(_numbers(rest)), frozenset(dates), frozenset(PSEUDONYM_RE.findall(bare))))
    return tuple(out)


def _supported(base: Support, sup: Support, nums, dates, names) -> bool:
    return (all(base.supports_number(v, u) or sup.supports_number(v, u) for v, u in nums)
            and all(d in base.dates or d in sup.dates for d in dates)
            and all(n in base.names or n in sup.names for n in names))


def check(text: str, facts: dict, records: list[dict], remove: bool = True) -> Grounding:
    """Check a summary's sentences; drop (or flag) the unsupported ones."""
    by_id = {r["id"]: r for r in records}
    base = Support()
    base.add(facts)
    everything: Support | None = None
    out_lines: list[str] = []
    claims = supported = 0
    removed: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            out_lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        body = line.strip()
        bullet = ""
        if body[:1] in "•-–*":
            bullet, body = body[:1] + " ", body[1:].strip()
        kept: list[str] = []
        for sent, ids, nums, dates, names in _claims(body):
            if not (nums or dates or names or ids):
                kept.append(sent)
                continue
            claims += 1
            if ids:
                if any(i not in by_id for i in ids):
                    ok = False
                    sup = None
                else:
                    sup = Support()
                    for i in ids:
                        sup.add_text(by_id[i].get("text") or "")
                        if by_id[i].get("author"):
                            sup.names.add(by_id[i]["author"])
                        if by_id[i].get("ts"):
                            sup.add_text(by_id[i]["ts"][:10])
            elif _supported(base, Support(), nums, dates, names):
                sup = base  # fact sentences: no need to index every record
            else:
                if everything is None:
                    everything = Support()
                    for r in records:
                        everything.add_text(r.get("text") or "")
                        if r.get("author"):
                            everything.names.add(r["author"])
                sup = everything
            if sup is not None:
                ok = _supported(base, sup, nums, dates, names)
            if ok:
                supported += 1
                kept.append(sent)
            else:
                removed.append(sent)
                if not remove:
                    kept.append(f"{FLAG} {sent}")
        if kept:
            out_lines.append(indent + bullet + " ".join(kept))
        elif not bullet and not remove:
            out_lines.append(line)
    # drop section headers left without content
    cleaned: list[str] = []
    for i, line in enumerate(out_lines):
        if line.rstrip().endswith(":") and not line.lstrip().startswith(("•", "-")):
            nxt = next((x for x in out_lines[i + 1:] if x.strip()), "")
            if not nxt or (nxt.rstrip().endswith(":") and not nxt.lstrip().startswith(("•", "-"))):
                continue
        cleaned.append(line)
    score = round(supported / claims, 4) if claims else 1.0
    return Grounding("\n".join(cleaned).strip(), score, claims, supported, removed)
