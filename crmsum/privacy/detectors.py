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
DIGITS_RE = re.compile(r"\d+")
THOUSANDS_RE = re.compile(r"^\d{1,3}(?:[ \u00a0]\d{3})+$")
MONEY_AFTER_RE = re.compile(r"^\s*(?:руб|р\.|р\b|₽|тыс|млн|млрд|usd|eur|\$|€|%|шт|ед|м2|м²|кг|т\b)", re.I)
BUSINESS_BEFORE_RE = re.compile(
    r"(?:инн|огрн|огрнип|кпп|бик|окпо|р/с|к/с|счет|счёт|сч\.|заказ|договор|№|#|n|no\.?|номер|"
    r"накладн\w*|артикул|арт\.|сумм\w*|на сумму|итого|бюджет|руб\.?)\s*[:№#]?\s*$", re.I)
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
    """Phones in any spelling; inside a longer run of digit groups («0 8900…», «89001234567 (2 раза)»,
    «…(10:30)») the leftmost-longest sub-run of whole groups that is a phone."""
    for m in PHONE_CAND_RE.finditer(text):
        raw, base = m.group(0), m.start()
        groups = [(g.start(), g.end()) for g in DIGITS_RE.finditer(raw)]
        i = 0
        while i < len(groups):
            hit = _phone_in(text, raw, base, groups, i)
            if hit is None:
                i += 1
                continue
            a, b, norm, j = hit
            yield base + a, base + b, "phone", norm, text[base + a:base + b]
            i = j + 1


def _phone_in(text: str, raw: str, base: int, groups: list[tuple[int, int]], i: int):
    """(start, end, normalized, last group) of the longest phone starting at digit group i, or None."""
    for j in range(len(groups) - 1, i - 1, -1):
        a, b = groups[i][0], groups[j][1]
        if sum(e - s for s, e in groups[i:j + 1]) < 10:
            return None
        if a > 0 and raw[a - 1] == "(" and ")" in raw[a:b]:
            a -= 1
        elif a > 0 and raw[a - 1] == "+":
            a -= 1
        elif a > 1 and raw[a - 2:a] == "+ ":
            a -= 2
        if raw.count("(", a, b) == raw.count(")", a, b) + 1 and raw[b:b + 1] == ")":
            continue   # «…(10» of «(10:30)» stays out: try a shorter run
        if raw.count(")", a, b) == raw.count("(", a, b) + 1 and base + a > 0 and text[base + a - 1] == "(":
            a -= 1     # «(916) 123-45-67»: the opening parenthesis is before the candidate
        norm = _phone_at(text, text[base + a:base + b], base + a, base + b)
        if norm is not None:
            return a, b, norm, j
    return None


def _phone_at(text: str, raw: str, start: int, end: int) -> str | None:
    """The normalized phone if `raw` (at text[start:end]) is one, judging by itself and its neighbours."""
    d = _digits(raw)
    if len(d) < 10 or len(d) > 15 or raw.count("(") != raw.count(")"):
        return None
    plus = raw.startswith("+")
    before = text[max(0, start - 30):start]
    after = text[end:end + 8]
    if not plus:
        bm = BUSINESS_BEFORE_RE.search(before)
        if bm and not PHONE_BEFORE_RE.search(before):
            # a whole Russian mobile number is a phone even after a bare «#»/«№»; not after a word
            # («артикул», «заказ», «ИНН»)
            bare = bm.group(0).strip().lower() in ("#", "№", "n", "no", "no.")
            if not (bare and len(d) == 11 and d[0] in "78" and d[1] == "9"):
                return None
        mobile = len(d) == 11 and d[0] in "78" and d[1] == "9"
        if THOUSANDS_RE.match(raw) or (MONEY_AFTER_RE.match(after) and not mobile):
            return None   # an amount; a whole mobile number written without thousand groups stays a phone
        grouped = any(c in raw for c in " \u00a0-()")
        if len(d) == 10:
            # bare 10 digits: only a mobile (9xx); with grouping also landlines; else company INN etc.
            if not (d[0] == "9" or (grouped and d[0] in "3489") or PHONE_BEFORE_RE.search(before)):
                return None
        elif len(d) == 11:
            if d[0] not in "78" or d[1] not in "3489":
                return None
    return normalize_phone(raw)


# -- addresses, birth dates, IP addresses: masked by fixed tokens (nothing to resolve later) ---------
ADDRESS_TOKEN = "[адрес]"
BIRTHDATE_TOKEN = "[дата рождения]"
IP_TOKEN = "[IP-адрес]"

_STREET = (r"(?i:ул\.?|улиц[аеуы]|пр-т\.?|пр-кт\.?|просп\.?|проспект[аеу]?|пер\.|переул(?:ок|ке|ка)|ш\.|шоссе|"
           r"б-р\.?|бульвар[аеу]?|наб\.|набережн(?:ая|ой|ую)|пл\.|площад[ьи]|мкр\.?|микрорайон[аеу]?|"
           r"пр-д\.?|проезд[аеу]?|туп\.|тупик[аеу]?|кв-л\.?)")
STREET_MARKER_RE = re.compile(_STREET)
STREET_ABBR_RE = re.compile(r"(?i:ул\.?|пр-к?т\.?|просп\.|пер\.|ш\.|б-р\.?|наб\.|пл\.|мкр\.?|пр-д\.?|туп\.|кв-л\.?)[ \u00a0]")
_STREET_NAME = r"(?:\d{1,3}-?(?:я|й|го|ой|ая)?[ \u00a0]+)?(?:[А-ЯЁA-Z0-9][\w.\-]*)(?:[ \u00a0]+[А-ЯЁA-Z][\w.\-]*){0,3}"
_HOUSE = (r"(?:,?[ \u00a0]*(?:д\.?|дом|влад\.?|вл\.)[ \u00a0]*\d{1,4}[а-яА-Я]?(?:[/\-]\d{1,4}[а-яА-Я]?)?"
          r"|,?[ \u00a0]*\d{1,4}(?:к\d{1,3}|стр\d{1,3}|[а-яА-Я](?![а-яё]))?(?:/\d{1,4})?(?=[ \u00a0]*(?:,|[ \u00a0]к\b|[ \u00a0]корп|[ \u00a0]стр|[ \u00a0]кв|-\d|$|\s)))")
_UNIT = (r"(?:,?[ \u00a0]*(?:к\.?|корп\.?|корпус|стр\.?|строение|кв\.?|квартира|оф\.?|офис|пом\.?|помещение|"
         r"эт\.?|этаж|под\.?|подъезд)[ \u00a0]*№?[ \u00a0]*\d{1,4}[а-яА-Я]?|-\d{1,4}(?!\d))")
ADDRESS_RE = re.compile(
    rf"(?<![\w])(?:(?:\d{{6}},?[ \u00a0]*)?(?:[гГ]\.[ \u00a0]?[А-ЯЁ][\w\-]+,?[ \u00a0]*)?)?{_STREET}[ \u00a0]*{_STREET_NAME}"
    rf"(?P<house>(?i:{_HOUSE}(?:{_UNIT}){{0,4}}))?")
# «на углу Ленина и Мира», «перекрёсток улиц Курмангазы и Байсеитовой»: two streets, whatever their names
CORNER_RE = re.compile(
    r"(?<![\w])(?i:на[ \u00a0]+углу|угол|перекр[её]ст(?:ок|ка|ке)|пересечени[еия])(?:[ \u00a0]+(?i:улиц))?"
    r"[ \u00a0]+[А-ЯЁ][\w\-]+[ \u00a0]+(?:и|с)[ \u00a0]+[А-ЯЁ][\w\-]+")
# a street named the English way: «Даунинг-стрит», «Пикадилли-сёркус», «Мэдисон-авеню»
FOREIGN_STREET_RE = re.compile(r"(?<![\w\-])[А-ЯЁ][\w]*-(?:стрит|авеню|сквер|роуд|лейн|плейс|с[её]ркус)(?![\w\-])", re.I)
# a bare «кв. 12», «квартира 5» also points at a home
FLAT_RE = re.compile(r"(?<![\w])(?:кв\.|квартира|квартиры|квартире)[ \u00a0]*№?[ \u00a0]*\d{1,4}(?!\d)", re.I)

_MONTHS = (r"(?:январ[яь]|феврал[яь]|марта?|апрел[яь]|ма[яй]|июн[яь]|июл[яь]|августа?|сентябр[яь]|октябр[яь]|"
           r"ноябр[яь]|декабр[яь])")
DATE_RE = re.compile(
    rf"(?<![\d.])(?:(?P<d>[0-3]?\d)[./\-](?P<m>[01]?\d)[./\-](?P<y>(?:19|20)\d\d|\d\d)"
    rf"|(?P<d2>[0-3]?\d)[ \u00a0]+{_MONTHS}(?:[ \u00a0]+(?P<y2>(?:19|20)\d\d))?(?:[ \u00a0]*г(?:ода|\.)?)?)(?![\d])", re.I)
BIRTH_CTX_RE = re.compile(
    r"(?:д\.?[ \u00a0]?р\.?|д/р|\bдр\b|дата[ \u00a0]+рождения|день[ \u00a0]+рождения|дня[ \u00a0]+рождения|"
    r"дне[ \u00a0]+рождения|родил(?:ся|ась|ись)|рожд(?:\.|ения|ён|ена)|г\.[ \u00a0]?р\.|год[ \u00a0]+рождения|"
    r"dob|date[ \u00a0]+of[ \u00a0]+birth|birthday|born|юбилей|исполняется|исполнилось)", re.I)
IPV4_RE = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|(?::[0-9a-fA-F]{1,4}){1,6}|[0-9a-fA-F]{1,4})(?![\w:])")


def find_addresses(text: str) -> Iterator[tuple[int, int]]:
    """Postal addresses down to house and flat («ул. Ленина, д. 5, кв. 12»): the whole span.

    A street named without a house number is not an address of anyone, and stays (callers still
    treat the street's name as no person: see `street_spans`).
    """
    for m in ADDRESS_RE.finditer(text):
        if m.group("house"):
            yield m.start(), m.end()
    for m in FLAT_RE.finditer(text):
        yield m.start(), m.end()


def street_spans(text: str) -> Iterator[tuple[int, int]]:
    """Street names after an abbreviated marker («ул. Ленина»), with or without a house number
    (a full word such as «на улице Иван …» may be followed by a person, so it needs the number), and
    the two streets of a corner, and a street named the English way."""
    for m in ADDRESS_RE.finditer(text):
        if m.group("house") or STREET_ABBR_RE.match(text, _marker_at(text, m)):
            yield m.start(), m.end()
    if "угл" in text or "угол" in text or "ерекр" in text or "ересечен" in text:
        for m in CORNER_RE.finditer(text):
            yield m.start(), m.end()
    if "-" in text:
        for m in FOREIGN_STREET_RE.finditer(text):
            yield m.start(), m.end()


def _marker_at(text: str, m: re.Match) -> int:
    """Offset of the street marker inside an address match (after an optional index and city)."""
    found = STREET_MARKER_RE.search(text, m.start(), m.end())
    return found.start() if found else m.start()


def find_ips(text: str) -> Iterator[tuple[int, int]]:
    if "." in text:
        for m in IPV4_RE.finditer(text):
            yield m.start(), m.end()
    if text.count(":") >= 2:
        for m in IPV6_RE.finditer(text):
            v = m.group(0)
            if sum(c.isalpha() for c in v) or v.count(":") >= 4:   # not a clock time «10:30:00»
                yield m.start(), m.end()


def find_birthdates(text: str, people: list[tuple[int, int]], this_year: int) -> Iterator[tuple[int, int]]:
    """Dates said to be a birthday («д.р. 12.03.1985», «день рождения 5 мая»), and full dates of a
    year long past right next to a person («Иванов И. И., 12.03.1985»)."""
    for m in DATE_RE.finditer(text):
        before = text[max(0, m.start() - 28):m.start()]
        after = text[m.end():m.end() + 20]
        if BIRTH_CTX_RE.search(before) or re.match(r"\W{0,3}(?:г\.[ \u00a0]?р\.|года?[ \u00a0]+рождения|р\.)", after, re.I):
            yield m.start(), m.end()
            continue
        y = m.group("y") or m.group("y2")
        if not y or len(y) != 4 or int(y) > this_year - 14:
            continue
        if any(0 <= m.start() - b <= 40 or 0 <= a - m.end() <= 12 for a, b in people):
            yield m.start(), m.end()
