"""Period extraction from Russian / English questions, relative to a given ``today``.

Rule based on purpose: the periods a sales team asks about ("в марте", "на прошлой неделе",
"Q3 2023", "с 1 по 15 мая") have exact calendar meanings that a generic date parser either
does not know (ranges, quarters, relative weeks) or resolves differently (future dates).
Every rule resolves a date without a year to its latest occurrence not after ``today``.
Both bounds are inclusive.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

from crmsum.ru import MONTH_PATTERNS

__all__ = ["Period", "parse_period", "normalize_text", "iso_week_bounds"]


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    label: str


# ----------------------------------------------------------------------------- vocabulary

_RU_MONTHS = list(MONTH_PATTERNS)
_EN_MONTHS = [
    r"january|jan", r"february|feb", r"march|mar", r"april|apr", r"may", r"june|jun",
    r"july|jul", r"august|aug", r"september|sept|sep", r"october|oct", r"november|nov",
    r"december|dec",
]
_EN_FULL = {"january", "february", "march", "april", "june", "july", "august", "september", "october",
            "november", "december"}
_MONTH_RES = [re.compile(rf"^(?:{ru}|{en})\.?$") for ru, en in zip(_RU_MONTHS, _EN_MONTHS)]
_MON = r"(?:" + "|".join(_RU_MONTHS + _EN_MONTHS) + r")\.?(?![\w])"
_B = r"(?<![\w])"  # left word boundary that also works before digits

_NUM_WORDS = {
    "один": 1, "одну": 1, "одного": 1, "одна": 1, "пару": 2, "пара": 2, "два": 2, "две": 2,
    "двух": 2, "три": 3, "трех": 3, "четыре": 4, "четырех": 4, "пять": 5, "пяти": 5,
    "шесть": 6, "шести": 6, "семь": 7, "семи": 7, "восемь": 8, "восьми": 8, "девять": 9,
    "девяти": 9, "десять": 10, "десяти": 10, "одиннадцать": 11, "двенадцать": 12,
    "четырнадцать": 14, "пятнадцать": 15, "двадцать": 20, "тридцать": 30, "сорок": 40,
    "шестьдесят": 60, "девяносто": 90, "сто": 100,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15,
    "twenty": 20, "thirty": 30, "sixty": 60, "ninety": 90, "a": 1, "couple": 2,
}
_NUM = r"(?:\d{1,3}|" + "|".join(sorted(_NUM_WORDS, key=len, reverse=True)) + r")"

_ORD = {
    "перв": 1, "1": 1, "i": 1, "first": 1, "1st": 1,
    "втор": 2, "2": 2, "ii": 2, "second": 2, "2nd": 2,
    "трет": 3, "3": 3, "iii": 3, "third": 3, "3rd": 3,
    "четверт": 4, "4": 4, "iv": 4, "fourth": 4, "4th": 4,
}

_YEAR_WORD = r"(?:\s*(?:г\.|г(?![\w])|года|году|год|гг\.?))"
# A year: four digits, or "прошлого года" style words.
_YEAR = (r"(?:(?<![\d.,])(?:19|20)\d{2}(?![\d.,]\d)" + _YEAR_WORD + r"?"
         r"|(?:прошлого|предыдущего|позапрошлого|этого|текущего|сего)\s+года"
         r"|(?:last|previous|this|current)\s+year)")
_DAY = r"(?:[0-3]?\d)(?:-?(?:го|е|ое|ого|th|st|nd|rd))?"


def normalize_text(text: str) -> str:
    """Lowercase, ё->е, unify dashes and spaces (keeps character positions stable enough)."""
    t = text.lower().replace("ё", "е")
    t = re.sub(r"[\u2010-\u2015\u2212]", "-", t)
    t = re.sub(r"[\u00a0\u2000-\u200b\u202f]", " ", t)
    return t


def _month_num(word: str) -> int | None:
    w = word.strip().rstrip(".")
    for i, rx in enumerate(_MONTH_RES):
        if rx.match(w):
            return i + 1
    return None


def _num(word: str) -> int | None:
    w = word.strip()
    if w.isdigit():
        return int(w)
    return _NUM_WORDS.get(w)


def _ord(word: str) -> int | None:
    w = word.strip().lower()
    if w in _ORD:
        return _ORD[w]
    for k, v in _ORD.items():
        if not k[0].isdigit() and len(k) >= 4 and w.startswith(k):
            return v
    return None


def _year_of(s: str | None, today: date) -> int | None:
    if not s:
        return None
    m = re.search(r"(19|20)\d{2}", s)
    if m:
        return int(m.group(0))
    if re.search(r"позапрошл", s):
        return today.year - 2
    if re.search(r"прошл|предыдущ|last|previous", s):
        return today.year - 1
    return today.year


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _latest_day(m: int, d: int, today: date) -> date | None:
    """Latest occurrence of day d of month m not after today."""
    for y in range(today.year, today.year - 9, -1):
        dt = _safe_date(y, m, d)
        if dt is not None and dt <= today:
            return dt
    return None


def _latest_month_year(m: int, today: date) -> int:
    return today.year if m <= today.month else today.year - 1


def _quarter(y: int, q: int) -> tuple[date, date]:
    m0 = 3 * (q - 1) + 1
    return date(y, m0, 1), _month_end(y, m0 + 2)


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


# ----------------------------------------------------------------------------- date parts

def _date_re(s: str) -> str:
    """One calendar date (with or without year); groups are suffixed with ``s``."""
    return (
        rf"(?:(?P<iso{s}>(?<!\d)(?:19|20)\d{{2}}-\d{{1,2}}-\d{{1,2}}(?!\d))"
        rf"|(?P<dot{s}>(?<![\d.,])[0-3]?\d[./][01]?\d(?:[./](?:(?:19|20)?\d{{2}}))?(?![\d.,]*\d)"
        rf"(?!\s*(?:%|руб|р\.|₽|\$|тыс|млн|млрд|k\b|m\b|шт|ед)))"
        rf"|(?P<dm{s}>(?P<dmd{s}>{_DAY})\s*(?:of\s+)?(?P<dmm{s}>{_MON})(?:,?\s*(?P<dmy{s}>{_YEAR}))?)"
        rf"|(?P<md{s}>(?P<mdm{s}>{_MON})\s*(?P<mdd{s}>{_DAY})(?![\d.])(?:,?\s*(?P<mdy{s}>{_YEAR}))?))"
    )


def _date_parts(g: dict, s: str, today: date) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) from the groups of ``_date_re(s)``."""
    if g.get(f"iso{s}"):
        y, m, d = (int(x) for x in g[f"iso{s}"].split("-"))
        return y, m, d
    if g.get(f"dot{s}"):
        parts = re.split(r"[./]", g[f"dot{s}"])
        d, m = int(parts[0]), int(parts[1])
        y = None
        if len(parts) > 2:
            y = int(parts[2])
            if y < 100:
                y += 2000
        return y, m, d
    if g.get(f"dm{s}"):
        d = int(re.match(r"\d+", g[f"dmd{s}"]).group(0))
        m = _month_num(g[f"dmm{s}"])
        return _year_of(g.get(f"dmy{s}"), today), m, d
    if g.get(f"md{s}"):
        d = int(re.match(r"\d+", g[f"mdd{s}"]).group(0))
        m = _month_num(g[f"mdm{s}"])
        return _year_of(g.get(f"mdy{s}"), today), m, d
    return None


def _resolve_single(parts, today: date) -> date | None:
    y, m, d = parts
    if not m or not (1 <= m <= 12) or not (1 <= d <= 31):
        return None
    if y is None:
        return _latest_day(m, d, today)
    return _safe_date(y, m, d)


# ----------------------------------------------------------------------------- rules

Rule = tuple[re.Pattern, Callable[[re.Match, date], "tuple[date, date, str] | None"]]
_RULES: list[Rule] = []


def _rule(pattern: str):
    rx = re.compile(pattern)

    def deco(fn):
        _RULES.append((rx, fn))
        return fn

    return deco


_SEP = r"\s*(?:по|до|to|till|until|through|thru|and|и|-|—|…|\.\.)\s*"
_FROM = r"(?:(?:начиная\s+)?(?:с|со|from|between|между|от)\s+)"


# 0. "May 1-15, 2024", "March 3 to 9"
@_rule(rf"{_B}(?P<m>{_MON})\s*(?P<d1>[0-3]?\d)(?:st|nd|rd|th)?\s*(?:-|to|through|till|until)\s*(?P<d2>[0-3]?\d)(?:st|nd|rd|th)?(?![\d.])(?:,?\s*(?P<y>{_YEAR}))?")
def _r_mon_day_range(mt: re.Match, today: date):
    m = _month_num(mt["m"])
    d1, d2 = int(mt["d1"]), int(mt["d2"])
    y = _year_of(mt["y"], today)
    if not m:
        return None
    if y is None:
        s = _latest_day(m, d1, today)
        if s is None:
            return None
        y = s.year
    start, end = _safe_date(y, m, d1), _safe_date(y, m, d2)
    if start is None or end is None or end < start:
        return None
    return start, end, f"{start.isoformat()}..{end.isoformat()}"


# 1. explicit date ranges: "с 1 по 15 мая 2024", "с 2023-04-28 по 2023-05-05", "1-15 мая"
@_rule(rf"{_B}{_FROM}?(?:(?<![\d-])(?P<aday>[0-3]?\d)(?:-?(?:го|е|th|st|nd|rd))?(?![\d./]\d)|{_date_re('a')})"
       rf"{_SEP}{_date_re('b')}")
def _r_date_range(mt: re.Match, today: date):
    g = mt.groupdict()
    b = _date_parts(g, "b", today)
    if b is None:
        return None
    by, bm, bd = b
    if g.get("aday"):
        a = (by, bm, int(g["aday"]))
        # a bare day only works with the range introduced explicitly or with a dash
        if not re.match(rf"{_FROM}", mt.group(0)) and not re.search(r"^\s*\d+\S*\s*-", mt.group(0)):
            return None
    else:
        a = _date_parts(g, "a", today)
    if a is None:
        return None
    ay, am, ad = a
    if by is None and ay is not None:
        by = ay
    if ay is None and by is None:
        start = _resolve_single((None, am, ad), today)
        if start is None:
            return None
        end = _safe_date(start.year, bm, bd)
        if end is not None and end < start:
            end = _safe_date(start.year + 1, bm, bd)
    else:
        if ay is None:
            ay = by
            if (am, ad) > (bm, bd):
                ay = by - 1
        start, end = _safe_date(ay, am, ad), _safe_date(by, bm, bd)
    if start is None or end is None or end < start:
        return None
    return start, end, f"{start.isoformat()}..{end.isoformat()}"


# 2. month ranges: "с марта по май 2024", "march-may 2024", "в марте и апреле"
@_rule(rf"{_B}{_FROM}?(?P<m1>{_MON})(?:\s+(?P<y1>{_YEAR}))?{_SEP}(?P<m2>{_MON})(?:\s+(?P<y2>{_YEAR}))?")
def _r_month_range(mt: re.Match, today: date):
    m1, m2 = _month_num(mt["m1"]), _month_num(mt["m2"])
    if not m1 or not m2:
        return None
    y2 = _year_of(mt["y2"], today)
    y1 = _year_of(mt["y1"], today)
    if y2 is None and y1 is None:
        y1 = _latest_month_year(m1, today)
        y2 = y1 if m2 >= m1 else y1 + 1
    elif y1 is None:
        y1 = y2 if m1 <= m2 else y2 - 1
    elif y2 is None:
        y2 = y1 if m2 >= m1 else y1 + 1
    start, end = date(y1, m1, 1), _month_end(y2, m2)
    if end < start:
        return None
    return start, end, f"{start:%Y-%m}..{end:%Y-%m}"


# 3. "с начала года", "year to date", YTD / MTD / QTD
@_rule(rf"{_B}(?:с\s+начала\s+(?:этого\s+|текущего\s+)?(?P<ru>года|месяца|квартала|недели)"
       rf"|(?:since\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the\s+|this\s+)?)(?P<en>year|month|quarter|week)"
       rf"|(?P<en2>year|month|quarter|week)[\s-]+to[\s-]+date|(?P<abbr>ytd|mtd|qtd|wtd))(?![\w])")
def _r_to_date(mt: re.Match, today: date):
    w = (mt["ru"] or mt["en"] or mt["en2"] or mt["abbr"])[0]
    if w in "гy":
        start = date(today.year, 1, 1)
    elif w in "мm":
        start = today.replace(day=1)
    elif w in "кq":
        start = _quarter(today.year, (today.month - 1) // 3 + 1)[0]
    else:
        start = _monday(today)
    return start, today, "to-date"


# 4. quarters: "в третьем квартале 2023", "3 кв. 2023", "Q3 2023", "2023 Q3", "third quarter of 2023"
_QWORD = r"(?:[1-4]|iv|iii|ii|i|перв\w*|втор\w*|трет\w*|четверт\w*|first|second|third|fourth|1st|2nd|3rd|4th)"


@_rule(rf"{_B}(?:(?P<q1>{_QWORD})(?:-?(?:й|м|ий|ый|ом|ем|го))?\s*(?:квартал\w*|кв\.?(?![\w]))(?:\s+(?:of\s+)?(?P<y1>{_YEAR}))?"
       rf"|(?P<q2>{_QWORD})\s+quarter(?:\s+of)?(?:\s+(?P<y2>{_YEAR}))?"
       rf"|q(?P<q3>[1-4])(?:\s*[-']?\s*(?P<y3>{_YEAR}))?"
       rf"|(?P<q4>[1-4])q(?:\s*[-']?\s*(?P<y4>{_YEAR}))?"
       rf"|(?P<y5>(?:19|20)\d{{2}})\s*[-]?\s*q(?P<q5>[1-4]))(?![\w])")
def _r_quarter(mt: re.Match, today: date):
    q = None
    yword = None
    for i in "12345":
        if mt[f"q{i}"]:
            q = _ord(mt[f"q{i}"])
            yword = mt[f"y{i}"]
            break
    if not q:
        return None
    y = _year_of(yword, today)
    if y is None:
        y = today.year
        if _quarter(y, q)[0] > today:
            y -= 1
    start, end = _quarter(y, q)
    return start, end, f"{y}-Q{q}"


# 5. half-years: "в первом полугодии 2023", "H2 2023"
@_rule(rf"{_B}(?:(?P<h1>перв\w*|втор\w*|1|2)(?:-?\w{{1,2}})?\s+полугоди\w*(?:\s+(?P<y1>{_YEAR}))?"
       rf"|h(?P<h2>[12])(?:\s*(?P<y2>{_YEAR}))?"
       rf"|(?P<h3>first|second)\s+half(?:\s+of)?(?:\s+(?:the\s+)?(?P<y3>{_YEAR}))?)(?![\w])")
def _r_half(mt: re.Match, today: date):
    hw = mt["h1"] or mt["h2"] or mt["h3"]
    h = 1 if hw[0] in "1пf" else 2
    y = _year_of(mt["y1"] or mt["y2"] or mt["y3"], today)
    if y is None:
        y = today.year if (h == 1 or today.month >= 7) else today.year - 1
    start = date(y, 1 if h == 1 else 7, 1)
    end = date(y, 6, 30) if h == 1 else date(y, 12, 31)
    return start, end, f"{y}-H{h}"


# 6. "since" a date / month / year: "с 12 марта", "с марта", "с 2023 года", "since March"
@_rule(rf"{_B}(?:начиная\s+с|с|со|since|starting)\s+(?:(?P<mon>{_MON})(?:\s+(?P<my>{_YEAR}))?(?!\s*{_DAY})|{_date_re('s')}"
       rf"|(?P<year>(?:19|20)\d{{2}})(?:{_YEAR_WORD}|(?=\s*$|\s*[?.!,]))"
       rf")")
def _r_since(mt: re.Match, today: date):
    if mt["mon"]:
        m = _month_num(mt["mon"])
        y = _year_of(mt["my"], today) or _latest_month_year(m, today)
        start = date(y, m, 1)
    elif mt["year"]:
        start = date(int(mt["year"]), 1, 1)
    else:
        parts = _date_parts(mt.groupdict(), "s", today)
        if parts is None:
            return None
        start = _resolve_single(parts, today)
    if start is None or start > today:
        return None
    return start, today, f"since {start.isoformat()}"


# 7. a single date: "12 марта 2024", "on 12 March 2024", "12.03.2024", "2024-03-12", "March 12"
@_rule(_B + _date_re("x"))
def _r_single(mt: re.Match, today: date):
    parts = _date_parts(mt.groupdict(), "x", today)
    if parts is None:
        return None
    if mt["dotx"] and parts[0] is None and not re.search(r"[./]0?\d$|[./]1[0-2]$", mt["dotx"]):
        return None
    d = _resolve_single(parts, today)
    if d is None:
        return None
    return d, d, d.isoformat()


# 8. a month: "в марте 2024", "in March 2024", "за март", "march of last year"
@_rule(rf"(?P<pre>{_B}(?:в|во|за|на|in|during|for|of|since|through)\s+(?:(?:the\s+)?(?:month\s+of\s+)|месяц\s+)?)?"
       rf"{_B}(?P<mon>{_MON})(?:,?\s*(?:of\s+)?(?P<y>{_YEAR}))?")
def _r_month(mt: re.Match, today: date):
    word = mt["mon"].rstrip(".")
    m = _month_num(word)
    if not m:
        return None
    is_en = bool(re.match(r"[a-z]", word))
    if is_en and not mt["pre"] and not mt["y"] and (word == "may" or word not in _EN_FULL):
        return None  # "may I ask", "mar" etc. need context; full names stand alone
    if not is_en and len(word) <= 4 and word not in ("март", "мая", "май", "мае", "июня", "июля", "июнь", "июль", "июне", "июле") and not mt["pre"] and not mt["y"]:
        return None  # short forms need context
    y = _year_of(mt["y"], today)
    if y is None:
        y = _latest_month_year(m, today)
    return date(y, m, 1), _month_end(y, m), f"{y}-{m:02d}"


# 9. a year: "в 2023 году", "in 2023", "за 2023 год", "2023 г."
_NOT_AMOUNT = r"(?!\s*(?:руб|р\.|р\b|₽|\$|€|тыс|млн|млрд|k\b|m\b|шт|ед|%|штук|сделок|сделки|сделка|лид|клиент|deals|rub|usd|eur|dollars))"


@_rule(rf"{_B}(?:(?P<y1>(?:19|20)\d{{2}})\s*(?:г\.|г(?![\w])|года|году|год|гг\.?|year)"
       rf"|(?:в|во|за|in|during|for|of|fy|fiscal\s+year)\s*(?P<y2>(?:19|20)\d{{2}})(?![\d.,]\d){_NOT_AMOUNT})")
def _r_year(mt: re.Match, today: date):
    y = int(mt["y1"] or mt["y2"])
    return date(y, 1, 1), date(y, 12, 31), str(y)


# 10. "N дней/недель/месяцев назад" -> that day
@_rule(rf"{_B}(?P<n>{_NUM})\s+(?P<u>дн\w*|день|сут\w*|недел\w*|days?|weeks?)\s+(?:назад|ago)(?![\w])")
def _r_ago(mt: re.Match, today: date):
    n = _num(mt["n"])
    if n is None:
        return None
    k = 7 if mt["u"][0] in "нw" else 1
    d = today - timedelta(days=n * k)
    return d, d, f"{n}{mt['u'][0]} ago"


# 11. last N days/weeks/months/years: "за последние 5 дней", "last 14 days", "за 2 недели"
_UNIT_DAYS = {"д": 1, "с": 1, "d": 1, "н": 7, "w": 7, "м": 30, "m": 30, "г": 365, "л": 365, "y": 365, "к": 90, "q": 90}


@_rule(rf"{_B}(?:(?:за|в\s+течение|на\s+протяжении|в\s+последние|in\s+the|over\s+the|during\s+the|for\s+the|within\s+the)\s+)?"
       rf"(?P<lead>последн\w*|прошедш\w*|прошлы[ех]|last|past|previous|prior|за)\s+(?P<n>{_NUM})\s+"
       rf"(?P<u>дн\w*|день|сут\w*|недел\w*|месяц\w*|год\w*|лет|квартал\w*|days?|weeks?|months?|years?|quarters?)(?![\w])")
def _r_last_n(mt: re.Match, today: date):
    n = _num(mt["n"])
    if not n or n > 3660:
        return None
    span = n * _UNIT_DAYS[mt["u"][0]]
    return today - timedelta(days=span - 1), today, f"last {n}{mt['u'][0]}"


# 12. calendar-relative: this/last week, month, quarter, year
_THIS = r"эт(?:от|ой|у|а|ом|ого|им)|текущ\w*|нынешн\w*|this|current"
_PREV = r"прошл\w*|предыдущ\w*|прошедш\w*|last|previous|prior|past"
_PREV2 = r"позапрошл\w*"


@_rule(rf"{_B}(?P<w>{_PREV2}|{_THIS}|{_PREV})\s+(?P<u>недел\w*|месяц\w*|квартал\w*|год\w*|полугоди\w*|week|month|quarter|year)(?![\w])"
       rf"|(?P<wbl>(?:the\s+)?week\s+before\s+last)")
def _r_calendar(mt: re.Match, today: date):
    if mt["wbl"]:
        w, u = "позапрошл", "н"
    else:
        w, u = mt["w"], mt["u"][0]
    back = 2 if w.startswith("позапрошл") else (0 if re.match(_THIS, w) else 1)
    if w == "past":  # "past week" / "past month" = rolling window ending today
        span = _UNIT_DAYS[u]
        return today - timedelta(days=span - 1), today, f"past {u}"
    if u in "нw":
        mon = _monday(today) - timedelta(days=7 * back)
        end = today if back == 0 else mon + timedelta(days=6)
        return mon, end, f"week-{back}"
    if u in "мm":
        y, m = today.year, today.month - back
        while m < 1:
            m += 12
            y -= 1
        end = today if back == 0 else _month_end(y, m)
        return date(y, m, 1), end, f"month-{back}"
    if u in "кq":
        qi = (today.year * 4 + (today.month - 1) // 3) - back
        s, e = _quarter(qi // 4, qi % 4 + 1)
        return s, (today if back == 0 else e), f"quarter-{back}"
    if u == "п":
        hi = today.year * 2 + (0 if today.month <= 6 else 1) - back
        y, h = hi // 2, hi % 2
        s = date(y, 1 if h == 0 else 7, 1)
        e = date(y, 6, 30) if h == 0 else date(y, 12, 31)
        return s, (today if back == 0 else e), f"half-{back}"
    y = today.year - back
    return date(y, 1, 1), (today if back == 0 else date(y, 12, 31)), f"year-{back}"


# 13. rolling: "за неделю", "за последнюю неделю", "past month", "за месяц", "за год", "за сутки"
@_rule(rf"{_B}(?:(?:за|в\s+течение|на\s+протяжении)\s+(?:(?:последн\w*|прошедш\w*)\s+)?(?P<ru>недел\w*|месяц\w*|год|квартал|сутки|полгода)"
       rf"|(?:последн\w*)\s+(?P<ru2>недел\w*|месяц\w*|год|квартал)"
       rf"|(?:(?:in|over|during|for)\s+(?:the\s+)?)?(?:last|past)\s+(?P<en>day|24\s+hours)"
       rf"|(?:in|over|during|for)\s+(?:the\s+)?(?:last|past)\s+(?P<en2>week|month|year|quarter))(?![\w])")
def _r_rolling(mt: re.Match, today: date):
    w = mt["ru"] or mt["ru2"] or mt["en"] or mt["en2"]
    # "сутки" / "24 hours" at date granularity touch yesterday and today
    span = 180 if w == "полгода" else (2 if w[0] in "с2" else _UNIT_DAYS.get(w[0], 1))
    return today - timedelta(days=span - 1), today, f"rolling {span}d"


# 14. weekends and weekdays
_WEEKDAYS = [
    r"понедельник\w*|monday|mon", r"вторник\w*|tuesday|tue", r"среду|wednesday|wed",
    r"четверг\w*|thursday|thu", r"пятницу|friday|fri", r"субботу|saturday|sat",
    r"воскресень[еяю]|sunday|sun",
]


@_rule(rf"{_B}(?P<pre>в|во|on|last|в\s+прошл\w+|в\s+эт\w+|на\s+прошл\w+|на\s+эт\w+|на)\s+(?P<wd>"
       + "|".join(f"(?:{w})" for w in _WEEKDAYS) + r"|выходн\w*|weekend)(?![\w])")
def _r_weekday(mt: re.Match, today: date):
    wd_word = mt["wd"]
    pre = mt["pre"]
    if wd_word.startswith("выходн") or wd_word == "weekend":
        sat = _monday(today) + timedelta(days=5)
        if "прошл" in pre or pre == "last" or sat > today:
            sat -= timedelta(days=7)
        return sat, sat + timedelta(days=1), "weekend"
    idx = next(i for i, w in enumerate(_WEEKDAYS) if re.fullmatch(w, wd_word))
    if idx in (0, 1, 2, 3, 4, 5, 6) and len(wd_word) == 3 and pre not in ("on", "last"):
        return None
    if "прошл" in pre or pre == "last":
        d = _monday(today) - timedelta(days=7) + timedelta(days=idx)
    elif "эт" in pre:
        d = _monday(today) + timedelta(days=idx)
        if d > today:
            return None
    else:
        d = today - timedelta(days=(today.weekday() - idx) % 7)
    return d, d, f"weekday {idx}"


# 15. single relative days
@_rule(r"(?<![\w])(?P<w>позавчера|day\s+before\s+yesterday|вчера\w*|yesterday|сегодня\w*|today|tonight|this\s+morning|сейчас)(?![\w])")
def _r_day(mt: re.Match, today: date):
    w = mt["w"]
    if w.startswith("позавчера") or w.startswith("day"):
        d = today - timedelta(days=2)
    elif w.startswith("вчера") or w == "yesterday":
        d = today - timedelta(days=1)
    elif w == "сейчас":
        return None
    else:
        d = today
    return d, d, d.isoformat()


# 16. explicit ISO weeks: "2024-W10", "2024W10", "W10 2024", "неделя 10 2024", "10-я неделя [2024]",
# "на 10-й неделе 2024 года", "week 10 of 2024". Checked before every other rule: the digits of a
# week would otherwise read as a year, a day or "last N weeks". Without a year: the latest such
# week that has started by ``today``.
_WK_YEAR = r"(?P<{0}>(?:19|20)\d{{2}})(?![\d.,]\d)" + _YEAR_WORD + "?"
_WK_NUM = r"(?P<{0}>0?[1-9]|[1-4]\d|5[0-3])"
_WK_NOT_DATE = r"(?![\d.,/-]*\d|\s*-?\s*(?:го|е|ое|ого)\b|\s*" + _MON + r"|\s*(?:недел|week|дн|день|месяц))"
_ISO_WEEK_RX = re.compile(
    rf"{_B}(?:{_WK_YEAR.format('y1')}\s*-?\s*[wн]\s*{_WK_NUM.format('w1')}(?![\w])"
    rf"|[wн]\s*{_WK_NUM.format('w2')}(?:\s*[-/]?\s*{_WK_YEAR.format('y2')})?(?![\w])"
    rf"|(?:недел[яеюи]|week)\s*(?:№|no\.?|#|номер)?\s*{_WK_NUM.format('w3')}{_WK_NOT_DATE}"
    rf"(?:\s*(?:of\s+|-|/)?\s*{_WK_YEAR.format('y3')})?"
    rf"|{_WK_NUM.format('w4')}\s*-?\s*(?:я|й|ю|ой|ая|ую|th|st|nd|rd)\s+(?:недел[яеюи]|week)(?![\w])"
    rf"(?:\s*(?:of\s+)?{_WK_YEAR.format('y4')})?"
    rf"|{_WK_NUM.format('w5')}\s+неделя(?![\w])(?:\s*{_WK_YEAR.format('y5')})?)"
)


def iso_week_bounds(year: int, week: int) -> tuple[date, date] | None:
    """Monday and Sunday of ISO week ``week`` of ``year``; None when that week does not exist."""
    try:
        mon = date.fromisocalendar(year, week, 1)
    except ValueError:
        return None
    return mon, mon + timedelta(days=6)


def _r_iso_week(mt: re.Match, today: date):
    i = next(k for k in "12345" if mt[f"w{k}"])
    week = int(mt[f"w{i}"])
    y = mt.groupdict().get(f"y{i}")
    if y:
        b = iso_week_bounds(int(re.match(r"\d{4}", y).group(0)), week)
    else:  # the latest week with that number that has started by today
        b = None
        for year in range(today.isocalendar()[0], today.isocalendar()[0] - 3, -1):
            cand = iso_week_bounds(year, week)
            if cand is not None and cand[0] <= today:
                b = cand
                break
    if b is None:
        return None
    iy, iw, _ = b[0].isocalendar()
    return b[0], b[1], f"{iy}-W{iw:02d}"


_RULES.insert(0, (_ISO_WEEK_RX, _r_iso_week))


# 17. seasons: "летом", "за лето 2024", "прошлой зимой", "summer 2023". Winter Y is December Y-1 to
# February Y. Without a year: the latest such season that has started by ``today`` (cut at today).
_SEASONS = {"зим": 12, "winter": 12, "весн": 3, "spring": 3, "лет": 6, "summer": 6, "осен": 9, "autumn": 9,
            "fall": 9}
_SEASON_RX = re.compile(
    rf"{_B}(?:(?P<prev>{_PREV2}|{_PREV})\s+|(?P<this>{_THIS})\s+)?"
    r"(?P<s>зим(?:а|у|ой|ы|е|ний|нем|него)?|весн(?:а|у|ой|ы|е)?|весной|лет(?:о|а|у|ом|ний|нем|него)|"
    r"осен(?:ь|и|ью|ний|нем|него)|winter|spring|summer|autumn|fall)(?![\w])"
    rf"(?:\s*(?:of\s+)?(?P<y>(?:19|20)\d{{2}}){_YEAR_WORD}?)?")


def _season_bounds(first_month: int, year: int) -> tuple[date, date]:
    if first_month == 12:  # winter of `year`: December of the year before to February
        return date(year - 1, 12, 1), _month_end(year, 2)
    return date(year, first_month, 1), _month_end(year, first_month + 2)


def _r_season(mt: re.Match, today: date):
    word = mt["s"]
    if word in ("fall",) and not (mt["y"] or mt["prev"] or mt["this"]):
        return None  # "fall" is also a verb
    if word.startswith("лет") and not (word in ("лето", "летом", "лета", "лету") or mt["y"] or mt["prev"]):
        return None  # «5 лет», «летний»
    first = next(v for k, v in _SEASONS.items() if word.startswith(k))
    if mt["y"]:
        s, e = _season_bounds(first, int(mt["y"]))
    else:
        year = today.year + (1 if first == 12 and today.month == 12 else 0)
        s, e = _season_bounds(first, year)
        while s > today:
            year -= 1
            s, e = _season_bounds(first, year)
        if mt["prev"]:  # «прошлым летом»: the last finished one (the one before the current)
            back = (1 if s <= today <= e else 0) + (1 if re.match(_PREV2, mt["prev"]) else 0)
            s, e = _season_bounds(first, year - back)
    label = f"season {s.isoformat()}"
    return s, min(e, today) if s <= today <= e else e, label


_RULES.insert(1, (_SEASON_RX, _r_season))


def parse_period(text: str, today: date) -> Period | None:
    """Find the period a question asks about; None when it names none."""
    if not text:
        return None
    t = normalize_text(text)
    for rx, fn in _RULES:
        for mt in rx.finditer(t):
            try:
                res = fn(mt, today)
            except (ValueError, OverflowError, KeyError, AttributeError, TypeError, StopIteration):
                res = None
            if res is not None:
                start, end, label = res
                if start > end:
                    continue
                return Period(start, end, label)
    return None
