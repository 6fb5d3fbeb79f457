"""The period's text records, each with a citable id, for key points and LLM prompts.

Record ids: `note:<note_id>`, `task:<task_id>`, `msg:<chat_id>:<message_id>`, `event:<event_id>`.
Attribution follows `crmsum.facts`: notes by author, tasks by assignee, won/lost events and the
company by the lead; chat by author, and for a company the messages that mention its name.

`records_for` fetches one scope and range; `all_period_records` fetches every (scope, key,
period) at once (set-based, for precompute).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd

from crmsum.facts import resolve_company, resolve_manager
from crmsum.facts_sql import LOST, WON, mention_ctes

MAX_TEXT = 800  # characters per record; longer notes are cut (key points are sentences anyway)
COLUMNS = ["id", "kind", "ts", "author", "lead_id", "text"]


def _records_sql(B, R) -> str:  # noqa: N803 - bucket and range SQL builders
    return f"""
    WITH users AS (SELECT user_id, any_value(name) AS m_key FROM crm_users GROUP BY user_id),
    leads AS (
        SELECT l.lead_id, l.name, l.company_id, l.status_id, l.loss_reason, u.m_key
        FROM crm_leads l LEFT JOIN users u ON u.user_id = l.responsible_user_id
        WHERE NOT coalesce(l.is_deleted, false)
    ),
    chat AS (
        SELECT m.chat_id, m.message_id, m.date AS ts, m.text, coalesce(ua.m_key, un.m_key, m.author) AS author,
               coalesce(ua.m_key, un.m_key) AS m_key
        FROM chat_messages m
        LEFT JOIN users ua ON ua.user_id = m.author_user_id
        LEFT JOIN users un ON un.m_key = m.author AND m.author_user_id IS NULL
        WHERE coalesce(m.kind, 'message') = 'message' AND length(trim(coalesce(m.text, ''))) > 0 AND {R('m.date')}
    ),
    recs AS (
        SELECT {B('n.created_at')} AS p, 'note:' || n.note_id AS id,
               CASE WHEN n.note_type IN ('call_in', 'call_out') THEN 'call' ELSE 'note' END AS kind,
               n.created_at AS ts, u.m_key AS author, u.m_key, l.company_id AS c_key, n.lead_id,
               CASE WHEN n.note_type = 'call_in' THEN 'Входящий звонок: '
                    WHEN n.note_type = 'call_out' THEN 'Исходящий звонок: ' ELSE '' END || n.text AS text
        FROM crm_notes n JOIN leads l USING (lead_id)
        LEFT JOIN users u ON u.user_id = CASE WHEN coalesce(n.created_by, 0) > 0 THEN n.created_by ELSE n.responsible_user_id END
        WHERE length(trim(coalesce(n.text, ''))) > 0 AND coalesce(n.note_type, 'common') <> 'service_message'
          AND {R('n.created_at')}
        UNION ALL
        SELECT {B('t.updated_at')}, 'task:' || t.task_id, 'task', t.updated_at, u.m_key, u.m_key, l.company_id, t.lead_id,
               'Задача «' || coalesce(t.text, '') || '» выполнена: ' || t.result_text
        FROM crm_tasks t JOIN leads l USING (lead_id) LEFT JOIN users u ON u.user_id = t.responsible_user_id
        WHERE t.is_completed AND length(trim(coalesce(t.result_text, ''))) > 0 AND {R('t.updated_at')}
        UNION ALL
        SELECT {B('e.created_at')}, 'event:' || e.event_id, 'event', e.created_at, l.m_key, l.m_key, l.company_id, e.lead_id,
               CASE WHEN e.status_after = {WON} THEN 'Сделка «' || coalesce(l.name, '') || '» выиграна.'
                    ELSE 'Сделка «' || coalesce(l.name, '') || '» проиграна'
                         || coalesce(', причина: ' || nullif(trim(l.loss_reason), ''), '') || '.' END
        FROM crm_events e JOIN leads l USING (lead_id)
        WHERE e.type = 'lead_status_changed' AND e.status_after IN ({WON}, {LOST}) AND {R('e.created_at')}
        UNION ALL
        SELECT {B('ts')}, 'msg:' || chat_id || ':' || message_id, 'msg', ts, author, m_key, CAST(NULL AS BIGINT), NULL, text
        FROM chat
    ),
    {mention_ctes()},
    chat_companies AS (
        SELECT {B('ch.ts')} AS p, 'msg:' || ch.chat_id || ':' || ch.message_id AS id, 'msg' AS kind, ch.ts,
               ch.author, ch.m_key, mn.company_id AS c_key, CAST(NULL AS BIGINT) AS lead_id, ch.text
        FROM chat ch JOIN mentions mn USING (chat_id, message_id)
    )"""


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    df["text"] = df["text"].str.slice(0, MAX_TEXT)
    df["lead_id"] = df["lead_id"].astype("Int64")
    return df


def all_period_records(con: duckdb.DuckDBPyConnection, period_kind: str, since: dt.date | None = None,
                       until: dt.date | None = None) -> pd.DataFrame:
    """Every record of every (scope, key, period) of one kind: scope, key, start + COLUMNS.

    `since` / `until` (exclusive): only records of that span, so precompute can fetch a few periods
    at a time instead of the whole history (give period boundaries: periods are then whole)."""
    def B(ts: str) -> str:
        return f"CAST(date_trunc('{period_kind}', {ts}) AS DATE)"

    def R(ts: str) -> str:
        return f"({ts} >= $s AND {ts} < $e)"

    params = {"s": dt.datetime.combine(since or dt.date.min, dt.time()),
              "e": dt.datetime.combine(until or dt.date.max, dt.time())}

    sql = _records_sql(B, R) + f"""
    SELECT 'manager' AS scope, m_key AS key, p AS start, {', '.join(COLUMNS)} FROM recs WHERE m_key IS NOT NULL
    UNION ALL
    SELECT 'company', CAST(c_key AS VARCHAR), p, {', '.join(COLUMNS)} FROM recs WHERE c_key IS NOT NULL
    UNION ALL
    SELECT 'company', CAST(c_key AS VARCHAR), p, {', '.join(COLUMNS)} FROM chat_companies
    UNION ALL
    SELECT 'team', 'team', p, {', '.join(COLUMNS)} FROM recs
    ORDER BY scope, key, start, ts, id
    """
    df = con.execute(sql, params).df()
    df["start"] = pd.to_datetime(df["start"]).dt.date
    return _clean(df)


def records_for(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, manager: str | int | None = None,
                company: str | int | None = None) -> list[dict[str, Any]]:
    """Records of one inclusive date range for a manager, a company, both or the team."""
    def B(ts: str) -> str:
        return "CAST($s AS DATE)"

    def R(ts: str) -> str:
        return f"({ts} >= $s AND {ts} < $e)"

    params: dict[str, Any] = {"s": dt.datetime.combine(start, dt.time()),
                              "e": dt.datetime.combine(end + dt.timedelta(days=1), dt.time())}
    where = []
    if manager is not None:
        params["m"] = resolve_manager(con, manager)
        where.append("m_key = $m")
    if company is not None:
        params["c"] = resolve_company(con, company)[0]
        where.append("c_key = $c")
    w = ("WHERE " + " AND ".join(where)) if where else ""
    src = "(SELECT * FROM recs WHERE kind <> 'msg' UNION ALL SELECT * FROM chat_companies)" if company is not None else "recs"
    sql = _records_sql(B, R) + f"SELECT DISTINCT {', '.join(COLUMNS)} FROM {src} {w} ORDER BY ts, id"
    return frame_to_records(_clean(con.execute(sql, params).df()))


def frame_to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows -> plain dicts with ISO timestamps (JSON- and hash-friendly)."""
    out = []
    for rid, kind, ts, author, lead_id, text in zip(df["id"], df["kind"], df["ts"], df["author"], df["lead_id"], df["text"]):
        out.append({"id": rid, "kind": kind, "ts": pd.Timestamp(ts).isoformat(timespec="minutes") if pd.notna(ts) else None,
                    "author": author if isinstance(author, str) else None,
                    "lead_id": int(lead_id) if pd.notna(lead_id) else None, "text": text or ""})
    return out
