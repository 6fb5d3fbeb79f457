"""The labelled retrieval set (tests/data/retrieval.jsonl) over the fixed sample account: the vectors
must beat the BM25 keyword baseline on the paraphrase queries (which share no lemma with their
answers) and not fall behind it on the whole set. Both are measured here, in the same run; the
figures with more context are in bench/bench_retrieval.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the sample account is generated, synced over HTTP and embedded (~20 s)

LABELS = Path(__file__).parent / "data" / "retrieval.jsonl"


@pytest.fixture(scope="module")
def scored(sample_account, tmp_path_factory):
    from crmsum.answer import reset_contexts
    from crmsum.retrieval.evaluate import bm25_ranker, evaluate, load_labels, vector_ranker
    from crmsum.retrieval.sample import build

    s, lake = build(tmp_path_factory.mktemp("retrieval_eval"), account=sample_account)
    labels = load_labels(LABELS)
    yield labels, evaluate({"vector": vector_ranker(lake, s), "bm25": bm25_ranker(lake)}, labels), lake
    reset_contexts()


def test_labelled_set_matches_the_sample_account(scored):
    """Each label's ids are the records its answer pattern matches; when the sample generator changes,
    regenerate: `python bench/make_retrieval_labels.py DATA_DIR/lake tests/data/retrieval.jsonl`."""
    import json
    import re

    labels, _, lake = scored
    df = lake.connect().execute("SELECT record_id, text FROM record_embeddings WHERE kind <> 'deal'").df()
    assert len(labels) >= 40 and sum(lab.paraphrase for lab in labels) >= 15
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        rx = re.compile(d["answers"])
        matched = set(df.loc[[bool(rx.search(t or "")) for t in df["text"]], "record_id"])
        assert matched == set(d["relevant"]), f"{d['id']}: the sample account changed, regenerate the labels"


def test_paraphrase_queries_share_no_lemma_with_their_answers(scored):
    from crmsum.retrieval.text import tokens

    labels, _, lake = scored
    con = lake.connect()
    for lab in (lab for lab in labels if lab.paraphrase):
        texts = [r[0] for r in con.execute("SELECT text FROM record_embeddings WHERE list_contains(?, record_id)",
                                           [sorted(lab.relevant)]).fetchall()]
        shared = set(tokens(lab.query)) & {w for t in texts for w in tokens(t)}
        assert not shared, (lab.id, shared)


def beats(vec: dict, kw: dict) -> list[str]:
    """What fails of «better on paraphrases, no worse overall» (empty: the method passes)."""
    checks = {"paraphrase MRR": vec["paraphrase"]["mrr"] > kw["paraphrase"]["mrr"],
              "paraphrase p@5": vec["paraphrase"]["p@5"] > kw["paraphrase"]["p@5"],
              "overall MRR": vec["all"]["mrr"] >= kw["all"]["mrr"],
              "keyword MRR": vec["keyword"]["mrr"] >= kw["keyword"]["mrr"] - 0.05}  # words alone are BM25's ground
    return [name for name, ok in checks.items() if not ok]


def test_vectors_beat_keywords_on_paraphrases_and_match_them_overall(scored):
    _, m, _ = scored
    assert not beats(m["vector"], m["bm25"]), m


def test_the_comparison_fails_for_a_broken_embedding(scored):
    """Random query vectors against the same index must not pass `beats`: the test above can fail."""
    import numpy as np

    from crmsum.retrieval.embeddings import LakeEmbeddings, get_embeddings
    from crmsum.retrieval.evaluate import evaluate, vector_ranker

    labels, m, lake = scored
    s = lake_settings(lake)
    real = get_embeddings(s)

    class Broken(LakeEmbeddings):
        backend, model = real.backend, real.model

        def embed_matrix(self, texts):
            v = np.random.default_rng(len(texts[0])).standard_normal((len(texts), 300))
            return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    broken = evaluate({"broken": vector_ranker(lake, s, Broken())}, labels)["broken"]
    assert beats(broken, m["bm25"]), broken


def lake_settings(lake):
    from crmsum.config import Settings

    return Settings(data_dir=Path(lake.root).parent, llm="offline")
