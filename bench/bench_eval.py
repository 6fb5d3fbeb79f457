"""Evaluation benchmark: generate a sample account, ingest it, precompute (offline), run the eval.

    python bench/bench_eval.py                      # 120 leads, 180 chat days, offline backend, offline judge
    python bench/bench_eval.py --leads 300 --questions 60
    python bench/bench_eval.py --with-llm           # + the LLM backend on the loopback LLM emulator, side by side
    python bench/bench_eval.py --judge llm          # LLM judge (emulator) instead of the offline metrics
    python bench/bench_eval.py --out /tmp/evalrun   # keep the account and the data dir

Prints the metric table (per backend), the per-kind table, timings, and whether the aims hold
(offline: faithfulness >= 0.95, context recall >= 0.9). Everything is offline: the amoCRM and LLM
emulators are real HTTP servers on loopback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=120)
    ap.add_argument("--chat-days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--end-date", default="2024-06-30")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--with-llm", action="store_true", help="also evaluate the LLM backend (LLM emulator)")
    ap.add_argument("--judge", choices=("offline", "llm"), default="offline")
    ap.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the aggregates as JSON at the end")
    args = ap.parse_args(argv)

    from rich.console import Console

    from crmsum import pipeline
    from crmsum.answer import reset_contexts
    from crmsum.config import Settings
    from crmsum.evaluation.run import run_eval
    from crmsum.lake import Lake
    from crmsum.sandbox.amocrm_emulator import AmoEmulator
    from crmsum.sandbox.generate import generate

    console = Console()
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="crmsum-bench-eval-")
    root = args.out or Path(tmp.name)
    account, data = root / "account", root / "data"
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    stats = generate(account, leads=args.leads, chat_days=args.chat_days, seed=args.seed,
                     end_date=dt.date.fromisoformat(args.end_date))
    t["generate"] = time.perf_counter() - t0
    console.print(f"sample account: {stats}", highlight=False)
    t0 = time.perf_counter()
    with AmoEmulator(account / "amocrm", token="bench-token") as emu:
        s = Settings(data_dir=data, amocrm_base_url=emu.url, amocrm_token="bench-token", llm="offline",
                     amocrm_rps=1000)
        lake = Lake(s.lake_dir)
        pipeline.sync_amocrm(s, lake)
    t["sync"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline.import_telegram(account / "telegram" / "result.json", s, lake)
    t["telegram"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pre = pipeline.precompute(s, lake)
    t["precompute"] = time.perf_counter() - t0
    console.print(f"precompute: {pre}", highlight=False)
    reset_contexts()

    backends = ("offline", "llm") if args.with_llm else ("offline",)
    emu_llm = None
    judge = None
    if args.with_llm or args.judge == "llm":
        from pydantic import SecretStr

        from crmsum.sandbox.llm_emulator import LLMEmulator

        emu_llm = LLMEmulator(api_key="sk-bench").start()
        s = s.model_copy(update={"openai_api_key": SecretStr("sk-bench"), "openai_base_url": emu_llm.url,
                                 "llm_model": "emulated-gpt"})
        if args.judge == "llm":
            from crmsum.evaluation.judge import LLMJudge

            judge = LLMJudge(s)
    try:
        t0 = time.perf_counter()
        report = run_eval(s, lake, truth_dir=account / "truth", backends=backends, judge=judge, n=args.questions,
                          console=console)
        t["eval"] = time.perf_counter() - t0
    finally:
        if emu_llm is not None:
            emu_llm.stop()
    console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()), highlight=False)
    ok = True
    for m, (v, target, met) in report.targets("offline").items():
        ok &= met
        console.print(f"aim offline {m} >= {target}: {'met' if met else 'NOT met'} ({v if v is None else f'{v:.3f}'})",
                      highlight=False)
    rows = report.rows
    if len(rows):
        wrong = rows[~rows["parsed_ok"]]
        console.print(f"answers covering the asked scope/period: {len(rows) - len(wrong)}/{len(rows)}", highlight=False)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    if args.out:
        console.print(f"kept in {root} (CRMSUM_DATA_DIR={data})", highlight=False)
    else:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
