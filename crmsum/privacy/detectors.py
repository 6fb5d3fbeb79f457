"""Regex detectors for contact data and document numbers in free text.

Each detector yields ``(start, end, kind, normalized, real)``. Precision rules (tested):
dates, times, amounts (``1 250 000 руб.``), years, order numbers and company INN (10 digits)
are business data and are never matched; personal INN (12 digits, checksum), SNILS, passport
series/number and card numbers (Luhn) are.
"""

from __future__ import annotations

import re
from typing import Iterator

Span = tuple[int, int, str, str, str]

EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
    r"|(?<![\w.+-])[а-яёА-ЯЁ0-9][\w.+-]{0,63}@(?:[\w-]{1,63}\.)+(?:рф|рус|[A-Za-z]{2,24})\b")

# Personal profile links: messengers and social networks. Company web sites stay readable.
PROFILE_RE = re.compile(
    r"(?:(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog|wa\.me|vk\.com|vk\.ru|m\.vk\.com|"
    r"ok\.ru|instagram\.com|facebook\.com|fb\.com|linkedin\.com/in|twitter\.com|x\.com|"
    r"github\.com|hh\.ru/resume|tiktok\.com|youtube\.com/@|api\.whatsapp\.com)/[^\s<>\"'«»,;)]+)"
    r"|(?:tg://resolve\?domain=[\w]+)|(?:skype:[\w.\-]+)", re.I)

HANDLE_RE = re.compile(r"(?<![\w@./])@[A-Za-z][A-Za-z0-9_]{2,31}\b")

# Phone candidates: a run of digits with phone-like separators; validated in code.
PHONE_CAND_RE = re.compile(
    r"(?<![\w+\-/.,])(?:\+\s?)?\d(?:[ \u00a0\-\u2010-\u2012]?\(?\d\)?|[ \u00a0\-\u2010-\u2012]?\(\d{1,5}\)[ \u00a0\-]?){6,18}(?![\w/])"
    r"(?!\.\d)(?!,\d)")
THOUSANDS_RE = re.compile(r"^\d{1,3}(?:[ \u00a0]\d{3})+$")
MONEY_AFTER_RE = re.compile(r"^\s*(?:руб|р\.|р\b|₽|тыс|млн|млрд|usd|eur|\$|€|%|шт|ед|м2|м²|кг|т\b)", re.I)
BUSINESS_BEFORE_RE = re.compile(
    r"(?:инн|огрн|огрнип|кпп|бик|окпо|р/с|к/с|счет|счёт|сч\.|заказ|договор|№|#|n|no\.?|номер|"
    r"накладн\w*|артикул|арт\.|сумм\w*|на сумму|итого|бюджет|руб\.?)\s*[:№#]?\s*$", re.I)
_GROUP_SEP = " \u00a0-"  # what separates the digit groups of a phone candidate
PHONE_BEFORE_RE = re.compile(r"(?:тел|телефон|моб|мобильный|сот|сотовый|whatsapp|вотсап|ватсап|viber|phone|"
                             r"номер телефона|звонить|позвонить|набрать|т\.)\W{0,3}$", re.I)

SNILS_RE = re.compile(r"(?<![\d\-])\d{3}[-\u2010 ]\d{3}[-\u2010 ]\d{3}[- ]\d{2}(?![\d\-])")
SNILS_CTX_RE = re.compile(r"(?i)снилс\W{0,5}(\d{11}|\d{3}\D?\d{3}\D?\d{3}\D?\d{2})(?!\d)")
PASSPORT_CTX_RE = re.compile(
    r"(?i)(?:паспорт\w*|серия|серии|сер\.)[^\d\n]{0,25}(\d{2}[ \u00a0]?\d{2})[^\d\n]{0,12}?(?:№|номер|н\.|n)?\s*(\d{6})(?!\d)")
PASSPORT_BARE_RE = re.compile(r"(?<![\d\-./,])(\d{2}[ \u00a0]?\d{2})[ \u00a0](\d{6})(?![\d\-/,.]\d)(?!\d)")
INN12_RE = re.compile(r"(?<![\d\-])\d{12}(?!\d)")
INN_CTX_RE = re.compile(r"(?i)инн\W{0,5}(\d{12})(?!\d)")
CARD_RE = re.compile(r"(?<![\d\-])\d{4}(?:[ \u00a0\-]?\d{4}){2}[ \u00a0\-]?\d{4}(?:[ \u00a0\-]?\d{1,3})?(?![\d\-])")

CARD_GROUPED_RE = re.compile(r"\d{4}([ \u00a0-])\d{4}\1\d{4}\1\d{4}")
CARD_CTX_RE = re.compile(r"(?i)(?:карт\w*|card|visa|mastercard|мир)\W{0,5}(?:№\s*)?$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def inn12_ok(d: str) -> bool:
    """Checksum of a 12-digit (individual) INN."""
    n = [int(c) for c in d]
    w1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    w2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    c1 = sum(a * b for a, b in zip(w1, n)) % 11 % 10
    c2 = sum(a * b for a, b in zip(w2, n)) % 11 % 10
    return c1 == n[10] and c2 == n[11]


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def normalize_phone(raw: str) -> str | None:
    """E.164 digits (no '+') of a phone number, or None if it does not look like one.

    Russian numbers in any prefix style (``8…``, ``7…``, ``+7…``, bare 10 digits) collapse to ``7`` + 10 digits.
    """
    d = _digits(raw)
    plus = raw.lstrip().startswith("+")
    if plus:
        if d.startswith("7") and len(d) == 11:
            return d
        if 10 <= len(d) <= 15 and not d.startswith("0"):
            return d
        return None
    if len(d) == 11 and d[0] in "78":
        return "7" + d[1:]
    if len(d) == 10:
        return "7" + d
    if len(d) >= 12 and len(d) <= 15 and d[:3] in ("375", "380", "998", "996", "992", "994", "995", "374", "373", "371", "372", "370", "993"):
        return d
    return None


def find_emails(text: str) -> Iterator[Span]:
    for m in EMAIL_RE.finditer(text):
        v = m.group(0)
        yield m.start(), m.end(), "email", v.lower(), v


def find_profiles(text: str) -> Iterator[Span]:
    for m in PROFILE_RE.finditer(text):
        v = m.group(0).rstrip(".!?")
        norm = re.sub(r"^(?:https?://)?(?:www\.|m\.)?", "", v.lower()).rstrip("/")
        yield m.start(), m.start() + len(v), "url", norm, v


def find_handles(text: str) -> Iterator[Span]:
    for m in HANDLE_RE.finditer(text):
        v = m.group(0)
        yield m.start(), m.end(), "handle", v[1:].lower(), v


def find_docs(text: str) -> Iterator[Span]:
    for m in CARD_RE.finditer(text):
        d = _digits(m.group(0))
        # Luhn-valid, or typed the way cards are (4-4-4-4), or named as a card
        before = text[max(0, m.start() - 25):m.start()]
        if 16 <= len(d) <= 19 and (luhn_ok(d) or CARD_CTX_RE.search(before) or (
                CARD_GROUPED_RE.fullmatch(m.group(0)) and not BUSINESS_BEFORE_RE.search(before))):
            yield m.start(), m.end(), "doc", "card:" + d, m.group(0)
    for m in SNILS_CTX_RE.finditer(text):
        yield m.start(1), m.end(1), "doc", "snils:" + _digits(m.group(1)), m.group(1)
    for m in SNILS_RE.finditer(text):
        yield m.start(), m.end(), "doc", "snils:" + _digits(m.group(0)), m.group(0)
    for m in PASSPORT_CTX_RE.finditer(text):
        d = _digits(m.group(1)) + _digits(m.group(2))
        yield m.start(1), m.end(2), "doc", "passport:" + d, text[m.start(1):m.end(2)]
    for m in PASSPORT_BARE_RE.finditer(text):
        before = text[max(0, m.start() - 24):m.start()]
        if BUSINESS_BEFORE_RE.search(before) or MONEY_AFTER_RE.match(text[m.end():m.end() + 6]):
            continue
        d = _digits(m.group(1)) + m.group(2)
        yield m.start(), m.end(), "doc", "passport:" + d, m.group(0)
    for m in INN_CTX_RE.finditer(text):
        yield m.start(1), m.end(1), "doc", "inn:" + m.group(1), m.group(1)
    for m in INN12_RE.finditer(text):
        if inn12_ok(m.group(0)):
            yield m.start(), m.end(), "doc", "inn:" + m.group(0), m.group(0)


def find_phones(text: str) -> Iterator[Span]:
    for m in PHONE_CAND_RE.finditer(text):
        raw = m.group(0)
        while raw and not raw[-1].isdigit():  # trailing separators / parens
            raw = raw[:-1]
        for offset, piece in _balanced_pieces(raw):
            start = m.start() + offset
            # «89001234567 2 раза», «заказ 3 89001234567»: the greedy run ate a neighbouring number;
            # retry without trailing groups, then without leading ones
            for i, j in _sub_runs(piece):
                norm = _phone_at(text, piece[i:j], start + i, start + j)
                if norm is not None:
                    yield start + i, start + j, "phone", norm, piece[i:j]
                    break


def _balanced_pieces(raw: str) -> list[tuple[int, str]]:
    """(offset, piece) of a candidate run with balanced parentheses: the run itself, or the parts before
    and after its unclosed «(» («89001234567 (2 раза)», «… 45-67(10:30)», «(89001234567)», «0 (8900…»)."""
    depth, unclosed = 0, -1
    for k, ch in enumerate(raw):
        if ch == "(":
            unclosed = k if depth == 0 else unclosed
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
    if raw.count("(") == raw.count(")"):
        return [(0, raw)]
    if depth == 0 or unclosed < 0:  # a stray «)»: not a phone shape
        return []
    return [(0, raw[:unclosed].rstrip(_GROUP_SEP + "\u2010\u2011\u2012")), (unclosed + 1, raw[unclosed + 1:])]


def _sub_runs(raw: str, tries: int = 3) -> Iterator[tuple[int, int]]:
    """(i, j) slices of a candidate run to try as a phone: the whole run first, then shorter ones."""
    ends, j = [len(raw)], len(raw)
    for _ in range(tries):
        cut = max(raw.rfind(c, 0, j) for c in _GROUP_SEP)
        if cut <= 0:
            break
        j = len(raw[:cut].rstrip(_GROUP_SEP + "("))
        ends.append(j)
    starts, i = [0], 0
    for _ in range(tries - 1):
        cut = min((k for k in (raw.find(c, i) for c in _GROUP_SEP) if k >= 0), default=-1)
        if cut < 0:
            break
        i = cut + 1
        while i < len(raw) and raw[i] in _GROUP_SEP:
            i += 1
        starts.append(i)
    for i in starts:
        for j in ends:
            if j - i >= 10:
                yield i, j


def _phone_at(text: str, raw: str, start: int, end: int) -> str | None:
    """The normalized phone if `raw` (at text[start:end]) is one, judging by itself and its neighbours."""
    d = _digits(raw)
    if len(d) < 10 or len(d) > 15 or raw.count("(") != raw.count(")"):
        return None
    plus = raw.startswith("+")
    before = text[max(0, start - 30):start]
    after = text[end:end + 8]
    if not plus:
        if BUSINESS_BEFORE_RE.search(before) and not PHONE_BEFORE_RE.search(before):
            return None
        if THOUSANDS_RE.match(raw) or MONEY_AFTER_RE.match(after):
            return None
        grouped = any(c in raw for c in " \u00a0-()")
        if len(d) == 10:
            # bare 10 digits: only a mobile (9xx); with grouping also landlines; else company INN etc.
            if not (d[0] == "9" or (grouped and d[0] in "3489") or PHONE_BEFORE_RE.search(before)):
                return None
        elif len(d) == 11:
            if d[0] not in "78" or d[1] not in "3489":
                return None
    return normalize_phone(raw)
