"""Benchmark the answer path and the weekly digest at design scale.

    python bench/bench_answer.py                # build a design-scale lake, precompute it offline, measure
    python bench/bench_answer.py --data DIR     # reuse DIR (a DATA_DIR written by a previous run with --keep)
    python bench/bench_answer.py -n 200         # questions per kind

Design scale = bench_precompute's synthetic lake at scale 1 (1,000 deals, 10 managers, 300 companies,
three years of CRM history and team chat; pseudonyms only), precomputed with the offline backend,
plus a vault that gives the 10 managers real names. Measured inside one process, the way the bot
runs (one cached DuckDB connection, summaries snapshot and name lists per process):

- precomputed answers: questions about one manager / company / the team for an ISO week or a month
  (parse + lookup + recording the answer in the background), p50 / p95 / max;
- live offline answers: manager + company or arbitrary date ranges (SQL facts + extractive summary);
- the weekly digest: build (summaries + facts) and render (HTML + chart PNG), per digest.
The first question (cold: connection, snapshot, parser index) is reported separately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crmsum.ru import MONTHS_LOC as MONTHS_IN  # noqa: E402

FIRST = ["Ева", "Иван", "Анна", "Олег", "Мария", "Дмитрий", "Ольга", "Алексей", "Татьяна", "Сергей"]
LAST = ["Соколова", "Петров", "Кузнецова", "Волков", "Морозова", "Смирнов", "Новикова", "Лебедев", "Егорова", "Орлов"]


def build(data_dir: Path) -> dict:
    from bench_precompute import END, synth

    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.precompute import precompute
    from crmsum.privacy import Vault

    t = time.perf_counter()
    rows = synth(data_dir / "lake", 1)
    lake = Lake(data_dir / "lake")
    vault = Vault(data_dir / "vault")
    users = lake.read("crm_users").sort_values("user_id")
    for i, p in enumerate(users.name):
        vault.upsert_person(p, f"{FIRST[i % 10]} {LAST[i % 10]}", "manager")
    vault.close()
    synth_s = time.perf_counter() - t
    as_of = dt.datetime.combine(END + dt.timedelta(days=1), dt.time(9))
    r = precompute(Settings(llm="offline", data_dir=data_dir), lake, as_of=as_of)
    return {"rows": rows, "synth_s": round(synth_s, 1), "precompute_s": r.seconds, "summaries": r.computed}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def show(name: str, xs: list[float]) -> str:
    return (f"{name:<34} n={len(xs):<4} p50 {statistics.median(xs):7.1f} ms   p95 {pct(xs, 0.95):7.1f} ms   "
            f"max {max(xs):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="existing DATA_DIR (lake/ + vault/) from a previous --keep run")
    ap.add_argument("--keep", type=Path, help="build into this DATA_DIR and keep it")
    ap.add_argument("-n", type=int, default=100, help="questions per kind")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    tmp = None
    if args.data:
        data_dir = args.data
    else:
        data_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench_answer_"))
        info = build(data_dir)
        print(f"design-scale lake: {info['rows']}")
        print(f"  synthesized in {info['synth_s']}s; offline precompute: {info['summaries']} summaries "
              f"in {info['precompute_s']:.1f}s")

    from crmsum import answer as A
    from crmsum.config import Settings
    from crmsum.digest import build_digest, render_digest
    from crmsum.lake import Lake
    from crmsum.privacy import Vault

    s = Settings(llm="offline", data_dir=data_dir)
    lake = Lake(data_dir / "lake")
    con = lake.connect()
    summ = con.sql("SELECT scope, key, label, period_kind, period, start FROM summaries").df()
    vault = Vault(data_dir / "vault")
    real = dict(vault.people("manager"))
    rnd = random.Random(args.seed)
    today = dt.date(2026, 11, 23)

    def q_for(row) -> str:
        start = row.start if isinstance(row.start, dt.date) else row.start.date()
        when = (f"за неделю {row.period}" if row.period_kind == "week"
                else f"в {MONTHS_IN[start.month - 1]} {start.year}")
        if row.scope == "manager":
            return f"Что {real.get(row.key, row.key)} делал(а) {when}?"
        if row.scope == "company":
            return f"Как дела с компанией «{row.label}» {when}?"
        return f"Итоги команды {when}"

    rows = list(summ.itertuples())
    t = time.perf_counter()
    first = A.answer_question("Итоги команды за неделю 2026-W46", settings=s, lake=lake, today=today)
    cold = (time.perf_counter() - t) * 1000

    pre, pre_sources, live = [], {"precomputed": 0, "live": 0, "clarify": 0}, []
    for row in rnd.sample(rows, min(args.n, len(rows))):
        q = q_for(row)
        t = time.perf_counter()
        a = A.answer_question(q, settings=s, lake=lake, today=today)
        ms = (time.perf_counter() - t) * 1000
        pre_sources[a.source] += 1
        (pre if a.source == "precomputed" else live).append(ms)

    live_only = []
    managers = list(real.values())
    companies = con.sql("SELECT name FROM crm_companies").df().name.tolist()
    for _ in range(max(10, args.n // 4)):
        m = rnd.choice(managers)
        start = dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randint(0, 900))
        end = start + dt.timedelta(days=rnd.randint(2, 40))
        if rnd.random() < 0.5:
            q = f"Что {m} делал(а) с {start:%d.%m.%Y} по {end:%d.%m.%Y}?"
        else:
            q = f"Что {m} делал(а) по компании «{rnd.choice(companies)}» в {MONTHS_IN[start.month - 1]} {start.year}?"
        t = time.perf_counter()
        a = A.answer_question(q, settings=s, lake=lake, today=today)
        ms = (time.perf_counter() - t) * 1000
        if a.source == "live":
            live_only.append(ms)
    t = time.perf_counter()
    A.flush()
    flush_ms = (time.perf_counter() - t) * 1000

    weeks = sorted(set(summ[(summ.scope == "team") & (summ.period_kind == "week")].period))[-8:]
    builds, renders = [], []
    for w in weeks:
        t = time.perf_counter()
        d = build_digest(con, w)
        t1 = time.perf_counter()
        r = render_digest(d, vault.resolve)
        t2 = time.perf_counter()
        builds.append((t1 - t) * 1000)
        renders.append((t2 - t1) * 1000)
    answers = lake.row_count("answers")

    print(f"first question (cold process: connection, snapshot, parser index): {cold:.0f} ms ({first.source})")
    print(f"question mix over stored summaries: {pre_sources}")
    print(show("precomputed answers", pre))
    if live:
        print(show("  (mix questions answered live)", live))
    print(show("live offline answers", live_only))
    print(show("digest build (summaries + facts)", builds))
    print(show("digest render (HTML + chart PNG)", renders))
    print(f"answers recorded in the lake: {answers} (background writer drained in {flush_ms:.0f} ms)")
    print(f"last digest: {len(r.messages)} messages, caption {len(r.caption)} chars, chart {len(r.chart) // 1024} KB")
    if tmp is None and not args.keep and not args.data:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
