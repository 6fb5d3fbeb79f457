"""Is crmsum helping? Usage and ratings of its answers, and the team's sales against the year before.

`impact(con, since=None) -> ImpactReport`, per calendar month:
- answers given (by intent and by source), ratings (count, mean, 1–5 distribution, share of 4–5);
- sales: won volume, won and lost deals, win rate — beside the same month a year before;
- the month crmsum started answering (its first answer) is marked.

Two conclusions are drawn, each only when the data can carry it:
- the rating trend: an ordinary least-squares slope of individual ratings on months, with its 95%
  interval (t distribution), only with at least `MIN_RATINGS` ratings over `MIN_RATING_MONTHS` months;
- before/after: the year-over-year change of won volume and win rate in the months since the start,
  beside the same change in as many months before it. Comparing each month with the same month a
  year earlier takes out the pipeline's seasonality; comparing with the growth before the start
  takes out the trend the team was on anyway. It stays an observation, not proof of cause.

Closes follow `crmsum.facts`: won = status 142, lost = 143, in the month of `closed_at` (falling
back to `updated_at`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import pandas as pd

from crmsum.facts_sql import LOST, WON
from crmsum.ru import today as today_in

MIN_RATINGS = 30
MIN_RATING_MONTHS = 3
LOWEST_N = 10
CAVEAT = ("Это наблюдение, а не доказательство: продажи меняются и по другим причинам "
          "(рынок, состав команды, крупные сделки).")


@dataclass
class Month:
    month: str  # YYYY-MM
    answers: int = 0
    by_intent: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    ratings: int = 0
    rating_mean: float | None = None
    rating_dist: dict[str, int] = field(default_factory=dict)  # "1".."5" -> count
    share_4_5: float | None = None
    volume: int = 0
    volume_last_year: int | None = None  # None: no history that far back
    won: int = 0
    lost: int = 0
    win_rate: float | None = None  # None: nothing closed that month
    won_last_year: int | None = None
    win_rate_last_year: float | None = None
    closed_last_year: int | None = None
    started: bool = False  # crmsum's first answer fell in this month


@dataclass
class Trend:
    """Ratings per month: slope with its interval, or the reason there is none."""

    ratings: int
    months: int
    slope_per_month: float | None = None
    ci95: tuple[float, float] | None = None
    reason: str | None = None  # why no trend is stated

    @property
    def direction(self) -> str | None:
        if self.ci95 is None:
            return None
        lo, hi = self.ci95
        return "up" if lo > 0 else "down" if hi < 0 else "flat"


@dataclass
class BeforeAfter:
    """Year-over-year change since the start vs in as many months before it (None: not enough history)."""

    months_after: int
    months_before: int
    volume_after: int = 0
    volume_after_last_year: int = 0
    volume_before: int = 0
    volume_before_last_year: int = 0
    yoy_after: float | None = None  # volume_after / volume_after_last_year - 1
    yoy_before: float | None = None
    win_rate_after: float | None = None
    win_rate_after_last_year: float | None = None
    closed_after: int = 0
    closed_after_last_year: int = 0
    reason: str | None = None
    caveat: str = CAVEAT


@dataclass
class LowRated:
    answer_id: str
    rating: int
    question: str
    text: str
    created_at: str


@dataclass
class ImpactReport:
    months: list[Month]
    started: dt.date | None
    trend: Trend
    before_after: BeforeAfter
    lowest: list[LowRated]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started"] = self.started.isoformat() if self.started else None
        d["trend"]["direction"] = self.trend.direction
        return d


# -- SQL ----------------------------------------------------------------------------------------
_SALES = f"""
SELECT strftime(close_ts, '%Y-%m') AS month,
       count(*) FILTER (WHERE status_id = {WON}) AS won,
       count(*) FILTER (WHERE status_id = {LOST}) AS lost,
       coalesce(sum(price) FILTER (WHERE status_id = {WON}), 0) AS volume
FROM (SELECT status_id, coalesce(price, 0) AS price, coalesce(closed_at, updated_at) AS close_ts
      FROM crm_leads WHERE status_id IN ({WON}, {LOST}) AND NOT coalesce(is_deleted, false))
WHERE close_ts IS NOT NULL
GROUP BY ALL
"""

_ANSWERS = """
SELECT strftime(created_at, '%Y-%m') AS month, coalesce(intent, 'activity') AS intent,
       coalesce(source, 'unknown') AS source, count(*) AS n
FROM answers GROUP BY ALL
"""

# one rating per (answer, user): the newest; the month is the rating's own
_RATINGS = """
SELECT strftime(created_at, '%Y-%m') AS month, rating, answer_id, created_at
FROM feedback WHERE rating BETWEEN 1 AND 5
QUALIFY row_number() OVER (PARTITION BY answer_id, "user" ORDER BY created_at DESC) = 1
"""

_LOWEST = f"""
SELECT a.answer_id, min(f.rating) AS rating, any_value(a.question) AS question, any_value(a.text) AS text,
       max(a.created_at) AS created_at
FROM feedback f JOIN answers a USING (answer_id)
WHERE f.rating BETWEEN 1 AND 2
GROUP BY a.answer_id ORDER BY rating, created_at DESC LIMIT {LOWEST_N}
"""


def impact(con: duckdb.DuckDBPyConnection, since: dt.date | None = None, today: dt.date | None = None) -> ImpactReport:
    """The monthly report from the lake's views (`answers`, `feedback`, `crm_leads`); months before
    `today`'s month are complete."""
    sales = con.execute(_SALES).df().set_index("month")
    answers = con.execute(_ANSWERS).df()
    ratings = con.execute(_RATINGS).df()
    first = con.execute("SELECT min(created_at) FROM answers").fetchone()[0]
    started = first.date() if first is not None else None
    months = _month_range(sales.index.tolist() + answers["month"].tolist() + ratings["month"].tolist())
    rows = [_month(m, sales, answers, ratings, started) for m in months]
    comparison = before_after(rows, started, today or today_in())  # over all history, whatever `since`
    shown = [r for r in rows if since is None or r.month >= since.strftime("%Y-%m")]
    return ImpactReport(shown, started, rating_trend(ratings, since), comparison, _lowest(con, since))


def _month_range(seen: list[str]) -> list[str]:
    if not seen:
        return []
    return [str(p) for p in pd.period_range(pd.Period(min(seen), "M"), pd.Period(max(seen), "M"), freq="M")]


def _month(m: str, sales: pd.DataFrame, answers: pd.DataFrame, ratings: pd.DataFrame,
           started: dt.date | None) -> Month:
    row = Month(m, started=started is not None and started.strftime("%Y-%m") == m)
    a = answers[answers["month"] == m]
    row.answers = int(a["n"].sum())
    row.by_intent = {k: int(v) for k, v in a.groupby("intent")["n"].sum().items()}
    row.by_source = {k: int(v) for k, v in a.groupby("source")["n"].sum().items()}
    r = ratings.loc[ratings["month"] == m, "rating"]
    row.ratings = int(r.size)
    if r.size:
        row.rating_mean = round(float(r.mean()), 2)
        row.rating_dist = {str(k): int((r == k).sum()) for k in range(1, 6)}
        row.share_4_5 = round(float((r >= 4).mean()), 4)
    row.won, row.lost, row.volume, row.win_rate = _sales_of(sales, m)
    last = str(pd.Period(m, "M") - 12)
    if sales.index.size and last >= min(sales.index):
        row.won_last_year, lost_ly, row.volume_last_year, row.win_rate_last_year = _sales_of(sales, last)
        row.closed_last_year = row.won_last_year + lost_ly
    return row


def _sales_of(sales: pd.DataFrame, m: str) -> tuple[int, int, int, float | None]:
    if m not in sales.index:
        return 0, 0, 0, None
    won, lost, volume = (int(sales.at[m, c]) for c in ("won", "lost", "volume"))
    return won, lost, volume, (round(won / (won + lost), 4) if won + lost else None)


def rating_trend(ratings: pd.DataFrame, since: dt.date | None = None) -> Trend:
    """OLS slope of ratings on month index, with a t-based 95% interval; None with too few ratings."""
    if since is not None:
        ratings = ratings[ratings["month"] >= since.strftime("%Y-%m")]
    n, months = int(len(ratings)), int(ratings["month"].nunique()) if len(ratings) else 0
    trend = Trend(n, months)
    if n < MIN_RATINGS or months < MIN_RATING_MONTHS:
        trend.reason = (f"слишком мало оценок для тренда: {n} за {months} мес. "
                        f"(нужно хотя бы {MIN_RATINGS} за {MIN_RATING_MONTHS} мес.)")
        return trend
    from scipy import stats

    x = pd.PeriodIndex(ratings["month"], freq="M").astype("int64").to_numpy(dtype=float)
    fit = stats.linregress(x, ratings["rating"].to_numpy(dtype=float))
    half = stats.t.ppf(0.975, n - 2) * fit.stderr
    trend.slope_per_month = round(float(fit.slope), 4)
    trend.ci95 = (round(float(fit.slope - half), 4), round(float(fit.slope + half), 4))
    return trend


def before_after(rows: list[Month], started: dt.date | None, today: dt.date) -> BeforeAfter:
    """Complete months since the start vs as many months before it, each against a year earlier."""
    if started is None:
        return BeforeAfter(0, 0, reason="crmsum ещё не ответил ни на один вопрос")
    start = started.strftime("%Y-%m")
    this_month = today.strftime("%Y-%m")
    after = [r for r in rows if start <= r.month < this_month and r.volume_last_year is not None]
    before = [r for r in rows if r.month < start and r.volume_last_year is not None][-len(after):] if after else []
    ba = BeforeAfter(len(after), len(before))
    if not after:
        ba.reason = "нет ни одного полного месяца после запуска, у которого есть тот же месяц год назад"
        return ba
    ba.volume_after, ba.volume_after_last_year = sum(r.volume for r in after), sum(r.volume_last_year for r in after)
    ba.yoy_after = _growth(ba.volume_after, ba.volume_after_last_year)
    won, closed = sum(r.won for r in after), sum(r.won + r.lost for r in after)
    won_ly, closed_ly = sum(r.won_last_year or 0 for r in after), sum(r.closed_last_year or 0 for r in after)
    ba.closed_after, ba.closed_after_last_year = closed, closed_ly
    ba.win_rate_after = round(won / closed, 4) if closed else None
    ba.win_rate_after_last_year = round(won_ly / closed_ly, 4) if closed_ly else None
    if before:
        ba.volume_before = sum(r.volume for r in before)
        ba.volume_before_last_year = sum(r.volume_last_year for r in before)
        ba.yoy_before = _growth(ba.volume_before, ba.volume_before_last_year)
    else:
        ba.reason = "до запуска нет месяцев с историей годом раньше: рост до запуска не с чем сравнить"
    return ba


def _growth(now: int, then: int) -> float | None:
    return round(now / then - 1, 4) if then else None


def _lowest(con: duckdb.DuckDBPyConnection, since: dt.date | None) -> list[LowRated]:
    df = con.execute(_LOWEST).df()
    if since is not None and len(df):
        df = df[df["created_at"] >= pd.Timestamp(since)]
    return [LowRated(r.answer_id, int(r.rating), r.question or "", (r.text or "")[:300],
                     r.created_at.isoformat(sep=" ")) for r in df.itertuples()]



# -- the monthly digest's section ---------------------------------------------------------------
def digest_section(rep: ImpactReport, month: str):
    """«Помогает ли crmsum» for the lead's monthly digest: the month against a year before, the rating
    trend (or why there is none) and the caveat — a `Section` of points with their bases."""
    from crmsum.ru import money, percent
    from crmsum.summarize.model import Point, Section

    row = next((m for m in rep.months if m.month == month), None)
    points = []
    if row is not None:
        last = "нет истории" if row.volume_last_year is None else money(row.volume_last_year)
        points.append(Point("impact", f"Выиграно {money(row.volume)} ({row.won} из {row.won + row.lost} закрытых, "
                                      f"{percent(row.win_rate)}); год назад — {last}"
                            + ("" if row.closed_last_year is None else
                               f" ({row.won_last_year} из {row.closed_last_year}, {percent(row.win_rate_last_year)})"),
                            {"volume": row.volume, "volume_last_year": row.volume_last_year, "won": row.won,
                             "closed": row.won + row.lost}))
        if row.ratings:
            points.append(Point("impact", f"Ответов бота: {row.answers}; оценок: {row.ratings}, средняя "
                                          f"{row.rating_mean:.2f}, 4–5 у {percent(row.share_4_5)}",
                                {"answers": row.answers, "ratings": row.ratings, "rating_mean": row.rating_mean}))
    t = rep.trend
    points.append(Point("impact", t.reason.capitalize() if t.reason else
                        f"Тренд оценок: {t.slope_per_month:+.2f} в месяц (95% интервал {t.ci95[0]:+.2f}…{t.ci95[1]:+.2f}, "
                        f"{t.ratings} оценок за {t.months} мес.)", {"ratings": t.ratings}))
    ba = rep.before_after
    if ba.yoy_after is not None:
        before = "" if ba.yoy_before is None else f"; за {ba.months_before} мес. до запуска — {ba.yoy_before:+.0%}"
        points.append(Point("impact", f"С запуска ({ba.months_after} мес.) выиграно {ba.yoy_after:+.0%} к тем же месяцам "
                                      f"год назад{before}. {ba.caveat}",
                            {"months_after": ba.months_after, "yoy_after": ba.yoy_after, "yoy_before": ba.yoy_before}))
    return Section("impact", "Помогает ли crmsum", tuple(points))


def digest_chart(rep: ImpactReport, month: str, months: int = 12) -> bytes:
    """The last `months` months up to `month`: won volume against a year before, and the rating line."""
    from crmsum.chart import impact_chart

    rows = [m for m in rep.months if m.month <= month][-months:]
    return impact_chart([m.month for m in rows], [m.volume for m in rows], [m.volume_last_year for m in rows],
                        [m.rating_mean for m in rows], f"Продажи к прошлому году и оценки ответов, по {month}")
