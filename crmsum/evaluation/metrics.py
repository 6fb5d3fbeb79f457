"""RAG metrics as RAGAS defines them, computed offline (default) or by an LLM judge.

Definitions (per question; every score is in [0, 1], None when undefined):

- faithfulness: supported claims / claims of the answer. A claim is a sentence (bullet lines
  split by razdel; section headers and provenance lines are not claims). Offline support: every
  number, amount, date, pseudonym and company name of the claim is found in the retrieved context
  (the facts and the records the claim cites, or all retrieved records for an uncited claim),
  and a claim that cites records or carries no such entities must also overlap the context
  lexically (share of its content lemmas found there >= LEXICAL_SUPPORT).
- answer_relevancy: RAGAS generates questions from the answer and averages their similarity to
  the asked question (0 for a noncommittal answer). Offline we cannot generate, so we score the
  question's *aspects* (subject, period, intent) the answer addresses, times committal; without
  aspects, the lemma TF-IDF cosine of question and answer.
- context_precision: ranked precision@k over the retrieved contexts with relevance flags v_k:
  sum_k(precision@k * v_k) / (relevant items in the top K).
- context_recall: share of the reference claims attributable to the retrieved context (a claim is
  covered when one of its reference record ids was retrieved or all its values are found in the
  context); `id_context_recall` is the plain |retrieved ∩ reference ids| / |reference ids|.
- semantic_similarity: cosine of answer and reference in TF-IDF space (lemma uni+bigrams and char
  3–5-grams of the lemmatized text, averaged); no network embedding model.
- answer_correctness: 0.75 * F1 + 0.25 * semantic_similarity (RAGAS weights). F1 over facts:
  TP = reference claims whose values all appear in the answer, FN = the others, FP = answer claims
  about the reference's fact types (outcomes, amounts, reasons) with a number the reference
  does not have.

The LLM judge (`judge.LLMJudge`) implements the same definitions through an LLM; what a text claims and
what a context supports lives in `claims`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from crmsum.cites import ID_RE, strip_citations
from crmsum.evaluation.claims import Claim, Support, claims, entities, has_entities, lemmas
from crmsum.ru import company_core

METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "semantic_similarity",
           "answer_correctness")
LEXICAL_SUPPORT = 0.5
CORRECTNESS_WEIGHTS = (0.75, 0.25)

NONCOMMITTAL_RE = re.compile(r"не понял|уточните|не знаю|нет данных|не могу ответить|не найден", re.I)
OUTCOME_RE = re.compile(r"выигр|проигр|потер|конверс|причин|итог|закрыт", re.I)


# -- contexts --------------------------------------------------------------------------------
@dataclass
class Context:
    """One retrieved context item: the facts block (id 'facts') or a record (note:1, msg:-1:2, ...)."""

    id: str
    text: str = ""
    data: Any = None  # facts dict for the facts item
    relevant: bool | None = None  # ground-truth relevance when known

    def support(self) -> Support:
        s = Support()
        s.add(self.data if self.data is not None else self.text)
        if self.data is not None and self.text:
            s.add_text(self.text)
        return s


def supported_claims(answer: str, contexts: Sequence[Context], companies: Iterable[str] = ()) -> list[tuple[Claim, bool]]:
    """Each claim of the answer with its offline verdict."""
    companies = list(companies)
    by_id = {c.id: c for c in contexts}
    facts = [c for c in contexts if c.data is not None or not ID_RE.fullmatch(c.id)]
    everything = Support.of()
    for c in contexts:
        everything.add(c.data if c.data is not None else c.text)
        if c.data is not None and c.text:
            everything.add_text(c.text)
    out = []
    for cl in claims(answer):
        e = entities(cl.text, companies)
        if cl.cites:
            known = [by_id[i] for i in cl.cites if i in by_id]
            if len(known) < len(cl.cites):  # a citation of a record that was not retrieved
                out.append((cl, False))
                continue
            sup = Support()
            for c in facts + known:
                sup.add(c.data if c.data is not None else c.text)
            cited_only = Support()
            for c in known:
                cited_only.add_text(c.text)
            ok = sup.supports_entities(e) and cited_only.overlap(cl.text) >= LEXICAL_SUPPORT
        else:
            ok = everything.supports_entities(e)
            if ok and not has_entities(e):
                ok = everything.overlap(cl.text) >= LEXICAL_SUPPORT
        out.append((cl, ok))
    return out


def faithfulness(answer: str, contexts: Sequence[Context], companies: Iterable[str] = ()) -> float | None:
    """Supported claims / claims (None when the answer makes no claim)."""
    verdicts = supported_claims(answer, contexts, companies)
    if not verdicts:
        return None
    return round(sum(ok for _, ok in verdicts) / len(verdicts), 4)


def context_precision(relevance: Sequence[bool | int]) -> float | None:
    """RAGAS context precision: sum_k(precision@k * v_k) / relevant items in top K (ranked)."""
    v = [1 if r else 0 for r in relevance]
    if not v:
        return None
    rel = sum(v)
    if rel == 0:
        return 0.0
    total, hits = 0.0, 0
    for k, vk in enumerate(v, 1):
        hits += vk
        total += (hits / k) * vk
    return round(total / rel, 4)


@dataclass
class RefClaim:
    """One reference statement: its text, the values that make it true, and its evidence ids."""

    text: str
    values: list[Any] = field(default_factory=list)  # numbers and strings (company names, reasons)
    ids: list[str] = field(default_factory=list)
    kind: str = "fact"  # outcome, amount, reason, deal, count

    def to_dict(self) -> dict:
        return {"text": self.text, "values": self.values, "ids": self.ids, "kind": self.kind}


def _value_found(v: Any, sup: Support) -> bool:
    if isinstance(v, bool) or v is None:
        return True
    if isinstance(v, (int, float)):
        return sup.number(float(v), None)
    core = company_core(str(v)) or str(v).lower()
    return core in sup.lower


def claim_covered(rc: RefClaim, sup: Support, ids: Iterable[str] = ()) -> bool:
    ids = set(ids)
    if rc.ids and ids & set(rc.ids):
        return True
    return bool(rc.values) and all(_value_found(v, sup) for v in rc.values)


def uncovered_claims(reference: Sequence[RefClaim], contexts: Sequence[Context]) -> list[RefClaim]:
    """The reference claims the retrieved context does not cover (diagnostics for context recall)."""
    sup = Support()
    for c in contexts:
        sup.add(c.data if c.data is not None else c.text)
        if c.data is not None and c.text:
            sup.add_text(c.text)
    ids = [c.id for c in contexts]
    return [rc for rc in reference if not claim_covered(rc, sup, ids)]


def context_recall(reference: Sequence[RefClaim], contexts: Sequence[Context]) -> float | None:
    """Share of reference claims attributable to the retrieved context (ids or values)."""
    if not reference:
        return None
    return round(1 - len(uncovered_claims(reference, contexts)) / len(reference), 4)


def id_context_recall(retrieved_ids: Iterable[str], reference_ids: Iterable[str]) -> float | None:
    """|retrieved ∩ reference| / |reference| (RAGAS ID-based context recall)."""
    ref = set(reference_ids)
    if not ref:
        return None
    return round(len(ref & set(retrieved_ids)) / len(ref), 4)


# -- similarity ------------------------------------------------------------------------------
def _features(text: str) -> tuple[Counter, Counter]:
    ls = lemmas(text, content=True)
    words = Counter(ls) + Counter(f"{a}_{b}" for a, b in zip(ls, ls[1:]))
    joined = f" {' '.join(lemmas(text, content=False))} "
    chars = Counter(joined[i:i + n] for n in (3, 4, 5) for i in range(len(joined) - n + 1))
    return words, chars


class Similarity:
    """TF-IDF cosine (lemma uni+bigrams and char 3–5-grams, averaged) with IDF from a corpus."""

    def __init__(self, corpus: Iterable[str] = ()) -> None:
        self.n = 0
        self.df_w: Counter = Counter()
        self.df_c: Counter = Counter()
        for doc in corpus:
            self.fit_one(doc)

    def fit_one(self, doc: str) -> None:
        w, c = _features(doc)
        self.n += 1
        self.df_w.update(w.keys())
        self.df_c.update(c.keys())

    def _vec(self, tf: Counter, df: Counter) -> dict[str, float]:
        n = max(self.n, 1)
        return {t: (1 + math.log(f)) * (math.log((1 + n) / (1 + df.get(t, 0))) + 1) for t, f in tf.items()}

    @staticmethod
    def _cos(a: dict[str, float], b: dict[str, float]) -> float:
        if not a or not b:
            return 0.0
        dot = sum(v * b.get(k, 0.0) for k, v in a.items())
        na = math.sqrt(sum(v * v for v in a.values()))
        nb = math.sqrt(sum(v * v for v in b.values()))
        return dot / (na * nb) if na and nb else 0.0

    def __call__(self, a: str, b: str) -> float:
        wa, ca = _features(a)
        wb, cb = _features(b)
        s = 0.5 * self._cos(self._vec(wa, self.df_w), self._vec(wb, self.df_w)) + \
            0.5 * self._cos(self._vec(ca, self.df_c), self._vec(cb, self.df_c))
        return round(min(1.0, max(0.0, s)), 4)


_default_similarity = Similarity()


def semantic_similarity(answer: str, reference: str, sim: Similarity | None = None) -> float:
    """Cosine similarity of answer and reference (citations and pseudonyms stripped from words)."""
    return (sim or _default_similarity)(strip_citations(answer or ""), reference or "")


# -- relevancy and correctness ---------------------------------------------------------------
def is_noncommittal(answer: str) -> bool:
    head = " ".join((answer or "").split()[:40])
    return bool(NONCOMMITTAL_RE.search(head))


def answer_relevancy(question: str, answer: str, aspects: Sequence[Sequence[str]] | None = None,
                     sim: Similarity | None = None) -> float | None:
    """Aspects of the question the answer addresses (each aspect: alternatives, any substring
    matches, case-insensitive), times committal; lemma cosine when no aspects are given."""
    if not answer or not answer.strip():
        return 0.0
    if is_noncommittal(answer):
        return 0.0
    if not aspects:
        best = max((semantic_similarity(s.text, question, sim) for s in claims(answer)), default=0.0)
        return round(best, 4)
    low = answer.lower().replace("ё", "е")
    hit = sum(any(a.lower().replace("ё", "е") in low for a in alts) for alts in aspects)
    return round(hit / len(aspects), 4)


def fact_f1(answer: str, reference: Sequence[RefClaim]) -> tuple[float | None, int, int, int]:
    """(F1, TP, FP, FN) of the answer's facts against the reference claims."""
    if not reference:
        return None, 0, 0, 0
    ans = Support()
    body = strip_citations(answer or "")
    ans.add_text(body)
    tp = sum(1 for rc in reference if rc.values and all(_value_found(v, ans) for v in rc.values))
    fn = len(reference) - tp
    ref = Support()
    for rc in reference:
        for v in rc.values:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ref.add_number(float(v))
            elif isinstance(v, str):
                ref.add_text(v)
        ref.add_text(rc.text)
    fp = 0
    for cl in claims(answer):
        if not OUTCOME_RE.search(cl.text) or cl.cites:
            continue  # only claims about the reference's fact types (a cited quote is evidence, not a total)
        e = entities(cl.text)
        if any(not ref.number(v, u) for v, u in e["numbers"]):
            fp += 1
    denom = tp + 0.5 * (fp + fn)
    return (round(tp / denom, 4) if denom else 0.0), tp, fp, fn


def answer_correctness(answer: str, reference: Sequence[RefClaim], reference_text: str,
                       sim: Similarity | None = None, weights: tuple[float, float] = CORRECTNESS_WEIGHTS) -> float | None:
    f1, *_ = fact_f1(answer, reference)
    s = semantic_similarity(answer, reference_text, sim)
    if f1 is None:
        return s
    return round(weights[0] * f1 + weights[1] * s, 4)


# -- one sample, offline ---------------------------------------------------------------------
@dataclass
class Sample:
    """Everything the metrics need for one question and one answer."""

    question: str
    answer: str
    contexts: list[Context]
    reference: str
    reference_claims: list[RefClaim] = field(default_factory=list)
    reference_ids: list[str] = field(default_factory=list)
    aspects: list[list[str]] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)


def score_offline(s: Sample, sim: Similarity | None = None) -> dict[str, float | None]:
    """All six metrics (plus diagnostics prefixed with '_') without an LLM."""
    rel = [bool(c.relevant) if c.relevant is not None else (c.id in s.reference_ids) for c in s.contexts]
    f1, tp, fp, fn = fact_f1(s.answer, s.reference_claims)
    sim_v = semantic_similarity(s.answer, s.reference, sim)
    out = {
        "faithfulness": faithfulness(s.answer, s.contexts, s.companies),
        "answer_relevancy": answer_relevancy(s.question, s.answer, s.aspects, sim),
        "context_precision": context_precision(rel),
        "context_recall": context_recall(s.reference_claims, s.contexts),
        "semantic_similarity": sim_v,
        "answer_correctness": (sim_v if f1 is None else
                               round(CORRECTNESS_WEIGHTS[0] * f1 + CORRECTNESS_WEIGHTS[1] * sim_v, 4)),
        "_id_context_recall": id_context_recall([c.id for c in s.contexts], s.reference_ids),
        "_uncovered": [rc.kind for rc in uncovered_claims(s.reference_claims, s.contexts)],
        "_fact_f1": f1, "_tp": tp, "_fp": fp, "_fn": fn,
    }
    return out
