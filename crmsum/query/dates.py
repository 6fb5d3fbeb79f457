"""How questions write dates, and the calendar arithmetic that resolves them.

The period rules (`periods.py`) are a table of patterns over a question; what those patterns are
built from lives here, apart from the table, so the table reads as rules: the words for months
(Russian from `crmsum.ru`, English), numerals and ordinals, year and day patterns, one calendar date
written any usual way (and its (year, month, day) parts), and the date arithmetic — month ends,
quarters, Mondays, ISO weeks, the latest occurrence of a date not after ``today``. Patterns are
regex sources (strings) to compose; texts are matched after `normalize_text`.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from crmsum.ru import MONTH_PATTERNS

__all__ = ["DAY", "DateParts", "EN_FULL_MONTHS", "MONTH", "NUMBER", "WORD_START", "YEAR", "YEAR_WORD", "date_parts", "date_pattern", "iso_week_bounds",
           "latest_day", "latest_month_year", "monday_of", "month_end", "month_number", "normalize_text",
           "number_value", "ordinal_value", "quarter_bounds", "resolve_date", "safe_date", "year_of"]


# ----------------------------------------------------------------------------- vocabulary

_RU_MONTHS = list(MONTH_PATTERNS)
_EN_MONTHS = [
    r"january|jan", r"february|feb", r"march|mar", r"april|apr", r"may", r"june|jun",
    r"july|jul", r"august|aug", r"september|sept|sep", r"october|oct", r"november|nov",
    r"december|dec",
]
# English month names that stand alone as a month (not «may», not the abbreviations)
EN_FULL_MONTHS = {"january", "february", "march", "april", "june", "july", "august", "september", "october",
                  "november", "december"}
_MONTH_RES = [re.compile(rf"^(?:{ru}|{en})\.?$") for ru, en in zip(_RU_MONTHS, _EN_MONTHS)]
MONTH = r"(?:" + "|".join(_RU_MONTHS + _EN_MONTHS) + r")\.?(?![\w])"
WORD_START = r"(?<![\w])"  # left word boundary that also works before digits

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
NUMBER = r"(?:\d{1,3}|" + "|".join(sorted(_NUM_WORDS, key=len, reverse=True)) + r")"

_ORD = {
    "перв": 1, "1": 1, "i": 1, "first": 1, "1st": 1,
    "втор": 2, "2": 2, "ii": 2, "second": 2, "2nd": 2,
    "трет": 3, "3": 3, "iii": 3, "third": 3, "3rd": 3,
    "четверт": 4, "4": 4, "iv": 4, "fourth": 4, "4th": 4,
}

YEAR_WORD = r"(?:\s*(?:г\.|г(?![\w])|года|году|год|гг\.?))"
# A year: four digits, or "прошлого года" style words.
YEAR = (r"(?:(?<![\d.,])(?:19|20)\d{2}(?![\d.,]\d)" + YEAR_WORD + r"?"
        r"|(?:прошлого|предыдущего|позапрошлого|этого|текущего|сего)\s+года"
        r"|(?:last|previous|this|current)\s+year)")
DAY = r"(?:[0-3]?\d)(?:-?(?:го|е|ое|ого|th|st|nd|rd))?"  # a day of the month: «3», «3-го», «3rd»

# (year or None when the text gave none, month or None when unreadable, day)
DateParts = tuple["int | None", "int | None", int]


def normalize_text(text: str) -> str:
    """Lowercase, ё->е, unify dashes and spaces (keeps character positions stable enough)."""
    t = text.lower().replace("ё", "е")
    t = re.sub(r"[\u2010-\u2015\u2212]", "-", t)
    t = re.sub(r"[\u00a0\u2000-\u200b\u202f]", " ", t)
    return t


def month_number(word: str) -> int | None:
    """1–12 for a month word in any case or abbreviation («марта», «мар.», «March»); else None."""
    w = word.strip().rstrip(".")
    for i, rx in enumerate(_MONTH_RES):
        if rx.match(w):
            return i + 1
    return None


def number_value(word: str) -> int | None:
    """The value of a count written in digits or words («14», «пять», «couple»); else None."""
    w = word.strip()
    if w.isdigit():
        return int(w)
    return _NUM_WORDS.get(w)


def ordinal_value(word: str) -> int | None:
    """1–4 for an ordinal of a quarter («третьем», «iii», «3rd»); else None."""
    w = word.strip().lower()
    if w in _ORD:
        return _ORD[w]
    for k, v in _ORD.items():
        if not k[0].isdigit() and len(k) >= 4 and w.startswith(k):
            return v
    return None


def year_of(s: str | None, today: date) -> int | None:
    """The year a matched year pattern names («2023 г.», «прошлого года»); None when nothing matched."""
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


# ----------------------------------------------------------------------------- calendar arithmetic

def month_end(y: int, m: int) -> date:
    """The last day of month m of year y."""
    return date(y, m, calendar.monthrange(y, m)[1])


def safe_date(y: int, m: int, d: int) -> date | None:
    """The date, or None when it does not exist (31 February)."""
    try:
        return date(y, m, d)
    except ValueError:
        return None


def latest_day(m: int, d: int, today: date) -> date | None:
    """Latest occurrence of day d of month m not after today."""
    for y in range(today.year, today.year - 9, -1):
        dt = safe_date(y, m, d)
        if dt is not None and dt <= today:
            return dt
    return None


def latest_month_year(m: int, today: date) -> int:
    """The year of the latest month m that has started by today."""
    return today.year if m <= today.month else today.year - 1


def quarter_bounds(y: int, q: int) -> tuple[date, date]:
    """First and last day of quarter q (1–4) of year y."""
    m0 = 3 * (q - 1) + 1
    return date(y, m0, 1), month_end(y, m0 + 2)


def monday_of(d: date) -> date:
    """The Monday of d's week."""
    return d - timedelta(days=d.weekday())


# ----------------------------------------------------------------------------- date parts

def date_pattern(s: str) -> str:
    """One calendar date (with or without year); groups are suffixed with ``s``."""
    return (
        rf"(?:(?P<iso{s}>(?<!\d)(?:19|20)\d{{2}}-\d{{1,2}}-\d{{1,2}}(?!\d))"
        rf"|(?P<dot{s}>(?<![\d.,])[0-3]?\d[./][01]?\d(?:[./](?:(?:19|20)?\d{{2}}))?(?![\d.,]*\d)"
        rf"(?!\s*(?:%|руб|р\.|₽|\$|тыс|млн|млрд|k\b|m\b|шт|ед)))"
        rf"|(?P<dm{s}>(?P<dmd{s}>{DAY})\s*(?:of\s+)?(?P<dmm{s}>{MONTH})(?:,?\s*(?P<dmy{s}>{YEAR}))?)"
        rf"|(?P<md{s}>(?P<mdm{s}>{MONTH})\s*(?P<mdd{s}>{DAY})(?![\d.])(?:,?\s*(?P<mdy{s}>{YEAR}))?))"
    )


def date_parts(g: dict[str, str | None], s: str, today: date) -> DateParts | None:
    """(year or None, month, day) from the groups of ``date_pattern(s)``."""
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
        m = month_number(g[f"dmm{s}"])
        return year_of(g.get(f"dmy{s}"), today), m, d
    if g.get(f"md{s}"):
        d = int(re.match(r"\d+", g[f"mdd{s}"]).group(0))
        m = month_number(g[f"mdm{s}"])
        return year_of(g.get(f"mdy{s}"), today), m, d
    return None


def resolve_date(parts: DateParts, today: date) -> date | None:
    """The date of `date_parts`; without a year, its latest occurrence not after today."""
    y, m, d = parts
    if not m or not (1 <= m <= 12) or not (1 <= d <= 31):
        return None
    if y is None:
        return latest_day(m, d, today)
    return safe_date(y, m, d)


def iso_week_bounds(year: int, week: int) -> tuple[date, date] | None:
    """Monday and Sunday of ISO week ``week`` of ``year``; None when that week does not exist."""
    try:
        mon = date.fromisocalendar(year, week, 1)
    except ValueError:
        return None
    return mon, mon + timedelta(days=6)
