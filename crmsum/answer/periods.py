"""Periods as the answer path names them: which precomputed period covers a range, and its wording."""

from __future__ import annotations

import datetime as dt

from crmsum.ru import MONTHS_NOM


def covering_period(start: dt.date, end: dt.date) -> tuple[str, str] | None:
    """('week', '2024-W10') or ('month', '2024-03') when the range is exactly one of them."""
    from crmsum.facts import period_label

    if start.weekday() == 0 and end == start + dt.timedelta(days=6):
        return "week", period_label("week", start)
    if start.day == 1 and (end + dt.timedelta(days=1)).day == 1 and end.month == start.month and end.year == start.year:
        return "month", period_label("month", start)
    return None


def period_text(start: dt.date | None, end: dt.date | None) -> str:
    """«март 2024 (01.03.2024–31.03.2024)», «неделя 2024-W10 (…)», «вся история» when unbounded."""
    if start is None or end is None:
        return "вся история"
    cov = covering_period(start, end)
    span = f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"
    if cov and cov[0] == "week":
        return f"неделя {cov[1]} ({span})"
    if cov and cov[0] == "month":
        return f"{MONTHS_NOM[start.month - 1]} {start.year} ({span})"
    return span
