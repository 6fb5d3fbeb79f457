"""Accuracy per field and parse latency of ``crmsum.query.parse_question`` on the labelled set.

Run: ``python bench/bench_parse.py [--errors] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmsum.query import parse_question  # noqa: E402

DATA = ROOT / "tests" / "data" / "questions.jsonl"
FIELDS = ("manager", "company", "start", "end")


def load(path: Path = DATA) -> tuple[dict, list[dict]]:
    lists, rows = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if "lists" in obj and "text" not in obj:
            lists.update(obj["lists"])
        else:
            rows.append(obj)
    return lists, rows


def case_lists(lists: dict, row: dict) -> tuple[list[str], list[str]]:
    if isinstance(row.get("lists"), str):
        spec = lists[row["lists"]]
        return spec["managers"], spec["companies"]
    return row.get("managers", []), row.get("companies", [])


def evaluate(lists: dict, rows: list[dict]) -> tuple[dict, list[tuple[dict, dict]]]:
    ok = {f: 0 for f in FIELDS}
    errors = []
    for row in rows:
        managers, companies = case_lists(lists, row)
        r = parse_question(row["text"], managers, companies, date.fromisoformat(row["today"]))
        got = {"manager": r.manager, "company": r.company,
               "start": r.start.isoformat() if r.start else None, "end": r.end.isoformat() if r.end else None}
        bad = False
        for f in FIELDS:
            if got[f] == row.get(f):
                ok[f] += 1
            else:
                bad = True
        if bad:
            errors.append((row, got))
    return {f: ok[f] / max(1, len(rows)) for f in FIELDS}, errors


def latency(lists: dict, rows: list[dict], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        for row in rows:
            managers, companies = case_lists(lists, row)
            today = date.fromisoformat(row["today"])
            t0 = time.perf_counter()
            parse_question(row["text"], managers, companies, today)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def _per_question(lists: dict, rows: list[dict], repeat: int) -> list[list[float]]:
    out = []
    for row in rows:
        managers, companies = case_lists(lists, row)
        today = date.fromisoformat(row["today"])
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            parse_question(row["text"], managers, companies, today)
            ts.append((time.perf_counter() - t0) * 1000)
        out.append(ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--errors", action="store_true", help="print every mismatch")
    ap.add_argument("--repeat", type=int, default=3, help="timing passes over the set")
    args = ap.parse_args()
    lists, rows = load()
    t0 = time.perf_counter()
    acc, errors = evaluate(lists, rows)  # first pass also warms the caches
    cold = time.perf_counter() - t0
    print(f"questions: {len(rows)}  (first pass incl. index build: {cold:.2f}s)")
    for f in FIELDS:
        print(f"  {f:8s} accuracy: {acc[f]:.4f}")
    print(f"  all-fields exact: {1 - len(errors) / max(1, len(rows)):.4f}")
    times = sorted(latency(lists, rows, args.repeat))
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"latency ms: p50 {p(0.50):.3f}  p95 {p(0.95):.3f}  p99 {p(0.99):.3f}  max {times[-1]:.3f}  mean {statistics.mean(times):.3f}")
    # per-question median over the passes: robust to a busy machine
    per_q = sorted(statistics.median(times_q) for times_q in _per_question(lists, rows, max(3, args.repeat)))
    pq = lambda q: per_q[min(len(per_q) - 1, int(q * len(per_q)))]  # noqa: E731
    print(f"per-question median latency ms: p50 {pq(0.50):.3f}  p95 {pq(0.95):.3f}  max {per_q[-1]:.3f}")
    if args.errors:
        for row, got in errors:
            exp = {f: row.get(f) for f in FIELDS}
            print(f"- {row['text']!r} today={row['today']}\n    expected {exp}\n    got      {got}")


if __name__ == "__main__":
    main()
