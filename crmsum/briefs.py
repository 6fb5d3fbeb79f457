"""Deal briefs: what a manager must know about a deal the moment it becomes theirs or reaches the decisive stage.

Triggers (found by SQL in the events the nightly sync brought, at most `WINDOW_DAYS` old so a first
full sync does not brief the whole history):
- a hand-over: `entity_responsible_changed` on a deal that is still open — the brief goes to the new
  manager;
- the decisive stage: `lead_status_changed` into the stage before won of its pipeline (or the stages
  named in `CRMSUM_BRIEF_STAGES`) — the brief goes to the deal's manager, once per deal and stage.

A brief is sections of points (`crmsum.summarize.model`), built from the deal's own records:
what was agreed, open tasks and promises, the last contact, the client's objections, and — when
`crmsum.insights` has scored the deal — its win probability with the reasons that lower it and
what wins in similar deals. Delivery (exactly once per chat and trigger) is `deliver_briefs`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from crmsum.facts_sql import LOST, WON
from crmsum.ru import money
from crmsum.summarize.keypoints import key_points
from crmsum.summarize.model import Point, Section
from crmsum.summarize.records import records_for

WINDOW_DAYS = 3  # events older than this never trigger a brief (the first sync brings years of them)
KEYPOINTS = 12
OPEN_TASKS = 5


@dataclass(frozen=True)
class Trigger:
    """Why a brief is due: a hand-over to `manager`, or the deal reaching the decisive `status_id`."""

    kind: str  # handover | stage
    lead_id: int
    event_id: str
    at: dt.datetime
    manager: str | None  # pseudonym of the manager who gets the brief
    from_manager: str | None = None
    status_id: int | None = None

    @property
    def key(self) -> str:
        """The send-once key: one brief per hand-over event, one per deal and decisive stage."""
        return f"brief:handover:{self.event_id}" if self.kind == "handover" else f"brief:stage:{self.lead_id}:{self.status_id}"


_HANDOVERS = f"""
SELECT e.event_id, e.lead_id, e.created_at AS at, ua.name AS manager, ub.name AS from_manager
FROM crm_events e
JOIN crm_leads l USING (lead_id)
LEFT JOIN crm_users ua ON ua.user_id = e.responsible_after
LEFT JOIN crm_users ub ON ub.user_id = e.responsible_before
WHERE e.type = 'entity_responsible_changed' AND e.created_at >= $since
  AND l.status_id NOT IN ({WON}, {LOST}) AND NOT coalesce(l.is_deleted, false)
  AND e.responsible_after = l.responsible_user_id   -- the deal is still with the manager it was handed to
ORDER BY e.created_at, e.event_id
"""

_STAGE_ENTRIES = f"""
SELECT e.event_id, e.lead_id, e.created_at AS at, u.name AS manager, e.status_after AS status_id,
       l.pipeline_id
FROM crm_events e
JOIN crm_leads l USING (lead_id)
LEFT JOIN crm_users u ON u.user_id = l.responsible_user_id
WHERE e.type = 'lead_status_changed' AND e.created_at >= $since
  AND l.status_id NOT IN ({WON}, {LOST}) AND NOT coalesce(l.is_deleted, false)
ORDER BY e.created_at, e.event_id
"""


def decisive_stages(con: duckdb.DuckDBPyConnection, names: str = "") -> set[tuple[int, int]]:
    """(pipeline_id, status_id) of the decisive stages: those named (comma-separated, any pipeline), else
    in each pipeline the regular stage right before won (the highest `sort` below it)."""
    st = con.execute("SELECT pipeline_id, status_id, name, sort FROM crm_statuses "
                     f"WHERE status_id NOT IN ({WON}, {LOST})").df()
    wanted = {n.strip().lower() for n in names.split(",") if n.strip()}
    if wanted:
        st = st[st["name"].str.lower().isin(wanted)]
    else:
        st = st.sort_values(["pipeline_id", "sort", "status_id"]).groupby("pipeline_id").tail(1)
    return {(int(p), int(s)) for p, s in zip(st["pipeline_id"], st["status_id"])}


def triggers(con: duckdb.DuckDBPyConnection, now: dt.datetime, stage_names: str = "") -> list[Trigger]:
    """The briefs due for events of the last `WINDOW_DAYS` days (delivery skips those already sent)."""
    since = now - dt.timedelta(days=WINDOW_DAYS)
    out = [Trigger("handover", int(r.lead_id), r.event_id, r.at, _str(r.manager), _str(r.from_manager))
           for r in con.execute(_HANDOVERS, {"since": since}).df().itertuples()]
    decisive = decisive_stages(con, stage_names)
    out += [Trigger("stage", int(r.lead_id), r.event_id, r.at, _str(r.manager), status_id=int(r.status_id))
            for r in con.execute(_STAGE_ENTRIES, {"since": since}).df().itertuples()
            if (int(r.pipeline_id), int(r.status_id)) in decisive]
    return out


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


# -- the brief ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Brief:
    trigger: Trigger
    title: str  # «Сделка «…» (Компания), 1 250 000 ₽, этап «…»»
    sections: tuple[Section, ...]


_LEAD = """
SELECT l.lead_id, l.name, coalesce(l.price, 0) AS price, l.company_id, c.name AS company, s.name AS stage,
       l.created_at, u.name AS manager
FROM crm_leads l
LEFT JOIN crm_companies c USING (company_id)
LEFT JOIN crm_statuses s ON s.pipeline_id = l.pipeline_id AND s.status_id = l.status_id
LEFT JOIN crm_users u ON u.user_id = l.responsible_user_id
WHERE l.lead_id = $lead
"""

_TASKS = """
SELECT task_id, text, complete_till, complete_till < $now AS overdue
FROM crm_tasks WHERE lead_id = $lead AND NOT coalesce(is_completed, false)
ORDER BY complete_till NULLS LAST, task_id
"""


class Insights:
    """What crmsum.insights and crmsum.retrieval know, loaded once per run and shared by its briefs."""

    def __init__(self, lake, settings) -> None:
        self.lake, self.settings = lake, settings
        self._report = None

    def report(self):
        if self._report is None:
            from crmsum.insights import report

            self._report = report(self.lake)
        return self._report


def build_brief(con: duckdb.DuckDBPyConnection, trigger: Trigger, now: dt.datetime,
                insights: Insights | None = None) -> Brief | None:
    """The brief of the trigger's deal, or None when the deal is not in the lake."""
    lead = con.execute(_LEAD, {"lead": trigger.lead_id}).df()
    if lead.empty:
        return None
    row = lead.iloc[0]
    records = _deal_records(con, row, now)
    extra = _insight_sections(insights, trigger.lead_id) if insights is not None else []
    sections = [s for s in (_agreed(records), _tasks(con, trigger.lead_id, now), _last_contact(records),
                            _objections(records), *extra) if s.points]
    company = f" ({row.company})" if isinstance(row.company, str) else ""
    title = f"Сделка «{row['name']}»{company}, {money(row.price)}, этап «{row.stage or '—'}»"
    return Brief(trigger, title, tuple(sections))


def _deal_records(con: duckdb.DuckDBPyConnection, row: pd.Series, now: dt.datetime) -> list[dict]:
    """The deal's notes, calls, completed tasks and events (the one record definition of summarize/)."""
    if pd.isna(row.company_id):
        return []
    start = pd.Timestamp(row.created_at).date()
    recs = records_for(con, start, now.date(), company=int(row.company_id))
    return [r for r in recs if r["lead_id"] == int(row.lead_id)]


def _points(records: list[dict], section: str, limit: int) -> list[Point]:
    picked = [k for k in key_points(records, limit=KEYPOINTS, per_section=limit) if k.section == section]
    return [Point("keypoint", k.text, {"at": k.ts}, (k.cite,)) for k in picked[:limit]]


def _agreed(records: list[dict]) -> Section:
    return Section("agreed", "О чём договорились", tuple(_points(records, "worked", 3)))


def _objections(records: list[dict]) -> Section:
    return Section("objections", "Возражения клиента", tuple(_points(records, "failed", 3)))


def _tasks(con: duckdb.DuckDBPyConnection, lead_id: int, now: dt.datetime) -> Section:
    df = con.execute(_TASKS, {"lead": lead_id, "now": now}).df()
    points = []
    for r in df.head(OPEN_TASKS).itertuples():
        when = f"до {pd.Timestamp(r.complete_till):%d.%m.%Y}" if pd.notna(r.complete_till) else "без срока"
        late = ", просрочена" if bool(r.overdue) else ""
        points.append(Point("open_task", f"«{r.text or 'без названия'}» — {when}{late}",
                            {"overdue": bool(r.overdue)}, (f"task:{r.task_id}",)))
    if len(df) > OPEN_TASKS:
        points.append(Point("open_task", f"и ещё открытых задач: {len(df) - OPEN_TASKS}", {"open": len(df)}))
    if df.empty:
        points.append(Point("open_task", "открытых задач нет — следующий шаг не назначен", {"open": 0}))
    return Section("tasks", "Открытые задачи и обещания", tuple(points))


def _last_contact(records: list[dict]) -> Section:
    touches = [r for r in records if r["kind"] in ("note", "call", "task")]
    if not touches:
        return Section("last_contact", "Последний контакт", (Point("fact", "касаний клиента в карточке нет"),))
    last = max(touches, key=lambda r: (r["ts"] or "", r["id"]))
    text = (last["text"] or "").strip().replace("\n", " ")
    text = text if len(text) <= 240 else text[:239] + "…"
    when = f"{dt.datetime.fromisoformat(last['ts']):%d.%m.%Y}: " if last["ts"] else ""
    return Section("last_contact", "Последний контакт",
                   (Point("last_contact", when + text, {"at": last["ts"]}, (last["id"],)),))


def _insight_sections(insights: Insights, lead_id: int) -> list[Section]:
    """The deal's risk (win probability and what lowers it) and what wins in similar deals."""
    return [s for s in (_risk(insights, lead_id), _what_wins(insights, lead_id)) if s is not None]


def _risk(insights: Insights, lead_id: int) -> Section | None:
    from crmsum.insights.present import risk_line

    rep = insights.report()
    risk = next((r for r in rep.risks if r.lead_id == lead_id), None)
    if risk is None or rep.model is None or rep.model.auc is None:
        return None
    base = Point("fact", f"Шанс — оценка модели, проверенной на {rep.model.validated_on} закрытых сделках "
                         f"(AUC {str(round(rep.model.auc, 2)).replace('.', ',')})",
                 {"auc": rep.model.auc, "validated_on": rep.model.validated_on})
    reasons = tuple(Point("risk_reason", r, {}, (f"lead:{lead_id}",)) for r in risk.reasons[1:3])
    return Section("risk", "Риск сделки", (Point("risk", risk_line(risk), risk.to_dict(), (f"lead:{lead_id}",),
                                                  lead_id), *reasons, base))


def _what_wins(insights: Insights, lead_id: int) -> Section | None:
    """Where this deal lacks what wins (significant drivers only) against the won deals of its pipeline,
    and how the closest past deals ended."""
    from crmsum.errors import CrmsumError
    from crmsum.insights import deal_vs_won
    from crmsum.ru import money as rub

    points: list[Point] = []
    significant = {d.feature for d in insights.report().drivers if d.significant}  # only proven patterns
    try:
        cmp = deal_vs_won(insights.lake, lead_id)
        points += [Point("gap", g.note, {"share_won": g.reference, "n_won": cmp.n_won})
                   for g in cmp.gaps if g.feature in significant][:3]
    except CrmsumError:
        pass
    try:
        from crmsum.retrieval import similar_deals

        for d in similar_deals(insights.lake, lead_id, k=3, settings=insights.settings):
            how = {"won": "выиграна", "lost": "проиграна"}.get(d.outcome or "", "в работе")
            why = f" ({d.loss_reason})" if d.outcome == "lost" and d.loss_reason else ""
            points.append(Point("similar", f"Похожая сделка «{d.name}» — {how}{why}, {rub(d.amount or 0)}",
                                {"score": round(d.score, 3), "outcome": d.outcome}, (f"lead:{d.lead_id}",), d.lead_id))
    except CrmsumError:  # no embeddings yet: the gaps above still say what wins
        pass
    return Section("what_wins", "Что выигрывает в похожих сделках", tuple(points)) if points else None
