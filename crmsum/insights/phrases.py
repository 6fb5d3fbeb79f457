"""Phrases that separate won from lost deals, found from the data (no word list of our own).

Each deal is a bag of lemmatized uni- and bigrams from its notes, tasks and chat before its cut-off
(`features.py`); a deal counts once per term. Terms are ranked by the weighted log-odds ratio with an
informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words", eq. 16–22): the prior
is the term's frequency over all deals (open ones too) scaled to `PRIOR_WEIGHT` of the data — as if
one extra deal in ten were seen with the average vocabulary — so rare terms are shrunk towards "no
difference" and a term in five deals gets a pseudo-count of half a deal. A term is reported when |z| clears a Bonferroni bound over the number of terms tested,
and it appears in at least `MIN_DEALS` closed deals — so an account with nothing planted yields nothing.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import norm

from crmsum.cites import PSEUDONYM_ANY_CASE_RE
from crmsum.insights.records import Phrase
from crmsum.insights.text_facts import clauses

CONTENT = frozenset({"NOUN", "ADJF", "ADJS", "VERB", "INFN", "PRTF", "PRTS", "GRND", "ADVB", "COMP", "PRED"})
MIN_DEALS = 5
ALPHA = 0.05
MAX_PER_SIDE = 10
PRIOR_WEIGHT = 0.1


@lru_cache(maxsize=1 << 16)
def terms(text: str) -> tuple[str, ...]:
    """Distinct lemmatized unigrams and bigrams of a text's content words; «не» joins the next word."""
    out: set[str] = set()
    for toks, _q in clauses(text or ""):
        seq: list[str] = []
        neg = False
        for t in toks:
            if t.lemma in ("не", "ни"):
                neg = True
                continue
            if t.pos in CONTENT and len(t.lemma) >= 2 and not PSEUDONYM_ANY_CASE_RE.fullmatch(t.lemma) and not t.lemma.isdigit():
                seq.append(("не " if neg else "") + t.lemma)
            elif t.pos not in ("PREP", "CONJ", "PRCL"):
                seq.append("")  # a break: no bigram across names, numbers, quotes
            neg = False
        words = [w for w in seq if w]
        out.update(words)
        out.update(f"{a} {b}" for a, b in zip(seq, seq[1:]) if a and b)
    return tuple(sorted(out))


def log_odds(won_df: pd.Series, lost_df: pd.Series, prior: pd.Series) -> pd.DataFrame:
    """z-scores of the weighted log-odds (won vs lost) with Dirichlet prior `prior` (counts per term)."""
    idx = prior.index
    y_i = won_df.reindex(idx, fill_value=0).to_numpy(float)
    y_j = lost_df.reindex(idx, fill_value=0).to_numpy(float)
    a = prior.to_numpy(float)
    a0, n_i, n_j = a.sum(), y_i.sum(), y_j.sum()
    d = (np.log((y_i + a) / (n_i + a0 - y_i - a)) - np.log((y_j + a) / (n_j + a0 - y_j - a)))
    var = 1.0 / (y_i + a) + 1.0 / (y_j + a)
    return pd.DataFrame({"delta": d, "z": d / np.sqrt(var), "won": y_i, "lost": y_j}, index=idx)


def distinguishing(deals: pd.DataFrame, max_per_side: int = MAX_PER_SIDE) -> list[Phrase]:
    """`deals`: lead_id, outcome (won/lost/open), terms (list). Returns significant phrases, strongest first."""
    if deals.empty:
        return []
    bag = deals[["lead_id", "outcome", "terms"]].explode("terms").dropna(subset=["terms"])
    if bag.empty:
        return []
    prior = bag.groupby("terms")["lead_id"].nunique()
    closed = bag[bag["outcome"].isin(["won", "lost"])]
    df = closed.groupby(["terms", "outcome"])["lead_id"].nunique().unstack(fill_value=0)
    for side in ("won", "lost"):
        if side not in df:
            df[side] = 0
    tested = df[(df["won"] + df["lost"]) >= MIN_DEALS].index
    if not len(tested):
        return []
    res = log_odds(df["won"], df["lost"], prior * PRIOR_WEIGHT).loc[tested]
    bound = norm.isf(ALPHA / (2 * len(tested)))
    hits = res[res["z"].abs() >= bound].sort_values("z", key=lambda s: -s.abs())
    out: list[Phrase] = []
    per_side = {"won": 0, "lost": 0}
    ex = closed.groupby(["terms", "outcome"])["lead_id"].apply(lambda s: sorted(set(s))[:5])
    for term, row in hits.iterrows():
        side = "won" if row["z"] > 0 else "lost"
        if per_side[side] >= max_per_side:
            continue
        per_side[side] += 1
        examples = tuple(int(x) for x in ex.get((term, side), []))
        out.append(Phrase(phrase=str(term), side=side, score=float(row["z"]), n_deals=int(row["won"] + row["lost"]),
                          examples=examples, n_won=int(row["won"]), n_lost=int(row["lost"])))
    return out


def bound_for(n_terms: int) -> float:
    """The |z| a phrase must clear when `n_terms` are tested (for the README and tests)."""
    return float(norm.isf(ALPHA / (2 * max(1, n_terms)))) if n_terms else math.inf
