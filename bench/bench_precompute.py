"""Benchmark: full precompute at design scale (offline backend), and what the LLM backend would cost.

    python bench/bench_precompute.py                 # scales 1 and 10
    python bench/bench_precompute.py --scales 1      # one scale

Design scale 1 = the default sample account: 1000 deals, 10 managers, 300 companies, three years
(1095 days) of CRM history and team chat. Scale 10 = 10x deals, managers, companies and chat.
The lake is synthesized directly (vectorized rows, pseudonyms only): the sample generator +
ingestion path is benchmarked by bench_sync.py / bench_chat_import.py.

Per scale, in a fresh subprocess (so peak RSS is that scale's own; the lake is synthesized in another):
- full offline precompute: wall time, peak RSS, summaries written;
- a rerun with no new data: wall time, summaries recomputed (must be 0);
- LLM dry run (tokens counted with tiktoken, nothing sent): calls and tokens for a full precompute
  and for a nightly incremental run after one typical day of new data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOTE_TEXTS = [
    "Созвонились с ЛПР {p}, обсудили КП и сроки поставки. Клиент просит скидку {n}%.",
    "Отправил коммерческое предложение на {a} руб., ждём обратную связь до пятницы.",
    "Встреча в офисе клиента прошла хорошо, договорились о пилоте.",
    "Клиент сравнивает нас с конкурентом, цена выше на {n}%. Нужно согласовать скидку.",
    "Выставили счёт, оплата ожидается на следующей неделе.",
    "Тендер перенесли, ЛПР {p} в отпуске до конца месяца.",
    "Договор подписан, предоплата {n}% получена.",
    "Клиент не отвечает третий день, звонил на {t}.",
    "Отказ: выбрали конкурента из-за цены.",
    "Согласовали спецификацию, юристы смотрят договор. Отгрузка через {n} дней.",
]
CHAT_TEXTS = [
    "Коллеги, по {co} отправил КП, ждём ответа.", "{co} просят скидку, кто согласует?",
    "Закрыли {co}, договор подписан!", "По {co} отказ, ушли к конкуренту.",
    "Кто может съездить на встречу в {co} в четверг?", "Напоминаю про планёрку в понедельник.",
    "Счёт для {co} выставлен, ждём оплату.", "Всем доброе утро!", "Кто сегодня дежурит на входящих?",
    "Обновил шаблон КП в общей папке.", "Планёрка переносится на 11:00.", "Спасибо всем за неделю!",
    "Не забудьте внести звонки в CRM.", "Кто берёт новую заявку с сайта?", "Отчёт за месяц готов.",
    "Обед в 13:00, присоединяйтесь.", "У кого есть свежий прайс?",
]
TASK_TEXTS = ["Позвонить ЛПР", "Отправить КП", "Назначить встречу", "Проверить оплату счёта"]
TASK_RESULTS = ["Дозвонился, клиент ждёт КП до среды.", "КП отправлено, скидка согласована.",
                "Встреча назначена на четверг.", "Оплата поступила в полном объёме."]
CO_WORDS = ["Тех", "Строй", "Агро", "Мед", "Логистик", "Энерго", "Пром", "Металл", "Авто", "Хим", "Нефте", "Торг"]
CO_MID = ["ал", "ор", "ин", "ус", "ер", "ан", "ос", "ир", "ем", "ак", "ув", "ол", "ет", "ид", "юр", "ар", "ен", "он",
          "ыт", "ом", "ик", "ас", "уг", "еж", "ий"]
CO_TAILS = ["маш", "инвест", "плюс", "техника", "групп", "сервис", "снаб", "ресурс", "комплект", "систем"]
STAGES = [1001, 1002, 1003, 1004]
END = dt.date(2026, 11, 22)
DAYS = 1095


def _hex(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{x:08x}" for x in rng.integers(0, 2**32, n)]


def synth(root: Path, scale: int, seed: int = 7) -> dict[str, int]:
    """Write a synthetic lake of the given scale; returns row counts."""
    from crmsum.lake import Lake

    rng = np.random.default_rng(seed)
    lake = _Writer(Lake(root))
    n_leads, n_mgr, n_co = 1000 * scale, 10 * scale, 300 * scale
    start = pd.Timestamp(END - dt.timedelta(days=DAYS - 1))
    uids = np.arange(1, n_mgr + 1) + 1000
    mgr_names = [f"PER-{h}" for h in _hex(rng, n_mgr)]
    lake.write("crm_users", pd.DataFrame({"user_id": uids, "name": mgr_names, "lang": "ru",
                                          "is_admin": False, "is_active": True}))
    lake.write("crm_pipelines", pd.DataFrame([{"pipeline_id": 10, "name": "Продажи", "sort": 1, "is_main": True}]))
    names = {1001: "Первичный контакт", 1002: "Квалификация", 1003: "Переговоры", 1004: "КП отправлено",
             142: "Успешно реализовано", 143: "Закрыто и не реализовано"}
    lake.write("crm_statuses", pd.DataFrame([{"pipeline_id": 10, "status_id": k, "name": v, "sort": i, "type": 0,
                                              "is_won": k == 142, "is_lost": k == 143}
                                             for i, (k, v) in enumerate(names.items())]))
    co_ids = np.arange(n_co) + 50_000
    co_names = [f"{CO_WORDS[i % 12]}{CO_MID[(i // 120) % 25]}{CO_TAILS[(i // 12) % 10]}" for i in range(n_co)]
    lake.write("crm_companies", pd.DataFrame({"company_id": co_ids, "name": co_names,
                                              "responsible_user_id": rng.choice(uids, n_co),
                                              "created_at": start, "updated_at": start}))
    # leads
    lead_ids = np.arange(n_leads) + 1_000_000
    created = start + pd.to_timedelta(rng.uniform(0, DAYS - 30, n_leads), unit="D")
    resp = rng.choice(uids, n_leads)
    comp = rng.choice(co_ids, n_leads)
    price = rng.choice([150_000, 320_000, 480_000, 750_000, 1_250_000, 2_700_000], n_leads)
    outcome = rng.choice([142, 143, 0], n_leads, p=[0.3, 0.4, 0.3])
    n_moves = rng.integers(1, 4, n_leads)
    ev_rows = []
    final_status, closed = np.zeros(n_leads, dtype=np.int64), [None] * n_leads
    ev_id = 0
    gaps = rng.uniform(1, 12, (n_leads, 5))
    for i in range(n_leads):
        t, st = created[i], 1001
        path = STAGES[1:1 + n_moves[i]] + ([int(outcome[i])] if outcome[i] else [])
        for k, nxt in enumerate(path):
            t = t + pd.Timedelta(days=float(gaps[i, k]))
            if t > pd.Timestamp(END):
                break
            ev_id += 1
            ev_rows.append((f"01{ev_id:012d}", int(lead_ids[i]), int(resp[i]), t, st, nxt))
            st = nxt
        final_status[i] = st
        closed[i] = t if st in (142, 143) else None
    ev = pd.DataFrame(ev_rows, columns=["event_id", "lead_id", "created_by", "created_at", "status_before", "status_after"])
    ev["type"], ev["entity_type"], ev["pipeline_after"] = "lead_status_changed", "lead", 10
    lake.write("crm_events", ev)
    reasons = np.array(["Дорого", "Выбрали конкурента", "Нет бюджета", "Не вышли на ЛПР"])
    leads = pd.DataFrame({"lead_id": lead_ids, "name": [f"Сделка #{x}" for x in lead_ids], "price": price,
                          "responsible_user_id": resp, "pipeline_id": 10, "status_id": final_status,
                          "company_id": comp, "created_by": resp, "created_at": created,
                          "updated_at": [c or cr for c, cr in zip(closed, created)],
                          "closed_at": pd.to_datetime(pd.Series(closed, dtype="object")), "is_deleted": False})
    leads["loss_reason"] = np.where(final_status == 143, rng.choice(reasons, n_leads), None)
    lake.write("crm_leads", leads)
    # notes: ~10 per lead over its life
    per = rng.integers(5, 16, n_leads)
    idx = np.repeat(np.arange(n_leads), per)
    n_notes = len(idx)
    when = created[idx] + pd.to_timedelta(rng.uniform(0, 45, n_notes), unit="D")
    kinds = rng.choice(["common", "common", "call_out", "call_in", "service_message"], n_notes)
    tmpl = rng.integers(0, len(NOTE_TEXTS), n_notes)
    pn, nn, tn = _hex(rng, n_notes), rng.integers(3, 30, n_notes), _hex(rng, n_notes)
    texts = [NOTE_TEXTS[tmpl[j]].format(p=f"PER-{pn[j]}", n=nn[j], a=f"{price[idx[j]]:,}".replace(",", " "),
                                        t=f"TEL-{tn[j]}") for j in range(n_notes)]
    notes = pd.DataFrame({"note_id": np.arange(n_notes) + 10_000_000, "lead_id": lead_ids[idx], "note_type": kinds,
                          "text": texts, "call_duration": np.where(np.isin(kinds, ["call_in", "call_out"]),
                                                                   rng.integers(30, 900, n_notes), 0),
                          "created_by": resp[idx], "responsible_user_id": resp[idx], "created_at": when,
                          "updated_at": when})
    notes = notes[notes.created_at <= pd.Timestamp(END) + pd.Timedelta(days=1)]
    lake.write("crm_notes", notes)
    # tasks: 4 per lead
    tidx = np.repeat(np.arange(n_leads), 4)
    n_tasks = len(tidx)
    till = created[tidx] + pd.to_timedelta(rng.uniform(1, 40, n_tasks), unit="D")
    done = rng.random(n_tasks) < 0.8
    late = rng.uniform(-2, 3, n_tasks)
    tt = rng.integers(0, 4, n_tasks)
    tasks = pd.DataFrame({"task_id": np.arange(n_tasks) + 20_000_000, "lead_id": lead_ids[tidx], "entity_type": "leads",
                          "task_type_id": 1, "text": [TASK_TEXTS[k] for k in tt],
                          "result_text": [TASK_RESULTS[k] if d else None for k, d in zip(tt, done)],
                          "is_completed": done, "complete_till": till, "responsible_user_id": resp[tidx],
                          "created_by": resp[tidx], "created_at": created[tidx],
                          "updated_at": np.where(done, till + pd.to_timedelta(late, unit="D"), created[tidx])})
    tasks = tasks[tasks.created_at <= pd.Timestamp(END)]
    lake.write("crm_tasks", tasks)
    msgs = chat_rows(rng, start, DAYS, 30 * scale, uids, mgr_names, co_names, 0)
    lake.write("chat_messages", msgs)
    return {"leads": n_leads, "events": len(ev), "notes": len(notes), "tasks": len(tasks), "messages": len(msgs),
            "managers": n_mgr, "companies": n_co}


def chat_rows(rng, start, days: int, per_day: int, uids, mgr_names, co_names, first_id: int) -> pd.DataFrame:
    day = np.repeat(np.arange(days), per_day)
    n = len(day)
    when = start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.uniform(8, 20, n), unit="h")
    who = rng.integers(0, len(uids), n)
    tmpl = rng.integers(0, len(CHAT_TEXTS), n)
    cos = rng.integers(0, len(co_names), n)
    return pd.DataFrame({"chat_id": -100777, "chat_name": "Отдел продаж", "message_id": np.arange(n) + first_id,
                         "date": when, "kind": "message", "author": [mgr_names[w] for w in who],
                         "author_user_id": np.asarray(uids)[who],
                         "text": [CHAT_TEXTS[t].format(co=co_names[c]) for t, c in zip(tmpl, cos)]})


def add_day(lake, scale: int, day: dt.date, seed: int = 11) -> dict[str, int]:
    """One typical day of new data: notes, finished tasks, stage moves and chat on `day`."""
    rng = np.random.default_rng(seed)
    con = lake.connect()
    lake = _Writer(lake)
    leads = con.sql("SELECT lead_id, responsible_user_id FROM crm_leads WHERE status_id NOT IN (142, 143)").df()
    users = con.sql("SELECT user_id, name FROM crm_users ORDER BY user_id").df()
    cos = con.sql("SELECT name FROM crm_companies ORDER BY company_id").df().name.tolist()
    n_notes, n_moves = 9 * scale, 2 * scale  # ~ notes and status changes per day at design scale
    pick = leads.sample(n=min(len(leads), n_notes), random_state=seed)
    t0 = pd.Timestamp(day) + pd.Timedelta(hours=10)
    lake.write("crm_notes", pd.DataFrame({
        "note_id": np.arange(len(pick)) + 90_000_000, "lead_id": pick.lead_id.values, "note_type": "common",
        "text": [NOTE_TEXTS[i % len(NOTE_TEXTS)].format(p="PER-0000aaaa", n=5, a="480 000", t="TEL-0000bbbb")
                 for i in range(len(pick))],
        "created_by": pick.responsible_user_id.values, "responsible_user_id": pick.responsible_user_id.values,
        "created_at": t0, "updated_at": t0}))
    mv = pick.head(n_moves)
    lake.write("crm_events", pd.DataFrame({
        "event_id": [f"02{i:012d}" for i in range(len(mv))], "type": "lead_status_changed", "lead_id": mv.lead_id.values,
        "entity_type": "lead", "created_by": mv.responsible_user_id.values, "created_at": t0 + pd.Timedelta(hours=2),
        "status_before": 1002, "status_after": 1003, "pipeline_after": 10}))
    msgs = chat_rows(rng, pd.Timestamp(day), 1, 30 * scale, users.user_id.values, users.name.tolist(), cos, 50_000_000)
    lake.write("chat_messages", msgs)
    return {"notes": len(pick), "moves": len(mv), "messages": len(msgs)}


class _Writer:
    """Lake writes with timestamps floored to seconds (the lake stores microseconds)."""

    def __init__(self, lake) -> None:
        self.lake = lake

    def write(self, name: str, df: pd.DataFrame) -> int:
        df = df.copy()
        for c in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[c]):
                df[c] = df[c].dt.floor("s")
        return self.lake.write(name, df)


def peak_rss_mb() -> float:
    from bench.memory import vm_hwm_mb

    return vm_hwm_mb()


def run_scale(scale: int, context_tokens: int) -> dict:
    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.precompute import estimate, iter_items, precompute, stored_hashes

    out: dict = {"scale": scale}

    def phase(name: str, value) -> None:  # partial results as they come (long runs at scale 10)
        out[name] = value
        print(f"[scale {scale}] {name}: {json.dumps(value, ensure_ascii=False)}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        # synthesized in a child process: this process's peak RSS is then precompute's own
        child = subprocess.run([sys.executable, __file__, "--synth", str(scale), str(Path(tmp) / "lake")],
                               stdout=subprocess.PIPE, text=True, check=True)
        phase("rows", json.loads(child.stdout.strip().splitlines()[-1]))
        phase("synth_s", round(time.perf_counter() - t, 1))
        lake = Lake(Path(tmp) / "lake")
        offline = Settings(llm="offline", data_dir=tmp)
        llm = Settings(llm="llm", data_dir=tmp, llm_model="gpt-4o-mini", llm_context_tokens=context_tokens)
        as_of = dt.datetime.combine(END + dt.timedelta(days=1), dt.time(9))
        rss0 = peak_rss_mb()
        r = precompute(offline, lake, as_of=as_of)
        phase("full_offline", {"seconds": r.seconds, "summaries": r.computed, "failed": r.failed,
                               "peak_rss_mb": round(peak_rss_mb(), 0), "rss_before_mb": round(rss0, 0)})
        r2 = precompute(offline, lake, as_of=as_of)
        phase("rerun_no_new_data", {"seconds": r2.seconds, "recomputed": r2.computed, "llm_calls": r2.llm_calls})
        t = time.perf_counter()
        est_full = estimate(iter_items(lake, llm, as_of), context_tokens)
        phase("llm_full_dry_run", {**est_full, "seconds": round(time.perf_counter() - t, 1)})
        # a typical day, then which summaries change (hash compare, as the nightly run does)
        day = END + dt.timedelta(days=1)
        phase("new_day", add_day(lake, scale, day))
        as_of2 = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(9))
        have = stored_hashes(lake)  # two columns, not every summary's text
        changed_ids = {it.summary_id for it in iter_items(lake, offline, as_of2) if have.get(it.summary_id) != it.input_hash}
        changed = [it for it in iter_items(lake, llm, as_of2) if it.summary_id in changed_ids]
        phase("llm_nightly_dry_run", estimate(changed, context_tokens))
        r3 = precompute(offline, lake, as_of=as_of2)
        phase("nightly_offline", {"seconds": r3.seconds, "recomputed": r3.computed})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="1,10")
    ap.add_argument("--context-tokens", type=int, default=6000)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: run one scale, print JSON
    ap.add_argument("--synth", nargs=2, help=argparse.SUPPRESS)  # child process: SCALE DIR, print row counts
    args = ap.parse_args()
    if args.synth:
        print(json.dumps(synth(Path(args.synth[1]), int(args.synth[0]))))
        return
    if args.one:
        print(json.dumps(run_scale(args.one, args.context_tokens), ensure_ascii=False))
        return
    results = []
    for scale in [int(s) for s in args.scales.split(",") if s.strip()]:
        proc = subprocess.run([sys.executable, __file__, "--one", str(scale), "--context-tokens", str(args.context_tokens)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode:
            raise SystemExit(f"scale {scale} failed")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        f, n, full, nightly = res["full_offline"], res["rerun_no_new_data"], res["llm_full_dry_run"], res["llm_nightly_dry_run"]
        print(f"scale {scale}: {res['rows']}")
        print(f"  full offline precompute: {f['summaries']} summaries in {f['seconds']:.1f}s, peak RSS {f['peak_rss_mb']:.0f} MB")
        print(f"  rerun, no new data:      {n['recomputed']} recomputed, {n['llm_calls']} LLM calls, {n['seconds']:.1f}s")
        print(f"  nightly after one day:   {res['nightly_offline']['recomputed']} recomputed offline in "
              f"{res['nightly_offline']['seconds']:.1f}s (new: {res['new_day']})")
        print(f"  LLM full (dry run):      {full['items']} summaries, {full['calls']} calls, "
              f"{full['tokens_in']:,} tokens in + ~{full['tokens_out']:,} out")
        print(f"  LLM nightly (dry run):   {nightly['items']} summaries, {nightly['calls']} calls, "
              f"{nightly['tokens_in']:,} tokens in + ~{nightly['tokens_out']:,} out")
    print(json.dumps(results, ensure_ascii=False))


if __name__ == "__main__":
    main()
