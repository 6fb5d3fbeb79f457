"""Period extraction from Russian / English questions, relative to a given ``today``.

Rule based on purpose: the periods a sales team asks about ("в марте", "на прошлой неделе",
"Q3 2023", "с 1 по 15 мая") have exact calendar meanings that a generic date parser either
does not know (ranges, quarters, relative weeks) or resolves differently (future dates).
Every rule resolves a date without a year to its latest occurrence not after ``today``.
Both bounds are inclusive. The rules are tried in table order and the first that resolves wins;
the words and date arithmetic they are written with are in `dates.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

from .dates import (DAY, EN_FULL_MONTHS, MONTH, NUMBER, WORD_START, YEAR, YEAR_WORD, date_parts, date_pattern,
                    iso_week_bounds, latest_day, latest_month_year, monday_of, month_end, month_number, normalize_text,
                    number_value, ordinal_value, quarter_bounds, resolve_date, safe_date, year_of)

__all__ = ["Period", "parse_period"]


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    label: str


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
@_rule(rf"{WORD_START}(?P<m>{MONTH})\s*(?P<d1>[0-3]?\d)(?:st|nd|rd|th)?\s*(?:-|to|through|till|until)\s*(?P<d2>[0-3]?\d)(?:st|nd|rd|th)?(?![\d.])(?:,?\s*(?P<y>{YEAR}))?")
def _r_mon_day_range(mt: re.Match, today: date):
    m = month_number(mt["m"])
    d1, d2 = int(mt["d1"]), int(mt["d2"])
    y = year_of(mt["y"], today)
    if not m:
        return None
    if y is None:
        s = latest_day(m, d1, today)
        if s is None:
            return None
        y = s.year
    start, end = safe_date(y, m, d1), safe_date(y, m, d2)
    if start is None or end is None or end < start:
        return None
    return start, end, f"{start.isoformat()}..{end.isoformat()}"


# 1. explicit date ranges: "с 1 по 15 мая 2024", "с 2023-04-28 по 2023-05-05", "1-15 мая"
@_rule(rf"{WORD_START}{_FROM}?(?:(?<![\d-])(?P<aday>[0-3]?\d)(?:-?(?:го|е|th|st|nd|rd))?(?![\d./]\d)|{date_pattern('a')})"
       rf"{_SEP}{date_pattern('b')}")
def _r_date_range(mt: re.Match, today: date):
    g = mt.groupdict()
    b = date_parts(g, "b", today)
    if b is None:
        return None
    by, bm, bd = b
    if g.get("aday"):
        a = (by, bm, int(g["aday"]))
        # a bare day only works with the range introduced explicitly or with a dash
        if not re.match(rf"{_FROM}", mt.group(0)) and not re.search(r"^\s*\d+\S*\s*-", mt.group(0)):
            return None
    else:
        a = date_parts(g, "a", today)
    if a is None:
        return None
    ay, am, ad = a
    if by is None and ay is not None:
        by = ay
    if ay is None and by is None:
        start = resolve_date((None, am, ad), today)
        if start is None:
            return None
        end = safe_date(start.year, bm, bd)
        if end is not None and end < start:
            end = safe_date(start.year + 1, bm, bd)
    else:
        if ay is None:
            ay = by
            if (am, ad) > (bm, bd):
                ay = by - 1
        start, end = safe_date(ay, am, ad), safe_date(by, bm, bd)
    if start is None or end is None or end < start:
        return None
    return start, end, f"{start.isoformat()}..{end.isoformat()}"


# 2. month ranges: "с марта по май 2024", "march-may 2024", "в марте и апреле"
@_rule(rf"{WORD_START}{_FROM}?(?P<m1>{MONTH})(?:\s+(?P<y1>{YEAR}))?{_SEP}(?P<m2>{MONTH})(?:\s+(?P<y2>{YEAR}))?")
def _r_month_range(mt: re.Match, today: date):
    m1, m2 = month_number(mt["m1"]), month_number(mt["m2"])
    if not m1 or not m2:
        return None
    y2 = year_of(mt["y2"], today)
    y1 = year_of(mt["y1"], today)
    if y2 is None and y1 is None:
        y1 = latest_month_year(m1, today)
        y2 = y1 if m2 >= m1 else y1 + 1
    elif y1 is None:
        y1 = y2 if m1 <= m2 else y2 - 1
    elif y2 is None:
        y2 = y1 if m2 >= m1 else y1 + 1
    start, end = date(y1, m1, 1), month_end(y2, m2)
    if end < start:
        return None
    return start, end, f"{start:%Y-%m}..{end:%Y-%m}"


# 3. "с начала года", "year to date", YTD / MTD / QTD
@_rule(rf"{WORD_START}(?:с\s+начала\s+(?:этого\s+|текущего\s+)?(?P<ru>года|месяца|квартала|недели)"
       rf"|(?:since\s+(?:the\s+)?(?:start|beginning)\s+of\s+(?:the\s+|this\s+)?)(?P<en>year|month|quarter|week)"
       rf"|(?P<en2>year|month|quarter|week)[\s-]+to[\s-]+date|(?P<abbr>ytd|mtd|qtd|wtd))(?![\w])")
def _r_to_date(mt: re.Match, today: date):
    w = (mt["ru"] or mt["en"] or mt["en2"] or mt["abbr"])[0]
    if w in "гy":
        start = date(today.year, 1, 1)
    elif w in "мm":
        start = today.replace(day=1)
    elif w in "кq":
        start = quarter_bounds(today.year, (today.month - 1) // 3 + 1)[0]
    else:
        start = monday_of(today)
    return start, today, "to-date"


# 4. quarters: "в третьем квартале 2023", "3 кв. 2023", "Q3 2023", "2023 Q3", "third quarter of 2023"
_QWORD = r"(?:[1-4]|iv|iii|ii|i|перв\w*|втор\w*|трет\w*|четверт\w*|first|second|third|fourth|1st|2nd|3rd|4th)"


@_rule(rf"{WORD_START}(?:(?P<q1>{_QWORD})(?:-?(?:й|м|ий|ый|ом|ем|го))?\s*(?:квартал\w*|кв\.?(?![\w]))(?:\s+(?:of\s+)?(?P<y1>{YEAR}))?"
       rf"|(?P<q2>{_QWORD})\s+quarter(?:\s+of)?(?:\s+(?P<y2>{YEAR}))?"
       rf"|q(?P<q3>[1-4])(?:\s*[-']?\s*(?P<y3>{YEAR}))?"
       rf"|(?P<q4>[1-4])q(?:\s*[-']?\s*(?P<y4>{YEAR}))?"
       rf"|(?P<y5>(?:19|20)\d{{2}})\s*[-]?\s*q(?P<q5>[1-4]))(?![\w])")
def _r_quarter(mt: re.Match, today: date):
    q = None
    yword = None
    for i in "12345":
        if mt[f"q{i}"]:
            q = ordinal_value(mt[f"q{i}"])
            yword = mt[f"y{i}"]
            break
    if not q:
        return None
    y = year_of(yword, today)
    if y is None:
        y = today.year
        if quarter_bounds(y, q)[0] > today:
            y -= 1
    start, end = quarter_bounds(y, q)
    return start, end, f"{y}-Q{q}"


# 5. half-years: "в первом полугодии 2023", "H2 2023"
@_rule(rf"{WORD_START}(?:(?P<h1>перв\w*|втор\w*|1|2)(?:-?\w{{1,2}})?\s+полугоди\w*(?:\s+(?P<y1>{YEAR}))?"
       rf"|h(?P<h2>[12])(?:\s*(?P<y2>{YEAR}))?"
       rf"|(?P<h3>first|second)\s+half(?:\s+of)?(?:\s+(?:the\s+)?(?P<y3>{YEAR}))?)(?![\w])")
def _r_half(mt: re.Match, today: date):
    hw = mt["h1"] or mt["h2"] or mt["h3"]
    h = 1 if hw[0] in "1пf" else 2
    y = year_of(mt["y1"] or mt["y2"] or mt["y3"], today)
    if y is None:
        y = today.year if (h == 1 or today.month >= 7) else today.year - 1
    start = date(y, 1 if h == 1 else 7, 1)
    end = date(y, 6, 30) if h == 1 else date(y, 12, 31)
    return start, end, f"{y}-H{h}"


# 6. "since" a date / month / year: "с 12 марта", "с марта", "с 2023 года", "since March"
@_rule(rf"{WORD_START}(?:начиная\s+с|с|со|since|starting)\s+(?:(?P<mon>{MONTH})(?:\s+(?P<my>{YEAR}))?(?!\s*{DAY})|{date_pattern('s')}"
       rf"|(?P<year>(?:19|20)\d{{2}})(?:{YEAR_WORD}|(?=\s*$|\s*[?.!,]))"
       rf")")
def _r_since(mt: re.Match, today: date):
    if mt["mon"]:
        m = month_number(mt["mon"])
        y = year_of(mt["my"], today) or latest_month_year(m, today)
        start = date(y, m, 1)
    elif mt["year"]:
        start = date(int(mt["year"]), 1, 1)
    else:
        parts = date_parts(mt.groupdict(), "s", today)
        if parts is None:
            return None
        start = resolve_date(parts, today)
    if start is None or start > today:
        return None
    return start, today, f"since {start.isoformat()}"


# 7. a single date: "12 марта 2024", "on 12 March 2024", "12.03.2024", "2024-03-12", "March 12"
@_rule(WORD_START + date_pattern("x"))
def _r_single(mt: re.Match, today: date):
    parts = date_parts(mt.groupdict(), "x", today)
    if parts is None:
        return None
    if mt["dotx"] and parts[0] is None and not re.search(r"[./]0?\d$|[./]1[0-2]$", mt["dotx"]):
        return None
    d = resolve_date(parts, today)
    if d is None:
        return None
    return d, d, d.isoformat()


# 8. a month: "в марте 2024", "in March 2024", "за март", "march of last year"
@_rule(rf"(?P<pre>{WORD_START}(?:в|во|за|на|in|during|for|of|since|through)\s+(?:(?:the\s+)?(?:month\s+of\s+)|месяц\s+)?)?"
       rf"{WORD_START}(?P<mon>{MONTH})(?:,?\s*(?:of\s+)?(?P<y>{YEAR}))?")
def _r_month(mt: re.Match, today: date):
    word = mt["mon"].rstrip(".")
    m = month_number(word)
    if not m:
        return None
    is_en = bool(re.match(r"[a-z]", word))
    if is_en and not mt["pre"] and not mt["y"] and (word == "may" or word not in EN_FULL_MONTHS):
        return None  # "may I ask", "mar" etc. need context; full names stand alone
    if not is_en and len(word) <= 4 and word not in ("март", "мая", "май", "мае", "июня", "июля", "июнь", "июль", "июне", "июле") and not mt["pre"] and not mt["y"]:
        return None  # short forms need context
    y = year_of(mt["y"], today)
    if y is None:
        y = latest_month_year(m, today)
    return date(y, m, 1), month_end(y, m), f"{y}-{m:02d}"


# 9. a year: "в 2023 году", "in 2023", "за 2023 год", "2023 г."
_NOT_AMOUNT = r"(?!\s*(?:руб|р\.|р\b|₽|\$|€|тыс|млн|млрд|k\b|m\b|шт|ед|%|штук|сделок|сделки|сделка|лид|клиент|deals|rub|usd|eur|dollars))"


@_rule(rf"{WORD_START}(?:(?P<y1>(?:19|20)\d{{2}})\s*(?:г\.|г(?![\w])|года|году|год|гг\.?|year)"
       rf"|(?:в|во|за|in|during|for|of|fy|fiscal\s+year)\s*(?P<y2>(?:19|20)\d{{2}})(?![\d.,]\d){_NOT_AMOUNT})")
def _r_year(mt: re.Match, today: date):
    y = int(mt["y1"] or mt["y2"])
    return date(y, 1, 1), date(y, 12, 31), str(y)


# 10. "N дней/недель/месяцев назад" -> that day
@_rule(rf"{WORD_START}(?P<n>{NUMBER})\s+(?P<u>дн\w*|день|сут\w*|недел\w*|days?|weeks?)\s+(?:назад|ago)(?![\w])")
def _r_ago(mt: re.Match, today: date):
    n = number_value(mt["n"])
    if n is None:
        return None
    k = 7 if mt["u"][0] in "нw" else 1
    d = today - timedelta(days=n * k)
    return d, d, f"{n}{mt['u'][0]} ago"


# 11. last N days/weeks/months/years: "за последние 5 дней", "last 14 days", "за 2 недели"
_UNIT_DAYS = {"д": 1, "с": 1, "d": 1, "н": 7, "w": 7, "м": 30, "m": 30, "г": 365, "л": 365, "y": 365, "к": 90, "q": 90}


@_rule(rf"{WORD_START}(?:(?:за|в\s+течение|на\s+протяжении|в\s+последние|in\s+the|over\s+the|during\s+the|for\s+the|within\s+the)\s+)?"
       rf"(?P<lead>последн\w*|прошедш\w*|прошлы[ех]|last|past|previous|prior|за)\s+(?P<n>{NUMBER})\s+"
       rf"(?P<u>дн\w*|день|сут\w*|недел\w*|месяц\w*|год\w*|лет|квартал\w*|days?|weeks?|months?|years?|quarters?)(?![\w])")
def _r_last_n(mt: re.Match, today: date):
    n = number_value(mt["n"])
    if not n or n > 3660:
        return None
    span = n * _UNIT_DAYS[mt["u"][0]]
    return today - timedelta(days=span - 1), today, f"last {n}{mt['u'][0]}"


# 12. calendar-relative: this/last week, month, quarter, year
_THIS = r"эт(?:от|ой|у|а|ом|ого|им)|текущ\w*|нынешн\w*|this|current"
_PREV = r"прошл\w*|предыдущ\w*|прошедш\w*|last|previous|prior|past"
_PREV2 = r"позапрошл\w*"


@_rule(rf"{WORD_START}(?P<w>{_PREV2}|{_THIS}|{_PREV})\s+(?P<u>недел\w*|месяц\w*|квартал\w*|год\w*|полугоди\w*|week|month|quarter|year)(?![\w])"
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
        mon = monday_of(today) - timedelta(days=7 * back)
        end = today if back == 0 else mon + timedelta(days=6)
        return mon, end, f"week-{back}"
    if u in "мm":
        y, m = today.year, today.month - back
        while m < 1:
            m += 12
            y -= 1
        end = today if back == 0 else month_end(y, m)
        return date(y, m, 1), end, f"month-{back}"
    if u in "кq":
        qi = (today.year * 4 + (today.month - 1) // 3) - back
        s, e = quarter_bounds(qi // 4, qi % 4 + 1)
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
@_rule(rf"{WORD_START}(?:(?:за|в\s+течение|на\s+протяжении)\s+(?:(?:последн\w*|прошедш\w*)\s+)?(?P<ru>недел\w*|месяц\w*|год|квартал|сутки|полгода)"
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


@_rule(rf"{WORD_START}(?P<pre>в|во|on|last|в\s+прошл\w+|в\s+эт\w+|на\s+прошл\w+|на\s+эт\w+|на)\s+(?P<wd>"
       + "|".join(f"(?:{w})" for w in _WEEKDAYS) + r"|выходн\w*|weekend)(?![\w])")
def _r_weekday(mt: re.Match, today: date):
    wd_word = mt["wd"]
    pre = mt["pre"]
    if wd_word.startswith("выходн") or wd_word == "weekend":
        sat = monday_of(today) + timedelta(days=5)
        if "прошл" in pre or pre == "last" or sat > today:
            sat -= timedelta(days=7)
        return sat, sat + timedelta(days=1), "weekend"
    idx = next(i for i, w in enumerate(_WEEKDAYS) if re.fullmatch(w, wd_word))
    if idx in (0, 1, 2, 3, 4, 5, 6) and len(wd_word) == 3 and pre not in ("on", "last"):
        return None
    if "прошл" in pre or pre == "last":
        d = monday_of(today) - timedelta(days=7) + timedelta(days=idx)
    elif "эт" in pre:
        d = monday_of(today) + timedelta(days=idx)
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
_WK_YEAR = r"(?P<{0}>(?:19|20)\d{{2}})(?![\d.,]\d)" + YEAR_WORD + "?"
_WK_NUM = r"(?P<{0}>0?[1-9]|[1-4]\d|5[0-3])"
_WK_NOT_DATE = r"(?![\d.,/-]*\d|\s*-?\s*(?:го|е|ое|ого)\b|\s*" + MONTH + r"|\s*(?:недел|week|дн|день|месяц))"
_ISO_WEEK_RX = re.compile(
    rf"{WORD_START}(?:{_WK_YEAR.format('y1')}\s*-?\s*[wн]\s*{_WK_NUM.format('w1')}(?![\w])"
    rf"|[wн]\s*{_WK_NUM.format('w2')}(?:\s*[-/]?\s*{_WK_YEAR.format('y2')})?(?![\w])"
    rf"|(?:недел[яеюи]|week)\s*(?:№|no\.?|#|номер)?\s*{_WK_NUM.format('w3')}{_WK_NOT_DATE}"
    rf"(?:\s*(?:of\s+|-|/)?\s*{_WK_YEAR.format('y3')})?"
    rf"|{_WK_NUM.format('w4')}\s*-?\s*(?:я|й|ю|ой|ая|ую|th|st|nd|rd)\s+(?:недел[яеюи]|week)(?![\w])"
    rf"(?:\s*(?:of\s+)?{_WK_YEAR.format('y4')})?"
    rf"|{_WK_NUM.format('w5')}\s+неделя(?![\w])(?:\s*{_WK_YEAR.format('y5')})?)"
)


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
    rf"{WORD_START}(?:(?P<prev>{_PREV2}|{_PREV})\s+|(?P<this>{_THIS})\s+)?"
    r"(?P<s>зим(?:а|у|ой|ы|е|ний|нем|него)?|весн(?:а|у|ой|ы|е)?|весной|лет(?:о|а|у|ом|ний|нем|него)|"
    r"осен(?:ь|и|ью|ний|нем|него)|winter|spring|summer|autumn|fall)(?![\w])"
    rf"(?:\s*(?:of\s+)?(?P<y>(?:19|20)\d{{2}}){YEAR_WORD}?)?")


def _season_bounds(first_month: int, year: int) -> tuple[date, date]:
    if first_month == 12:  # winter of `year`: December of the year before to February
        return date(year - 1, 12, 1), month_end(year, 2)
    return date(year, first_month, 1), month_end(year, first_month + 2)


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
