"""Scoring retrieval against a labelled set: precision@5, recall@20 and MRR, beside a keyword baseline.

The labelled set (tests/data/retrieval.jsonl) holds queries in varied Russian over the fixed sample
account (`crmsum.retrieval.sample`) with the ids of the records that answer them; `paraphrase`
queries share no lemma with any of their answers, so only meaning can find them. The baseline is
BM25 (bm25s) over the same lemmas the offline embeddings see (`crmsum.retrieval.text.tokens`):
the comparison isolates what the vectors add over matching the words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmsum.retrieval.text import tokens

DEPTH = 20  # ranks scored (recall@20)


@dataclass(frozen=True)
class Labelled:
    id: str
    query: str
    relevant: frozenset[str]
    paraphrase: bool


def load_labels(path: str | Path) -> list[Labelled]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Labelled(d["id"], d["query"], frozenset(d["relevant"]), bool(d.get("paraphrase"))))
    return out


def metrics(ranked: Sequence[Sequence[str]], labels: Sequence[Labelled]) -> dict[str, float]:
    """Mean precision@5, recall@20 and MRR (first relevant within DEPTH) over the queries; n = queries."""
    p5, r20, rr = [], [], []
    for ids, lab in zip(ranked, labels):
        hits = [i in lab.relevant for i in ids[:DEPTH]]
        p5.append(sum(hits[:5]) / 5)
        r20.append(sum(hits) / min(len(lab.relevant), DEPTH))
        rr.append(next((1 / (j + 1) for j, h in enumerate(hits) if h), 0.0))
    n = len(labels)
    return {"n": n, "p@5": float(np.mean(p5)) if n else 0.0, "r@20": float(np.mean(r20)) if n else 0.0,
            "mrr": float(np.mean(rr)) if n else 0.0}


def bm25_ranker(lake) -> Callable[[str], list[str]]:
    """BM25 over the lemmas of the same records the vectors cover (kinds note/call/task/msg)."""
    import bm25s

    con = lake.connect()
    df = con.execute("SELECT record_id, text FROM record_embeddings WHERE kind <> 'deal' AND vector IS NOT NULL "
                     "ORDER BY record_id").df()
    con.close()
    ids = df["record_id"].tolist()
    corpus = [tokens(t) or ["∅"] for t in df["text"]]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenization.Tokenized(*_vocab_ids(corpus)), show_progress=False)
    vocab = _vocab_ids(corpus)[1]

    def rank(query: str) -> list[str]:
        q = [vocab[w] for w in tokens(query) if w in vocab]
        if not q:
            return []
        scores = retriever.get_scores(q)
        top = np.argsort(-scores, kind="stable")[:DEPTH]
        return [ids[i] for i in top if scores[i] > 0]

    return rank


def _vocab_ids(corpus: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {}
    docs = [[vocab.setdefault(w, len(vocab)) for w in d] for d in corpus]
    return docs, vocab


def vector_ranker(lake, settings, embeddings=None) -> Callable[[str], list[str]]:
    from crmsum.retrieval.find import search

    def rank(query: str) -> list[str]:
        return [h.id for h in search(lake, query, k=DEPTH, settings=settings, min_score=-1.0, embeddings=embeddings)]

    return rank


def evaluate(rankers: dict[str, Callable[[str], list[str]]], labels: Sequence[Labelled]) -> dict[str, dict]:
    """{ranker: {"all": metrics, "paraphrase": metrics, "keyword": metrics}} in one run."""
    out = {}
    for name, rank in rankers.items():
        ranked = [rank(lab.query) for lab in labels]
        out[name] = {part: metrics([r for r, lab in zip(ranked, labels) if keep(lab)], [lab for lab in labels if keep(lab)])
                     for part, keep in (("all", lambda lab: True), ("paraphrase", lambda lab: lab.paraphrase),
                                        ("keyword", lambda lab: not lab.paraphrase))}
    return out
