"""Open deals at risk: what lowers each one's win probability, ranked by the money that could be recovered.

For an open deal the model's probability is compared with counterfactuals in which one fixable gap is
closed (a meeting held, a first response as fast as the won deals' median, no overdue tasks, activity
as recent as in the won deals); `potential` closes them all. A deal ranks by amount × (potential − p).
Two rules from the history join the reasons: stalled longer than its stage usually takes (the median
stay in that stage over closed deals) and no next task.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from crmsum.facts_sql import LOST, WON
from crmsum.insights.model import WinModel
from crmsum.insights.records import Risk
from crmsum.ru import number

MIN_STAGE_BASE = 5
MIN_DROP = 0.02
TOP = 10

STAGE_SQL = f"""
WITH moves AS (
    SELECT e.lead_id, l.pipeline_id, e.status_after AS stage_id, e.created_at AS ts,
           lead(e.created_at) OVER (PARTITION BY e.lead_id ORDER BY e.created_at, e.event_id) AS left_at
    FROM crm_events e JOIN crm_leads l USING (lead_id)
    WHERE e.type = 'lead_status_changed' AND l.status_id IN ({WON}, {LOST})
)
SELECT m.pipeline_id, m.stage_id, any_value(s.name) AS stage, count(*) AS n,
       median(date_diff('second', m.ts, m.left_at) / 86400.0) AS median_days
FROM moves m LEFT JOIN crm_statuses s ON s.pipeline_id = m.pipeline_id AND s.status_id = m.stage_id
WHERE m.left_at IS NOT NULL AND m.stage_id NOT IN ({WON}, {LOST})
GROUP BY 1, 2
"""


def stage_norms(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(STAGE_SQL).df()


def rank(open_deals: pd.DataFrame, model: WinModel, won: pd.DataFrame, norms: pd.DataFrame,
         top: int = TOP) -> list[Risk]:
    """Open deals ranked by amount × drop in probability, each with its reasons (plain Russian, with bases)."""
    if open_deals.empty or model is None:
        return []
    df = open_deals.reset_index(drop=True)
    p = model.predict(df)
    fr_won = float(won["first_response_minutes"].median()) if won["first_response_minutes"].notna().any() else None
    silence_won = float(won["days_since_activity"].median()) if len(won) else None
    n_won = len(won)
    fixes: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}  # name -> (applies, p_fixed, text)
    has_meeting = (df["meetings_held"] > 0).to_numpy()
    fixes["meeting"] = (~has_meeting, model.predict_with(df, meeting=1.0), "встречи ещё не было")
    if fr_won is not None:
        fr = df["first_response_minutes"].astype(float)
        slow = (fr.isna() | (fr > max(fr_won, 1) * 2)).to_numpy()
        fixes["fast_response"] = (slow, model.predict_with(df, fast_response=-np.log1p(fr_won)),
                                  f"первый ответ позже, чем обычно в выигранных (медиана {number(fr_won)} мин, n={n_won})")
    overdue = (df["tasks_overdue"] > 0).to_numpy()
    fixes["overdue"] = (overdue, model.predict_with(df, overdue=0.0), "есть просроченные задачи")
    if silence_won is not None:
        quiet = (df["days_since_activity"] > max(silence_won, 1) * 2).to_numpy()
        fixes["silence"] = (quiet, model.predict_with(df, silence=np.log1p(silence_won)),
                            f"без действий дольше, чем обычно в выигранных (медиана {number(silence_won)} дн., n={n_won})")
    overrides = {}
    for name, (applies, _pf, _t) in fixes.items():
        if applies.any():
            overrides[name] = applies
    potential = p.copy()
    if overrides:
        X = model._raw(df)
        for name, applies in overrides.items():
            X.loc[applies, name] = model._raw(df.assign(**_fixed_values(name, fr_won, silence_won)))[name][applies]
        potential = np.maximum(p, 1.0 / (1.0 + np.exp(-model.logit_of(X))))
    norms_idx = {(int(r.pipeline_id), int(r.stage_id)): r for r in norms.itertuples()} if len(norms) else {}
    out = []
    for i, row in df.iterrows():
        reasons = []
        for name, (applies, pf, text) in fixes.items():
            drop = float(pf[i] - p[i])
            if applies[i] and drop >= MIN_DROP:
                reasons.append((drop, f"{text}: {round(p[i] * 100)}% → {round(pf[i] * 100)}%"))
        reasons.sort(key=lambda r: -r[0])
        texts = [t for _d, t in reasons]
        norm = norms_idx.get((int(row.pipeline_id), int(row.stage_id))) if pd.notna(row.stage_id) \
            and pd.notna(row.pipeline_id) else None
        if norm is not None and norm.n >= MIN_STAGE_BASE and row.stage_days > 2 * max(norm.median_days, 1):
            texts.append(f"в этапе «{norm.stage}» {_days(row.stage_days)} дн. при обычных "
                         f"{_days(norm.median_days)} (медиана по {norm.n} сделкам)")
        if int(row.next_tasks) == 0:
            texts.append("нет следующей задачи")
        amount = int(row.amount or 0)
        out.append(Risk(lead_id=int(row.lead_id), name=row["name"] if isinstance(row.get("name"), str) else None,
                        manager=row.manager if isinstance(row.manager, str) else None, amount=amount,
                        win_probability=float(p[i]), reasons=tuple(texts), potential=float(potential[i]),
                        at_stake=amount * float(potential[i] - p[i])))
    out = [r for r in out if r.reasons]
    out.sort(key=lambda r: (-r.at_stake, -r.amount, r.lead_id))
    return out[:top]


def _fixed_values(name: str, fr_won: float | None, silence_won: float | None) -> dict:
    """Deal-feature values that realise a fix (for the all-gaps-closed potential)."""
    if name == "meeting":
        return {"meetings_held": 1}
    if name == "fast_response":
        return {"first_response_minutes": fr_won}
    if name == "overdue":
        return {"tasks_overdue": 0}
    return {"days_since_activity": silence_won}


def _days(x: float) -> str:
    """«313» for long stays, «3,2» for short ones."""
    return number(round(x)) if x >= 10 else number(x)
