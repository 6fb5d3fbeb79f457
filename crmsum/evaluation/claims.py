"""What a text claims and what a context can support: the checkable pieces of the offline RAG metrics.

- `claims`: an answer's claims (sentences of its lines; a line's citations apply to its sentences);
- `entities`: the numbers (with units), dates, periods, pseudonyms and company names of a text;
- `Support`: what a context can back (numbers with their derived forms — a ratio as a percent,
  seconds as minutes — dates, periods, names, lemmas), so a claim is checked entity by entity;
- `lemmas`: content lemmas (pymorphy3) for the lexical overlap.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

from razdel import sentenize

from crmsum.cites import ID_RE, PSEUDONYM_RE, cited_ids, strip_citations
from crmsum.ru import company_core, morph

DATE_RE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b|\b(\d{4})-(\d{2})-(\d{2})\b|\b(\d{1,2})\.(\d{1,2})\b(?!\.\d)")
PERIOD_RE = re.compile(r"\b(\d{4})-W(\d{2})\b|\b(\d{4})-(\d{2})\b(?!-\d)")
NUM_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d+))?(?!\d)\s*(млн|тыс|%)?", re.I)
WORD_RE = re.compile(r"[а-яёa-z]+", re.I)
META_RE = re.compile(r"^\s*(Источник|Source)\s*:", re.I)
STOP = set("""и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там потом
себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж
тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда
можно при наконец два об другой хоть после над больше тот через эти нас про всего них какая много разве три эту моя впрочем
хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между это весь""".split())
# Facts keys in words, so that fact sentences of a summary have lexical support in the facts context.
FACT_WORDS = {
    "deals_touched": "сделка работа", "deals_created": "новый сделка создать", "created_amount": "сумма новый",
    "deals_won": "сделка выиграть успешно закрыть итог", "won_amount": "сумма выиграть",
    "deals_lost": "сделка проиграть потерять итог", "lost_amount": "сумма проиграть потерять",
    "stage_moves": "переход этап", "median_days_in_stage": "медианный время этап день",
    "tasks_done": "задача выполнить", "tasks_overdue": "просрочить задача закрыть перенести срок клиент",
    "calls": "звонок", "calls_in": "входящий звонок", "calls_out": "исходящий звонок", "notes": "заметка",
    "chat_messages": "сообщение чат", "open_deals_count": "открытый сделка крупный фокус всего",
    "stalled_count": "оживить сделка активность без больший день", "win_rate": "конверсия",
    "loss_reasons": "причина потерять", "open_deals": "открытый сделка этап фокус крупный",
    "stalled_deals": "сделка без действие активность", "label": "менеджер компания период",
    "period": "период неделя месяц", "scope": "команда менеджер компания",
}


# -- text tools ------------------------------------------------------------------------------
@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    w = word.lower().replace("ё", "е")
    if not re.match(r"[а-я]", w):
        return w
    return morph().parse(w)[0].normal_form.replace("ё", "е")


def lemmas(text: str, content: bool = True) -> list[str]:
    """Lemmas of the words of a text (stopwords and 1-letter words dropped with content=True)."""
    text = PSEUDONYM_RE.sub(" ", ID_RE.sub(" ", text or ""))
    out = [lemma(w) for w in WORD_RE.findall(text)]
    return [w for w in out if len(w) > 1 and w not in STOP] if content else out


@dataclass
class Claim:
    text: str  # without citations
    cites: list[str] = field(default_factory=list)


def claims(text: str) -> list[Claim]:
    """The answer's claims: sentences of its lines; a line's citations apply to its sentences."""
    out: list[Claim] = []
    for line in (text or "").splitlines():
        body = line.strip()
        if not body or META_RE.match(body):
            continue
        if body.endswith(":") and not body.startswith(("•", "-", "*")) and len(body) < 60:
            continue  # section header
        body = re.sub(r"^[•\-–*]\s*", "", body)
        ids = cited_ids(body)
        bare = " ".join(strip_citations(body).split())
        for s in sentenize(bare):
            t = s.text.strip()
            if len(t) >= 3 and re.search(r"\w", t):
                out.append(Claim(t, ids))
    return out


def _num(whole: str, frac: str | None) -> float:
    whole = re.sub(r"[ \u00a0\u202f]", "", whole)
    return float(f"{whole}.{frac}") if frac else float(whole)


def _dates_of(text: str) -> tuple[set[tuple[int, int]], str]:
    """(day, month) pairs of the dates in a text and the text with them (and periods) blanked."""
    found: set[tuple[int, int]] = set()

    def repl(m: re.Match) -> str:
        if m.group(1):
            d, mo = int(m.group(1)), int(m.group(2))
        elif m.group(4):
            d, mo = int(m.group(6)), int(m.group(5))
        else:
            d, mo = int(m.group(7)), int(m.group(8))
        if 1 <= d <= 31 and 1 <= mo <= 12:
            found.add((d, mo))
            return " "
        return m.group(0)
    text = DATE_RE.sub(repl, text)
    return found, text


def _periods_of(text: str) -> tuple[set[str], str]:
    found = set(m.group(0) for m in PERIOD_RE.finditer(text))
    return found, PERIOD_RE.sub(" ", text)


def entities(text: str, companies: Iterable[str] = ()) -> dict[str, Any]:
    """Checkable entities of a text: numbers (value, unit), dates, periods, pseudonyms, companies."""
    text = ID_RE.sub(" ", text or "")
    names = set(PSEUDONYM_RE.findall(text))
    rest = PSEUDONYM_RE.sub(" ", text)
    periods, rest = _periods_of(rest)
    dates, rest = _dates_of(rest)
    nums = []
    for m in NUM_RE.finditer(rest):
        nums.append((_num(m.group(1), m.group(2)), (m.group(3) or "").lower() or None))
    low = (text or "").lower().replace("ё", "е")
    comps = {c for c in (company_core(x) for x in companies) if c and len(c) >= 4 and c in low}
    return {"numbers": nums, "dates": dates, "periods": periods, "names": names, "companies": comps}


class Support:
    """What a context can support: numbers (with derived forms), dates, periods, names, text."""

    def __init__(self) -> None:
        self.values: set[float] = set()
        self.dates: set[tuple[int, int]] = set()
        self.periods: set[str] = set()
        self.names: set[str] = set()
        self.text_parts: list[str] = []
        self._lemmas: set[str] | None = None
        self._sorted: list[float] | None = None

    @classmethod
    def of(cls, *items: Any) -> "Support":
        s = cls()
        for it in items:
            s.add(it)
        return s

    def add_number(self, v: float) -> None:
        self.values.add(round(v, 4))
        if 0 <= v <= 1:
            self.values.add(round(v * 100, 4))  # ratio as a percent
        if v >= 60:
            self.values.add(round(v / 60, 4))  # seconds as minutes
        self._sorted = None

    def add_text(self, text: str) -> None:
        if not text:
            return
        self.text_parts.append(text)
        self._lemmas = None
        e = entities(text)
        self.names |= e["names"]
        self.dates |= e["dates"]
        self.periods |= e["periods"]
        for p in e["periods"]:
            for x in re.findall(r"\d+", p):
                self.add_number(float(x))
        for v, unit in e["numbers"]:
            self.add_number(v * (1e6 if unit == "млн" else 1e3 if unit == "тыс" else 1))

    def add(self, value: Any, key: str | None = None) -> None:
        if key in FACT_WORDS:
            self.add_text(FACT_WORDS[key])
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "call_seconds" and isinstance(v, (int, float)):
                    self.add_number(v / 60)
                if k in ("start", "end") and isinstance(v, str) and re.match(r"\d{4}-\d{2}-\d{2}", v):
                    d = dt.date.fromisoformat(v[:10])
                    self.periods.add(f"{d.year}-{d.month:02d}")
                    self.periods.add(f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}")
                    self.add_number(float(d.year))
                self.add(v, k)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                self.add(v, key)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, (int, float)):
            if not (isinstance(value, float) and math.isnan(value)):
                self.add_number(float(value))
        elif isinstance(value, str):
            self.add_text(value)

    @property
    def lemma_set(self) -> set[str]:
        if self._lemmas is None:
            self._lemmas = set(lemmas(" ".join(self.text_parts)))
        return self._lemmas

    @property
    def lower(self) -> str:
        return " ".join(self.text_parts).lower().replace("ё", "е")

    def _within(self, lo: float, hi: float) -> bool:
        import bisect

        if self._sorted is None:
            self._sorted = sorted(self.values)
        i = bisect.bisect_left(self._sorted, lo)
        return i < len(self._sorted) and self._sorted[i] <= hi

    def number(self, x: float, unit: str | None) -> bool:
        if unit in ("млн", "тыс"):
            x *= 1e6 if unit == "млн" else 1e3
            return self._within(x / 1.05, x * 1.05)
        if x == int(x):  # an integer: exact, or a value that rounds to it
            return self._within(x - 0.5, x + 0.5 - 1e-9) if x else self._within(-0.4999, 0.4999)
        return self._within(x - 0.051, x + 0.051)

    def supports_entities(self, e: dict) -> bool:
        return (all(self.number(v, u) for v, u in e["numbers"])
                and all(d in self.dates for d in e["dates"])
                and all(p in self.periods or p[:4] in self.lower for p in e["periods"])
                and all(n in self.names for n in e["names"])
                and all(c in self.lower for c in e["companies"]))

    def overlap(self, text: str) -> float:
        """Share of the content lemmas of `text` found in this context."""
        ls = set(lemmas(text))
        if not ls:
            return 1.0
        return len(ls & self.lemma_set) / len(ls)


def has_entities(e: dict) -> bool:
    return any(e[k] for k in ("numbers", "dates", "periods", "names", "companies"))
