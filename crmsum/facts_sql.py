"""The SQL of the facts: every figure of `crmsum.facts` as one DuckDB statement over the lake's views.

The statement is text built here, run and shaped into rows in `crmsum.facts`: one builder for
both modes, so a number in a digest, a precomputed summary and a live answer comes from the same
SQL — a period kind ('week' / 'month': every scope, key and period at once with GROUPING SETS, one
scan of the lake) or one date range ($start, $end), optionally filtered to a manager ($m) and a
company ($c). It implements the attribution `crmsum.facts` documents. The status ids and limits it
counts by, and the CTEs of company mentions in chat, are shared with the other SQL of the lake's
readers (digests, briefs, insights, retrieval).
"""

from __future__ import annotations

from crmsum.ru import COMPANY_KIND_WORDS, LEGAL_FORMS

__all__ = ["CHAT_ONLY_COMPANY", "DEALS_N", "LOST", "STALL_DAYS", "TOP_N", "WON", "facts_statement", "mention_ctes"]

WON, LOST = 142, 143  # closed deals' statuses, the same in every pipeline
STALL_DAYS = 14  # an open deal without activity this long before the period's end is stalled
TOP_N = 3  # open / stalled deals listed per row (largest first)
DEALS_N = 5  # won / lost deals listed per row (largest first)


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


def _statement_parts(kind: str | None, filtered: bool, manager: bool, company: bool) -> tuple[str, str, str]:
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


def facts_statement(kind: str | None, filtered: bool, manager: bool, company: bool, drop: str | None = None) -> str:
    """The facts query: one row per (period, scope, key), the main aggregates with the loss reasons,
    won / lost deals and open / stalled deals joined on.

    kind 'week' / 'month': every period of that kind; None: one bucket [$start, $end) (params
    $start, $end as timestamps, $p as the bucket date). `filtered`: the team row only, narrowed by
    `manager` ($m) / `company` ($c). `drop`: a condition on the main rows `m` whose rows are not
    fetched. Every mode takes $now (tasks overdue by then).
    """
    base, main, side = _statement_parts(kind, filtered, manager, company)
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
    return sql
