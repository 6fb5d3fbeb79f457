"""Benchmark: what nightly compaction does to query latency on the lake's newest-version views.

    python bench/bench_lake.py                  # ~600k chat messages in 30 parts
    python bench/bench_lake.py --rows 200000 --parts 10

The table is `chat_messages` (the biggest at design scale x10: 30 messages a day per 10 managers, three
years), written as `--parts` nightly parts, each night also re-sending ~2% of older messages (edits),
as the importer does with overlapping exports. Three layouts, same rows, same process:

  raw scan      read_parquet over the table's files, no newest-version step (the floor: wrong with edits)
  parts only    the newest-version view over parts (what every view cost before compaction)
  compacted     after `Lake.compact`: one base file, the view reads it as a plain scan
  + one night   compacted, then one night's part on top (the usual state during a day)

Queries: one calendar month's messages per author (what a summary reads), and one key lookup.
Each is run `--repeat` times after a warm-up; p50 and p95 in ms. The load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONTH = "date >= TIMESTAMP '2025-03-01' AND date < TIMESTAMP '2025-04-01'"
QUERIES = {
    "month by author": f"SELECT author, count(*), sum(length(text)) FROM {{t}} WHERE {MONTH} GROUP BY author",
    "one message": "SELECT text FROM {t} WHERE chat_id = -100777 AND message_id = 123457",
}


def build(root: Path, rows: int, parts: int, seed: int = 3):
    from bench.bench_precompute import chat_rows
    from crmsum.lake import Lake

    rng = np.random.default_rng(seed)
    lake = Lake(root)
    uids = np.arange(1, 101) + 1000
    names = [f"PER-{x:08x}" for x in rng.integers(0, 2**32, len(uids))]
    cos = [f"Компания{i}" for i in range(300)]
    days = 1095
    per_day = max(1, rows // days)
    msgs = chat_rows(rng, pd.Timestamp("2023-11-23"), days, per_day, uids, names, cos, 0)
    msgs["date"] = msgs["date"].dt.floor("s")
    bounds = np.linspace(0, len(msgs), parts + 1).astype(int)
    for night in range(parts):
        chunk = msgs.iloc[bounds[night]:bounds[night + 1]]
        if night:  # overlapping export: some older messages again, edited
            old = msgs.iloc[:bounds[night]].sample(frac=0.02 / night, random_state=night).copy()
            old["text"] = old["text"] + " (изм.)"
            old["edited"] = old["date"] + pd.Timedelta(hours=1)
            chunk = pd.concat([chunk, old])
        lake.write("chat_messages", chunk)
    return lake, msgs


def timed(con, sql: str, repeat: int) -> dict:
    con.execute(sql).fetchall()  # warm-up: metadata, OS cache
    xs = []
    for _ in range(repeat):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return {"p50_ms": round(statistics.median(xs), 1), "p95_ms": round(xs[int(0.95 * (len(xs) - 1))], 1)}


def measure(lake, label: str, repeat: int, raw: bool = False) -> dict:
    con = lake.connect()
    if raw:
        con.execute(f"CREATE OR REPLACE VIEW raw AS SELECT * FROM read_parquet('{lake.root}/chat_messages/*.parquet', "
                    "union_by_name=true)")
    out = {name: timed(con, sql.format(t="raw" if raw else "chat_messages"), repeat) for name, sql in QUERIES.items()}
    con.close()
    files = len(lake.parts("chat_messages"))
    print(f"  {label:<28} files {files:>3}  " + "  ".join(f"{q}: p50 {r['p50_ms']:>6} ms, p95 {r['p95_ms']:>6} ms"
                                                    for q, r in out.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=600_000)
    ap.add_argument("--parts", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    from bench.bench_precompute import chat_rows
    from crmsum import lake as L

    L.COMPACT_AFTER = 10**6  # build the "never compacted" layout on purpose
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        lake, msgs = build(Path(tmp), args.rows, args.parts)
        print(f"chat_messages: {lake.row_count('chat_messages'):,} rows, {len(lake.parts('chat_messages'))} files, "
              f"built in {time.perf_counter() - t:.0f}s; load average {os.getloadavg()[0]:.1f}", flush=True)
        res = {"raw": measure(lake, "raw scan (no dedup)", args.repeat, raw=True),
               "parts": measure(lake, "parts only (before)", args.repeat)}
        t = time.perf_counter()
        lake.compact("chat_messages")
        res["compact_seconds"] = round(time.perf_counter() - t, 2)
        print(f"  compaction: {res['compact_seconds']} s", flush=True)
        res["compacted"] = measure(lake, "compacted (after)", args.repeat)
        rng = np.random.default_rng(9)
        night = chat_rows(rng, pd.Timestamp("2026-11-23"), 1, 300, np.arange(1, 11) + 1000,
                          [f"PER-{i:08x}" for i in range(10)], ["Компания"], 10**7)
        night["date"] = night["date"].dt.floor("s")
        lake.write("chat_messages", night)
        res["compacted_plus_night"] = measure(lake, "compacted + one night", args.repeat)
        print(f"load average {os.getloadavg()[0]:.1f}")
    print(res)


if __name__ == "__main__":
    main()
