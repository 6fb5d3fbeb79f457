"""The terminal side of `crmsum status` and `crmsum impact`: their reports as rich tables and lines
(rendered once, here at the edge; the reports themselves are records in `crmsum.status` / `crmsum.impact`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from crmsum.impact import ImpactReport
    from crmsum.status import StatusReport


def show_status(report: StatusReport) -> None:
    """`crmsum status`: the checks, the tables' freshness, watermarks, last runs and the LLM spend."""
    from rich.table import Table

    out = Console()
    mark = {True: "[green]ok[/]", False: "[bold red]FAIL[/]", None: "[dim]-[/]"}
    checks = Table("check", "", "detail", title="crmsum status", title_justify="left")
    for c in report.checks:
        checks.add_row(c.name, mark[c.ok], c.detail)
    out.print(checks)
    tables = Table("table", "rows", "newest")
    for t in report.tables:
        tables.add_row(t.name, f"{t.rows:,}".replace(",", " "), t.newest or "-")
    out.print(tables)
    for name, when in report.watermarks.items():
        out.print(f"  watermark {name:<12} {when}", highlight=False)
    for name, run in report.runs.items():
        how = "ok" if run.get("ok") else f"FAILED ({run.get('error')})"
        out.print(f"  last {name:<18} {run.get('finished') or run.get('started')}  {how}", highlight=False)
    spend = report.llm_last_night
    out.print(f"  LLM since {spend['since']}: {spend['calls']} calls ({spend['cache_hits']} cached, "
              f"{spend['failed']} failed), {spend['tokens_in']} tokens in, {spend['tokens_out']} out", highlight=False)


def show_impact(report: ImpactReport) -> None:
    """`crmsum impact`: per month answers, ratings and sales against a year before, the trend."""
    from rich.table import Table

    from crmsum.ru import money, percent

    out = Console()
    t = Table("month", "answers", "ratings", "mean", "4–5", "won volume", "a year before", "won", "win rate",
              "a year before", title="crmsum impact", title_justify="left")
    for m in report.months:
        mean = "—" if m.rating_mean is None else f"{m.rating_mean:.2f}"
        last = "—" if m.volume_last_year is None else money(m.volume_last_year)
        t.add_row(m.month + (" ★" if m.started else ""), str(m.answers), str(m.ratings), mean, percent(m.share_4_5),
                  money(m.volume), last, str(m.won), f"{percent(m.win_rate)} (n={m.won + m.lost})",
                  f"{percent(m.win_rate_last_year)} (n={m.closed_last_year or 0})")
    out.print(t)
    out.print(f"★ crmsum started answering on {report.started or '—'}", highlight=False)
    tr = report.trend
    out.print(f"rating trend: {tr.reason}" if tr.reason else
              f"rating trend: {tr.slope_per_month:+.3f} per month, 95% CI {tr.ci95[0]:+.3f}…{tr.ci95[1]:+.3f} "
              f"({tr.ratings} ratings, {tr.months} months): {tr.direction}", highlight=False)
    ba = report.before_after
    if ba.yoy_after is not None:
        before = "—" if ba.yoy_before is None else f"{ba.yoy_before:+.0%}"
        out.print(f"since the start ({ba.months_after} months): won volume {ba.yoy_after:+.0%} against the same "
                  f"months a year before; in the {ba.months_before} months before the start: {before}",
                  highlight=False)
    if ba.reason:
        out.print(ba.reason, highlight=False)
    out.print(ba.caveat, highlight=False)
    for low in report.lowest:
        out.print(f"  {low.rating}★ {low.created_at} {low.question[:80]!r} → {low.text[:80]!r}", highlight=False)
