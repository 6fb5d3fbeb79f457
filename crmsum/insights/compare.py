"""One deal beside the won deals of its pipeline; one manager's habits beside the team's.

Both speak in the drivers' terms (the same indicators and thresholds as `drivers.py`), so «why was X
lost» and «what should Y change» rest on the same evidence as the playbook.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from crmsum.insights import drivers as D
from crmsum.insights.analysis import InsightsError, build_report, connect, load_features
from crmsum.insights.model import closed_deals
from crmsum.ru import percent
from crmsum.insights.records import DealComparison, FeatureGap, HabitsComparison

MIN_WON = 5
MIN_MANAGER_CLOSED = 10


@dataclass(frozen=True)
class WonProfile:
    """The won deals of each pipeline in the drivers' terms: per pipeline (won deals, [(spec, threshold,
    share of won deals with it)]). One per lake snapshot serves every «why» about a deal."""

    features: pd.DataFrame
    by_pipeline: dict


def won_profile(feats: pd.DataFrame) -> WonProfile:
    closed = closed_deals(feats)
    indicators = {spec.feature: D.indicator(closed, spec) for spec in D.SPECS}
    by_pipeline = {}
    for pipeline_id, won in closed[closed["outcome"] == "won"].groupby("pipeline_id"):
        rows = []
        for spec in D.SPECS:
            ind, threshold = indicators[spec.feature]
            ind_won = ind.loc[won.index]
            rows.append((spec, threshold, float(ind_won.mean()) if ind_won.notna().any() else None))
        by_pipeline[pipeline_id] = (len(won), rows)
    return WonProfile(feats, by_pipeline)


def deal_vs_won(lake_or_con, lead_id: int, profile: WonProfile | None = None) -> DealComparison:
    """This deal's driver features vs the won deals of its pipeline (share of won deals having each)."""
    if profile is None:
        con, _ = connect(lake_or_con)
        profile = won_profile(load_features(con))
    feats = profile.features
    row = feats[feats["lead_id"] == int(lead_id)]
    if row.empty:
        raise InsightsError(f"no deal {lead_id} in the lake")
    deal = row.iloc[0]
    n_won, specs = profile.by_pipeline.get(deal["pipeline_id"], (0, []))
    out = DealComparison(lead_id=int(lead_id), name=deal.get("name"), outcome=deal["outcome"],
                         pipeline_id=None if pd.isna(deal["pipeline_id"]) else int(deal["pipeline_id"]),
                         n_won=n_won, features={k: (None if pd.isna(v) else v) for k, v in deal.items()
                                                if k in {s.feature for s in D.SPECS}})
    if n_won < MIN_WON:
        out.reason = f"в этой воронке выиграно только {n_won} сделок — сравнивать не с чем"
        return out
    for spec, t, share in specs:
        mine = _has(deal[spec.feature], spec, t)
        if share is None or mine is None:
            continue
        typical = share >= 0.5
        if bool(mine) != typical:
            label = D.label_of(spec, t)
            has = "есть" if mine else "нет"
            out.gaps.append(FeatureGap(spec.feature, label, bool(mine), share,
                                       f"«{label}»: у этой сделки {has}, у выигранных — в {percent(share)} (n={n_won})"))
    return out


def manager_habits(lake_or_con, manager: str, *, start=None, end=None) -> HabitsComparison:
    """The manager's share of closed deals with each driver feature vs the team's; `top` is the significant
    driver where closing the manager's gap to the team moves the win rate most (gap × difference)."""
    con, _ = connect(lake_or_con)
    feats = load_features(con)
    team = build_report(con, start=start, end=end, features=feats, drivers_only=True)
    closed = closed_deals(feats)
    if start is not None:
        closed = closed[closed["closed_at"] >= pd.Timestamp(start)]
    if end is not None:
        closed = closed[closed["closed_at"] < pd.Timestamp(end) + pd.Timedelta(days=1)]
    mine = closed[closed["manager"] == manager]
    out = HabitsComparison(manager=manager, closed=len(mine), team_closed=len(closed))
    if closed["manager"].nunique() <= 1:
        out.reason = "В команде один менеджер — сравнивать привычки не с кем."
        return out
    if team.reason:
        out.reason = team.reason
        return out
    if len(mine) < MIN_MANAGER_CLOSED:
        out.reason = f"Недостаточно данных: у менеджера {len(mine)} закрытых сделок, нужно хотя бы {MIN_MANAGER_CLOSED}."
        return out
    best = None
    for d in team.drivers:
        spec = D.BY_FEATURE[d.feature]
        ind = _split(closed, spec, d.threshold)
        own, all_ = ind.loc[mine.index].dropna(), ind.dropna()
        if own.empty or all_.empty:
            continue
        m_share, t_share = float(own.mean()), float(all_.mean())
        note = (f"«{d.label}»: у вас {percent(m_share)} закрытых сделок (n={len(own)}), в команде {percent(t_share)} "
                f"(n={len(all_)})")
        gap = FeatureGap(d.feature, d.label, round(m_share, 4), round(t_share, 4), note)
        out.habits.append(gap)
        gain = (t_share - m_share) * (d.difference or 0)
        if d.significant and d.kind != "milestone" and gain > 0 and (best is None or gain > best[0]):
            better = "чаще" if (d.difference or 0) > 0 else "реже"
            best = (gain, FeatureGap(d.feature, d.label, gap.value, gap.reference,
                                     f"{note}. Сделки с этим выигрываются в {percent(d.win_rate_with)} против "
                                     f"{percent(d.win_rate_without)} без (n={d.n_with}/{d.n_without}) — "
                                     f"делайте это {better}."))
    out.top = best[1] if best else None
    return out


def _has(value, spec: D.Spec, threshold: float | None) -> bool | None:
    """One deal's indicator (as `_split` for a frame); None when the value or the threshold is unknown."""
    if value is None or pd.isna(value):
        return None
    v = float(value)
    if spec.kind in ("binary", "milestone"):
        return v > 0
    if threshold is None:
        return None
    return v <= threshold if spec.lower_is_better else v > threshold


def _split(closed: pd.DataFrame, spec: D.Spec, threshold: float | None) -> pd.Series:
    v = closed[spec.feature].astype(float)
    if spec.kind in ("binary", "milestone"):
        ind = v > 0
    else:
        ind = (v <= threshold) if spec.lower_is_better else (v > threshold)
    return ind.astype(float).where(v.notna())


__all__ = ["WonProfile", "deal_vs_won", "manager_habits", "won_profile"]
