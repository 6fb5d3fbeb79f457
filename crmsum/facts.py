"""Facts by SQL: the one query layer behind summaries, digests and the bot.

Two entry points share the same SQL (built by `_facts_sql`), so a number in a digest, a
precomputed summary and a live bot answer is always computed the same way:

- `all_period_facts(con, "week" | "month")` computes every (scope, key, period) at once with
  GROUPING SETS — one scan of the lake, no per-key loops (precompute at scale);
- `facts_for(con, scope, key, start, end)` / `facts_query(con, start, end, manager=, company=)`
  compute one arbitrary date range (the bot asks arbitrary periods), optionally for a manager AND
  a company together.

Attribution (documented choices):
- deal outcomes (created, won, lost, amounts), stage moves and open/stalled deals count for the
  lead's *current* responsible manager (`crm_leads.responsible_user_id`) and the lead's company;
  won = status 142, lost = 143 in every pipeline; a close counts in the period of `closed_at`
  (falling back to `updated_at` when the close time is missing);
- notes and calls count for their author (`created_by`, falling back to the note's responsible
  user for system notes);
- tasks count for their assignee (`crm_tasks.responsible_user_id`); a task is *done* in the period
  its completion (`updated_at`) falls in; *overdue* in the period its deadline falls in when the
  deadline has passed and it was not completed by then;
- "deals touched" = distinct leads with any activity in the period (lead created or closed, an
  event, a note, a task created or completed), attributed as above (events by their author, or
  the responsible manager for system events);
- chat activity counts for the author (pseudonym = `crm_users.name`, or `author_user_id`);
  for a company it counts the chat messages that mention the company's name;
- time in stage = days between a lead's consecutive `lead_status_changed` events (the first one
  measured from the lead's creation), reported as a median over the moves made in the period;
- open deals = not won/lost at the period's end (created before it, closed after it or never),
  shown with their stage *as of the period's end* (the last `lead_status_changed` before the end;
  else the stage the first later change left; else, without status events, the current stage);
  stalled = open with no activity in the last `STALL_DAYS` days before the period's end;
- won / lost deals: the `DEALS_N` largest closes of the period, each with the id of its
  `lead_status_changed` event to 142 / 143 (for citations) and, for lost deals, the reason;
  loss reasons are listed in full (there are few).

Managers are keyed by pseudonym (crm_users.name), companies by company_id (as a string; label =
company name), the whole team by "team".
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:  # pandas loads in ~0.3 s; the answer path's period helpers must not pay for it
    import pandas as pd

from crmsum.errors import CrmsumError
from crmsum.ru import COMPANY_KIND_WORDS, LEGAL_FORMS
from crmsum.ru import now as _now

WON, LOST = 142, 143
STALL_DAYS = 14
TOP_N = 3
DEALS_N = 5  # won / lost deals listed per summary (largest first)
TEAM_KEY = "team"
TEAM_LABEL = "Команда"
SCOPES = ("manager", "company", "team")
PERIOD_KINDS = ("week", "month")

# Counting metrics (integers) and their meaning; the order is the order of the facts dict.
INT_METRICS = [
    "deals_touched", "deals_created", "deals_won", "deals_lost", "stage_moves",
    "tasks_done", "tasks_overdue", "calls", "calls_in", "calls_out", "notes", "chat_messages",
    "open_deals_count", "stalled_count",
]
AMOUNT_METRICS = ["created_amount", "won_amount", "lost_amount", "open_amount"]


class FactsError(CrmsumError, ValueError):
    """A facts request that cannot be answered (unknown manager/company, bad period)."""


# -- periods ----------------------------------------------------------------------------------
def period_label(kind: str, day: dt.date) -> str:
    """'2024-W12' for a week, '2024-03' for a month."""
    if kind == "week":
        y, w, _ = day.isocalendar()
        return f"{y}-W{w:02d}"
    if kind == "month":
        return f"{day.year}-{day.month:02d}"
    raise FactsError(f"period kind must be week or month, got {kind!r}")


def period_bounds(kind: str, label: str) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of '2024-W12' or '2024-03'."""
    try:
        if kind == "week":
            y, w = label.split("-W")
            start = dt.date.fromisocalendar(int(y), int(w), 1)
            return start, start + dt.timedelta(days=6)
        if kind == "month":
            y, m = (int(x) for x in label.split("-"))
            start = dt.date(y, m, 1)
            nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
            return start, nxt - dt.timedelta(days=1)
    except ValueError:
        pass
    raise FactsError(f"bad {kind} period {label!r} (expected YYYY-Www or YYYY-MM)")


# -- SQL --------------------------------------------------------------------------------------


def mention_ctes() -> str:
    """CTEs `company_keys` and `mentions(chat_id, message_id, company_id)` over a CTE `chat`.

    A message mentions a company when one of its words starts with the stem of the company's key
    word (its longest word of 4+ letters, legal forms skipped; the stem drops the last letter of
    words of 6+ letters so «по Теххренмашу» matches «Теххренмаш»). An equi-join on the first four
    letters keeps this a hash join instead of messages x companies substring scans.
    """
    forms = ", ".join(f"'{f}'" for f in sorted(LEGAL_FORMS | COMPANY_KIND_WORDS))
    return rf"""company_keys AS (
        SELECT company_id, CASE WHEN length(w) >= 6 THEN left(w, length(w) - 1) ELSE w END AS stem
        FROM (
            SELECT company_id, w, row_number() OVER (PARTITION BY company_id ORDER BY length(w) DESC, w) AS rn
            FROM (SELECT company_id, unnest(regexp_split_to_array(lower(coalesce(name, '')), '[^\p{{L}}\p{{N}}]+')) AS w
                  FROM crm_companies)
            WHERE length(w) >= 4 AND w NOT IN ({forms})
        ) WHERE rn = 1
    ),
    chat_words AS (
        SELECT DISTINCT chat_id, message_id, w FROM (
            SELECT chat_id, message_id, unnest(regexp_split_to_array(lower(coalesce(text, '')), '[^\p{{L}}\p{{N}}]+')) AS w
            FROM chat) WHERE length(w) >= 4
    ),
    mentions AS (
        SELECT DISTINCT cw.chat_id, cw.message_id, ck.company_id
        FROM chat_words cw JOIN company_keys ck ON left(cw.w, 4) = left(ck.stem, 4) AND starts_with(cw.w, ck.stem)
    )"""


def _facts_sql(kind: str | None, filtered: bool, manager: bool, company: bool) -> tuple[str, str, str]:
    """Return (base CTEs, main aggregate, side aggregates) SQL for a period kind or a range.

    kind=None is range mode: one bucket [$start, $end) (params $start, $end as timestamps,
    $p as the bucket date); manager/company add WHERE filters on $m / $c.
    """
    if kind is None:
        def B(ts: str) -> str:
            return "CAST($p AS DATE)"

        def R(ts: str) -> str:
            return f"({ts} >= $start AND {ts} < $end)"
        pend = "CAST($end AS TIMESTAMP)"
    else:
        def B(ts: str) -> str:
            return f"CAST(date_trunc('{kind}', {ts}) AS DATE)"

        def R(ts: str) -> str:
            return f"({ts} IS NOT NULL)"
        pend = f"CAST(p + INTERVAL 1 {kind} AS TIMESTAMP)"

    base = f"""
    users AS (SELECT user_id, any_value(name) AS m_key FROM crm_users GROUP BY user_id),
    leads AS (
        SELECT l.lead_id, l.name, coalesce(l.price, 0) AS price, l.status_id, l.pipeline_id,
               l.loss_reason, l.company_id, l.created_at, u.m_key,
               CASE WHEN l.status_id IN ({WON}, {LOST}) THEN coalesce(l.closed_at, l.updated_at) END AS close_ts,
               l.responsible_user_id AS resp
        FROM crm_leads l LEFT JOIN users u ON u.user_id = l.responsible_user_id
        WHERE NOT coalesce(l.is_deleted, false)
    ),
    moves AS (
        SELECT e.event_id, e.lead_id, e.created_at AS ts, e.created_by, e.status_before, e.status_after,
               date_diff('second', coalesce(lag(e.created_at) OVER w, l.created_at), e.created_at) / 86400.0 AS stage_days
        FROM crm_events e JOIN leads l USING (lead_id)
        WHERE e.type = 'lead_status_changed'
        WINDOW w AS (PARTITION BY e.lead_id ORDER BY e.created_at, e.event_id)
    ),
    activity AS (
        SELECT lead_id, created_at AS ts, resp AS uid FROM leads
        UNION ALL SELECT lead_id, close_ts, resp FROM leads WHERE close_ts IS NOT NULL
        UNION ALL SELECT e.lead_id, e.created_at, CASE WHEN coalesce(e.created_by, 0) > 0 THEN e.created_by ELSE l.resp END
            FROM crm_events e JOIN leads l USING (lead_id)
        UNION ALL SELECT lead_id, created_at, CASE WHEN coalesce(created_by, 0) > 0 THEN created_by ELSE responsible_user_id END
            FROM crm_notes
        UNION ALL SELECT lead_id, created_at, responsible_user_id FROM crm_tasks
        UNION ALL SELECT lead_id, updated_at, responsible_user_id FROM crm_tasks WHERE is_completed
    ),
    chat AS (
        SELECT m.chat_id, m.message_id, m.date AS ts, m.text,
               coalesce(ua.m_key, un.m_key) AS m_key
        FROM chat_messages m
        LEFT JOIN users ua ON ua.user_id = m.author_user_id
        LEFT JOIN users un ON un.m_key = m.author AND m.author_user_id IS NULL
        WHERE coalesce(m.kind, 'message') = 'message' AND {R('m.date')}
    ),
    {mention_ctes()},
    base AS (
        SELECT {B('created_at')} AS p, m_key, company_id AS c_key, lead_id AS created_lead, price AS created_amount
        FROM leads WHERE {R('created_at')}
        UNION ALL BY NAME
        SELECT {B('close_ts')} AS p, m_key, company_id AS c_key,
               CASE WHEN status_id = {WON} THEN lead_id END AS won_lead,
               CASE WHEN status_id = {WON} THEN price END AS won_amount,
               CASE WHEN status_id = {LOST} THEN lead_id END AS lost_lead,
               CASE WHEN status_id = {LOST} THEN price END AS lost_amount
        FROM leads WHERE close_ts IS NOT NULL AND {R('close_ts')}
        UNION ALL BY NAME
        SELECT {B('mv.ts')} AS p, l.m_key, l.company_id AS c_key, mv.event_id AS move_id, mv.stage_days
        FROM moves mv JOIN leads l USING (lead_id) WHERE {R('mv.ts')}
        UNION ALL BY NAME
        SELECT {B('a.ts')} AS p, u.m_key, l.company_id AS c_key, a.lead_id AS touched_lead
        FROM activity a JOIN leads l USING (lead_id) LEFT JOIN users u ON u.user_id = a.uid
        WHERE {R('a.ts')}
        UNION ALL BY NAME
        SELECT {B('n.created_at')} AS p, u.m_key, l.company_id AS c_key,
               CASE WHEN n.note_type IN ('call_in', 'call_out') THEN 1 ELSE 0 END AS call,
               CASE WHEN n.note_type = 'call_in' THEN 1 ELSE 0 END AS call_in,
               CASE WHEN n.note_type = 'call_out' THEN 1 ELSE 0 END AS call_out,
               CASE WHEN n.note_type IN ('call_in', 'call_out') THEN coalesce(n.call_duration, 0) ELSE 0 END AS call_seconds,
               CASE WHEN n.note_type = 'common' THEN 1 ELSE 0 END AS note
        FROM crm_notes n JOIN leads l USING (lead_id)
        LEFT JOIN users u ON u.user_id = CASE WHEN coalesce(n.created_by, 0) > 0 THEN n.created_by ELSE n.responsible_user_id END
        WHERE {R('n.created_at')}
        UNION ALL BY NAME
        SELECT {B('t.updated_at')} AS p, u.m_key, l.company_id AS c_key, 1 AS task_done
        FROM crm_tasks t JOIN leads l USING (lead_id) LEFT JOIN users u ON u.user_id = t.responsible_user_id
        WHERE t.is_completed AND {R('t.updated_at')}
        UNION ALL BY NAME
        SELECT {B('t.complete_till')} AS p, u.m_key, l.company_id AS c_key, 1 AS task_overdue
        FROM crm_tasks t JOIN leads l USING (lead_id) LEFT JOIN users u ON u.user_id = t.responsible_user_id
        WHERE {R('t.complete_till')} AND t.complete_till < $now
          AND (NOT coalesce(t.is_completed, false) OR t.updated_at > t.complete_till)
        UNION ALL BY NAME
        SELECT {B('ts')} AS p, m_key, CAST(NULL AS BIGINT) AS c_key, 1 AS chat_msg FROM chat
        UNION ALL BY NAME
        SELECT {B('ch.ts')} AS p, ch.m_key, mn.company_id AS c_key, 1 AS chat_company
        FROM chat ch JOIN mentions mn USING (chat_id, message_id)
    )"""
    where = []
    if manager:
        where.append("m_key = $m")
    if company:
        where.append("c_key = $c")
    wsql = ("WHERE " + " AND ".join(where)) if where else ""
    if filtered:
        sets = "GROUPING SETS ((p))"
    else:
        sets = "GROUPING SETS ((p, m_key), (p, c_key), (p))"
    scope_cols = """
        CASE WHEN GROUPING(m_key) = 0 THEN 'manager' WHEN GROUPING(c_key) = 0 THEN 'company' ELSE 'team' END AS scope,
        CASE WHEN GROUPING(m_key) = 0 THEN m_key WHEN GROUPING(c_key) = 0 THEN CAST(c_key AS VARCHAR) ELSE 'team' END AS key"""
    if filtered:
        scope_cols = "'team' AS scope, 'team' AS key"
    having = "HAVING NOT ((GROUPING(m_key) = 0 AND m_key IS NULL) OR (GROUPING(c_key) = 0 AND c_key IS NULL))"
    main = f"""
    SELECT p, {scope_cols},
        count(DISTINCT touched_lead) AS deals_touched,
        count(DISTINCT created_lead) AS deals_created,
        coalesce(sum(created_amount), 0) AS created_amount,
        count(DISTINCT won_lead) AS deals_won,
        coalesce(sum(won_amount), 0) AS won_amount,
        count(DISTINCT lost_lead) AS deals_lost,
        coalesce(sum(lost_amount), 0) AS lost_amount,
        count(move_id) AS stage_moves,
        median(stage_days) AS median_days_in_stage,
        coalesce(sum(task_done), 0) AS tasks_done,
        coalesce(sum(task_overdue), 0) AS tasks_overdue,
        coalesce(sum(call), 0) AS calls,
        coalesce(sum(call_in), 0) AS calls_in,
        coalesce(sum(call_out), 0) AS calls_out,
        coalesce(sum(call_seconds), 0) AS call_seconds,
        coalesce(sum(note), 0) AS notes,
        coalesce(sum(chat_msg), 0) AS chat_person,
        coalesce(sum(chat_company), 0) AS chat_company
    FROM base {wsql}
    GROUP BY {sets} {'' if filtered else having}"""
    # Loss reasons and open/stalled deals: per group, joined onto the main rows.
    rsets = ("GROUPING SETS ((p, reason))" if filtered else
             "GROUPING SETS ((p, m_key, reason), (p, c_key, reason), (p, reason))")
    lost_where = " AND ".join(["status_id = %d" % LOST, R("close_ts")] + where)
    side = f"""
    reasons AS (
        SELECT p, scope, key, list({{'reason': reason, 'count': n}} ORDER BY n DESC, reason) AS loss_reasons
        FROM (
            SELECT p, {scope_cols}, coalesce(nullif(trim(loss_reason), ''), 'не указана') AS reason, count(*) AS n
            FROM (SELECT {B('close_ts')} AS p, m_key, company_id AS c_key, loss_reason, status_id, close_ts FROM leads) x
            WHERE {lost_where}
            GROUP BY {rsets}
            {'' if filtered else having}
        ) GROUP BY p, scope, key
    ),
    closes AS (
        SELECT p, {scope_cols},
            (list({{'lead_id': lead_id, 'name': name, 'price': price, 'company': company, 'event_id': event_id}}
                  ORDER BY price DESC, lead_id) FILTER (WHERE status_id = {WON}))[1:{DEALS_N}] AS won_deals,
            (list({{'lead_id': lead_id, 'name': name, 'price': price, 'company': company, 'event_id': event_id,
                    'reason': reason}}
                  ORDER BY price DESC, lead_id) FILTER (WHERE status_id = {LOST}))[1:{DEALS_N}] AS lost_deals
        FROM (
            SELECT {B('l.close_ts')} AS p, l.m_key, l.company_id AS c_key, l.lead_id, l.name, l.price, l.status_id,
                   co.name AS company, coalesce(nullif(trim(l.loss_reason), ''), 'не указана') AS reason,
                   (SELECT CAST(max_by(mv.event_id, (mv.ts, mv.event_id)) AS VARCHAR) FROM moves mv
                    WHERE mv.lead_id = l.lead_id AND mv.status_after = l.status_id) AS event_id
            FROM leads l LEFT JOIN (SELECT company_id, any_value(name) AS name FROM crm_companies GROUP BY 1) co
              ON co.company_id = l.company_id
            WHERE l.close_ts IS NOT NULL AND {R('l.close_ts')}
        ) x {wsql}
        GROUP BY {sets} {'' if filtered else having}
    ),
    open_at AS (
        SELECT pp.p, {pend} AS pend, l.lead_id, l.name, l.price, l.status_id, l.pipeline_id, l.m_key, l.company_id AS c_key
        FROM periods pp JOIN leads l
          ON l.created_at < {pend} AND (l.close_ts IS NULL OR l.close_ts >= {pend})
    ),
    open_last AS (
        SELECT o.*, a.ts AS last_ts
        FROM open_at o ASOF LEFT JOIN (SELECT lead_id, ts FROM activity WHERE ts IS NOT NULL) a
          ON o.lead_id = a.lead_id AND o.pend > a.ts
    ),
    -- the stage as of the period's end: the last status change before it, else the status the
    -- first later change left, else (no status events) the current status; moves in the same second
    -- are one move (the last event's status after, the first one's before), so ties never pick at random
    open_before AS (
        SELECT o.*, mb.status_after AS st_before
        FROM open_last o ASOF LEFT JOIN (SELECT lead_id, ts, arg_max(status_after, event_id) AS status_after
                                           FROM moves GROUP BY lead_id, ts) mb
          ON o.lead_id = mb.lead_id AND o.pend > mb.ts
    ),
    open_stage AS (
        SELECT o.*, coalesce(o.st_before, ma.status_before, o.status_id) AS stage_id
        FROM open_before o ASOF LEFT JOIN (SELECT lead_id, ts, arg_min(status_before, event_id) AS status_before
                                             FROM moves GROUP BY lead_id, ts) ma
          ON o.lead_id = ma.lead_id AND ma.ts >= o.pend
    ),
    open_named AS (
        SELECT o.*, s.name AS stage,
               (o.last_ts IS NULL OR o.last_ts < o.pend - INTERVAL {STALL_DAYS} DAY) AS stalled
        FROM open_stage o LEFT JOIN crm_statuses s ON s.pipeline_id = o.pipeline_id AND s.status_id = o.stage_id
    ),
    opens AS (
        SELECT p, {scope_cols},
            count(*) AS open_deals_count,
            coalesce(sum(price), 0) AS open_amount,
            list({{'lead_id': lead_id, 'name': name, 'price': price, 'stage': stage}}
                 ORDER BY price DESC, lead_id)[1:{TOP_N}] AS open_deals,
            count(*) FILTER (WHERE stalled) AS stalled_count,
            (list({{'lead_id': lead_id, 'name': name, 'price': price, 'stage': stage,
                   'days_idle': CAST(floor(date_diff('second', last_ts, pend) / 86400.0) AS BIGINT)}}
                  ORDER BY price DESC, lead_id) FILTER (WHERE stalled))[1:{TOP_N}] AS stalled_deals
        FROM open_named {wsql}
        GROUP BY {sets} {'' if filtered else having}
    )"""
    return base, main, side


# A company's period needs CRM activity; chat mentions alone don't make a summary worth keeping
# (dropped in SQL: at scale 10 they are half the rows, and converting them to pandas cost ~150 MB).
CHAT_ONLY_COMPANY = "m.scope = 'company' AND m.deals_touched = 0 AND m.tasks_overdue = 0"


def _run(con: duckdb.DuckDBPyConnection, kind: str | None, params: dict, filtered: bool,
         manager: bool, company: bool, drop: str | None = None) -> pd.DataFrame:
    """The facts query; `drop`: a condition on the main rows `m` whose rows are not fetched."""
    base, main, side = _facts_sql(kind, filtered, manager, company)
    periods = "periods AS (SELECT DISTINCT p FROM main)" if kind else "periods AS (SELECT CAST($p AS DATE) AS p)"
    sql = f"""
    WITH {base},
    main AS ({main}),
    {periods},
    {side}
    SELECT m.*, r.loss_reasons, w.won_deals, w.lost_deals, o.open_deals_count, o.open_amount, o.open_deals, o.stalled_count, o.stalled_deals
    FROM main m
    LEFT JOIN reasons r USING (p, scope, key)
    LEFT JOIN closes w USING (p, scope, key)
    LEFT JOIN opens o USING (p, scope, key)
    {f"WHERE NOT ({drop})" if drop else ""}
    ORDER BY m.scope, m.key, m.p
    """
    return con.execute(sql, params).df()


def _labels(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("SELECT CAST(company_id AS VARCHAR), any_value(name) FROM crm_companies GROUP BY 1").fetchall()
    return {k: v for k, v in rows}


def _finish(df: pd.DataFrame, kind: str, companies: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    if df.empty:
        cols = ["scope", "key", "label", "period_kind", "period", "start", "end"]
        return pd.DataFrame(columns=cols + INT_METRICS + AMOUNT_METRICS)
    df = df.copy()
    df["chat_messages"] = df["chat_company"].where(df["scope"] == "company", df["chat_person"])
    df = df.drop(columns=["chat_company", "chat_person"])
    for c in INT_METRICS + AMOUNT_METRICS + ["call_seconds"]:
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    df["start"] = pd.to_datetime(df["p"]).dt.date
    if kind in PERIOD_KINDS:
        df["period"] = [period_label(kind, d) for d in df["start"]]
        df["end"] = [period_bounds(kind, lab)[1] for lab in df["period"]]
    df["period_kind"] = kind
    df["stall_days"] = STALL_DAYS
    df["label"] = [
        TEAM_LABEL if s == "team" else companies.get(k, k) if s == "company" else k
        for s, k in zip(df["scope"], df["key"])
    ]
    closed = df["deals_won"] + df["deals_lost"]
    df["win_rate"] = (df["deals_won"] / closed.where(closed > 0)).round(4)
    df["median_days_in_stage"] = pd.to_numeric(df["median_days_in_stage"]).round(1)
    df = df.drop(columns=["p"])
    return df


def all_period_facts(con: duckdb.DuckDBPyConnection, period_kind: str, as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Facts for every (scope, key, period) of one kind that has any activity, in one pass.

    Companies appear for periods with CRM activity (chat mentions alone are not enough);
    managers and the team also for chat-only periods.

    Columns: scope, key, label, period_kind, period, start, end, the metrics of `INT_METRICS`,
    `AMOUNT_METRICS`, call_seconds, win_rate (NaN without closes), median_days_in_stage,
    loss_reasons (all of them) / won_deals / lost_deals (with the citable status-change event id and,
    for lost ones, the reason) / open_deals / stalled_deals (lists of dicts or None).
    """
    if period_kind not in PERIOD_KINDS:
        raise FactsError(f"period kind must be week or month, got {period_kind!r}")
    df = _run(con, period_kind, {"now": as_of or _now()}, filtered=False, manager=False, company=False,
              drop=CHAT_ONLY_COMPANY)
    return _finish(df, period_kind, _labels(con))


def resolve_company(con: duckdb.DuckDBPyConnection, company: str | int) -> tuple[int, str]:
    """Company id and name from an id or a (case-insensitive) name."""
    if isinstance(company, int) or (isinstance(company, str) and company.strip().isdigit()):
        row = con.execute("SELECT company_id, name FROM crm_companies WHERE company_id = ?", [int(company)]).fetchone()
    else:
        row = con.execute(
            "SELECT company_id, name FROM crm_companies WHERE lower(name) = lower(?) ORDER BY company_id LIMIT 1",
            [str(company).strip()]).fetchone()
    if not row:
        raise FactsError(f"unknown company {company!r}")
    return int(row[0]), row[1]


def resolve_manager(con: duckdb.DuckDBPyConnection, manager: str | int) -> str:
    """Manager pseudonym from a pseudonym or an amoCRM user id."""
    if isinstance(manager, int) or str(manager).strip().isdigit():
        row = con.execute("SELECT name FROM crm_users WHERE user_id = ?", [int(manager)]).fetchone()
    else:
        row = con.execute("SELECT name FROM crm_users WHERE name = ?", [str(manager).strip()]).fetchone()
    if not row:
        raise FactsError(f"unknown manager {manager!r} (expected a pseudonym like PER-1a2b3c4d)")
    return row[0]


def facts_query(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, manager: str | int | None = None,
                company: str | int | None = None, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Facts for any inclusive date range, for a manager, a company, both, or the team."""
    if end < start:
        raise FactsError(f"period end {end} is before its start {start}")
    params: dict[str, Any] = {
        "now": as_of or _now(), "p": start,
        "start": dt.datetime.combine(start, dt.time()),
        "end": dt.datetime.combine(end + dt.timedelta(days=1), dt.time()),
    }
    m_key = c_id = c_name = None
    if manager is not None:
        m_key = resolve_manager(con, manager)
        params["m"] = m_key
    if company is not None:
        c_id, c_name = resolve_company(con, company)
        params["c"] = c_id
    df = _run(con, None, params, filtered=True, manager=m_key is not None, company=c_id is not None)
    if manager is not None and company is not None:
        scope, key, label = "manager+company", f"{m_key}|{c_id}", f"{m_key} / {c_name}"
    elif manager is not None:
        scope, key, label = "manager", m_key, m_key
    elif company is not None:
        scope, key, label = "company", str(c_id), c_name
    else:
        scope, key, label = "team", TEAM_KEY, TEAM_LABEL
    if df.empty:  # no activity at all: zeros, but open deals still matter
        import pandas as pd

        df = pd.DataFrame([{"p": start, "scope": "team", "key": TEAM_KEY}])
        for c in INT_METRICS + AMOUNT_METRICS + ["call_seconds", "chat_company", "chat_person"]:
            df[c] = 0
        df["median_days_in_stage"] = None
        for c in ("loss_reasons", "won_deals", "lost_deals", "open_deals", "stalled_deals"):
            df[c] = None
    df = df.copy()
    if company is not None:
        df["chat_company"], df["scope"] = df["chat_company"], "company"  # company chat = mentions
    df = _finish(df, "range", {str(c_id): c_name} if c_id is not None else {})
    row = df.iloc[0].to_dict()
    row.update(scope=scope, key=key, label=label, period_kind="range",
               period=f"{start.isoformat()}..{end.isoformat()}", start=start, end=end)
    if manager is not None:
        row["manager"] = m_key
    if company is not None:
        row["company"], row["company_id"] = c_name, c_id
    return to_jsonable(row)


def facts_for(con: duckdb.DuckDBPyConnection, scope: str, key: str | int, start: dt.date, end: dt.date,
              as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Facts for one scope ('manager' pseudonym, 'company' id or name, 'team') and inclusive dates."""
    if scope == "manager":
        return facts_query(con, start, end, manager=key, as_of=as_of)
    if scope == "company":
        return facts_query(con, start, end, company=key, as_of=as_of)
    if scope == "team":
        return facts_query(con, start, end, as_of=as_of)
    raise FactsError(f"scope must be manager, company or team, got {scope!r}")


def row_facts(row: dict | pd.Series) -> dict[str, Any]:
    """One `all_period_facts` row as a JSON-ready facts dict."""
    return to_jsonable(dict(row))


def to_jsonable(value: Any) -> Any:
    """Plain JSON types (dates as ISO strings, NaN as None, numpy scalars as Python)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:  # fast path: most values are plain
        return value
    if t is float:
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(value.tolist())
    if isinstance(value, dt.date):  # datetime and pandas.Timestamp are dates too
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if type(value).__name__ in ("NAType", "NaTType"):  # pd.NA / pd.NaT (without importing pandas)
        return None
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    return value


def facts_json(facts: dict) -> str:
    """Canonical JSON of a facts dict (stable key order: the input hash depends on it)."""
    return json.dumps(to_jsonable(facts), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
