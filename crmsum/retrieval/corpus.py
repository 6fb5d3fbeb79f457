"""The records that get a vector, one row each, by SQL over the lake.

Ids and texts follow `crmsum.summarize.records` (the citation ids the summaries use):
`note:<note_id>` (kind `call` for call notes, text prefixed «Входящий/Исходящий звонок: »),
`task:<task_id>` («Задача «…»», plus « выполнена: <result>» once done), `msg:<chat_id>:<message_id>`
(team chat), and `lead:<lead_id>` (kind `deal`: the deal's title, used by `similar_deals`).
Attribution: notes by author, tasks by assignee, chat by author, deals by the responsible manager;
the company is the lead's, or for chat the first company the message mentions.
Service notes, service messages, empty texts and deleted deals have no vector.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from crmsum.facts_sql import mention_ctes

MAX_TEXT = 2000  # characters kept and embedded per record
COLUMNS = ["record_id", "kind", "lead_id", "company_id", "manager", "created_at", "text"]


def corpus_sql() -> str:
    return rf"""
    WITH users AS (SELECT user_id, any_value(name) AS m_key FROM crm_users GROUP BY user_id),
    leads AS (
        SELECT lead_id, name, company_id, responsible_user_id, created_at FROM crm_leads
        WHERE NOT coalesce(is_deleted, false)
    ),
    chat AS (
        SELECT m.chat_id, m.message_id, m.date, m.text, coalesce(ua.m_key, m.author) AS manager
        FROM chat_messages m LEFT JOIN users ua ON ua.user_id = m.author_user_id
        WHERE coalesce(m.kind, 'message') = 'message' AND length(trim(coalesce(m.text, ''))) > 0
    ),
    {mention_ctes()},
    first_mention AS (SELECT chat_id, message_id, min(company_id) AS company_id FROM mentions GROUP BY ALL)
    SELECT 'note:' || n.note_id AS record_id,
           CASE WHEN n.note_type IN ('call_in', 'call_out') THEN 'call' ELSE 'note' END AS kind,
           n.lead_id, l.company_id, u.m_key AS manager, n.created_at,
           CASE WHEN n.note_type = 'call_in' THEN 'Входящий звонок: '
                WHEN n.note_type = 'call_out' THEN 'Исходящий звонок: ' ELSE '' END || n.text AS text
    FROM crm_notes n JOIN leads l USING (lead_id)
    LEFT JOIN users u ON u.user_id = CASE WHEN coalesce(n.created_by, 0) > 0 THEN n.created_by ELSE n.responsible_user_id END
    WHERE length(trim(coalesce(n.text, ''))) > 0 AND coalesce(n.note_type, 'common') <> 'service_message'
    UNION ALL
    SELECT 'task:' || t.task_id, 'task', t.lead_id, l.company_id, u.m_key,
           CASE WHEN t.is_completed THEN coalesce(t.updated_at, t.created_at) ELSE t.created_at END,
           'Задача «' || coalesce(t.text, '') || '»'
           || CASE WHEN t.is_completed AND length(trim(coalesce(t.result_text, ''))) > 0
                   THEN ' выполнена: ' || t.result_text ELSE '' END
    FROM crm_tasks t JOIN leads l USING (lead_id) LEFT JOIN users u ON u.user_id = t.responsible_user_id
    WHERE length(trim(coalesce(t.text, '') || coalesce(t.result_text, ''))) > 0
    UNION ALL
    SELECT 'msg:' || c.chat_id || ':' || c.message_id, 'msg', CAST(NULL AS BIGINT), fm.company_id, c.manager, c.date, c.text
    FROM chat c LEFT JOIN first_mention fm USING (chat_id, message_id)
    UNION ALL
    SELECT 'lead:' || l.lead_id, 'deal', l.lead_id, l.company_id, u.m_key, l.created_at, l.name
    FROM leads l LEFT JOIN users u ON u.user_id = l.responsible_user_id
    WHERE length(trim(coalesce(l.name, ''))) > 0
    """


def corpus(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every embeddable record with its metadata and `text_hash` (md5 of the text as embedded)."""
    sql = (f"SELECT *, md5(text) AS text_hash FROM (SELECT record_id, kind, lead_id, company_id, manager, created_at, "
           f"left(text, {MAX_TEXT}) AS text FROM ({corpus_sql()})) ORDER BY record_id")
    df = con.execute(sql).df()
    for c in ("lead_id", "company_id"):
        df[c] = df[c].astype("Int64")
    return df
