"""The bot under load: do slow live answers hold up quick precomputed ones?

    python bench/bench_bot.py                 # build the design-scale lake (bench_answer), then measure
    python bench/bench_bot.py --data DIR      # reuse a DATA_DIR kept by `bench_answer.py --keep DIR`

The real bot (`crmsum.bot.build_bot`, long polling, pyTelegramBotAPI) talks to the Telegram Bot API
emulator over loopback; live answers use the LLM backend against the OpenAI-compatible emulator
with a deliberate `--llm-delay` (a slow model). Per round, four chats ask live questions first, then
twenty other chats ask precomputed ones at once; the figure is the time from a question reaching the
Bot API to the emulator accepting its answer (its own clock, so the order the bench waits in does not
count), p50 / p95 over all precomputed questions, with the CPU time of the process and the load average
before and after each configuration (the emulators run in the same process and are counted too).

Baseline in the same process: the same bot with the old configuration (2 handler threads, live
answers computed on them).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TOKEN = "123456789:BENCH-bot"
QUICK_CHATS = [-1000 - i for i in range(20)]
LIVE_CHATS = [-2000 - i for i in range(4)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def questions(data_dir: Path, seed: int) -> tuple[list[str], list[str]]:
    """(precomputed questions, live questions) for the lake's managers."""
    from crmsum.lake import Lake
    from crmsum.privacy import Vault
    from crmsum.ru import MONTHS_LOC

    real = dict(Vault(data_dir / "vault").people("manager"))
    con = Lake(data_dir / "lake").connect()
    rows = con.sql("SELECT key, period_kind, period, start FROM summaries WHERE scope = 'manager'").df()
    con.close()
    rnd = random.Random(seed)
    quick = []
    for r in rows.sample(min(200, len(rows)), random_state=seed).itertuples():
        when = f"за неделю {r.period}" if r.period_kind == "week" else f"в {MONTHS_LOC[r.start.month - 1]} {r.start.year}"
        quick.append(f"Что {real.get(r.key, r.key)} делал(а) {when}?")
    live = [f"Что {rnd.choice(list(real.values()))} делал(а) с 0{rnd.randint(1, 9)}.03.2025 по 2{rnd.randint(0, 8)}.03.2025?"
            for _ in range(50)]
    return quick, live


def run(settings, data_dir: Path, tg, quick: list[str], live: list[str], rounds: int,
        old: bool) -> tuple[list[float], float, float]:
    """Latencies (ms) of the precomputed answers, and the CPU and wall seconds of the rounds (warm-up not
    counted)."""
    from crmsum.bot import build_bot
    from crmsum.lake import Lake

    from crmsum import answer as A

    bot, app = build_bot(settings, Lake(data_dir / "lake"))
    A.get_context(settings, app.lake).keep_warm(A.warm, wait=True)  # what `crmsum bot` does before it polls
    if old:  # the configuration before: live answers computed on the two handler threads
        app.live = None
    t = threading.Thread(target=bot.polling, kwargs={"non_stop": True, "timeout": 10, "long_polling_timeout": 1},
                         daemon=True)
    t.start()
    lat: list[float] = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        for k in range(rounds):
            round_start = tg.sent_count()
            for n, chat in enumerate(LIVE_CHATS):
                tg.push_message(chat, live[(k * 4 + n) % len(live)], chat_type="supergroup")
            time.sleep(0.2)
            pushed = {}
            for n, chat in enumerate(QUICK_CHATS):
                pushed[chat] = (tg.sent_count(), time.monotonic())
                tg.push_message(chat, quick[(k * 20 + n) % len(quick)], chat_type="supergroup")
            for chat, (since, t0) in pushed.items():  # timed by the emulator: the waiting order does not count
                got = tg.wait_for_sent(lambda m, c=chat: m["chat_id"] == c and m["reply_markup"] is not None,
                                       timeout=120, since=since)
                lat.append((got["monotonic"] - t0) * 1000)
            for chat in LIVE_CHATS:  # let the round's live answers finish before the next round
                tg.wait_for_sent(lambda m, c=chat: m["chat_id"] == c and m["reply_markup"] is not None, timeout=300,
                                 since=round_start)  # this round's answer (not one of an earlier configuration)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        bot.stop_polling()
        t.join(15)
        if app.live is not None:
            app.live.shutdown(wait=True)
    return lat, cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="DATA_DIR kept by bench_answer.py --keep")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llm-delay", type=float, default=6.0, help="seconds the emulated model takes per call")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    if args.data:
        data_dir = args.data
    else:
        from bench_answer import build

        data_dir = Path(tempfile.mkdtemp(prefix="bench_bot_"))
        info = build(data_dir)
        print(f"design-scale lake: {info['summaries']} summaries precomputed in {info['precompute_s']:.1f}s")

    from crmsum.config import Settings
    from crmsum.sandbox.llm_emulator import LLMEmulator
    from crmsum.sandbox.telegram_emulator import TelegramEmulator

    quick, live = questions(data_dir, args.seed)
    print(f"machine load (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    with TelegramEmulator(TOKEN) as tg, LLMEmulator(api_key="sk-bench", delay=args.llm_delay) as llm:
        chats = ",".join(str(c) for c in QUICK_CHATS + LIVE_CHATS)
        for old in (True, False):
            shutil.rmtree(data_dir / "state" / "llm_cache", ignore_errors=True)  # every live answer waits for the model
            s = Settings(data_dir=data_dir, llm="llm", OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=llm.url,
                         llm_model="emulated-gpt", telegram_token=TOKEN, telegram_api_url=tg.url,
                         telegram_allowed_chats=chats, telegram_user_rate=10_000,
                         telegram_workers=2 if old else 8)
            load0 = os.getloadavg()[0]
            lat, cpu, wall = run(s, data_dir, tg, quick, live, args.rounds, old)
            name = "before: 2 threads, live inline" if old else "now: 8 threads + 4 live workers"
            print(f"{name:<34} precomputed answers while 4 live run: n={len(lat)} "
                  f"p50 {statistics.median(lat):8.1f} ms  p95 {pct(lat, 0.95):8.1f} ms  max {max(lat):8.1f} ms  "
                  f"(rounds: CPU {cpu:.1f} s in {wall:.1f} s; load {load0:.1f} -> {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
