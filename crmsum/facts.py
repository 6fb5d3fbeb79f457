"""Facts by SQL: the one query layer behind summaries, digests and the bot.

Two entry points share the same SQL (`crmsum.facts_sql`), so a number in a digest, a
precomputed summary and a live bot answer is always computed the same way; this module runs it and
shapes its rows (labels, win rate, zeros for a quiet range, JSON-ready values):

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
  stalled = open with no activity in the last `facts_sql.STALL_DAYS` days before the period's end;
- won / lost deals: the `facts_sql.DEALS_N` largest closes of the period, each with the id of its
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
from crmsum.facts_sql import CHAT_ONLY_COMPANY, STALL_DAYS, facts_statement
from crmsum.ru import now as _now

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


# -- running the SQL, shaping its rows --------------------------------------------------------

def _run(con: duckdb.DuckDBPyConnection, kind: str | None, params: dict, filtered: bool,
         manager: bool, company: bool, drop: str | None = None) -> pd.DataFrame:
    """The facts query; `drop`: a condition on the main rows `m` whose rows are not fetched."""
    return con.execute(facts_statement(kind, filtered, manager, company, drop), params).df()


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
