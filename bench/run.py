"""One benchmark command: the whole pipeline at one or more scales, one table, one JSON file.

    python -m bench                       # scales 1 and 10 (~35 min; the 7 rps sync of scale 10 alone is ~11.5 min)
    python -m bench --scale 1             # design scale only
    python -m bench --scale 1 --scale 10 --sync-scale 0.2   # sync figure from a smaller account
    python -m bench --quick               # two small scales in a few minutes
    python -m bench --scale 10 --steps generate,load,chat,precompute   # some steps only

Scale 1 = the design account (`crmsum generate`: 1,000 deals, 3 years of CRM history and team chat).
Per scale, each step runs in its own subprocess so its peak RSS (VmHWM of the step, ru_maxrss of its
children, e.g. the anonymizer's worker pool) is its own:

  generate    the sample account (DIR/amocrm, DIR/telegram/result.json, DIR/truth)
  sync        amoCRM full sync against the emulator at 7 rps (real limiter), records/s and the
              fraction of the rate-limit bound (sum of pages / 7 s); account of `--sync-scale`
  load        the full-scale account into the bench lake through the emulator without a limit
  anonymize   Anonymizer.texts on bench_anonymize's synthetic corpus (5,000 x scale records)
  chat        Telegram export import (the account's result.json) into the bench lake
  precompute  full offline precompute, rerun (must compute 0), LLM calls/tokens a full and a
              nightly run would need (dry run, tiktoken; the day of new data is bench_precompute.add_day)
  answer      latency p50/p95 of `answer_question` on crmsum.evaluation's questions, by source
  digest      weekly digest build + render (`deliver_digests` into the outbox)
  compaction  bench_lake's chat table (60,000 x scale messages written as 30 nightly parts): a month's
              messages per author and one message, p50 over parts only and after `Lake.compact`
  bot         bench_bot on the bench lake: the real bot over the Telegram emulator, 20 chats asking
              precomputed questions while 4 ask live ones (LLM emulator, 6 s a call); p50/p95

The machine may be shared: every figure is wall time, and the 1-minute load average is recorded.
Results: the table on stdout and `bench/results/latest.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
STEPS = ("generate", "sync", "load", "anonymize", "chat", "precompute", "answer", "digest", "compaction", "bot")
RPS = 7.0
QUICK_SCALES = (0.02, 0.05)
QUICK_CHAT_DAYS = 90
COMPACTION_PARTS = 30  # nightly parts of the compaction step's table (bench_lake's layout)
BOT_ROUNDS = 3  # rounds of the bot step: 4 live questions, then 20 precomputed ones at once
BOT_LLM_DELAY = 6.0  # seconds the emulated model takes per call (a slow model)


# -- helpers used inside step processes ------------------------------------------------------------
def _peak_mb() -> float:
    """Peak RSS of this step: its own (VmHWM), or its largest child's (anonymizer pool), in MB.

    A child's figure is ru_maxrss (an exited child has no /proc entry): for a forked worker it
    includes the step's own RSS at the fork, so it never understates."""
    from bench.memory import vm_hwm_mb

    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(max(vm_hwm_mb(), kids), 1)


def _settings(work: Path, **kw):
    from crmsum.config import Settings

    return Settings(**{"data_dir": work / "data", "llm": "offline", **kw})


def _leads(scale: float) -> int:
    return max(10, round(1000 * scale))


def _account(work: Path, name: str = "account") -> Path:
    return work / name


def _generate(out: Path, scale: float, chat_days: int) -> dict:
    from crmsum.sandbox.generate import generate

    t = time.perf_counter()
    counts = generate(out, leads=_leads(scale), chat_days=chat_days, seed=7)
    return {"seconds": round(time.perf_counter() - t, 2), "counts": counts}


def _sync(data: Path, settings_kw: dict, rps: float, lake_dir: Path | None = None) -> dict:
    """A full sync from the emulator, run in a subprocess like a remote API (in this process its threads
    would compete with the sync's for the GIL), started and indexed before the clock starts."""
    from bench.bench_sync import TOKEN as EMU_TOKEN
    from bench.bench_sync import emulator
    from crmsum.ingest.amocrm import STREAMS, sync
    from crmsum.lake import Lake
    from crmsum.privacy import Anonymizer, Vault
    from crmsum.sources.amocrm import AmoClient

    with emulator(data / "amocrm", rps, inproc=False) as url:
        s = _settings(settings_kw.pop("work"), amocrm_base_url=url, amocrm_token=EMU_TOKEN, amocrm_rps=rps or 1000.0,
                      **settings_kw)
        anon = Anonymizer(Vault(s.vault_dir))
        lake = Lake(lake_dir or s.lake_dir)
        report = sync(s, lake, anon, client=AmoClient.from_settings(s))
        anon.close()
        peak = _peak_mb()  # before the emulator exits: its memory is not the sync's
    # the bound, as bench_sync.py computes it: every list needs ceil(records / page size) pages at rps
    pages = sum(1 if st.name == "pipelines" else max(1, math.ceil(report.fetched.get(st.name, 0) / st.limit))
                for st in STREAMS)
    secs = report.seconds
    out = {"records": report.records, "requests": report.requests, "retries": report.retries, "seconds": secs,
           "records_per_s": round(report.records / secs, 1) if secs else None, "pages": pages,
           "anonymize_seconds": round(report.anonymize_seconds, 2), "write_seconds": round(report.write_seconds, 2),
           "limiter_wait_seconds": round(report.limiter_wait_seconds, 2), "api_seconds": round(report.api_seconds, 2),
           "consumer_wait_seconds": round(report.consumer_wait_seconds, 2), "peak_rss_mb": peak}
    if rps:
        bound = pages / rps
        out.update(bound_seconds=round(bound, 2), fraction_of_bound=round(bound / secs, 3) if secs else None)
    return out


def step_generate(work: Path, scale: float, args: dict) -> dict:
    out = _generate(_account(work), scale, args["chat_days"])
    if args["sync_scale"] != scale:
        _generate(_account(work, "sync_account"), args["sync_scale"], min(args["chat_days"], 365))
    return out


def step_sync(work: Path, scale: float, args: dict) -> dict:
    data = _account(work, "sync_account") if args["sync_scale"] != scale else _account(work)
    res = _sync(data, {"work": work / "sync"}, RPS)
    res["sync_scale"] = args["sync_scale"]
    return res


def step_load(work: Path, scale: float, args: dict) -> dict:
    return _sync(_account(work), {"work": work}, 0.0)


def step_anonymize(work: Path, scale: float, args: dict) -> dict:
    from bench.bench_anonymize import build_corpus
    from crmsum.privacy import Anonymizer, Vault
    from crmsum.privacy.people import ner_tagger

    n = max(500, round(5000 * scale))
    recs, known, companies, _ = build_corpus(n, 7)
    anon = Anonymizer(Vault(work / "anon_vault"))
    anon.learn_people(known)
    anon.learn_companies(companies)
    ner_tagger()
    t = time.perf_counter()
    anon.texts(recs)
    secs = time.perf_counter() - t
    anon.close()
    return {"records": n, "seconds": round(secs, 2), "records_per_s": round(n / secs, 1),
            "workers": anon.workers, "ner_share": round(anon.stats["ner"] / max(1, anon.stats["texts"]), 4)}


def step_chat(work: Path, scale: float, args: dict) -> dict:
    from crmsum.ingest.telegram import import_export
    from crmsum.lake import Lake
    from crmsum.privacy import Anonymizer, Vault

    s = _settings(work)
    anon = Anonymizer(Vault(s.vault_dir))
    lake = Lake(s.lake_dir)
    export = _account(work) / "telegram" / "result.json"
    t = time.perf_counter()
    rep = import_export(export, lake, anon, timezone=s.timezone)
    secs = time.perf_counter() - t
    t = time.perf_counter()
    again = import_export(export, lake, anon, timezone=s.timezone)
    anon.close()
    return {"messages": rep.messages_read, "written": rep.messages_written, "seconds": round(secs, 2),
            "messages_per_s": round(rep.messages_read / secs, 1) if secs else None,
            "export_mb": round(export.stat().st_size / 2**20, 2),
            "reimport_written": again.messages_written, "reimport_seconds": round(time.perf_counter() - t, 2)}


def _as_of(lake) -> dt.datetime:
    """Just after the newest activity in the lake (the generated account ends on its own date)."""
    con = lake.connect()
    last = con.execute("SELECT max(t) FROM (SELECT max(created_at) t FROM crm_events UNION ALL "
                       "SELECT max(created_at) FROM crm_notes UNION ALL SELECT max(date) FROM chat_messages)").fetchone()[0]
    day = (last.date() if last else dt.date.today()) + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(9))


def step_precompute(work: Path, scale: float, args: dict) -> dict:
    from bench.bench_precompute import add_day
    from bench.memory import vm_hwm_mb
    from crmsum.lake import Lake
    from crmsum.precompute import estimate, iter_items, precompute, stored_hashes

    s = _settings(work)
    llm = _settings(work, llm="llm", llm_model="gpt-4o-mini")
    lake = Lake(s.lake_dir)
    as_of = _as_of(lake)
    r = precompute(s, lake, as_of=as_of)
    full_peak = round(vm_hwm_mb(), 1)  # the full run's own peak (the dry runs below come after it)
    r2 = precompute(s, lake, as_of=as_of)
    full = estimate(iter_items(lake, llm, as_of), llm.llm_context_tokens)
    # one typical day of new data (bench_precompute.add_day), then what a nightly run would recompute
    day = as_of.date()
    new = add_day(lake, max(1, round(scale)), day)
    as_of2 = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(9))
    have = stored_hashes(lake)  # two columns, not every summary's text (a GB at scale 10)
    changed_ids = {it.summary_id for it in iter_items(lake, s, as_of2) if have.get(it.summary_id) != it.input_hash}
    nightly = estimate([it for it in iter_items(lake, llm, as_of2) if it.summary_id in changed_ids],
                       llm.llm_context_tokens)
    r3 = precompute(s, lake, as_of=as_of2)
    (work / "as_of.txt").write_text(as_of2.isoformat())
    return {"summaries": r.computed, "failed": r.failed, "seconds": r.seconds, "full_peak_rss_mb": full_peak,
            "rerun_computed": r2.computed,
            "rerun_seconds": r2.seconds, "llm_full": full, "llm_nightly": nightly, "new_day": new,
            "nightly_offline_computed": r3.computed, "nightly_offline_seconds": r3.seconds}


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 1)


def step_answer(work: Path, scale: float, args: dict) -> dict:
    """Latency of the answer path on crmsum.evaluation's questions (periods a summary covers), and of
    the live path: the same questions over a span no precomputed week/month covers (day 2 .. end-2)."""
    from crmsum.answer import answer_question, finish, prepare
    from crmsum.evaluation.questions import build_questions
    from crmsum.lake import Lake

    s = _settings(work)
    lake = Lake(s.lake_dir)
    qs = build_questions(lake, _account(work) / "truth", n=args["questions"])
    by: dict[str, list[float]] = {}
    answer_question(qs[0].text, s, lake, today=qs[0].today, record=False)  # warm: context, parser, caches
    for q in qs:
        t = time.perf_counter()
        a = answer_question(q.text, s, lake, today=q.today, record=False)
        by.setdefault(a.source, []).append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        prep = prepare(q.text, s, lake, today=q.today)
        if prep.clarification is None and prep.start and prep.end and (prep.end - prep.start).days >= 5:
            prep.start, prep.end = prep.start + dt.timedelta(days=1), prep.end - dt.timedelta(days=2)
            prep.summary_id, prep.period = None, f"{prep.start.isoformat()}..{prep.end.isoformat()}"
            a = finish(prep, s, lake, record=False)
            by.setdefault(a.source, []).append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {"questions": len(qs)}
    for src, xs in by.items():
        out[src] = {"n": len(xs), "p50_ms": _pct(xs, 0.5), "p95_ms": _pct(xs, 0.95),
                    "mean_ms": round(statistics.fmean(xs), 1)}
    return out


def step_digest(work: Path, scale: float, args: dict) -> dict:
    from crmsum.delivery import deliver_digests
    from crmsum.lake import Lake

    s = _settings(work)
    lake = Lake(s.lake_dir)
    today = dt.datetime.fromisoformat((work / "as_of.txt").read_text()).date()
    t = time.perf_counter()
    rep = deliver_digests(None, force=True, settings=s, lake=lake, today=today)
    return {"seconds": round(time.perf_counter() - t, 2), "week": rep.week, "outbox": rep.outbox,
            "failed": rep.failed}


def step_compaction(work: Path, scale: float, args: dict) -> dict:
    from bench.bench_lake import build, measure
    from crmsum import lake as lake_mod

    lake_mod.COMPACT_AFTER = 10**6  # the "never compacted" layout, on purpose
    lake, msgs = build(work / "compaction_lake", max(3000, round(60_000 * scale)), COMPACTION_PARTS)
    repeat = args.get("compaction_repeat", 5)
    parts = measure(lake, "parts only", repeat)
    t = time.perf_counter()
    lake.compact("chat_messages")
    secs = round(time.perf_counter() - t, 2)
    compacted = measure(lake, "compacted", repeat)
    return {"messages": len(msgs), "parts": COMPACTION_PARTS, "compact_seconds": secs,
            "month_parts_ms": parts["month by author"]["p50_ms"], "month_compacted_ms": compacted["month by author"]["p50_ms"],
            "lookup_parts_ms": parts["one message"]["p50_ms"], "lookup_compacted_ms": compacted["one message"]["p50_ms"]}


def step_bot(work: Path, scale: float, args: dict) -> dict:
    from bench.bench_bot import LIVE_CHATS, QUICK_CHATS, pct, questions, run
    from bench.bench_bot import TOKEN as BOT_TOKEN
    from crmsum.sandbox.llm_emulator import LLMEmulator
    from crmsum.sandbox.telegram_emulator import TelegramEmulator

    quick, live = questions(work / "data", 5)
    with TelegramEmulator(BOT_TOKEN) as tg, LLMEmulator(api_key="sk-bench", delay=BOT_LLM_DELAY) as llm:
        s = _settings(work, llm="llm", OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=llm.url, llm_model="emulated-gpt",
                      telegram_token=BOT_TOKEN, telegram_api_url=tg.url, telegram_user_rate=10_000,
                      telegram_allowed_chats=",".join(str(c) for c in QUICK_CHATS + LIVE_CHATS))
        shutil.rmtree(work / "data" / "state" / "llm_cache", ignore_errors=True)  # live answers wait for the model
        lat, cpu, wall = run(s, work / "data", tg, quick, live, BOT_ROUNDS, old=False)
    return {"precomputed": {"n": len(lat), "p50_ms": _pct(lat, 0.5), "p95_ms": round(pct(lat, 0.95), 1)},
            "live_chats": len(LIVE_CHATS), "quick_chats": len(QUICK_CHATS), "llm_delay_s": BOT_LLM_DELAY,
            "rounds_cpu_s": round(cpu, 1), "rounds_wall_s": round(wall, 1), "load_1min": round(os.getloadavg()[0], 2)}


STEP_FUNCS = {name: globals()[f"step_{name}"] for name in STEPS}


def _child(step: str, work: Path, scale: float, args: dict) -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    res = STEP_FUNCS[step](work, scale, args)
    res.setdefault("peak_rss_mb", _peak_mb())
    print("BENCH-RESULT " + json.dumps(res, ensure_ascii=False, default=str), flush=True)


# -- driver ----------------------------------------------------------------------------------------
def run_step(step: str, work: Path, scale: float, args: dict, log) -> dict:
    cmd = [sys.executable, "-m", "bench.run", "--child", step, "--work", str(work), "--one-scale", str(scale),
           "--args", json.dumps(args)]
    t = time.perf_counter()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for k in list(env):
        if k.startswith("CRMSUM_") or k in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            env.pop(k)  # the bench is offline and self-contained, whatever the shell has set
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    line = next((l for l in reversed(proc.stdout.splitlines()) if l.startswith("BENCH-RESULT ")), None)
    if proc.returncode or line is None:
        log(f"[red]step {step} at scale {scale:g} failed[/red]\n{proc.stderr[-2500:]}")
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1], "wall_seconds": round(wall, 1)}
    res = json.loads(line[len("BENCH-RESULT "):])
    res["wall_seconds"] = round(wall, 1)
    log(f"  scale {scale:g} {step:<10} {wall:6.1f}s  peak {res.get('peak_rss_mb')} MB")
    return res


def run_scale(scale: float, opts: dict, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"crmsum-bench-{scale:g}-", dir=opts.get("tmp")))
    try:
        out: dict[str, Any] = {"scale": scale, "leads": _leads(scale), "load_avg_start": round(os.getloadavg()[0], 2)}
        for step in opts.get("steps") or STEPS:
            out[step] = run_step(step, work, scale, {**opts, "sync_scale": opts["sync_scale"] or scale}, log)
            if step in ("generate", "load") and "error" in out[step]:
                break
        out["load_avg_end"] = round(os.getloadavg()[0], 2)
        return out
    finally:
        if not opts.get("keep"):
            shutil.rmtree(work, ignore_errors=True)


def _get(d: dict, path: str):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


ROWS: list[tuple[str, str, str]] = [
    # label, path in a scale's result, format
    ("generate sample account: s", "generate.seconds", "s"),
    ("amoCRM sync @7 rps: records/s", "sync.records_per_s", "n"),
    ("  … fraction of rate-limit bound", "sync.fraction_of_bound", "%"),
    ("  … records synced (account scale)", "sync.records", "i"),
    ("  … sync s / bound s", "sync.seconds", "s"),
    ("anonymization: records/s", "anonymize.records_per_s", "n"),
    ("chat import: messages/s", "chat.messages_per_s", "n"),
    ("  … messages imported", "chat.messages", "i"),
    ("full precompute (offline): s", "precompute.seconds", "s"),
    ("  … summaries", "precompute.summaries", "i"),
    ("  … peak RSS of the full run: MB", "precompute.full_peak_rss_mb", "n"),
    ("  … rerun, no new data: computed", "precompute.rerun_computed", "i"),
    ("LLM full run: calls", "precompute.llm_full.calls", "i"),
    ("LLM full run: tokens in+out", "precompute.llm_full.tokens", "i"),
    ("LLM nightly run: calls", "precompute.llm_nightly.calls", "i"),
    ("LLM nightly run: tokens in+out", "precompute.llm_nightly.tokens", "i"),
    ("answer precomputed: p50 / p95 ms", "answer.precomputed", "p"),
    ("answer live: p50 / p95 ms", "answer.live", "p"),
    ("digest build + render: s", "digest.seconds", "s"),
    ("nightly precompute after one day: s", "precompute.nightly_offline_seconds", "s"),
    ("  … summaries recomputed", "precompute.nightly_offline_computed", "i"),
    ("lake month query, 30 parts: p50 ms", "compaction.month_parts_ms", "n"),
    ("  … after compaction: p50 ms", "compaction.month_compacted_ms", "n"),
    ("lake key lookup, 30 parts: p50 ms", "compaction.lookup_parts_ms", "n"),
    ("  … after compaction: p50 ms", "compaction.lookup_compacted_ms", "n"),
    ("  … compaction: s", "compaction.compact_seconds", "s"),
    ("bot precomputed, 4 live at once: p50 / p95 ms", "bot.precomputed", "p"),
] + [(f"peak RSS {step}: MB", f"{step}.peak_rss_mb", "n") for step in STEPS]


def _value(res: dict, path: str):
    if path.endswith(".tokens"):
        base = _get(res, path[: -len(".tokens")])
        return None if not base else base["tokens_in"] + base["tokens_out"]
    return _get(res, path)


def _fmt(v, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "%":
        return f"{v:.0%}"
    if kind == "p":
        return f"{v['p50_ms']:,.0f} / {v['p95_ms']:,.0f} (n={v['n']})"
    if kind == "i":
        return f"{int(v):,}"
    if kind == "s":
        return f"{v:,.1f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"


def _ratio(a, b, kind: str) -> str:
    if kind == "p":
        a, b = (a or {}).get("p50_ms"), (b or {}).get("p50_ms")
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not a:
        return "—"
    return f"×{b / a:,.2f}"


def render(results: list[dict], opts: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    tbl = Table(title="crmsum benchmark" + (" (--quick)" if opts.get("quick") else ""), show_lines=False)
    tbl.add_column("figure")
    for r in results:
        tbl.add_column(f"scale {r['scale']:g} ({r['leads']:,} leads)", justify="right")
    if len(results) >= 2:
        tbl.add_column(f"growth {results[0]['scale']:g}→{results[-1]['scale']:g}", justify="right")
    for label, path, kind in ROWS:
        vals = [_value(r, path) for r in results]
        if path == "sync.seconds":
            cells = [f"{_fmt(v, 's')} / {_fmt(_get(r, 'sync.bound_seconds'), 's')}" for v, r in zip(vals, results)]
        else:
            cells = [_fmt(v, kind) for v in vals]
        row = [label, *cells]
        if len(results) >= 2:
            row.append(_ratio(vals[0], vals[-1], kind))
        tbl.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(tbl)
    notes = []
    for r in results:
        ss = _get(r, "sync.sync_scale")
        if ss is not None and ss != r["scale"]:
            notes.append(f"scale {r['scale']:g}: the 7 rps sync figure is from a smaller account (--sync-scale {ss:g}, "
                         f"{_leads(ss):,} leads)")
        errs = [s for s in STEPS if isinstance(r.get(s), dict) and "error" in r[s]]
        if errs:
            notes.append(f"scale {r['scale']:g}: failed steps {errs} (see stderr above)")
        notes.append(f"scale {r['scale']:g}: 1-min load average {r['load_avg_start']} → {r.get('load_avg_end')} "
                     f"on {os.cpu_count()} cores (a shared machine slows every figure)")
    notes.append("LLM figures are a dry run (tiktoken counts, nothing sent); nightly = after one typical day of new data. "
                 "Peak RSS = the step's process (VmHWM) or its largest child (ru_maxrss).")
    for n in notes:
        console.print(f"[dim]• {n}[/dim]")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--scale", type=float, nargs="+", action="extend",
                    help="multiples of the design account (1 = 1,000 deals); repeatable; default 1 and 10")
    ap.add_argument("--quick", action="store_true", help=f"small scales {QUICK_SCALES}, {QUICK_CHAT_DAYS} days of chat")
    ap.add_argument("--sync-scale", type=float, help="account scale for the 7 rps sync figure (default: the scale)")
    ap.add_argument("--chat-days", type=int, help="days of CRM and chat history (default 1095, --quick 90)")
    ap.add_argument("--questions", type=int, default=24, help="questions for the answer latency")
    ap.add_argument("--steps", help="comma-separated steps to run, in their order (default all: "
                    f"{','.join(STEPS)}); later steps need the earlier ones they read, e.g. precompute needs load")
    ap.add_argument("--keep", action="store_true", help="keep the work folders")
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON results (default bench/results/latest.json)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--one-scale", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--args", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(a.child, a.work, a.one_scale, json.loads(a.args))
        return

    from rich.console import Console

    console = Console(stderr=True)
    scales = a.scale or (list(QUICK_SCALES) if a.quick else [1.0, 10.0])
    steps = [x for x in (a.steps or "").split(",") if x]
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"unknown steps {sorted(unknown)}; steps are {', '.join(STEPS)}")
    opts = {"quick": a.quick, "sync_scale": a.sync_scale, "questions": a.questions, "keep": a.keep,
            "steps": [x for x in STEPS if x in steps],
            "chat_days": a.chat_days or (QUICK_CHAT_DAYS if a.quick else 1095)}
    console.print(f"[bold]crmsum bench[/bold]: scales {', '.join(f'{s:g}' for s in scales)}; "
                  f"steps {', '.join(opts['steps'] or STEPS)}")
    t0 = time.perf_counter()
    results = [run_scale(s, opts, console.print) for s in scales]
    render(results, opts)
    doc = {"created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[1:],
           "options": {k: v for k, v in opts.items() if k != "keep"}, "cpus": os.cpu_count(),
           "seconds": round(time.perf_counter() - t0, 1), "results": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    console.print(f"results: {a.out}")


if __name__ == "__main__":
    main()
