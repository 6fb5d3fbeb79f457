"""Benchmark question understanding and the answer path per intent.

    python bench/bench_intents.py                      # the labelled set only (parser accuracy)
    python bench/bench_intents.py --data DIR -n 30     # plus answers on DATA_DIR (e.g. after `crmsum demo`)

Prints:
- intent accuracy and per-field accuracy (manager, company, start, end, and the filters a row labels)
  per intent on `tests/data/questions.jsonl`;
- on a DATA_DIR: for questions of every intent made from the lake's own names, the share answered from
  precomputed tables, and p50 / p95 of the bot path (prepare + finish in one warm process, the way the
  bot runs, the insights fits warmed first as the bot does in the background; the same-process baseline
  is the first, cold question), over all rounds and over rounds 2..n («asked again»);
- `crmsum ask` as a whole process (interpreter start, imports, lake, answer, exit): p50 / p95 over
  `--runs` runs of a precomputed question, on its own and with a resident answerer (`crmsum serve`, as a
  running bot provides) listening; baseline: a bare interpreter.
Figures depend on the machine's load: the script prints `os.getloadavg()` with them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data" / "questions.jsonl"
FIELDS = ("manager", "company", "start", "end")
FILTERS = ("outcome", "loss_reason", "metric", "order", "by")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


def load() -> tuple[dict, list[dict]]:
    lists, rows = {}, []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            if "text" not in obj:
                lists.update(obj["lists"])
            else:
                rows.append(obj)
    return lists, rows


def parser_accuracy() -> None:
    from crmsum.query import parse_question

    lists, rows = load()
    ok: dict[str, Counter] = defaultdict(Counter)
    n: Counter = Counter()
    t0 = time.perf_counter()
    for r in rows:
        spec = lists[r["lists"]]
        p = parse_question(r["text"], spec["managers"], spec["companies"], dt.date.fromisoformat(r["today"]),
                           loss_reasons=spec.get("loss_reasons", ()))
        i = r["intent"]
        n[i] += 1
        got = {"intent": p.intent, "manager": p.manager, "company": p.company,
               "start": p.start.isoformat() if p.start else None, "end": p.end.isoformat() if p.end else None}
        got.update({f: getattr(p, f) for f in FILTERS})
        for f in ("intent",) + FIELDS:
            ok[i][f] += got[f] == r[f]
        for f in FILTERS:
            if f in r:
                ok[i][f] += got[f] == r[f]
                ok[i][f + "#"] += 1
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(rows))
    print(f"labelled set: {len(rows)} questions, {ms:.2f} ms per parse")
    print(f"{'intent':<10} {'n':>4} {'intent':>7} {'manager':>8} {'company':>8} {'start':>6} {'end':>6}  filters")
    tot = Counter()
    for i in sorted(n):
        acc = {f: ok[i][f] / n[i] for f in ("intent",) + FIELDS}
        tot["ok"] += ok[i]["intent"]
        filt = ", ".join(f"{f} {ok[i][f] / ok[i][f + '#']:.2f} (n={ok[i][f + '#']})" for f in FILTERS if ok[i][f + "#"])
        print(f"{i:<10} {n[i]:>4} {acc['intent']:>7.3f} {acc['manager']:>8.3f} {acc['company']:>8.3f} "
              f"{acc['start']:>6.3f} {acc['end']:>6.3f}  {filt}")
    print(f"intent accuracy overall: {tot['ok'] / sum(n.values()):.3f}")


def questions_for(ctx, today: dt.date) -> list[str]:
    names = [n for _, n in ctx.managers][:4]
    comps = list(ctx.companies)[:3]
    y, m = today.year, today.month
    from crmsum.ru import MONTHS_LOC

    month = MONTHS_LOC[(m - 2) % 12]
    qs = []
    for name in names:
        qs += [f"Что {name} делал(а) в {month}?", f"Какой средний чек у менеджера {name}?",
               f"Какие сделки выиграл(а) {name} в {y} году?", f"Почему {name} проигрывает?"]
    for c in comps:
        qs += [f"Что было по компании «{c}» в {month}?", f"Почему проиграли «{c}»?", f"Похожие сделки на «{c}»"]
    qs += ["Кто лучший по конверсии?", "Топ менеджеров по выручке", "Какие сделки проиграли по цене?",
           "Какие сделки висят без движения?", "Что помогает выигрывать сделки?", "Итоги команды за прошлую неделю",
           f"Сравни {names[0]} и {names[1]} за лето" if len(names) > 1 else "Итоги команды за прошлый месяц",
           "🙂", "Что было 31 февраля?"]
    return qs


def answer_path(data_dir: Path, n: int, runs: int) -> None:
    from crmsum import answer as A
    from crmsum.config import Settings
    from crmsum.lake import Lake

    s = Settings(llm="offline", data_dir=data_dir)
    lake = Lake(data_dir / "lake")
    t = time.perf_counter()
    ctx = A.get_context(s, lake)
    today = A.today_in(s)
    A.answer_question("Итоги команды за прошлую неделю", s, lake, today=today, record=False)
    cold = (time.perf_counter() - t) * 1000
    from crmsum.answer import insight

    t = time.perf_counter()
    insight.warm(ctx)  # what the bot does in the background at start and after each nightly reload
    warm_s = time.perf_counter() - t
    qs = questions_for(ctx, today)
    by: dict[str, list[float]] = defaultdict(list)
    by_src: dict[str, list[float]] = defaultdict(list)
    again: dict[str, list[float]] = defaultdict(list)  # rounds 2..n: each question asked before
    src: Counter = Counter()
    for k in range(n):
        for q in qs:
            t = time.perf_counter()
            prep = A.prepare(q, s, lake, today, chat_id=1)
            a = A.finish(prep, s, lake, record=k == 0)
            ms = (time.perf_counter() - t) * 1000
            by[a.intent].append(ms)
            by_src[a.source].append(ms)
            if k:
                again[a.source].append(ms)
            if k == 0:
                src[a.source if not a.clarify else "clarify"] += 1
    A.flush()
    allms = [x for xs in by.values() for x in xs]
    answered = sum(v for k, v in src.items() if k != "clarify")
    print(f"\nanswer path on {data_dir} ({len(qs)} questions × {n}; cold first answer {cold:.0f} ms; "
          f"insights warmed in the background in {warm_s:.1f} s)")
    print(f"answered from precomputed tables: {src['precomputed']}/{answered} "
          f"({src['precomputed'] / max(1, answered):.0%}); sources {dict(src)}")
    for intent in sorted(by):
        xs = by[intent]
        print(f"  bot path {intent:<10} n={len(xs):<4} p50 {statistics.median(xs):7.1f} ms  p95 {pct(xs, 0.95):7.1f} ms")
    for label, groups in (("", by_src), (" asked again", again)):
        for source in sorted(groups):
            xs = groups[source]
            print(f"  bot path [{source}]{label}{'':<{max(0, 9 - len(source))}} n={len(xs):<4} "
                  f"p50 {statistics.median(xs):7.1f} ms  p95 {pct(xs, 0.95):7.1f} ms")
    print(f"  bot path all        n={len(allms):<4} p50 {statistics.median(allms):7.1f} ms  p95 {pct(allms, 0.95):7.1f} ms")
    pre_q = next((q for q in qs if "делал" in q), qs[0])
    # a user's machine caches bytecode: one warm-up run writes it, then the timed runs
    env = dict(os.environ, CRMSUM_DATA_DIR=str(data_dir), CRMSUM_LLM="offline", PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "crmsum", "ask", pre_q, "--json"]  # what the `crmsum` console script runs
    times, cpu = _processes(cmd, env, runs, rows=lambda: lake.row_count("answers"))
    base, base_cpu = _processes([sys.executable, "-c", "pass"], env, runs)
    with _resident(env, s.state_dir):
        r_times, r_cpu = _processes(cmd, env, runs, rows=lambda: lake.row_count("answers"))
    print(f"crmsum ask as a process ({pre_q!r}):")
    for label, (w, c) in (("on its own (cold start)", (times, cpu)), ("a resident answerer listening", (r_times, r_cpu)),
                          ("baseline: bare interpreter", (base, base_cpu))):
        print(f"  {label:<31} wall p50 {statistics.median(w):5.0f} ms  p95 {pct(w, 0.95):5.0f} ms  "
              f"CPU p50 {statistics.median(c):5.0f} ms")


@contextlib.contextmanager
def _resident(env: dict, state_dir: Path):
    """`crmsum serve` on the data dir for the duration (what a running bot also provides)."""
    from crmsum.answer.resident import socket_path

    proc = subprocess.Popen([sys.executable, "-m", "crmsum", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    path = socket_path(state_dir)
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def _processes(cmd: list[str], env: dict, runs: int, rows=None) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) milliseconds of `runs` runs of a command, after one warm-up run.
    `rows()`: a count that each run raises in the background (the detached recorder's `answers` row);
    the next run starts when it has, so each run is timed on its own, not beside the last one's recorder."""
    import resource

    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall, cpu = [], []
    for _ in range(runs):
        n0 = rows() if rows else 0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        wall.append((time.perf_counter() - t) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        deadline = time.monotonic() + 60
        while rows and rows() == n0 and time.monotonic() < deadline:
            time.sleep(0.1)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="a DATA_DIR with a precomputed lake (e.g. after `crmsum demo`)")
    ap.add_argument("-n", type=int, default=10, help="rounds of the question list on the bot path")
    ap.add_argument("--runs", type=int, default=10, help="`crmsum ask` processes to time")
    args = ap.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    parser_accuracy()
    if args.data:
        answer_path(args.data, args.n, args.runs)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
