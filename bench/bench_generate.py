"""Benchmark `crmsum generate`: wall time, peak memory and output size at design scale and above.

    python bench/bench_generate.py              # scales 1 and 10 (1,000 and 10,000 leads, 3 years of chat)
    python bench/bench_generate.py --scale 1 2  # any scales

Each scale runs in a fresh subprocess so the peak RSS (VmHWM) belongs to that run alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import datetime as dt, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench.memory import vm_hwm_mb
from crmsum.sandbox.generate import generate
out, leads = Path(sys.argv[1]), int(sys.argv[2])
t0 = time.perf_counter()
stats = generate(out, leads=leads, chat_days=1095, seed=7, end_date=dt.date(2025, 12, 31))
elapsed = time.perf_counter() - t0
size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({"elapsed": elapsed, "peak_mb": vm_hwm_mb(),
                  "size_mb": size / 2**20, "stats": stats}))
"""


def run(scale: float) -> dict:
    leads = max(1, int(1000 * scale))
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "acc"), str(leads), str(Path(__file__).resolve().parents[1])],
                           capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["wall_with_startup"] = time.perf_counter() - t0
        res["leads"] = leads
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, nargs="+", default=[1, 10], help="multiples of 1,000 leads")
    args = ap.parse_args()
    print(f"{'scale':>6} {'leads':>7} {'time s':>8} {'peak MB':>8} {'out MB':>8}  counts")
    for s in args.scale:
        r = run(s)
        st = r["stats"]
        counts = ", ".join(f"{k} {v}" for k, v in st.items())
        print(f"{s:>6g} {r['leads']:>7} {r['elapsed']:>8.1f} {r['peak_mb']:>8.0f} {r['size_mb']:>8.1f}  {counts}",
              flush=True)


if __name__ == "__main__":
    main()
