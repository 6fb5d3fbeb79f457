"""Firth's penalized-likelihood logistic regression, its likelihood-ratio test and profile intervals.

Why not plain maximum likelihood with Wald p-values (what the drivers used before): over 1000 shuffles
of the outcomes of the test account (311 closed deals; 8 indicators + 9 manager dummies + pipeline + log
amount) the Wald p fell below 0.05 in 5.5% of the tests (6.5% for "notes"; the unpenalized
likelihood-ratio p was worse, 6.1% overall), a rare indicator (12 deals handed over) only in 3%
(Hauck–Donner: its standard error explodes as its cell empties), and 1.6% of the joint fits did not
converge at all (a small cell with no win: separation), which silently left the whole report without
adjusted estimates. Firth's Jeffreys-prior penalty (Firth 1993) removes the O(1/n) bias of the estimates
and keeps them finite under separation; with the penalized likelihood-ratio test and profile intervals
(Heinze & Schemper 2002, as R's logistf: the penalty is always that of the full design) the same
shuffles gave 5.1% below 0.05, 1.1% below 0.01, 0.6% below 0.005, and no failed fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2

MAX_STEP = 5.0  # logistf's maxstep: no coefficient moves more than this per Newton step
MAX_ITER = 100
TOL = 1e-8
LEVEL = 0.95
XTOL = 1e-4  # interval ends on the log-odds scale: odds ratios to 0.01%


@dataclass(frozen=True)
class Fit:
    beta: np.ndarray
    loglik: float  # penalized log-likelihood
    converged: bool


def _penalized(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(penalized log-likelihood, probabilities, weights, Fisher information) at `beta`."""
    eta = X @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    info = X.T @ (X * w[:, None])
    sign, logdet = np.linalg.slogdet(info)
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    return (ll + 0.5 * logdet if sign > 0 else -math.inf), p, w, info


def _score(X: np.ndarray, y: np.ndarray, p: np.ndarray, w: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Firth's modified score: X'(y - p + h (1/2 - p)), h the diagonal of the weighted hat matrix."""
    h = w * np.einsum("ij,ij->i", X @ np.linalg.inv(info), X)
    return X.T @ (y - p + h * (0.5 - p))


def fit(X: np.ndarray, y: np.ndarray, fixed: dict[int, float] | None = None,
        start: np.ndarray | None = None) -> Fit:
    """Maximize the penalized likelihood; `fixed` holds some coefficients at given values (for tests and
    profiles: the penalty stays that of the full design). Newton steps, halved until the likelihood rises."""
    k = X.shape[1]
    beta = np.zeros(k) if start is None else np.array(start, dtype=float)
    free = np.ones(k, dtype=bool)
    for j, v in (fixed or {}).items():
        free[j], beta[j] = False, v
    cur, p, w, info = _penalized(X, y, beta)
    for _ in range(MAX_ITER):
        step = np.zeros(k)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], _score(X, y, p, w, info)[free])
        step *= min(1.0, MAX_STEP / max(float(np.abs(step).max()), 1e-300))
        for _half in range(30):
            new, p2, w2, info2 = _penalized(X, y, beta + step)
            if new >= cur - 1e-12:
                break
            step /= 2
        beta, p, w, info = beta + step, p2, w2, info2
        done = abs(new - cur) < TOL and float(np.abs(step).max()) < 1e-6
        cur = new
        if done:
            return Fit(beta, cur, True)
    return Fit(beta, cur, False)


def lr_p(X: np.ndarray, y: np.ndarray, full: Fit, j: int) -> float:
    """Penalized likelihood-ratio p-value of coefficient j = 0 (chi-square, one degree of freedom)."""
    rest = fit(X, y, fixed={j: 0.0}, start=full.beta)
    return float(chi2.sf(max(0.0, 2.0 * (full.loglik - rest.loglik)), 1))


def profile_ci(X: np.ndarray, y: np.ndarray, full: Fit, j: int, level: float = LEVEL) -> tuple[float, float]:
    """Profile penalized-likelihood interval of coefficient j: the values a likelihood-ratio test at
    1 - level would not reject, so the interval excludes 0 exactly when `lr_p` < 1 - level. The search
    starts a little beyond the Wald interval, where the profile usually crosses already."""
    crit = float(chi2.ppf(level, 1))
    b = float(full.beta[j])
    se = math.sqrt(max(float(np.linalg.inv(_penalized(X, y, full.beta)[3])[j, j]), 1e-12))

    last = {-1.0: full.beta, 1.0: full.beta}  # each side's search starts from its previous solution

    def excess(v: float) -> float:
        side = 1.0 if v > b else -1.0
        at = fit(X, y, fixed={j: v}, start=last[side])
        last[side] = at.beta
        return 2.0 * (full.loglik - at.loglik) - crit

    return _root(excess, b, -1.0, 1.25 * math.sqrt(crit) * se), _root(excess, b, 1.0, 1.25 * math.sqrt(crit) * se)


def _root(excess, b: float, direction: float, width: float) -> float:
    """Where `excess` crosses zero on one side of the estimate b (±inf when it never does within reach)."""
    for _ in range(12):
        edge = b + direction * width
        if excess(edge) > 0:
            lo, hi = sorted((b, edge))
            return float(brentq(excess, lo, hi, xtol=XTOL))
        width *= 2
    return direction * math.inf
