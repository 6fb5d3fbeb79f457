"""The Russian calendar: month names in the cases the texts need, weekday names, the patterns the
question parser reads months by, and "today" in the account's time zone (`Settings.timezone`)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmsum.config import Settings

MONTHS_NOM = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
              "ноябрь", "декабрь")  # «март 2024»
MONTHS_GEN = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря")  # «с 3 по 9 марта»
MONTHS_LOC = ("январе", "феврале", "марте", "апреле", "мае", "июне", "июле", "августе", "сентябре", "октябре",
              "ноябре", "декабре")  # «в марте»
_MONTHS = {"nomn": MONTHS_NOM, "gent": MONTHS_GEN, "loct": MONTHS_LOC}

# The stem every case of a month's name starts with («март», «марта», «марте»), January first.
MONTH_STEMS = ("январ", "феврал", "март", "апрел", "ма[йяею]", "июн", "июл", "август", "сентябр", "октябр",
               "ноябр", "декабр")
# How a month is written in a question: any case of the full word, or its usual abbreviation
# (regex alternatives, one per month, January first).
MONTH_PATTERNS = (
    r"январ[ьяеию]|янв",
    r"феврал[ьяеию]|февр?",
    r"март[аеу]?|мар",
    r"апрел[ьяеию]|апр",
    r"ма[йяею]",
    r"июн[ьяеию]|июн",
    r"июл[ьяеию]|июл",
    r"август[аеу]?|авг",
    r"сентябр[ьяеию]|сент?",
    r"октябр[ьяеию]|окт",
    r"ноябр[ьяеию]|нояб?",
    r"декабр[ьяеию]|дек",
)

WEEKDAYS_NOM = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")


def month_name(month: int, case: str = "nomn") -> str:
    """Name of a month (1–12) in a case: 'nomn' «март», 'gent' «марта», 'loct' «марте»."""
    return _MONTHS[case][month - 1]


def now(settings: Settings | None = None) -> dt.datetime:
    """The account's wall-clock time (naive, in `Settings.timezone`): lake timestamps are local too.

    Falls back to the machine's local time when the zone or the settings cannot be read, so a
    misconfigured zone never stops a report.
    """
    try:
        from zoneinfo import ZoneInfo

        if settings is None:
            from crmsum.config import get_settings

            settings = get_settings()
        return dt.datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    except Exception:  # noqa: BLE001 - a bad zone or settings must not break a report
        return dt.datetime.now()


def today(settings: Settings | None = None) -> dt.date:
    """Today's date in the account's time zone (a digest sent at 01:00 MSK belongs to MSK's day)."""
    return now(settings).date()
