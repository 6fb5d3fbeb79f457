"""What users think of the bot's answers: the 1–5 ratings in `feedback`, joined to `answers`.

    report = feedback_report(lake, since=dt.date(2024, 5, 1)); report.render(console)   # `crmsum feedback`
    html = monthly_feedback_summary(lake, "2024-05")                                    # team lead's chat

Both read pseudonymized tables only and produce pseudonymized text; a sender resolves pseudonyms
(`crmsum.privacy.display_text`) only for allowed chats, as for digests.
Scope of an answer: manager+company, manager, company, team, or clarify (the bot asked back).
A rating whose answer is not in `answers` still counts in the distributions (scope "unknown").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from crmsum.errors import CrmsumError
from crmsum.ru import MONTHS_NOM
from crmsum.telegram.markup import escape

RATINGS = (1, 2, 3, 4, 5)
SCOPE_RU = {"manager": "менеджер", "company": "компания", "manager+company": "менеджер + компания",
            "team": "команда", "clarify": "уточнение", "unknown": "неизвестно"}


class FeedbackError(CrmsumError, ValueError):
    """Bad arguments for the feedback analytics (one actionable line)."""


def _since(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    try:
        return dt.datetime.combine(dt.date.fromisoformat(str(value)), dt.time())
    except ValueError:
        raise FeedbackError(f"since must be YYYY-MM-DD, got {value!r}") from None


def _month(value: Any) -> tuple[dt.date, dt.date]:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        y, m = value.year, value.month
    else:
        try:
            y, m = (int(x) for x in str(value).split("-")[:2])
            dt.date(y, m, 1)
        except ValueError:
            raise FeedbackError(f"month must be YYYY-MM, got {value!r}") from None
    start = dt.date(y, m, 1)
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return start, nxt - dt.timedelta(days=1)


def ratings_frame(lake, start: dt.datetime | None = None, end: dt.datetime | None = None) -> pd.DataFrame:
    """Every rating in [start, end) with its answer's fields (question, scope, backend, source, text)."""
    con = lake.connect()
    where, params = [], []
    if start is not None:
        where.append("f.created_at >= ?")
        params.append(start)
    if end is not None:
        where.append("f.created_at < ?")
        params.append(end)
    sql = f"""
        SELECT f.feedback_id, f.answer_id, f.chat_id, f."user", f.rating, f.created_at,
               a.question, a.manager, a.company, a.start, a."end", a.source, a.backend, a.text,
               a.created_at AS answered_at, a.answer_id IS NOT NULL AS matched
        FROM feedback f LEFT JOIN answers a ON a.answer_id = f.answer_id
        {('WHERE ' + ' AND '.join(where)) if where else ''}
        ORDER BY f.created_at, f.feedback_id"""
    df = con.execute(sql, params).df()
    df = df[df["rating"].between(1, 5)].copy() if len(df) else df
    if len(df):
        df["rating"] = df["rating"].astype(int)
        df["scope"] = [_scope(r) for r in df.itertuples()]
        df["backend"] = df["backend"].fillna("unknown")
        df["source"] = df["source"].fillna("unknown")
        iso = pd.to_datetime(df["created_at"]).dt.isocalendar()
        df["week"] = [f"{y}-W{w:02d}" for y, w in zip(iso["year"], iso["week"])]
    else:
        df = df.assign(scope=[], week=[])
    return df


def _scope(r) -> str:
    if not r.matched:
        return "unknown"
    if r.source == "clarify":
        return "clarify"
    m = isinstance(r.manager, str) and r.manager
    c = isinstance(r.company, str) and r.company
    return "manager+company" if m and c else "manager" if m else "company" if c else "team"


def distribution(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts of each rating 1–5 per group, with n, mean and the share of low (1–2) ratings."""
    if df.empty:
        return pd.DataFrame(columns=[by, *[str(r) for r in RATINGS], "n", "mean", "low_share"])
    t = pd.crosstab(df[by], df["rating"]).reindex(columns=list(RATINGS), fill_value=0)
    t.columns = [str(c) for c in t.columns]
    g = df.groupby(by)["rating"]
    t["n"] = g.size()
    t["mean"] = g.mean().round(2)
    t["low_share"] = (df.assign(low=df["rating"] <= 2).groupby(by)["low"].mean()).round(3)
    return t.reset_index().sort_values(by).reset_index(drop=True)


@dataclass
class FeedbackReport:
    since: dt.datetime | None
    total: int
    mean: float | None
    raters: int
    unmatched: int  # ratings whose answer is missing from `answers`
    by_backend: pd.DataFrame
    by_scope: pd.DataFrame
    by_source: pd.DataFrame
    by_week: pd.DataFrame
    lowest: pd.DataFrame  # answer_id, mean, n, question, backend, source, scope, answer excerpt
    distribution: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def recs(df: pd.DataFrame) -> list[dict]:
            from crmsum.facts import to_jsonable

            return to_jsonable(df.to_dict("records"))
        return {"since": self.since.isoformat() if self.since else None, "total": self.total, "mean": self.mean,
                "raters": self.raters, "unmatched": self.unmatched, "distribution": self.distribution,
                "by_backend": recs(self.by_backend), "by_scope": recs(self.by_scope),
                "by_source": recs(self.by_source), "by_week": recs(self.by_week), "lowest": recs(self.lowest)}

    def render(self, console=None) -> None:
        """Rich tables: distributions by backend / scope / source / week, then the lowest-rated answers."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        if not self.total:
            console.print("No ratings yet" + (f" since {self.since:%Y-%m-%d}" if self.since else "") + ".")
            return
        dist = " ".join(f"{r}★ {self.distribution.get(r, 0)}" for r in RATINGS)
        console.print(f"[bold]{self.total}[/] ratings from {self.raters} users, mean [bold]{self.mean:.2f}[/]; {dist}"
                      + (f"; {self.unmatched} without a stored answer" if self.unmatched else ""), highlight=False)
        for title, df, key in (("by backend", self.by_backend, "backend"), ("by scope", self.by_scope, "scope"),
                               ("by source", self.by_source, "source"), ("by week", self.by_week, "week")):
            t = Table(title=f"ratings {title}")
            t.add_column(key)
            for c in [*[str(r) for r in RATINGS], "n", "mean", "low (1–2)"]:
                t.add_column(c, justify="right")
            for r in df.to_dict("records"):
                t.add_row(str(r[key]), *[str(int(r[str(x)])) for x in RATINGS], str(int(r["n"])),
                          f"{r['mean']:.2f}", f"{r['low_share']:.0%}")
            console.print(t)
        if len(self.lowest):
            t = Table(title="lowest-rated answers")
            for c in ("mean", "n", "question", "scope", "backend", "source", "answer"):
                t.add_column(c, justify="right" if c in ("mean", "n") else "left", overflow="fold")
            for r in self.lowest.to_dict("records"):
                t.add_row(f"{r['mean']:.1f}", str(int(r["n"])), str(r["question"] or "—"), str(r["scope"]),
                          str(r["backend"]), str(r["source"]), str(r["answer"] or "—"))
            console.print(t)


def _excerpt(text: Any, n: int = 160) -> str | None:
    if not isinstance(text, str):
        return None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("Менеджер:", "Источник:"))]
    s = " ".join(" ".join(lines).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def lowest_rated(df: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """Answers by mean rating (lowest first; more ratings first on ties), with their questions."""
    cols = ["answer_id", "mean", "n", "question", "scope", "backend", "source", "answer", "answered_at"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    g = df.groupby("answer_id", dropna=False).agg(
        mean=("rating", "mean"), n=("rating", "size"), question=("question", "first"), scope=("scope", "first"),
        backend=("backend", "first"), source=("source", "first"), text=("text", "first"),
        answered_at=("answered_at", "first")).reset_index()
    g["answer"] = g["text"].map(_excerpt)
    g["mean"] = g["mean"].round(2)
    g = g.sort_values(["mean", "n", "answered_at"], ascending=[True, False, False], na_position="last")
    return g[cols].head(limit).reset_index(drop=True)


def feedback_report(lake, since: Any = None, limit: int = 10) -> FeedbackReport:
    """Ratings analytics since a date (all time by default): what `crmsum feedback` prints."""
    start = _since(since)
    df = ratings_frame(lake, start)
    counts = df["rating"].value_counts().to_dict() if len(df) else {}
    return FeedbackReport(
        since=start, total=int(len(df)), mean=round(float(df["rating"].mean()), 3) if len(df) else None,
        raters=int(df["user"].nunique()) if len(df) else 0,
        unmatched=int((~df["matched"].astype(bool)).sum()) if len(df) else 0,
        by_backend=distribution(df, "backend"), by_scope=distribution(df, "scope"),
        by_source=distribution(df, "source"), by_week=distribution(df, "week"),
        lowest=lowest_rated(df, limit), distribution={int(r): int(counts.get(r, 0)) for r in RATINGS})


def monthly_feedback_summary(lake, month: Any, worst: int = 5) -> str:
    """Telegram HTML for the team lead: the month's ratings, the change vs the month before, the
    weakest spots (backend / scope) and the lowest-rated questions. Pseudonyms only."""
    start, end = _month(month)
    prev_start, _ = _month(start - dt.timedelta(days=1))
    df = ratings_frame(lake, dt.datetime.combine(start, dt.time()),
                       dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
    prev = ratings_frame(lake, dt.datetime.combine(prev_start, dt.time()), dt.datetime.combine(start, dt.time()))
    title = f"Оценки ответов бота — {MONTHS_NOM[start.month - 1]} {start.year}"
    if df.empty:
        return f"<b>{escape(title)}</b>\nЗа месяц оценок не было."
    n, mean = len(df), df["rating"].mean()
    high, low = (df["rating"] >= 4).mean(), (df["rating"] <= 2).mean()
    lines = [f"<b>{escape(title)}</b>",
             f"Оценок: <b>{n}</b> от {df['user'].nunique()} польз., средняя <b>{mean:.2f}</b>"
             + (f" ({'+' if mean - prev['rating'].mean() >= 0 else '−'}{abs(mean - prev['rating'].mean()):.2f} "
                f"к прошлому месяцу)" if len(prev) else "") + ".",
             f"Хорошо (4–5): {high:.0%} · плохо (1–2): {low:.0%}",
             "Распределение: " + " · ".join(f"{r}★ {int((df['rating'] == r).sum())}" for r in RATINGS)]
    by_b = distribution(df, "backend")
    if len(by_b) > 1 or (len(by_b) and by_b["backend"].iloc[0] != "unknown"):
        lines.append("По бэкендам: " + "; ".join(f"{escape(r['backend'])} {r['mean']:.2f} (n={int(r['n'])})"
                                                for r in by_b.to_dict("records")))
    by_s = distribution(df, "scope")
    if len(by_s):
        lines.append("По типу вопроса: " + "; ".join(f"{escape(SCOPE_RU.get(r['scope'], r['scope']))} {r['mean']:.2f} "
                                                    f"(n={int(r['n'])})" for r in by_s.to_dict("records")))
        weak = by_s[by_s["n"] >= 3].sort_values("mean")
        if len(weak) and weak["mean"].iloc[0] < 3.5:
            w = weak.iloc[0]
            lines.append(f"Слабое место: вопросы типа «{escape(SCOPE_RU.get(w['scope'], w['scope']))}» — "
                         f"средняя {w['mean']:.2f}, {w['low_share']:.0%} низких оценок.")
    lows = lowest_rated(df[df["rating"] <= 3], worst)
    if len(lows):
        lines.append("")
        lines.append("<b>Хуже всего оценены</b>")
        for k, r in enumerate(lows.to_dict("records"), 1):
            q = r["question"] if isinstance(r["question"], str) and r["question"] else "(вопрос не сохранён)"
            q = q if len(q) <= 120 else q[:119] + "…"
            lines.append(f"{k}. «{escape(q)}» — {r['mean']:.1f}★ (n={int(r['n'])}, {escape(r['backend'])}, "
                         f"{escape(r['source'])})")
    return "\n".join(lines)
