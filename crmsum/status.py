"""What an operator checks first: are the endpoints reachable, is the lake fresh, did last night work.

`status(settings) -> StatusReport`; each check is a small function returning `Check`s, so a check
that cannot run (an endpoint down, a table missing) becomes a failed check, never an exception.
The report says in one line what needs attention (`StatusReport.attention`); the CLI exits 1 then.
"""

from __future__ import annotations

import datetime as dt
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmsum.config import Settings

TIMEOUT = 10.0  # seconds per endpoint: status must answer quickly even when something hangs
STALE_HOURS = 36  # a nightly run older than this (or failed) needs attention
TS_COLUMNS = ("updated_at", "created_at", "date", "ts", "computed_at")


@dataclass
class Check:
    """One thing checked: `ok` None means not configured (nothing to check, nothing wrong)."""

    name: str
    ok: bool | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableStatus:
    name: str
    rows: int
    newest: str | None  # the newest timestamp of the table's time column


@dataclass
class StatusReport:
    checks: list[Check]
    tables: list[TableStatus]
    watermarks: dict[str, str]
    runs: dict[str, dict[str, Any]]
    failed_deliveries: list[dict[str, Any]]
    llm_last_night: dict[str, Any]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def attention(self) -> str | None:
        """One line naming what needs attention, or None when all is well."""
        if not self.problems:
            return None
        return "; ".join(f"{c.name}: {c.detail}" for c in self.problems)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = not self.problems
        d["attention"] = self.attention
        return d


def status(settings: Settings) -> StatusReport:
    """Run every check (endpoints with a short timeout each); never raises for a failed check."""
    from crmsum.lake import open_lake

    lake = open_lake(settings)
    con = lake.connect()
    try:
        tables = table_status(con)
        checks = [check_amocrm(settings), check_oauth(settings), check_telegram(settings), check_llm(settings),
                  *check_permissions(settings), check_nightly(settings)]
        failed = failed_deliveries(con)
        if failed:
            checks.append(Check("deliveries", False, f"{len(failed)} failed (retried by the next digest run)"))
        spend = llm_spend(con, settings)
        if spend.get("failed"):
            checks.append(Check("llm_calls", False, f"{spend['failed']} of {spend['calls']} LLM calls failed last night"))
    finally:
        con.close()
    return StatusReport(checks, tables, watermark_dates(settings), _runs(settings), failed, spend)


# -- endpoints --------------------------------------------------------------------------------
def check_amocrm(settings: Settings) -> Check:
    if not settings.amocrm_base_url:
        return Check("amocrm", None, "not configured (CRMSUM_AMOCRM_BASE_URL)")
    from crmsum.sources.amocrm import AmoClient
    from crmsum.state import StateStore

    t0 = time.monotonic()
    try:
        with AmoClient.from_settings(settings, StateStore(settings.state_dir), timeout=TIMEOUT, max_attempts=2) as c:
            account = c.account() or {}
    except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
        return Check("amocrm", False, _first_line(exc))
    ms = round((time.monotonic() - t0) * 1000)
    return Check("amocrm", True, f"reachable, account {account.get('subdomain') or account.get('id')} ({ms} ms)",
                 {"latency_ms": ms})


def check_oauth(settings: Settings) -> Check:
    """The rotated OAuth pair: present, and when the access token expires (refresh keeps it alive)."""
    if settings.amocrm_token or not settings.amocrm_client_id:
        return Check("oauth", None, "long-lived token" if settings.amocrm_token else "not configured")
    from crmsum.sources.amocrm import OAUTH_STATE
    from crmsum.state import StateStore

    saved = StateStore(settings.state_dir).load(OAUTH_STATE, {}) or {}
    if not saved.get("refresh_token"):
        return Check("oauth", True, "no pair stored yet: the first sync exchanges the refresh token")
    expires = dt.datetime.fromtimestamp(int(saved.get("expires_at") or 0))
    left = (expires - dt.datetime.now()).total_seconds() / 3600
    detail = f"access token expires {expires:%Y-%m-%d %H:%M}" + (" (refreshed on next use)" if left < 0 else "")
    return Check("oauth", True, detail, {"expires_at": expires.isoformat(), "hours_left": round(left, 1)})


def check_telegram(settings: Settings) -> Check:
    if settings.telegram_token is None:
        return Check("telegram", None, "no bot token: digests go to the outbox")
    from crmsum.telegram.client import make_bot

    try:
        from telebot import apihelper

        apihelper.CONNECT_TIMEOUT, apihelper.READ_TIMEOUT = TIMEOUT, TIMEOUT
        me = make_bot(settings).get_me()
    except Exception as exc:  # noqa: BLE001
        return Check("telegram", False, f"getMe failed: {_first_line(exc)}")
    return Check("telegram", True, f"bot @{me.username} reachable", {"bot": me.username})


def check_llm(settings: Settings) -> Check:
    if not settings.use_llm:
        return Check("llm", None, "offline summarizer (no OPENAI_API_KEY)")
    import openai

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    try:
        client = openai.OpenAI(api_key=key, base_url=settings.openai_base_url, timeout=TIMEOUT, max_retries=0)
        models = [m.id for m in client.models.list()]
    except Exception as exc:  # noqa: BLE001
        return Check("llm", False, f"models list failed: {_first_line(exc)}")
    if settings.llm_model not in models:
        return Check("llm", False, f"model {settings.llm_model} not served (has: {', '.join(models[:5])})")
    return Check("llm", True, f"model {settings.llm_model} served", {"models": len(models)})


# -- local state ------------------------------------------------------------------------------
def check_permissions(settings: Settings) -> list[Check]:
    """The vault and the state hold secrets: owner-only folders and files."""
    return [_private(name, path) for name, path in (("vault", settings.vault_dir), ("state", settings.state_dir))]


def _private(name: str, root: Path) -> Check:
    if not root.exists():
        return Check(name, None, f"{root} does not exist yet")
    loose = [p for p in [root, *root.rglob("*")] if stat.S_IMODE(p.stat().st_mode) & 0o077
             and not (p.is_file() and p.suffix == ".lock")]
    if loose:
        return Check(name, False, f"{len(loose)} path(s) readable by others, e.g. {loose[0]} (chmod go-rwx)")
    return Check(name, True, "owner-only")


def check_nightly(settings: Settings) -> Check:
    run = _runs(settings).get("nightly")
    if not run:
        return Check("nightly", None, "no nightly run recorded yet")
    if not run.get("ok"):
        return Check("nightly", False, f"last run {run.get('started')} failed: {run.get('error')}")
    age = (dt.datetime.now() - dt.datetime.fromisoformat(run["finished"] or run["started"])).total_seconds() / 3600
    if age > STALE_HOURS:
        return Check("nightly", False, f"last successful run {run['finished']} is {age:.0f} h old")
    return Check("nightly", True, f"ok at {run['finished']} ({run.get('seconds')} s)")


def _runs(settings: Settings) -> dict[str, dict[str, Any]]:
    from crmsum.runs import last_runs

    return last_runs(settings.state_dir)


def watermark_dates(settings: Settings) -> dict[str, str]:
    from crmsum.ingest.amocrm import watermarks

    return {k: dt.datetime.fromtimestamp(v).isoformat() for k, v in sorted(watermarks(settings).items())}


# -- lake -------------------------------------------------------------------------------------
def table_status(con) -> list[TableStatus]:
    """Row count and newest timestamp of every lake table, in one query each."""
    from crmsum.schema import TABLES

    out = []
    for name, t in TABLES.items():
        col = next((c for c in TS_COLUMNS if c in t.schema.names), None)
        newest = f"max({col})" if col else "NULL"
        rows, last = con.execute(f"SELECT count(*), {newest} FROM {name}").fetchone()
        out.append(TableStatus(name, int(rows), last.isoformat(sep=" ") if last is not None else None))
    return out


def failed_deliveries(con) -> list[dict[str, Any]]:
    df = con.execute("SELECT chat_id, week, kind, attempts, error, updated_at FROM deliveries "
                     "WHERE status = 'failed' ORDER BY updated_at DESC LIMIT 50").df()
    return [{k: (v.isoformat(sep=" ") if hasattr(v, "isoformat") else v) for k, v in r.items()}
            for r in df.astype(object).where(df.notna(), None).to_dict("records")]


def llm_spend(con, settings: Settings) -> dict[str, Any]:
    """LLM calls and tokens since the last nightly run started (or the last 24 hours)."""
    run = _runs(settings).get("nightly") or {}
    since = (dt.datetime.fromisoformat(run["started"]) if run.get("started")
             else dt.datetime.now().replace(microsecond=0) - dt.timedelta(days=1))
    calls, cached, failed, tin, tout = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE cache_hit), count(*) FILTER (WHERE NOT ok), "
        "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0) FROM llm_calls WHERE created_at >= ?",
        [since]).fetchone()
    return {"since": since.isoformat(sep=" "), "calls": int(calls), "cache_hits": int(cached), "failed": int(failed),
            "tokens_in": int(tin), "tokens_out": int(tout)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__

