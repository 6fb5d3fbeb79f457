"""Score the anonymizer's person detection on factRuEval-2016, beside natasha's NER alone (same run).

    python bench/bench_ner.py [--split test|dev|both|''] [--corpus ROWS.jsonl ...] [--show N] [--planted]

Data: ``/work/shared/reference/ner/`` (or ``$CRMSUM_NER_REFERENCE``), one sentence a line with the
gold person spans. Scoring (the reference README's): a person mention is caught when none of its
capitalised words survives (a masked first name beside a visible surname is a miss); over-masking is
the share of capitalised words outside person spans, not at sentence start, that disappeared.
Speed: sentences per second of ``Anonymizer.spans_many`` over the split (the batch path the pipeline
uses: rules per sentence, one batched NER pass for those that need it, then the document memory over
the sentences of each news document, as ingestion does over a deal's notes or a chat's messages) in
this process, one core,
empty vault (no known people, no companies — the chat-only worst case); natasha alone is timed with
its own ``map`` over every sentence (batches of 8 in the given order; the anonymizer's NER reads its
windows in length-sorted batches of 32, ``people.ner_map``, the same spans for less padding). Word caches are warmed on the other split first (a
long-running process has seen text before); the figures are of the split itself. Tune on the devset only; the test split is for the reported figures.
``--planted`` adds the per-category masked/planted table (tests/planted_pii.py) over CRM-note,
chat and question contexts. ``--show N`` lists errors of the devset only (the test split's errors are
not for reading); ``--halves`` adds the devset's figures on two halves of its documents (alternate
documents), to see whether a change helps both before the one look at the test split. ``--corpus``
scores a second tuning corpus of the same rows (NEREL, made by ``bench/nerel_to_jsonl.py``; its errors may
be listed): the devset alone is saturated, and a rule that helps both corpora is likelier to help text
neither has seen.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REF = Path(os.environ.get("CRMSUM_NER_REFERENCE", "/work/shared/reference/ner"))
CAP_WORD_RE = re.compile(r"(?<!\w)[А-ЯЁA-Z][\w\-]*")
Spans = list[tuple[int, int]]


def load(split: str) -> list[dict]:
    return load_rows(REF / f"factrueval2016-{split}set-persons.jsonl")


def load_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _mask(n: int, spans: Spans) -> bytearray:
    m = bytearray(n)
    for a, b in spans:
        m[a:b] = b"\x01" * (b - a)
    return m


def score(rows: list[dict], predicted: list[Spans]) -> dict:
    """Mention recall and over-masking of predicted masked spans, with the misses for debugging."""
    caught = total = over = outside = 0
    misses: list[str] = []
    overs: list[str] = []
    for row, spans in zip(rows, predicted):
        s = row["text"]
        masked = _mask(len(s), spans)
        gold = _mask(len(s), [tuple(p) for p in row["person_spans"]])
        for a, b in row["person_spans"]:
            words = list(CAP_WORD_RE.finditer(s, a, b))
            if not words:
                continue
            total += 1
            if all(masked.find(1, w.start(), w.end()) >= 0 for w in words):
                caught += 1
            else:
                misses.append(s[a:b])
        for w in CAP_WORD_RE.finditer(s):
            if w.start() == 0 or gold.find(1, w.start(), w.end()) >= 0:
                continue
            outside += 1
            if masked.find(1, w.start(), w.end()) >= 0:
                over += 1
                overs.append(w.group(0))
    return {"mentions": total, "recall": caught / max(total, 1), "outside_words": outside,
            "over_masking": over / max(outside, 1), "misses": misses, "overs": overs}


def timed(fn: Callable[[], list[Spans]]) -> tuple[list[Spans], tuple[float, float]]:
    """Result and (wall seconds, CPU seconds of this process): on a shared machine the CPU figure is
    the one-core cost, the wall figure what the load left of it."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t, time.process_time() - c)


def halves(rows: list[dict], predicted: list[Spans]) -> str:
    """Recall and over-masking on each half of the documents (alternate documents, sorted by key)."""
    docs = sorted({r["doc"] for r in rows})
    out = []
    for name, keep in (("A", set(docs[0::2])), ("B", set(docs[1::2]))):
        part = [(r, p) for r, p in zip(rows, predicted) if r["doc"] in keep]
        h = score([r for r, _ in part], [p for _, p in part])
        out.append(f"half {name} recall {h['recall']:.4f} ({h['mentions']}) over-masking {h['over_masking']:.4f}")
    return "; ".join(out)


def run_split(split: str, show: int, by_half: bool = False, corpus: Path | None = None) -> None:
    """Score one split; ``corpus`` is an extra tuning corpus in the same row shape (NEREL)."""
    from crmsum.privacy import Anonymizer, Vault
    from crmsum.privacy.people import ner_tagger

    rows = load_rows(corpus) if corpus else load(split)
    tuning = split != "test"
    texts = [r["text"] for r in rows]
    tagger = ner_tagger()
    tagger(texts[0])   # load and warm both before timing
    with tempfile.TemporaryDirectory() as tmp:
        anon = Anonymizer(Vault(Path(tmp) / "vault"), workers=1)
        # warm the per-word caches on the other split, as a long-running process would be warm
        other = load("test" if split == "dev" else "dev")
        anon.spans_many([r["text"] for r in other], [r["doc"] for r in other])
        anon.stats.update(texts=0, ner=0)
        docs = [r["doc"] for r in rows]
        ours, t_ours = timed(lambda: [[(a, b) for a, b, _ in sp] for sp in anon.spans_many(texts, docs)])
        ner_share = anon.stats["ner"] / max(anon.stats["texts"], 1)
    nat, t_nat = timed(lambda: [[(sp.start, sp.stop) for sp in m.spans if sp.type == "PER"]
                                for m in tagger.map(texts)])
    for name, pred, el in (("anonymizer", ours, t_ours), ("natasha NER alone", nat, t_nat)):
        r = score(rows, pred)
        print(f"{split:4} {name:18} recall {r['recall']:.4f} ({r['mentions']} mentions)  "
              f"over-masking {r['over_masking']:.4f} ({r['outside_words']} words)  "
              f"{len(rows) / el[1]:,.0f} sentences per CPU-second ({len(rows) / el[0]:,.0f}/s wall)")
        if name == "anonymizer":
            print(f"{'':4} {'':18} NER ran on {ner_share:.1%} of sentences")
            if by_half and tuning:
                print(f"{'':4} {'':18} {halves(rows, pred)}")
            if show and tuning:
                print("  missed:", r["misses"][:show])
                print("  over-masked:", r["overs"][:show])
            elif show:
                print("  (errors are listed for the devset only: tune on dev, report test)")


def run_planted() -> None:
    from tests.planted_pii import planted_table

    print(f"{'category':16} masked/planted")
    for cat, (masked, planted) in planted_table().items():
        print(f"{cat:16} {masked:>6}/{planted}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("test", "dev", "both", ""), default="test",
                    help="factRuEval split ('' for none, with --corpus)")
    ap.add_argument("--show", type=int, default=0, help="print the first N misses and over-masked words (devset only)")
    ap.add_argument("--halves", action="store_true", help="also score the devset on two halves of its documents")
    ap.add_argument("--corpus", type=Path, action="append", default=[],
                    help="also score a tuning corpus of the same row shape (bench/nerel_to_jsonl.py)")
    ap.add_argument("--planted", action="store_true", help="also print the per-category planted table")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    for split in (("dev", "test") if a.split == "both" else (a.split,) if a.split else ()):
        run_split(split, a.show, a.halves)
    for corpus in a.corpus:
        run_split(corpus.stem[:12], a.show, a.halves, corpus)
    if a.planted:
        run_planted()


if __name__ == "__main__":
    main()
