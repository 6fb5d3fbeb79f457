"""Weekly digests: built from the precomputed summaries and the facts layer, rendered per chat.

Two steps, because names are resolved at send time:

- `build_digest(con, week, manager=None)` -> `DigestData`: everything the digest says, with
  pseudonyms only (safe to cache, log or write to the outbox); the summary points come from the
  stored records (`summaries.sections`), never from the summary text;
- `render_digest(data, display)` -> `RenderedDigest`: Telegram HTML (caption + messages split under
  the limits), a Markdown copy and the chart PNG. `display` maps pseudonym text to what the reader
  may see (`Vault.resolve` for allowed chats, identity for the outbox).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from crmsum.errors import CrmsumError
from crmsum.telegram import markup as th
from crmsum.facts import FactsError, facts_for, period_bounds, period_label
from crmsum.facts_sql import LOST, WON
from crmsum.ru import count, money
from crmsum.insights.present import digest_sections
from crmsum.summarize.model import SUMMARY_SECTIONS, Point, Section, points_of, sections_from_json

Display = Callable[[str], str]
MAX_DEALS = 8
MAX_POINTS = 4
MANAGER_SECTIONS = ("worked", "happened", "failed", "next")  # where a manager's two cited points come from
WATCH_SECTIONS = ("failed", "next")
WATCH_TITLE = "На что обратить внимание"
_WEEK_RE = re.compile(r"^\d{4}-W\d{2}$")


class DigestError(CrmsumError, ValueError):
    """A digest that cannot be built (bad week, no data)."""


def identity(text: str) -> str:
    return text


@dataclass
class DigestData:
    """What one digest says (pseudonyms only)."""

    week: str
    start: dt.date
    end: dt.date
    kind: str  # "team" or "manager:<pseudonym>"
    label: str  # "Команда" or the manager pseudonym
    numbers: dict[str, Any]
    managers: list[dict] = field(default_factory=list)  # {key, facts, points: [Point]}
    won: list[dict] = field(default_factory=list)
    lost: list[dict] = field(default_factory=list)
    worked: list[Point] = field(default_factory=list)  # the team's (or manager's) «worked» section
    watch: list[Point] = field(default_factory=list)  # «failed» and «next»
    extra: list[Section] = field(default_factory=list)  # sections of other producers (insights, ...), shown last
    precomputed: bool = True

    @property
    def manager(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("manager:") else None


@dataclass
class RenderedDigest:
    caption: str  # HTML, <= 1,024 visible characters
    messages: list[str]  # HTML, each <= 4,096 visible characters
    markdown: str
    chart: bytes


# -- weeks --------------------------------------------------------------------------------------
def check_week(week: str) -> str:
    week = week.strip().upper()
    if not _WEEK_RE.match(week):
        raise DigestError(f"--week must look like 2024-W10, got {week!r}")
    try:
        period_bounds("week", week)
    except FactsError:
        raise DigestError(f"no such ISO week: {week}") from None
    return week


def latest_complete_week(con: duckdb.DuckDBPyConnection, today: dt.date) -> str:
    """The latest ISO week that ended before `today` and has data (precomputed, else raw activity)."""
    monday = today - dt.timedelta(days=today.weekday())
    row = con.execute("SELECT max(period) FROM summaries WHERE scope = 'team' AND period_kind = 'week' "
                      "AND \"end\" < ?", [monday]).fetchone()
    if row and row[0]:
        return row[0]
    row = con.execute("""
        SELECT max(ts) FROM (
            SELECT created_at AS ts FROM crm_leads UNION ALL SELECT created_at FROM crm_events
            UNION ALL SELECT created_at FROM crm_notes UNION ALL SELECT date FROM chat_messages
        ) WHERE ts < ?""", [dt.datetime.combine(monday, dt.time())]).fetchone()
    if not row or row[0] is None:
        raise DigestError("the lake has no data before this week yet: run `crmsum ingest` and `crmsum precompute`")
    return period_label("week", row[0].date())


# -- building -----------------------------------------------------------------------------------
def _summary_rows(con, week: str) -> list[dict]:
    """The week's precomputed rows with their sections as records."""
    df = con.execute("SELECT scope, key, label, sections, facts FROM summaries WHERE period_kind = 'week' AND period = ?",
                     [week]).df()
    rows = df.to_dict("records")
    for r in rows:
        r["sections"] = sections_from_json(r["sections"] if isinstance(r["sections"], str) else None)
    return rows


def _deals(con, start: dt.date, end: dt.date, manager: str | None) -> tuple[list[dict], list[dict]]:
    sql = f"""
        SELECT l.lead_id, l.name, coalesce(l.price, 0) AS price, l.status_id, l.loss_reason,
               u.name AS manager, c.name AS company
        FROM crm_leads l
        LEFT JOIN (SELECT user_id, any_value(name) AS name FROM crm_users GROUP BY user_id) u
               ON u.user_id = l.responsible_user_id
        LEFT JOIN (SELECT company_id, any_value(name) AS name FROM crm_companies GROUP BY company_id) c
               ON c.company_id = l.company_id
        WHERE NOT coalesce(l.is_deleted, false) AND l.status_id IN ({WON}, {LOST})
          AND coalesce(l.closed_at, l.updated_at) >= ? AND coalesce(l.closed_at, l.updated_at) < ?
          {"AND u.name = ?" if manager else ""}
        ORDER BY l.price DESC NULLS LAST, l.lead_id"""
    params: list[Any] = [dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())]
    if manager:
        params.append(manager)
    rows = con.execute(sql, params).df().to_dict("records")
    for r in rows:
        r["price"] = int(r["price"] or 0)
        for k in ("loss_reason", "manager", "company", "name"):
            if not isinstance(r.get(k), str):
                r[k] = None
    return [r for r in rows if r["status_id"] == WON], [r for r in rows if r["status_id"] == LOST]


def _points(sections: list[Section], keys: tuple[str, ...], limit: int, cited_only: bool) -> list[Point]:
    """The first `limit` distinct points of the sections `keys` (only those citing a record if `cited_only`)."""
    out: list[Point] = []
    for p in points_of(sections, *keys):
        if (p.cites or not cited_only) and p.text not in {q.text for q in out}:
            out.append(p)
    return out[:limit]


def build_digest(con: duckdb.DuckDBPyConnection, week: str, manager: str | None = None,
                 as_of: dt.datetime | None = None) -> DigestData:
    """The team digest of an ISO week, or a manager's personal one (pseudonym)."""
    week = check_week(week)
    start, end = period_bounds("week", week)
    rows = _summary_rows(con, week)
    by_id = {(r["scope"], r["key"]): r for r in rows}
    scope, key = ("manager", manager) if manager else ("team", "team")
    own = by_id.get((scope, key))
    if own is not None:
        numbers = json.loads(own["facts"])
        sections = own["sections"]
    else:  # not precomputed (or no activity): the same facts, computed now
        try:
            numbers = facts_for(con, scope, key, start, end, as_of=as_of)
        except FactsError as exc:
            raise DigestError(str(exc)) from None
        sections = []
    managers = []
    for r in sorted((r for r in rows if r["scope"] == "manager"), key=lambda r: r["key"]):
        if manager and r["key"] != manager:
            continue
        f = json.loads(r["facts"])
        managers.append({"key": r["key"], "facts": f,
                         "points": _points(r["sections"], MANAGER_SECTIONS, 2, cited_only=True)})
    managers.sort(key=lambda m: (-int(m["facts"].get("won_amount") or 0), -int(m["facts"].get("stage_moves") or 0),
                                 m["key"]))
    won, lost = _deals(con, start, end, manager)
    worked = _points(sections, ("worked",), MAX_POINTS, cited_only=False)
    watch = _points(sections, WATCH_SECTIONS, MAX_POINTS, cited_only=False)
    return DigestData(week=week, start=start, end=end, kind=f"manager:{manager}" if manager else "team",
                      label=manager or "Команда", numbers=numbers, managers=managers, won=won, lost=lost,
                      worked=worked, watch=watch, precomputed=own is not None,
                      extra=digest_sections(con, start, end, manager))


# -- rendering ----------------------------------------------------------------------------------
def _n(f: dict, k: str) -> int:
    return int(f.get(k) or 0)


def _numbers_lines(f: dict) -> list[str]:
    lines = [
        f"Сделок в работе: {_n(f, 'deals_touched')}, новых: {_n(f, 'deals_created')} на {money(_n(f, 'created_amount'))}",
        f"Выиграно: {_n(f, 'deals_won')} на {money(_n(f, 'won_amount'))}; "
        f"проиграно: {_n(f, 'deals_lost')} на {money(_n(f, 'lost_amount'))}",
    ]
    if f.get("win_rate") is not None:
        lines[-1] += f" (конверсия {round(float(f['win_rate']) * 100)}%)"
    lines.append(f"Переходов по этапам: {_n(f, 'stage_moves')}; звонков: {_n(f, 'calls')}; "
                 f"задач выполнено: {_n(f, 'tasks_done')}, просрочено: {_n(f, 'tasks_overdue')}")
    if _n(f, "open_deals_count"):
        lines.append(f"Открыто на конец недели: {_n(f, 'open_deals_count')} на {money(_n(f, 'open_amount'))}"
                     + (f", без движения: {_n(f, 'stalled_count')}" if _n(f, "stalled_count") else ""))
    return lines


def _deal_line(d: dict, show: Display, lost: bool) -> str:
    who = ", ".join(x for x in (d.get("company"), show(d["manager"]) if d.get("manager") else None) if x)
    line = f"• {th.escape(show(d.get('name') or 'сделка ' + str(d['lead_id'])))} — {th.escape(money(d['price']))}"
    if who:
        line += f" ({th.escape(who)})"
    if lost:
        line += f": {th.i(d.get('loss_reason') or 'причина не указана')}"
    return line


def _deals_block(title: str, deals: list[dict], show: Display, lost: bool) -> str:
    total = sum(d["price"] for d in deals)
    lines = [f"{th.b(title)} — {len(deals)} на {th.escape(money(total))}"]
    lines += [_deal_line(d, show, lost) for d in deals[:MAX_DEALS]]
    if len(deals) > MAX_DEALS:
        lines.append(th.i(f"…и ещё {count(len(deals) - MAX_DEALS, 'сделка', 'сделки', 'сделок')}"))
    return "\n".join(lines)


def points_block(title: str, points: list[Point], show: Display) -> str:
    """A titled block of bullet points (Telegram HTML): how every section of points is shown."""
    return th.b(title) + "\n" + "\n".join(f"• {th.escape(show(p.text))}" for p in points)


def chart_rows(data: DigestData, show: Display = identity) -> list[dict]:
    return [{"name": show(m["key"]), **{k: _n(m["facts"], k) for k in
                                        ("deals_created", "stage_moves", "deals_won", "deals_lost")}}
            for m in data.managers]


def render_digest(data: DigestData, display: Display = identity, chart: bool = True) -> RenderedDigest:
    """Telegram HTML parts (caption under 1,024, messages under 4,096), Markdown and the chart."""
    show = display or identity
    f = data.numbers
    who = "команды" if data.kind == "team" else show(data.label)
    title = f"Итоги недели {data.week} ({data.start:%d.%m}–{data.end:%d.%m.%Y})"
    caption = (f"📊 {th.b(title)}\n{th.escape('Воронка ' + who)}: новые, переходы, выигрыши и проигрыши по менеджерам.\n"
               f"Выиграно {_n(f, 'deals_won')} на {th.escape(money(_n(f, 'won_amount')))}, "
               f"проиграно {_n(f, 'deals_lost')} на {th.escape(money(_n(f, 'lost_amount')))}.")
    if th.visible_len(caption) > th.MAX_CAPTION:
        caption = th.split_html(caption, th.MAX_CAPTION)[0]
    paras = [f"📊 {th.b(title)}" + ("" if data.kind == "team" else f"\n{th.escape('Личный дайджест: ' + who)}"),
             th.b("Неделя в цифрах") + "\n" + "\n".join("• " + th.escape(s) for s in _numbers_lines(f))]
    if data.managers:
        if data.kind == "team":
            paras.append(th.b("Менеджеры"))
        for m in data.managers:
            mf = m["facts"]
            head = (f"👤 {th.b(show(m['key']))}: выиграно {_n(mf, 'deals_won')} на {th.escape(money(_n(mf, 'won_amount')))}, "
                    f"проиграно {_n(mf, 'deals_lost')}, переходов {_n(mf, 'stage_moves')}, "
                    f"звонков {_n(mf, 'calls')}, задач {_n(mf, 'tasks_done')}")
            if _n(mf, "tasks_overdue"):
                head += f" (просрочено {_n(mf, 'tasks_overdue')})"
            lines = [head] + [f"• {th.escape(show(p.text))}" for p in m["points"]]
            paras.append("\n".join(lines))
    if data.won:
        paras.append(_deals_block("✅ Выиграны", data.won, show, lost=False))
    if data.lost:
        paras.append(_deals_block("❌ Проиграны", data.lost, show, lost=True))
    if data.worked:
        paras.append(points_block(SUMMARY_SECTIONS["worked"], data.worked, show))
    if data.watch:
        paras.append(points_block(WATCH_TITLE, data.watch, show))
    paras += [points_block(sec.title, list(sec.points), show) for sec in data.extra if sec.points]
    if not data.precomputed:
        paras.append(th.i("Сводки за эту неделю ещё не посчитаны: цифры собраны из CRM напрямую."))
    messages = th.join_paragraphs(paras, th.MAX_MESSAGE)
    markdown = th.html_to_markdown(caption) + "\n\n---\n\n" + "\n\n".join(th.html_to_markdown(p) for p in paras) + "\n"
    png = b""
    if chart:
        from crmsum.chart import pipeline_chart

        png = pipeline_chart(chart_rows(data, show), f"Движение воронки, {data.week}")
    return RenderedDigest(caption=caption, messages=messages, markdown=markdown, chart=png)
