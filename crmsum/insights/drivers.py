"""Drivers: for each feature, closed deals with it vs without it, with honest uncertainty.

Significance rule (README «What wins deals»): a driver is significant only when (1) the Newcombe 95%
interval of the win-rate difference excludes zero, (2) the adjusted coefficient of the same contrast
in one logistic regression (controls: manager, pipeline, log amount; Firth's penalized likelihood with
likelihood-ratio p-values, `model.adjusted_effects`) survives Benjamini–Hochberg at q <= 0.05 over all
drivers of the report, and (3) the adjusted odds ratio points the same way as the
raw difference. Numeric features are split at the median of the closed deals analysed. With outcomes
unrelated to anything this still flags a driver in about one report in twenty — BH's promise, not a
flaw (4.8% of 1000 shuffles of the test account's outcomes) — so a report is evidence, not proof.

Milestones (`proposal_sent`): a funnel step is partly a consequence of the deal going well (a client
who dropped out at qualification never gets a КП), so it is reported with its own adjusted odds ratio,
kept out of the joint model of the behaviours and out of the playbook and the win model.

Not a driver: `stage_changes` (moving through the funnel is part of being won — a mediator, not a habit
to copy; as a control it would explain away every behaviour that moves a deal) and `cycle_days`
(known only at the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmsum.insights.model import adjusted_effects
from crmsum.insights.records import Driver
from crmsum.insights.stats import benjamini_hochberg, newcombe
from crmsum.ru import number

Q_MAX = 0.05
MIN_GROUP = 5
N_EXAMPLES = 5


@dataclass(frozen=True)
class Spec:
    feature: str
    kind: str  # binary (value > 0), numeric (split at the median) or milestone (a funnel step, value > 0)
    label: str  # «with» side; {t} is the threshold
    lower_is_better: bool = False  # numeric: "with" = value <= threshold


SPECS = [
    Spec("first_response_minutes", "numeric", "Первый ответ не позже {t} мин после заявки", lower_is_better=True),
    Spec("meetings_held", "binary", "Проведена встреча"),
    Spec("proposal_sent", "milestone", "Отправлено КП"),
    Spec("discount_offered", "binary", "Дана скидка"),
    Spec("calls", "numeric", "Больше {t} звонков"),
    Spec("notes", "numeric", "Больше {t} заметок"),
    Spec("tasks_overdue", "binary", "Есть просроченные задачи"),
    Spec("days_since_activity", "numeric", "Пауза без действий дольше {t} дн."),
    Spec("handovers", "binary", "Сделку передавали другому менеджеру"),
    Spec("chat_mentions", "binary", "Сделку обсуждали в чате"),
]
BY_FEATURE = {s.feature: s for s in SPECS}


def indicator(closed: pd.DataFrame, spec: Spec) -> tuple[pd.Series, float | None]:
    """(with-indicator as float with NaN for unknown values, threshold)."""
    v = closed[spec.feature].astype(float)
    if spec.kind in ("binary", "milestone"):
        return (v > 0).astype(float).where(v.notna()), None
    t = float(v.median()) if v.notna().any() else None
    if t is None:
        return pd.Series(np.nan, index=closed.index), None
    ind = (v <= t) if spec.lower_is_better else (v > t)
    return ind.astype(float).where(v.notna()), t


def label_of(spec: Spec, threshold: float | None) -> str:
    return spec.label.format(t=number(threshold)) if threshold is not None else spec.label


def compute(closed: pd.DataFrame, use_managers: bool = True) -> list[Driver]:
    """Drivers of a set of closed deals (columns of deal_features). Deals go by lead id, so the report
    (examples included) does not depend on the order the rows came in."""
    closed = closed.sort_values("lead_id", kind="stable")
    y = (closed["outcome"] == "won")
    rows = []
    inds = {}
    for spec in SPECS:
        ind, t = indicator(closed, spec)
        known = ind.notna()
        w, wo = known & (ind == 1), known & (ind == 0)
        n1, n0 = int(w.sum()), int(wo.sum())
        if n1 < MIN_GROUP or n0 < MIN_GROUP:
            continue
        k1, k0 = int((y & w).sum()), int((y & wo).sum())
        ex = closed.loc[w & y, "lead_id"].head(N_EXAMPLES).tolist() or closed.loc[w, "lead_id"].head(N_EXAMPLES).tolist()
        rows.append((spec, t, n1, n0, k1, k0, newcombe(k1, n1, k0, n0), tuple(int(x) for x in ex)))
        inds[spec.feature] = ind.fillna(0.0)
    if not rows:
        return []
    behaviours = [f for f in inds if BY_FEATURE[f].kind != "milestone"]
    effects = adjusted_effects(closed, pd.DataFrame({f: inds[f] for f in behaviours}, index=closed.index),
                               use_managers=use_managers)
    for f in inds:  # a milestone is adjusted on its own: as a control it would absorb the behaviours leading to it
        if f not in behaviours:
            effects.update(adjusted_effects(closed, pd.DataFrame({f: inds[f]}, index=closed.index),
                                            use_managers=use_managers))
    pvals = [effects[r[0].feature].p_value if r[0].feature in effects else None for r in rows]
    qvals = benjamini_hochberg(pvals)
    out = []
    for (spec, t, n1, n0, k1, k0, ci, ex), p, q in zip(rows, pvals, qvals):
        eff = effects.get(spec.feature)
        diff = k1 / n1 - k0 / n0
        same_way = eff is not None and (eff.odds_ratio - 1) * diff > 0
        significant = bool((ci[0] > 0 or ci[1] < 0) and q is not None and q <= Q_MAX and same_way)
        out.append(Driver(feature=spec.feature, label=label_of(spec, t), kind=spec.kind, win_rate_with=k1 / n1,
                          win_rate_without=k0 / n0, n_with=n1, n_without=n0, won_with=k1, won_without=k0, ci95=ci,
                          adjusted_odds_ratio=eff.odds_ratio if eff else None,
                          or_ci95=(eff.low, eff.high) if eff else None, p_value=p, q_value=q,
                          significant=significant, examples=ex, threshold=t))
    out.sort(key=lambda d: (not d.significant, -abs(d.difference or 0), d.feature))
    return out


def to_rows(drivers: list[Driver], scope: str, period: str, closed: int, won: int, computed_at) -> pd.DataFrame:
    """`drivers` table rows."""
    return pd.DataFrame([{
        "scope": scope, "period": period, "feature": d.feature, "label": d.label, "kind": d.kind,
        "threshold": d.threshold, "closed": closed, "won": won, "n_with": d.n_with, "n_without": d.n_without,
        "won_with": d.won_with, "won_without": d.won_without, "win_rate_with": d.win_rate_with,
        "win_rate_without": d.win_rate_without, "ci_low": d.ci95[0] if d.ci95 else None,
        "ci_high": d.ci95[1] if d.ci95 else None, "adjusted_odds_ratio": d.adjusted_odds_ratio,
        "or_low": d.or_ci95[0] if d.or_ci95 else None, "or_high": d.or_ci95[1] if d.or_ci95 else None,
        "p_value": d.p_value, "q_value": d.q_value, "significant": d.significant, "examples": list(d.examples),
        "computed_at": computed_at} for d in drivers])
