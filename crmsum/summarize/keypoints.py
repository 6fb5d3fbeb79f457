"""Extractive key points: salient, novel, non-duplicate sentences from the period's records.

Sentences come from razdel (Russian-aware splitting); salience is a weighted sales vocabulary
(КП, скидка, договор, счёт, тендер, отказ, встреча, ЛПР, оплата, ...) plus small bonuses for
amounts and outcomes; novelty is Maximal Marginal Relevance over rapidfuzz similarity; near
duplicates (token-sort similarity >= 85) are dropped. Each point cites its record id.
Deterministic: ties are broken by record id and position.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from rapidfuzz import fuzz
from razdel import sentenize

# stem -> weight; matched as word prefixes of lowercased tokens
SALIENT: dict[str, float] = {
    "кп": 2.0, "коммерческ": 2.0, "скидк": 2.0, "договор": 2.0, "счёт": 2.0, "счет": 2.0, "тендер": 2.0,
    "отказ": 2.5, "встреч": 1.5, "лпр": 2.0, "оплат": 2.0, "предоплат": 2.0, "подписа": 2.5,
    "конкурент": 2.0, "бюджет": 1.5, "цен": 1.0, "дорог": 1.5, "пилот": 1.5, "спецификац": 1.0,
    "согласова": 1.5, "перенес": 1.5, "выигра": 2.0, "проигра": 2.0, "закрыл": 1.5, "поставк": 0.8,
    "сделк": 0.8, "контракт": 2.0, "аванс": 1.5, "презентац": 1.2, "демо": 1.2, "возражени": 1.5,
    "срок": 0.8, "отгрузк": 1.2, "руб": 0.8, "₽": 0.8, "млн": 0.8, "сорвал": 2.0, "отложи": 1.2,
}
WORKED = ("подписа", "оплата поступ", "получена", "выигра", "закрыли", "договорились", "согласова",
          "прошла хорошо", "предоплат", "успешн", "дозвонил")
FAILED = ("отказ", "отмен", "проигра", "конкурент", "дорого", "не отвечает", "перенес", "нет бюджета", "сорвал",
          "затян", "отложи", "выше на", "ушли к")
NEXT = ("нужно", "надо", "план", "ждём", "ждем", "ожидается", "назначена", "до пятницы", "до среды",
        "отправить", "напоминаю", "просит", "просят", "кто может", "кто согласует")
INJECTION = re.compile(r"игнорир\w*\s+(?:все\s+)?(?:предыдущ\w+\s+)?инструкц|ignore\s+(?:all\s+)?(?:previous|prior)"
                       r"|system prompt|системн\w+ промпт|выведи\s+(?:все\s+)?(?:телефон|номер|парол)", re.I)
WORD = re.compile(r"[\w₽]+", re.U)
_DOUBLE_DOT = re.compile(r"(?<!\.)\.\.(?!\.)")
NUMBER = re.compile(r"\d")
KIND_BONUS = {"event": 1.5, "task": 0.6, "call": 0.4, "note": 0.5, "msg": 0.0}
DUP_THRESHOLD = 85
MMR_LAMBDA = 0.7


@dataclass(frozen=True)
class KeyPoint:
    text: str
    cite: str
    section: str  # happened, worked, failed, next
    score: float
    ts: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


_STEMS = sorted(SALIENT, key=len, reverse=True)
_SALIENT_RE = re.compile(r"(?<![\w₽])(" + "|".join(re.escape(s) for s in _STEMS) + r")", re.U)


def salience(sentence: str, kind: str = "note") -> float:
    """Sales-vocabulary weight of a sentence (0 for chit-chat)."""
    low = sentence.lower()
    tokens = WORD.findall(low)
    score = sum(SALIENT[m] for m in _SALIENT_RE.findall(low))
    if score and NUMBER.search(sentence):  # a figure adds weight to sales talk, not to «Планёрка в 10:00»
        score += 0.5
    n = len(tokens)
    if n < 4:
        score *= 0.5
    elif n > 40:
        score *= 0.7
    return score + (KIND_BONUS.get(kind, 0.0) if score > 0 else 0.0)


def section_of(sentence: str) -> str:
    low = sentence.lower()
    if any(w in low for w in FAILED):
        return "failed"
    if any(w in low for w in WORKED):
        from crmsum.insights.text_facts import not_ours

        return "failed" if not_ours(sentence) else "worked"
    if any(w in low for w in NEXT):
        return "next"
    return "happened"


def is_injection(text: str) -> bool:
    """Instructions planted in record text: never quoted as a key point."""
    return bool(INJECTION.search(text))


# The per-text caches hold ~1.2 kB per distinct text across `_split`, `_scored` and
# `grounding._text_support` (measured): 2^16 texts bound them to ~80 MB at any scale, more than one
# precompute window's texts (precompute clears them after each window; the bot's live summaries
# keep the bound).
TEXT_CACHE = 1 << 16


@lru_cache(maxsize=TEXT_CACHE)
def _split(text: str) -> tuple[tuple[str, int], ...]:
    """(sentence, position) of one record text; cached: a record recurs in the manager, company
    and team summaries of its week and month, and chat templates repeat."""
    text = " ".join(text.split())
    if not text:
        return ()
    prefix = ""
    for label in ("Входящий звонок: ", "Исходящий звонок: "):
        if text.startswith(label):
            prefix, text = label, text[len(label):]
    out = []
    for i, s in enumerate(sentenize(text)):
        sent = _DOUBLE_DOT.sub(".", s.text.strip())  # «239 000 руб..» as written in the chat
        if len(sent) >= 12 and not is_injection(sent):
            out.append(((prefix if i == 0 else "") + sent, i))
    return tuple(out)


@lru_cache(maxsize=TEXT_CACHE)
def _scored(text: str, kind: str) -> tuple[tuple[float, int, str], ...]:
    """(salience, position, sentence) of a record's salient sentences (cached like `_split`)."""
    out = []
    for sent, pos in _split(text):
        sal = salience(sent, kind)
        if sal > 0:
            out.append((sal, pos, sent))
    return tuple(out)


def sentences(records: list[dict]) -> list[tuple[str, dict, int]]:
    """(sentence, record, position) for every sentence of every record."""
    return [(sent, rec, pos) for rec in records for sent, pos in _split(rec.get("text") or "")]


def key_points(records: list[dict], limit: int = 8, per_section: int = 3) -> list[KeyPoint]:
    """Pick up to `limit` salient, mutually novel sentences, at most `per_section` per section."""
    cands = [(sal, rec["id"], pos, sent, rec) for rec in records
             for sal, pos, sent in _scored(rec.get("text") or "", rec.get("kind", "note"))]
    if not cands:
        return []
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    cands = cands[: max(60, limit * 8)]  # MMR is quadratic; the tail never wins
    top = cands[0][0]
    chosen: list[tuple[float, str, int, str, dict]] = []
    counts: dict[str, int] = {}
    pool = list(cands)
    sims = [0.0] * len(pool)  # max similarity to the chosen ones, updated as points are chosen
    while pool and len(chosen) < limit:
        bi, best_val = -1, None
        for i, c in enumerate(pool):
            val = MMR_LAMBDA * c[0] / top - (1 - MMR_LAMBDA) * sims[i]
            if best_val is None or val > best_val + 1e-12:
                bi, best_val = i, val
        best = pool.pop(bi)
        sims.pop(bi)
        if any(fuzz.token_sort_ratio(best[3], s[3]) >= DUP_THRESHOLD for s in chosen):
            continue
        sec = section_of(best[3])
        if counts.get(sec, 0) >= per_section:
            continue
        counts[sec] = counts.get(sec, 0) + 1
        chosen.append(best)
        for i, c in enumerate(pool):
            sims[i] = max(sims[i], fuzz.token_set_ratio(c[3], best[3]) / 100)
    return [KeyPoint(text=c[3], cite=c[1], section=section_of(c[3]), score=round(c[0], 3), ts=c[4].get("ts"))
            for c in chosen]
