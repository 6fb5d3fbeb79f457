"""The insights report (what `crmsum insights` prints and the digests quote) and the nightly refresh."""

from __future__ import annotations

import datetime as dt
import re
import time

import duckdb
import pandas as pd

from crmsum.errors import CrmsumError
from crmsum.insights import drivers as D
from crmsum.insights import features as F
from crmsum.insights import model as M
from crmsum.insights.phrases import distinguishing
from crmsum.insights.records import InsightsReport, ModelSummary, RefreshReport
from crmsum.insights.risks import rank, stage_norms
from crmsum.lake import Lake
from crmsum.ru import count

MIN_CLOSED, MIN_CLASS = 30, 5


class InsightsError(CrmsumError):
    """A request the insights cannot serve as asked (bad period, unknown manager)."""


# -- inputs -------------------------------------------------------------------------------------
def connect(lake_or_con: Lake | duckdb.DuckDBPyConnection) -> tuple[duckdb.DuckDBPyConnection, Lake | None]:
    if isinstance(lake_or_con, Lake):
        return lake_or_con.connect(), lake_or_con
    return lake_or_con, None


def load_features(con: duckdb.DuckDBPyConnection, as_of: dt.datetime | None = None) -> pd.DataFrame:
    """Stored `deal_features` when they cover every lead (the nightly step wrote them), else computed now.
    Rows by lead id: a join's order is the scheduler's, and a report must not depend on it."""
    n_leads = con.execute("SELECT count(*) FROM crm_leads WHERE NOT coalesce(is_deleted, false)").fetchone()[0]
    stored = con.execute("SELECT f.*, l.name FROM deal_features f LEFT JOIN crm_leads l USING (lead_id) "
                         "ORDER BY lead_id").df() if as_of is None else pd.DataFrame()
    if len(stored) and len(stored) == n_leads:
        return stored
    feats, _n = F.compute(con, as_of, previous=stored if len(stored) else None)
    return feats.sort_values("lead_id", ignore_index=True)


def parse_period(text: str | None) -> tuple[dt.date | None, dt.date | None]:
    """YYYY, YYYY-Qn, YYYY-MM, YYYY-Www, or START..END (YYYY-MM-DD); both ends inclusive."""
    if not text:
        return None, None
    s = text.strip().upper()
    try:
        if re.fullmatch(r"\d{4}", s):
            return dt.date(int(s), 1, 1), dt.date(int(s), 12, 31)
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", s):
            y, q = int(m[1]), int(m[2])
            start = dt.date(y, 3 * q - 2, 1)
            end = dt.date(y + (q == 4), (3 * q) % 12 + 1, 1) - dt.timedelta(days=1)
            return start, end
        if re.fullmatch(r"\d{4}-\d{2}", s) or re.fullmatch(r"\d{4}-W\d{2}", s):
            from crmsum.facts import period_bounds

            return period_bounds("week" if "W" in s else "month", s)
        if ".." in s:
            a, b = s.split("..", 1)
            return dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except (ValueError, CrmsumError):
        pass
    except Exception as exc:  # facts.FactsError is a ValueError subclass elsewhere
        raise InsightsError(f"bad --period {text!r}: {exc}") from None
    raise InsightsError(f"--period must be YYYY, YYYY-Qn, YYYY-MM, YYYY-Www or YYYY-MM-DD..YYYY-MM-DD, got {text!r}")


def _in_period(df: pd.DataFrame, start: dt.date | None, end: dt.date | None) -> pd.Series:
    keep = pd.Series(True, index=df.index)
    if start is not None:
        keep &= df["closed_at"] >= pd.Timestamp(start)
    if end is not None:
        keep &= df["closed_at"] < pd.Timestamp(end + dt.timedelta(days=1))
    return keep


def not_enough(closed: int, won: int) -> str | None:
    """One plain line when the closed deals cannot support a pattern, else None."""
    lost = closed - won
    if closed == 0:
        return "Недостаточно данных: закрытых сделок нет — сравнивать выигранные с проигранными не на чем."
    if won == 0 or lost == 0:
        side = "выигранных" if won == 0 else "проигранных"
        return (f"Недостаточно данных: {count(closed, 'закрытая сделка', 'закрытые сделки', 'закрытых сделок')}, "
                f"и среди них нет {side} — сравнивать не с чем.")
    if closed < MIN_CLOSED or min(won, lost) < MIN_CLASS:
        return (f"Недостаточно данных: закрыто {closed} (выиграно {won}, проиграно {lost}); для выводов нужно хотя бы "
                f"{MIN_CLOSED} закрытых сделок, из них не меньше {MIN_CLASS} выигранных и {MIN_CLASS} проигранных.")
    return None


# -- the report ---------------------------------------------------------------------------------
def build_report(lake_or_con, *, start: dt.date | None = None, end: dt.date | None = None,
                 manager: str | None = None, as_of: dt.datetime | None = None,
                 features: pd.DataFrame | None = None, drivers_only: bool = False) -> InsightsReport:
    con, _lake = connect(lake_or_con)
    feats = features if features is not None else load_features(con, as_of)
    if manager is not None and manager not in set(feats["manager"].dropna()):
        known = con.execute("SELECT count(*) FROM crm_users WHERE name = ?", [manager]).fetchone()[0]
        if not known:
            raise InsightsError(f"unknown manager {manager!r} (use the pseudonym, e.g. PER-1a2b3c4d)")
    scope = feats if manager is None else feats[feats["manager"] == manager]
    closed_all = M.closed_deals(scope)
    closed = closed_all[_in_period(closed_all, start, end)]
    n, won = len(closed), int((closed["outcome"] == "won").sum())
    rep = InsightsReport(closed=n, won=won, win_rate=won / n if n else None,
                         scope="team" if manager is None else f"manager:{manager}",
                         start=start.isoformat() if start else None, end=end.isoformat() if end else None)
    open_deals = scope[scope["outcome"] == "open"]
    if not drivers_only:
        rep.model = M.validate(feats)[0]
        model = M.fit_all(feats)
        won_all = M.closed_deals(feats)
        won_all = won_all[won_all["outcome"] == "won"]
        rep.risks = rank(open_deals, model, won_all, stage_norms(con)) if model is not None else []
    rep.reason = not_enough(n, won)
    if rep.reason:
        return rep
    one_manager = closed["manager"].nunique() <= 1
    rep.drivers = D.compute(closed, use_managers=not one_manager and manager is None)
    if not drivers_only:
        rep.phrases = distinguishing(pd.concat([closed, open_deals]) if start is None and end is None else closed)
    return rep


# -- the nightly step ---------------------------------------------------------------------------
def _periods(closed: pd.DataFrame) -> list[tuple[str, dt.date | None, dt.date | None]]:
    years = sorted({d.year for d in closed["closed_at"].dropna()})
    return [("all", None, None)] + [(str(y), dt.date(y, 1, 1), dt.date(y, 12, 31)) for y in years]


def refresh(lake: Lake, *, as_of: dt.datetime | None = None) -> RefreshReport:
    """Features (text re-read only where inputs changed) -> win probability -> drivers, into the lake."""
    out = RefreshReport()
    con = lake.connect()
    t0 = time.perf_counter()
    previous = con.execute("SELECT * FROM deal_features").df()
    feats, out.recomputed = F.compute(con, as_of, previous=previous if len(previous) else None)
    out.leads = len(feats)
    t1 = time.perf_counter()
    model = M.fit_all(feats)
    summary, _ = M.validate(feats)
    feats["win_probability"] = model.predict(feats) if model is not None and len(feats) else None
    out.model = summary.to_dict()
    cols = [c for c in lake_columns("deal_features") if c in feats.columns]
    if len(feats):
        out.features_written = lake.write("deal_features", feats[cols])
    t2 = time.perf_counter()
    now = F.lake_as_of(con) if as_of is None else as_of  # stable across reruns: unchanged lake, unchanged rows
    frames = []
    closed = M.closed_deals(feats)
    scopes = [("team", None)] + [(f"manager:{m}", m) for m in sorted(closed["manager"].dropna().unique())]
    for scope, mgr in scopes:
        for label, start, end in (_periods(closed) if mgr is None else [("all", None, None)]):
            rep = build_report(con, start=start, end=end, manager=mgr, features=feats, drivers_only=True)
            if not rep.reason and rep.drivers:
                frames.append(D.to_rows(rep.drivers, scope, label, rep.closed, rep.won, now))
    if frames:
        out.drivers_written = lake.write("drivers", pd.concat(frames, ignore_index=True))
    out.seconds = {"features": round(t1 - t0, 3), "model": round(t2 - t1, 3), "drivers": round(time.perf_counter() - t2, 3)}
    return out


def lake_columns(name: str) -> list[str]:
    from crmsum.schema import table

    return table(name).schema.names


def model_only(features: pd.DataFrame) -> ModelSummary:
    return M.validate(features)[0]
