"""`deal_features`: one row per lead, derived from the raw history by SQL, as of a moment with no leakage.

As-of rule (why): a closed deal's features describe it as it stood `GUARD_MINUTES` before `closed_at`;
the outcome is written down at the close («Оплата поступила», «тендер выиграл …», the chat's «Закрыли …»),
and those records must not explain the outcome they report. Phrases, which would pick up how the outcome
is worded, stop a whole day earlier (`PHRASE_GUARD_HOURS`). (A day-long guard for everything was tried:
it drops real last-day meetings of quickly lost deals and inflates the meeting effect by 3–4 points on
the 10x sample account.) An open deal is described
as of `as_of` (default: the newest record in the lake). The numbers are SQL (DuckDB); the text facts
(meetings, proposal, discount) and the phrase terms come from `text_facts` / `phrases`, and are re-read
only for leads whose text inputs changed (`text_hash`), so a nightly run touches what changed.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from crmsum.facts_sql import LOST, WON, mention_ctes
from crmsum.insights.phrases import terms
from crmsum.insights.text_facts import NONE, task_facts, text_facts

GUARD_MINUTES = 60  # facts and numbers: the closing hour (the outcome note, the status change) is left out
PHRASE_GUARD_HOURS = 24  # phrases: the closing day is left out (how people word the outcome that day)
TEXT_COLS = ["meetings_held", "proposal_sent", "discount_offered", "discount_pct", "terms"]


def lake_as_of(con: duckdb.DuckDBPyConnection) -> dt.datetime:
    """The newest moment the lake knows about (so analyses of an old export are not 'now'-dependent)."""
    row = con.execute("""SELECT max(ts) FROM (
        SELECT max(created_at) AS ts FROM crm_events UNION ALL SELECT max(created_at) FROM crm_notes
        UNION ALL SELECT max(updated_at) FROM crm_leads UNION ALL SELECT max(updated_at) FROM crm_tasks)""").fetchone()
    return row[0] if row and row[0] else dt.datetime.now().replace(microsecond=0)


def _base_ctes() -> str:
    return f"""
    users AS (SELECT user_id, any_value(name) AS name FROM crm_users GROUP BY user_id),
    leads AS (
        SELECT l.lead_id, l.name, u.name AS manager, l.company_id, l.pipeline_id, l.status_id,
               CASE WHEN l.status_id = {WON} THEN 'won' WHEN l.status_id = {LOST} THEN 'lost' ELSE 'open' END AS outcome,
               coalesce(l.price, 0) AS amount, l.created_at,
               CASE WHEN l.status_id IN ({WON}, {LOST}) THEN coalesce(l.closed_at, l.updated_at) END AS closed_at
        FROM crm_leads l LEFT JOIN users u ON u.user_id = l.responsible_user_id
        WHERE NOT coalesce(l.is_deleted, false) AND l.created_at IS NOT NULL
    ),
    cut AS (
        SELECT *, CASE WHEN closed_at IS NULL THEN CAST($as_of AS TIMESTAMP)
                       ELSE greatest(created_at, closed_at - INTERVAL {GUARD_MINUTES} MINUTE) END AS cutoff,
               CASE WHEN closed_at IS NULL THEN CAST($as_of AS TIMESTAMP)
                    ELSE greatest(created_at, closed_at - INTERVAL {PHRASE_GUARD_HOURS} HOUR) END AS phrase_cutoff
        FROM leads
    ),
    chat AS (SELECT chat_id, message_id, date AS ts, text, author_user_id FROM chat_messages
             WHERE coalesce(kind, 'message') = 'message'),
    {mention_ctes()},
    chat_lead AS (  -- a chat message mentioning the lead's company while the lead was alive (before its cutoff)
        SELECT mn.chat_id, mn.message_id, ch.ts, ch.text, c.lead_id,
               count(*) OVER (PARTITION BY mn.chat_id, mn.message_id) AS n_leads
        FROM mentions mn JOIN chat ch USING (chat_id, message_id)
        JOIN cut c ON c.company_id = mn.company_id AND ch.ts >= c.created_at AND ch.ts <= c.cutoff
    )"""


NUMBERS_SQL = """
WITH {ctes},
notes_agg AS (
    SELECT n.lead_id,
           count(*) FILTER (WHERE n.note_type IN ('call_in', 'call_out')) AS calls,
           sum(CASE WHEN n.note_type IN ('call_in', 'call_out') THEN coalesce(n.call_duration, 0) ELSE 0 END) / 60.0 AS call_minutes,
           count(*) FILTER (WHERE n.note_type = 'common' AND coalesce(n.created_by, 0) > 0) AS notes
    FROM crm_notes n JOIN cut c USING (lead_id) WHERE n.created_at <= c.cutoff GROUP BY 1
),
touches AS (  -- outgoing touches by the team: call, note, message, completed task
    SELECT lead_id, created_at AS ts FROM crm_notes
    WHERE coalesce(created_by, 0) > 0 AND note_type IN ('common', 'call_out', 'sms_out')
    UNION ALL SELECT lead_id, updated_at FROM crm_tasks WHERE is_completed
),
first_touch AS (
    SELECT t.lead_id, min(t.ts) AS first_ts FROM touches t JOIN cut c USING (lead_id)
    WHERE t.ts <= c.cutoff GROUP BY 1
),
moves AS (
    SELECT e.lead_id, e.created_at AS ts, e.status_after FROM crm_events e JOIN cut c USING (lead_id)
    WHERE e.type = 'lead_status_changed' AND e.created_at <= c.cutoff AND e.status_after NOT IN ({won}, {lost})
),
moves_agg AS (SELECT lead_id, count(*) AS stage_changes, arg_max(status_after, ts) AS stage_id, max(ts) AS stage_since
              FROM moves GROUP BY 1),
hand AS (
    SELECT e.lead_id, count(*) AS handovers FROM crm_events e JOIN cut c USING (lead_id)
    WHERE e.type = 'entity_responsible_changed' AND e.created_at <= c.cutoff GROUP BY 1
),
tasks_agg AS (
    SELECT t.lead_id,
           count(*) FILTER (WHERE t.created_at <= c.cutoff AND t.complete_till < c.cutoff
                            AND (NOT coalesce(t.is_completed, false) OR t.updated_at > t.complete_till)) AS tasks_overdue,
           count(*) FILTER (WHERE t.created_at <= c.cutoff AND t.complete_till >= c.cutoff
                            AND (NOT coalesce(t.is_completed, false) OR t.updated_at > c.cutoff)) AS next_tasks
    FROM crm_tasks t JOIN cut c USING (lead_id) GROUP BY 1
),
act AS (
    SELECT lead_id, created_at AS ts FROM crm_notes WHERE coalesce(created_by, 0) > 0
    UNION ALL SELECT lead_id, created_at FROM crm_tasks
    UNION ALL SELECT lead_id, updated_at FROM crm_tasks WHERE is_completed
    UNION ALL SELECT lead_id, created_at FROM crm_events WHERE type = 'lead_status_changed'
),
last_act AS (SELECT a.lead_id, max(a.ts) AS last_ts FROM act a JOIN cut c USING (lead_id) WHERE a.ts <= c.cutoff GROUP BY 1),
chat_agg AS (SELECT lead_id, count(*) AS chat_mentions FROM chat_lead GROUP BY 1)
SELECT c.lead_id, c.name, c.manager, c.company_id, c.pipeline_id, c.outcome, c.amount, c.created_at, c.closed_at,
       c.cutoff AS as_of,
       CASE WHEN c.closed_at IS NOT NULL THEN date_diff('second', c.created_at, c.closed_at) / 86400.0 END AS cycle_days,
       CASE WHEN f.first_ts IS NOT NULL THEN greatest(0, date_diff('second', c.created_at, f.first_ts) // 60) END
           AS first_response_minutes,
       coalesce(n.calls, 0) AS calls, coalesce(n.call_minutes, 0.0) AS call_minutes, coalesce(n.notes, 0) AS notes,
       coalesce(t.tasks_overdue, 0) AS tasks_overdue, coalesce(t.next_tasks, 0) AS next_tasks,
       coalesce(m.stage_changes, 0) AS stage_changes,
       coalesce(m.stage_id, CASE WHEN c.status_id NOT IN ({won}, {lost}) THEN c.status_id END) AS stage_id,
       date_diff('second', coalesce(m.stage_since, c.created_at), c.cutoff) / 86400.0 AS stage_days,
       date_diff('second', greatest(coalesce(la.last_ts, c.created_at), c.created_at), c.cutoff) / 86400.0
           AS days_since_activity,
       coalesce(h.handovers, 0) AS handovers, coalesce(ch.chat_mentions, 0) AS chat_mentions
FROM cut c
LEFT JOIN notes_agg n USING (lead_id) LEFT JOIN first_touch f USING (lead_id) LEFT JOIN moves_agg m USING (lead_id)
LEFT JOIN hand h USING (lead_id) LEFT JOIN tasks_agg t USING (lead_id) LEFT JOIN last_act la USING (lead_id)
LEFT JOIN chat_agg ch USING (lead_id)
ORDER BY c.lead_id
"""

TEXT_SQL = """
WITH {ctes},
texts AS (
    SELECT n.lead_id, 'note' AS kind, n.note_id AS rid, n.created_at AS ts, n.text, CAST(NULL AS VARCHAR) AS result,
           CAST(NULL AS BIGINT) AS task_type_id, false AS completed
    FROM crm_notes n JOIN cut c USING (lead_id)
    WHERE n.created_at <= c.cutoff AND coalesce(n.created_by, 0) > 0 AND n.note_type IN ('common', 'sms_out')
          AND n.text IS NOT NULL
    UNION ALL
    SELECT t.lead_id, 'task', t.task_id, coalesce(CASE WHEN t.is_completed THEN t.updated_at END, t.created_at), t.text,
           CASE WHEN t.is_completed AND t.updated_at <= c.cutoff THEN t.result_text END, t.task_type_id,
           coalesce(t.is_completed AND t.updated_at <= c.cutoff, false)
    FROM crm_tasks t JOIN cut c USING (lead_id) WHERE t.created_at <= c.cutoff
    UNION ALL
    SELECT lead_id, 'msg', message_id, ts, text, NULL, NULL, false FROM chat_lead WHERE n_leads = 1 AND text <> ''
    UNION ALL
    SELECT e.lead_id, 'stage', NULL, e.created_at, s.name, NULL, NULL, false
    FROM crm_events e JOIN cut c USING (lead_id)
    JOIN crm_statuses s ON s.status_id = e.status_after AND s.pipeline_id = coalesce(e.pipeline_after, c.pipeline_id)
    WHERE e.type = 'lead_status_changed' AND e.created_at <= c.cutoff AND e.status_after NOT IN ({won}, {lost})
)
SELECT t.*, t.ts <= c.phrase_cutoff AS for_terms FROM texts t JOIN cut c USING (lead_id) {where}
ORDER BY lead_id, ts, kind, rid
"""

HASH_SQL = """
WITH {ctes},
keys AS (
    SELECT n.lead_id, concat_ws('|', 'n', n.note_id, n.text) AS k FROM crm_notes n JOIN cut c USING (lead_id)
    WHERE n.created_at <= c.cutoff AND coalesce(n.created_by, 0) > 0 AND n.note_type IN ('common', 'sms_out')
    UNION ALL
    SELECT t.lead_id, concat_ws('|', 't', t.task_id, t.text, t.task_type_id,
                                CASE WHEN t.is_completed AND t.updated_at <= c.cutoff THEN coalesce(t.result_text, '+') END)
    FROM crm_tasks t JOIN cut c USING (lead_id) WHERE t.created_at <= c.cutoff
    UNION ALL SELECT lead_id, concat_ws('|', 'm', chat_id, message_id, n_leads, text) FROM chat_lead
    UNION ALL
    SELECT e.lead_id, concat_ws('|', 's', e.event_id, e.status_after) FROM crm_events e JOIN cut c USING (lead_id)
    WHERE e.type = 'lead_status_changed' AND e.created_at <= c.cutoff
)
SELECT c.lead_id, md5(concat_ws('|', c.phrase_cutoff, coalesce(string_agg(k.k, chr(31) ORDER BY k.k), ''))) AS text_hash
FROM cut c LEFT JOIN keys k USING (lead_id) GROUP BY c.lead_id, c.phrase_cutoff
"""


def _sql(template: str, where: str = "") -> str:
    return template.format(ctes=_base_ctes(), won=WON, lost=LOST, where=where)


def numbers(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """The SQL-derived columns of every lead (cheap: one query over the lake)."""
    return con.execute(_sql(NUMBERS_SQL), {"as_of": as_of}).df()


def text_hashes(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    return con.execute(_sql(HASH_SQL), {"as_of": as_of}).df()


def text_records(con: duckdb.DuckDBPyConnection, as_of: dt.datetime, lead_ids: list[int] | None = None) -> pd.DataFrame:
    """The texts behind the text features (notes, tasks, chat attributed to exactly one deal, stages)."""
    where = ""
    if lead_ids is not None:
        con.register("_insights_ids", pd.DataFrame({"lead_id": pd.Series(lead_ids, dtype="int64")}))
        where = "WHERE t.lead_id IN (SELECT lead_id FROM _insights_ids)"
    try:
        return con.execute(_sql(TEXT_SQL, where), {"as_of": as_of}).df()
    finally:
        if lead_ids is not None:
            con.unregister("_insights_ids")


def text_features(records: pd.DataFrame) -> pd.DataFrame:
    """Per lead: meetings held (distinct days with a reported meeting), proposal sent, discount offered and
    its size, and the set of phrase terms. Each distinct text is analysed once."""
    cols = ["lead_id", *TEXT_COLS]
    if records.empty:
        return pd.DataFrame(columns=cols)
    recs = records.copy()
    recs["text"] = recs["text"].fillna("")
    facts = []
    for kind, text, result, ttype, done in zip(recs["kind"], recs["text"], recs["result"], recs["task_type_id"],
                                               recs["completed"]):
        if kind == "task":
            f = task_facts(text, result if isinstance(result, str) else None,
                           None if pd.isna(ttype) else int(ttype), bool(done))
        elif kind == "stage":
            f = text_facts(text)
            f = NONE if not f.proposal else type(f)(proposal=True)
        else:
            f = text_facts(text)
        facts.append(f)
    recs["meeting"] = [f.meeting for f in facts]
    recs["proposal"] = [f.proposal for f in facts]
    recs["discount"] = [f.discount for f in facts]
    recs["pct"] = [f.discount_pct for f in facts]
    recs["day"] = pd.to_datetime(recs["ts"]).dt.date
    recs["terms"] = [terms(t) if k != "stage" and early else ()
                     for k, t, early in zip(recs["kind"], recs["text"], recs["for_terms"])]
    g = recs.groupby("lead_id", sort=True)
    out = pd.DataFrame({
        "meetings_held": recs[recs["meeting"]].groupby("lead_id")["day"].nunique(),
        "proposal_sent": g["proposal"].any(),
        "discount_offered": g["discount"].any(),
        "discount_pct": recs[recs["discount"]].groupby("lead_id")["pct"].max(),
        "terms": g["terms"].agg(lambda s: sorted({t for ts in s for t in ts})),
    })
    out["meetings_held"] = out["meetings_held"].fillna(0).astype("int64")
    return out.reset_index().rename(columns={"index": "lead_id"})


def compute(con: duckdb.DuckDBPyConnection, as_of: dt.datetime | None = None,
            previous: pd.DataFrame | None = None) -> tuple[pd.DataFrame, int]:
    """All leads' features; text is re-read only for leads whose `text_hash` differs from `previous`.

    Returns (features, number of leads whose text was recomputed)."""
    as_of = as_of or lake_as_of(con)
    nums = numbers(con, as_of)
    hashes = text_hashes(con, as_of)
    nums = nums.merge(hashes, on="lead_id", how="left")
    keep = pd.DataFrame(columns=["lead_id", *TEXT_COLS])
    changed = nums["lead_id"].tolist()
    if previous is not None and not previous.empty and "text_hash" in previous:
        prev = previous[["lead_id", "text_hash", *TEXT_COLS]]
        same = nums[["lead_id", "text_hash"]].merge(prev, on=["lead_id", "text_hash"], how="inner")
        keep = same.drop(columns=["text_hash"])
        changed = sorted(set(nums["lead_id"]) - set(keep["lead_id"]))
    fresh = text_features(text_records(con, as_of, changed)) if changed else pd.DataFrame(columns=keep.columns)
    text = pd.concat([keep, fresh], ignore_index=True) if len(keep) else fresh
    out = nums.merge(text, on="lead_id", how="left")
    out["meetings_held"] = out["meetings_held"].fillna(0).astype("int64")
    for col in ("proposal_sent", "discount_offered"):
        out[col] = out[col].astype("boolean").fillna(False).astype(bool)
    out["terms"] = [t if isinstance(t, (list, tuple)) or hasattr(t, "__len__") and not isinstance(t, str) else []
                    for t in out["terms"]]
    out["terms"] = [list(t) for t in out["terms"]]
    return out, len(changed)
