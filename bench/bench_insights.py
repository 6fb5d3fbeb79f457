"""Benchmark crmsum.insights: features + model + drivers on a generated account, full and incremental.

    python bench/bench_insights.py               # design scale: 1,000 leads, 3 years of chat
    python bench/bench_insights.py --scale 10    # 10x
    python bench/bench_insights.py --data DIR    # reuse a DIR built by an earlier run (DIR/acc, DIR/data)

Prints: time and peak RSS of the full refresh (features -> model -> drivers), of a nightly incremental
run after five new notes, the out-of-time AUC and Brier beside the ceiling the generator's own true
probabilities reach on the same validation deals, and for each planted behaviour the estimated and the
true win-rate difference (truth/story.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import PeakRss  # noqa: E402  (the one RSS sampler of the benches)
from crmsum import pipeline  # noqa: E402
from crmsum.config import Settings  # noqa: E402
from crmsum.insights import analysis, model  # noqa: E402
from crmsum.insights.stats import auc, brier  # noqa: E402
from crmsum.lake import Lake  # noqa: E402
from crmsum.sandbox.amocrm_emulator import AmoEmulator  # noqa: E402
from crmsum.sandbox.generate import generate  # noqa: E402

END = dt.date(2024, 6, 30)
PLANTED = {"fast_follow_up": "first_response_minutes", "meeting_held": "meetings_held",
           "discount_offered": "discount_offered"}


def build(root: Path, leads: int, seed: int) -> Lake:
    """Generate the account and bring it into a lake the real way (emulator -> sync; Telegram import)."""
    if not (root / "data" / "lake").exists():
        generate(root / "acc", leads=leads, chat_days=1095, seed=seed, end_date=END)
        with AmoEmulator(root / "acc" / "amocrm", token="bench") as emu:
            s = Settings(data_dir=root / "data", amocrm_base_url=emu.url, amocrm_token="bench", amocrm_rps=1000,
                         llm="offline")
            pipeline.sync_amocrm(s)
            pipeline.import_telegram(root / "acc" / "telegram" / "result.json", s)
    for derived in ("deal_features", "drivers"):  # a reused lake: measure the full computation again
        shutil.rmtree(root / "data" / "lake" / derived, ignore_errors=True)
    return Lake(root / "data" / "lake")


def timed(fn):
    rss = PeakRss()
    rss.start()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, rss.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path)
    a = ap.parse_args()
    root = a.data or Path(tempfile.mkdtemp(prefix="bench-insights-"))
    leads = 1000 * a.scale
    t = time.perf_counter()
    lake = build(root, leads, a.seed)
    print(f"account: {leads} leads at {root} (built in {time.perf_counter() - t:.0f} s); load {psutil.getloadavg()}")
    rep, sec, mb = timed(lambda: analysis.refresh(lake))
    print(f"full refresh: {sec:.1f} s, peak RSS {mb:.0f} MB; leads {rep.leads}, text re-read {rep.recomputed}, "
          f"steps {rep.seconds}")
    con = lake.connect()
    # five new notes in the middle of five closed deals' lives (a late edit the nightly sync brings in)
    mid = con.execute("""SELECT lead_id, responsible_user_id, created_at + (closed_at - created_at) / 2 AS at
                         FROM crm_leads WHERE closed_at IS NOT NULL ORDER BY lead_id LIMIT 5""").df()
    base_id = 9_000_000_000 + int(time.time()) % 10_000_000 * 10  # new ids on every run of the bench
    lake.write("crm_notes", pd.DataFrame([{"note_id": base_id + i, "lead_id": int(r.lead_id), "note_type": "common",
                                           "text": "Провели встречу, клиент доволен.", "created_by": int(r.responsible_user_id),
                                           "responsible_user_id": int(r.responsible_user_id), "created_at": r.at,
                                           "updated_at": r.at} for i, r in enumerate(mid.itertuples())]))
    rep2, sec2, mb2 = timed(lambda: analysis.refresh(lake))
    print(f"incremental refresh (5 new notes): {sec2:.1f} s, peak RSS {mb2:.0f} MB; text re-read {rep2.recomputed}, "
          f"feature rows written {rep2.features_written}, steps {rep2.seconds}")
    feats = analysis.load_features(lake.connect())
    summary, scored = model.validate(feats)
    story = json.loads((root / "acc" / "truth" / "story.json").read_text(encoding="utf-8"))
    truth = pd.DataFrame([{"lead_id": x["id"], "p_true": x["win_probability"], **x["drivers"]} for x in story["leads"]])
    sc = scored.merge(truth, on="lead_id")
    print(f"out-of-time model: AUC {summary.auc:.3f}, Brier {summary.brier:.3f} (no-skill {summary.brier_baseline:.3f}), "
          f"calibration slope {summary.calibration_slope:.2f}, trained on {summary.n_train}, validated on "
          f"{summary.validated_on} closed after {summary.cutoff}")
    print(f"generator ceiling on the same deals: AUC {auc(sc['y'].to_numpy(), sc['p_true'].to_numpy()):.3f}, "
          f"Brier {brier(sc['y'].to_numpy(), sc['p_true'].to_numpy()):.3f}")
    team = analysis.build_report(lake)
    by = {d.feature: d for d in team.drivers}
    for flag, feature in PLANTED.items():
        w = story["behaviour_win_rates"][flag]
        true_diff = w["with"]["win_rate"] - w["without"]["win_rate"]
        d = by.get(feature)
        if d is None:
            print(f"{flag}: not estimated")
            continue
        covers = d.ci95[0] <= true_diff <= d.ci95[1]
        print(f"{flag}: estimated {d.difference:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}] (n={d.n_with}/{d.n_without}), "
              f"true {true_diff:+.3f} (n={w['with']['closed']}/{w['without']['closed']}); interval covers: {covers}; "
              f"adjusted OR {d.adjusted_odds_ratio:.2f}, significant {d.significant}")
    print(f"significant drivers: {[d.feature for d in team.significant]}; phrases: "
          f"{[(p.phrase, p.side, round(p.score, 1)) for p in team.phrases[:6]]}")
    print(f"load after: {psutil.getloadavg()}")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
