"""Benchmark: semantic retrieval — quality against a keyword baseline, embedding throughput and its
share of the nightly run, query latency (exact and approximate index), `record_embeddings` on disk.

    python bench/bench_retrieval.py                    # quality + scales 1 and 10
    python bench/bench_retrieval.py --scales 1         # one scale
    python bench/bench_retrieval.py --quality-only

Quality: the labelled set tests/data/retrieval.jsonl over the fixed sample account
(`crmsum.retrieval.sample`: 40 leads, 90 chat days, seed 1) — precision@5, recall@20 and MRR of the
vectors beside BM25 over the same lemmas, in the same run, split into paraphrase queries (no lemma
shared with the answers) and keyword queries; plus a control of random unit vectors, which is what
a broken embedding would score.

Scales: the synthetic lake of bench_precompute.py (scale 1 = 1,000 deals, 3 years of CRM history
and chat; scale 10 = 10x). Per scale, in a fresh subprocess: the first embedding run (fit + embed
every record; records/s over all records and over distinct texts, peak RSS), a rerun (must embed
0), with --share one typical day of new data (embed vs the offline precompute of the same night:
the share of the nightly run), the table's size on disk (as written, and compacted), and query latency p50/p95
over 200 queries for the exact top-k and the approximate HNSW index (usearch), with the
approximate index's recall@10 against exact and its build time.

The machine may be shared: every figure is wall time, and the 1-minute load average is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "retrieval.json"
QUERIES = ["клиент пропал после КП", "просит скидку", "дорого, цена выше чем у конкурента", "договор подписан",
           "оплата поступила", "не можем выйти на ЛПР", "тендер перенесли", "встреча прошла хорошо",
           "заказчик исчез и молчит", "деньги от покупателя зачислены"]


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _peak_mb() -> float:
    from bench.memory import vm_hwm_mb

    return round(vm_hwm_mb(), 1)


def _du(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*.parquet")) / 1e6, 2)


# -- quality -----------------------------------------------------------------------------------
def quality(root: Path) -> dict:
    from crmsum.retrieval.embeddings import LakeEmbeddings
    from crmsum.retrieval.evaluate import bm25_ranker, evaluate, load_labels, vector_ranker
    from crmsum.retrieval.index import load_index
    from crmsum.retrieval.sample import build

    s, lake = build(root)
    labels = load_labels(ROOT / "tests" / "data" / "retrieval.jsonl")

    from crmsum.retrieval.embeddings import get_embeddings

    real = get_embeddings(s)

    class RandomQueries(LakeEmbeddings):  # the control: what a broken embedding would score
        backend, model = real.backend, real.model

        def embed_matrix(self, texts):
            v = np.random.default_rng(abs(hash(tuple(texts))) % 2**32).standard_normal((len(texts), 300))
            return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    index = load_index(lake, real.model)
    t0 = time.perf_counter()
    m = evaluate({"vector (navec SIF)": vector_ranker(lake, s), "bm25 (lemmas)": bm25_ranker(lake),
                  "control: random vectors": vector_ranker(lake, s, RandomQueries())}, labels)
    return {"labelled_queries": len(labels), "paraphrases": sum(x.paraphrase for x in labels),
            "records": len(index), "seconds": round(time.perf_counter() - t0, 2), "load": _load(), "metrics": m}


# -- one scale, in its own process ---------------------------------------------------------------
def _latency(fn, queries) -> dict:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2),
            "n": len(times)}


def run_scale(scale: int, share: bool = False) -> dict:
    from bench.bench_precompute import END, add_day, synth
    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.retrieval.store import update_embeddings

    out: dict = {"scale": scale}
    with tempfile.TemporaryDirectory(prefix=f"bench-retrieval-{scale}-") as tmp:
        s = Settings(data_dir=Path(tmp), llm="offline")
        t0 = time.perf_counter()
        synth(Path(s.lake_dir), scale)
        lake = Lake(s.lake_dir)
        out["synth_s"] = round(time.perf_counter() - t0, 1)
        load0 = _load()
        t0, c0 = time.perf_counter(), time.process_time()
        first = update_embeddings(lake, s)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        con = lake.connect()
        distinct = con.execute("SELECT count(DISTINCT text) FROM record_embeddings").fetchone()[0]
        out["embed_first"] = {"records": first.records, "distinct_texts": int(distinct), "seconds": round(secs, 1),
                              "records_per_s": round(first.records / secs), "distinct_per_s": round(distinct / secs),
                              "cpu_s": round(cpu, 1), "records_per_cpu_s": round(first.records / max(cpu, 1e-9)),
                              "peak_rss_mb": _peak_mb(), "load": load0}
        t0 = time.perf_counter()
        again = update_embeddings(lake, s)
        out["embed_rerun"] = {"embedded": again.embedded, "seconds": round(time.perf_counter() - t0, 1), "load": _load()}
        out["disk_mb"] = {"as_written": _du(Path(s.lake_dir) / "record_embeddings")}
        lake.compact("record_embeddings")
        out["disk_mb"]["compacted"] = _du(Path(s.lake_dir) / "record_embeddings")
        out["disk_mb"]["bytes_per_record"] = round(out["disk_mb"]["compacted"] * 1e6 / first.records)
        if share:  # a full offline precompute first: long (hours at scale 10 on a shared machine)
            out["nightly"] = _nightly_share(lake, s, scale, add_day, END)
        out.update(latency(lake, s))
    out["peak_rss_mb"] = _peak_mb()
    return out


def latency(lake, s, n_queries: int = 200) -> dict:
    """Query latency on a lake with embeddings: end-to-end search (exact), and the index alone,
    exact and approximate (HNSW over the distinct texts), with the approximate index's build time
    and recall@10 (share of its hits scoring at least the exact 10th best: ties swap records)."""
    from crmsum.retrieval import search
    from crmsum.retrieval.embeddings import get_embeddings
    from crmsum.retrieval.index import VectorIndex, load_index

    out: dict = {}
    emb = get_embeddings(s)
    t0 = time.perf_counter()
    index = load_index(lake, emb.model, 10**12)
    out["index_load_s"] = round(time.perf_counter() - t0, 2)
    rng = np.random.default_rng(0)
    queries = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {w}")
               for i, w in enumerate(rng.choice(["срочно", "по договору", "клиенту", "вчера", "снова"], n_queries))]
    s = s.model_copy(update={"embeddings_approx_above": 10**12})
    out["query_exact"] = _latency(lambda q: search(lake, q, k=10, settings=s, min_score=-1), queries)
    out["query_exact"]["load"] = _load()
    out["query_exact_filtered"] = _latency(
        lambda q: search(lake, q, k=10, settings=s, min_score=-1, since=dt.date(2026, 1, 1)), queries)
    t0 = time.perf_counter()
    approx = VectorIndex(index.meta, index.matrix, index.model, approx_above=0)
    build = time.perf_counter() - t0
    qv = emb.embed_matrix(queries)
    exact = [index.exact(q, 10) for q in qv]
    ap_lat = _latency(lambda i: approx.search(qv[i], 10), range(len(qv)))
    ex_lat = _latency(lambda i: index.exact(qv[i], 10), range(len(qv)))
    recall = float(np.mean([np.mean(approx.search(q, 10)[1] >= e[1][-1] - 1e-5) for e, q in zip(exact, qv)]))
    out["index_only"] = {"exact": ex_lat, "approx": ap_lat, "approx_recall@10": round(recall, 3),
                         "approx_build_s": round(build, 1), "vectors": len(index),
                         "distinct_texts_in_graph": int(len(approx._group_start) - 1), "load": _load()}
    return out


def _nightly_share(lake, s, scale: int, add_day, end) -> dict:
    """One typical day of new data: the embedding step beside the precompute step of the same night."""
    from crmsum.precompute import precompute
    from crmsum.retrieval.store import update_embeddings

    t0 = time.perf_counter()
    precompute(settings=s, lake=lake)
    full_pre = time.perf_counter() - t0
    added = add_day(lake, scale, end + dt.timedelta(days=1))
    t0 = time.perf_counter()
    emb = update_embeddings(lake, s)
    t_emb = time.perf_counter() - t0
    t0 = time.perf_counter()
    precompute(settings=s, lake=lake)
    t_pre = time.perf_counter() - t0
    return {"added": added, "embedded": emb.embedded, "embed_s": round(t_emb, 2), "precompute_s": round(t_pre, 2),
            "embed_share_of_embed_plus_precompute": round(t_emb / (t_emb + t_pre), 3),
            "first_precompute_s": round(full_pre, 1), "load": _load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="*", default=[1, 10])
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--share", action="store_true", help="also measure the share of a nightly run (runs a full precompute)")
    ap.add_argument("--lake-dir", type=Path, help="only measure query latency on this DATA_DIR (with embeddings)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lake_dir is not None:
        from crmsum.config import Settings
        from crmsum.lake import Lake

        s = Settings(data_dir=args.lake_dir, llm="offline")
        print(json.dumps(latency(Lake(s.lake_dir), s, args.queries)))
        return
    if args.scale_child is not None:
        print(json.dumps(run_scale(args.scale_child, args.share)))
        return
    results: dict = {"when": dt.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-q-") as tmp:
        results["quality"] = quality(Path(tmp))
    _print_quality(results["quality"])
    for scale in [] if args.quality_only else args.scales:
        proc = subprocess.run([sys.executable, __file__, "--scale-child", str(scale)] + ["--share"] * args.share,
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"scale {scale} failed")
        results[f"scale_{scale}"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[f"scale_{scale}"], ensure_ascii=False, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


def _print_quality(q: dict) -> None:
    print(f"labelled set: {q['labelled_queries']} queries ({q['paraphrases']} paraphrases) over "
          f"{q['records']} records; load {q['load']}")
    print(f"{'ranker':<26} {'part':<11} {'n':>3} {'p@5':>6} {'r@20':>6} {'MRR':>6}")
    for name, parts in q["metrics"].items():
        for part, m in parts.items():
            print(f"{name:<26} {part:<11} {m['n']:>3} {m['p@5']:>6.3f} {m['r@20']:>6.3f} {m['mrr']:>6.3f}")


if __name__ == "__main__":
    main()
