"""Typed results of the insights package; `to_dict()` gives the JSON shapes of ../shared/design.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass(frozen=True)
class Driver:
    """One feature: closed deals with it vs without it (numeric features: above/below `threshold`)."""

    feature: str  # a deal_features column
    label: str  # plain Russian: «Встреча проведена»
    kind: str  # binary or numeric
    win_rate_with: float | None
    win_rate_without: float | None
    n_with: int
    n_without: int
    won_with: int
    won_without: int
    ci95: tuple[float, float] | None  # Newcombe hybrid score interval of win_rate_with - win_rate_without
    adjusted_odds_ratio: float | None  # from the multivariate (Firth) logistic regression
    or_ci95: tuple[float, float] | None  # profile penalized-likelihood 95% interval
    p_value: float | None  # penalized likelihood-ratio p of the adjusted coefficient
    q_value: float | None  # Benjamini–Hochberg over the report's drivers
    significant: bool
    examples: tuple[int, ...] = ()
    threshold: float | None = None  # numeric: "with" means value > threshold (or <= for lower-is-better)

    @property
    def difference(self) -> float | None:
        if self.win_rate_with is None or self.win_rate_without is None:
            return None
        return self.win_rate_with - self.win_rate_without

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature, "label": self.label, "kind": self.kind,
            "win_rate_with": _r(self.win_rate_with), "win_rate_without": _r(self.win_rate_without),
            "n_with": self.n_with, "n_without": self.n_without,
            "ci95": [_r(self.ci95[0]), _r(self.ci95[1])] if self.ci95 else None,
            "adjusted_odds_ratio": _r(self.adjusted_odds_ratio, 3),
            "significant": self.significant, "examples": list(self.examples),
            "won_with": self.won_with, "won_without": self.won_without, "threshold": self.threshold,
            "adjusted_or_ci95": [_r(self.or_ci95[0], 3), _r(self.or_ci95[1], 3)] if self.or_ci95 else None,
            "p_value": _r(self.p_value, 6), "q_value": _r(self.q_value, 6),
        }


@dataclass(frozen=True)
class Phrase:
    phrase: str  # lemmatized n-gram
    side: str  # won or lost
    score: float  # z-score of the weighted log-odds ratio (positive = more typical of `side`)
    n_deals: int  # closed deals whose records contain it
    examples: tuple[int, ...] = ()
    n_won: int = 0
    n_lost: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"phrase": self.phrase, "side": self.side, "score": _r(self.score, 3), "n_deals": self.n_deals,
                "examples": list(self.examples), "n_won": self.n_won, "n_lost": self.n_lost}


@dataclass(frozen=True)
class Risk:
    lead_id: int
    name: str | None
    manager: str | None
    amount: int
    win_probability: float
    reasons: tuple[str, ...]
    potential: float = 0.0  # win probability if the fixable gaps were closed
    at_stake: float = 0.0  # amount x (potential - win_probability): the ranking key

    def to_dict(self) -> dict[str, Any]:
        return {"lead_id": self.lead_id, "name": self.name, "manager": self.manager, "amount": self.amount,
                "win_probability": _r(self.win_probability), "reasons": list(self.reasons),
                "potential": _r(self.potential), "at_stake": round(self.at_stake)}


@dataclass(frozen=True)
class ModelSummary:
    kind: str
    auc: float | None
    brier: float | None
    n_train: int
    validated_on: int  # closed deals after the cut-off, scored out of time
    cutoff: str | None = None  # YYYY-MM-DD: trained on deals closed before, validated on those after
    brier_baseline: float | None = None  # Brier of always predicting the training win rate
    calibration_slope: float | None = None
    calibration_intercept: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("auc", "brier", "brier_baseline", "calibration_slope", "calibration_intercept"):
            d[k] = _r(d[k])
        return d


@dataclass
class InsightsReport:
    closed: int
    won: int
    win_rate: float | None
    drivers: list[Driver] = field(default_factory=list)
    phrases: list[Phrase] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    model: ModelSummary | None = None
    reason: str | None = None  # why nothing can be concluded (one line), else None
    scope: str = "team"  # team or manager:<pseudonym>
    start: str | None = None
    end: str | None = None

    @property
    def significant(self) -> list[Driver]:
        return [d for d in self.drivers if d.significant]

    def to_dict(self) -> dict[str, Any]:
        return {"closed": self.closed, "won": self.won, "win_rate": _r(self.win_rate),
                "drivers": [d.to_dict() for d in self.drivers], "phrases": [p.to_dict() for p in self.phrases],
                "risks": [r.to_dict() for r in self.risks], "model": self.model.to_dict() if self.model else None,
                "reason": self.reason, "scope": self.scope, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class FeatureGap:
    feature: str
    label: str
    value: Any  # this deal's / manager's value
    reference: Any  # won deals' / team's typical value
    note: str  # one plain Russian line with the bases


@dataclass
class DealComparison:
    lead_id: int
    name: str | None
    outcome: str | None
    pipeline_id: int | None
    n_won: int  # won deals of the pipeline compared against
    gaps: list[FeatureGap] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class HabitsComparison:
    manager: str
    closed: int
    team_closed: int
    habits: list[FeatureGap] = field(default_factory=list)
    top: FeatureGap | None = None  # the habit whose change matters most (largest significant effect x gap)
    reason: str | None = None


@dataclass
class RefreshReport:
    leads: int = 0
    recomputed: int = 0  # leads whose inputs changed (text re-read)
    features_written: int = 0
    drivers_written: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
