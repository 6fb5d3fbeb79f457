"""Benchmark the amoCRM emulator: startup time, pages per second (rate limit off), peak memory.

    python bench/bench_emulator.py              # design scale: ~1,000 leads, ~100k events+notes+tasks
    python bench/bench_emulator.py --scale 10   # 10x (leads=10000)
    python bench/bench_emulator.py --data DIR   # an existing `crmsum generate` output

Uses `crmsum.sandbox.generate.generate` when it exists, else a built-in synthetic account in the same
on-disk format. The emulator runs in its own process (as `crmsum amocrm-emulator` does), so the
client does not share its GIL: startup = import + constructing AmoEmulator + binding the socket
("listening"), then the background indexing of the big files ("indexed"); peak memory is that
process's VmHWM (peak RSS).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import vm_hwm_mb  # noqa: E402

TOKEN = "bench-token"


def synthetic(out: Path, leads: int, seed: int = 1) -> Path:
    """~100 events+notes+tasks per lead, API-shaped, sorted like the generator's files."""
    rng = random.Random(seed)
    d = out / "amocrm"
    d.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000
    (d / "account.json").write_text(json.dumps({"id": 1, "name": "bench", "subdomain": "bench", "currency": "RUB"}))
    (d / "pipelines.json").write_text(json.dumps([{"id": 500, "name": "Продажи", "sort": 1, "is_main": True,
                                                   "_embedded": {"statuses": [{"id": s, "name": str(s), "sort": s,
                                                                               "pipeline_id": 500, "type": 0}
                                                                              for s in (5001, 5002, 142, 143)]}}]))
    with (d / "users.jsonl").open("w") as f:
        for u in range(10):
            f.write(json.dumps({"id": 100 + u, "name": f"User {u}", "email": f"u{u}@x.ru", "lang": "ru",
                                "rights": {}}) + "\n")
    events, notes, tasks = [], [], []
    with (d / "leads.jsonl").open("w") as fl, (d / "contacts.jsonl").open("w") as fc:
        for i in range(1, leads + 1):
            created = t0 + i * 600
            fl.write(json.dumps({
                "id": i, "name": f"Сделка {i}", "price": rng.randrange(10_000, 5_000_000), "responsible_user_id": 100 + i % 10,
                "group_id": 0, "status_id": rng.choice([5001, 5002, 142, 143]), "pipeline_id": 500, "loss_reason_id": None,
                "created_by": 100, "updated_by": 100, "created_at": created, "updated_at": created + rng.randrange(10**6),
                "closed_at": None, "closest_task_at": None, "is_deleted": False,
                "custom_fields_values": [{"field_id": 5, "field_name": "Источник", "field_code": None, "field_type": "text",
                                          "values": [{"value": "сайт"}]}],
                "score": None, "account_id": 1, "labor_cost": None,
                "_embedded": {"tags": [], "companies": [{"id": 10_000 + i % 300}],
                              "contacts": [{"id": 20_000 + i, "is_main": True}], "loss_reason": []}},
                ensure_ascii=False) + "\n")
            fc.write(json.dumps({"id": 20_000 + i, "name": f"Контакт {i}", "first_name": "Иван", "last_name": f"Петров{i}",
                                 "responsible_user_id": 100, "created_at": created, "updated_at": created,
                                 "custom_fields_values": [{"field_id": 3, "field_name": "Телефон", "field_code": "PHONE",
                                                           "field_type": "multitext",
                                                           "values": [{"value": f"+7912{i:07d}", "enum_code": "WORK"}]}],
                                 "account_id": 1, "_embedded": {"tags": [], "companies": []}}, ensure_ascii=False) + "\n")
            for k in range(70):
                ts = created + k * 3000 + rng.randrange(3000)
                events.append({"id": f"{ts:010x}{rng.getrandbits(64):016x}", "type": rng.choice(
                    ["lead_status_changed", "common_note_added", "entity_responsible_changed", "task_added"]),
                    "entity_id": i, "entity_type": "lead", "created_by": 100, "created_at": ts,
                    "value_after": [{"lead_status": {"id": 5002, "pipeline_id": 500}}],
                    "value_before": [{"lead_status": {"id": 5001, "pipeline_id": 500}}], "account_id": 1})
            for k in range(20):
                ts = created + k * 9000
                notes.append({"id": i * 100 + k, "entity_id": i, "created_by": 100, "updated_by": 100, "created_at": ts,
                              "updated_at": ts, "responsible_user_id": 100, "group_id": 0, "note_type": "common",
                              "params": {"text": f"Созвонились с клиентом по сделке {i}, отправил КП на почту"},
                              "account_id": 1})
            for k in range(10):
                ts = created + k * 20000
                tasks.append({"id": i * 100 + k, "created_by": 100, "updated_by": 100, "created_at": ts, "updated_at": ts,
                              "responsible_user_id": 100, "group_id": 0, "entity_id": i, "entity_type": "leads",
                              "duration": 0, "is_completed": k % 2 == 0, "task_type_id": 1, "text": "Позвонить",
                              "result": [], "complete_till": ts + 86400, "account_id": 1})
    with (d / "companies.jsonl").open("w") as f:
        for c in range(300):
            f.write(json.dumps({"id": 10_000 + c, "name": f"ООО Компания {c}", "responsible_user_id": 100,
                                "created_at": t0, "updated_at": t0, "account_id": 1, "_embedded": {"tags": []}},
                               ensure_ascii=False) + "\n")
    events.sort(key=lambda e: (e["created_at"], e["id"]))
    for name, rows in (("events.jsonl", events), ("notes.jsonl", notes), ("tasks.jsonl", tasks)):
        with (d / name).open("w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return d


def make_data(out: Path, scale: int, synthetic_only: bool = False) -> tuple[Path, str]:
    if synthetic_only:
        return synthetic(out, 1000 * scale), "synthetic (--synthetic)"
    try:
        from crmsum.sandbox.generate import generate
    except ImportError:
        return synthetic(out, 1000 * scale), "synthetic (crmsum.sandbox.generate not available)"
    generate(out, leads=1000 * scale, chat_days=30, seed=1)
    return out / "amocrm", "crmsum.sandbox.generate"


def _serve(data: str, conn) -> None:  # child process
    t0 = time.perf_counter()
    from crmsum.sandbox.amocrm_emulator import AmoEmulator

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    emu = AmoEmulator(data, token=TOKEN, rate_limit=0)
    server = emu.start()
    t_listen = time.perf_counter() - t1
    emu.wait_ready()
    t_ready = time.perf_counter() - t1
    ev = emu.tables["events"]
    mid = int(ev.cols["created_at"][len(ev) // 2]) if len(ev) else 0
    lead_ids = emu.tables["leads"].cols["id"][:1000].tolist()
    conn.send({"url": server.url, "import": t_import, "listen": t_listen, "ready": t_ready, "mid": mid, "leads": lead_ids,
               "counts": {n: len(t) for n, t in emu.tables.items()}})
    conn.recv()
    server.stop()


def bench(data: Path, seconds: float) -> None:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(str(data), child), daemon=True)
    proc.start()
    info = parent.recv()
    print(f"records: {info['counts']}")
    print(f"startup: import {info['import']:.3f} s, listening {info['listen']:.3f} s after AmoEmulator(), "
          f"all indices ready {info['ready']:.3f} s")
    print(f"RSS after load: {psutil.Process(proc.pid).memory_info().rss / 2**20:.0f} MB")
    base = info["url"]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    scenarios = [
        ("leads full sync, limit 250, with=contacts,loss_reason", "/api/v4/leads?limit=250&with=contacts,loss_reason"),
        ("events full sync, limit 100 (newest first)", "/api/v4/events?limit=100"),
        ("events of 59 leads (filter[entity_id][])", "/api/v4/events?limit=100&filter[entity][]=lead"
                                                     + "".join(f"&filter[entity_id][]={i}" for i in info["leads"][:59])),
        ("events incremental (filter[created_at][from])", f"/api/v4/events?limit=100&filter[created_at][from]={info['mid']}"),
        ("notes full sync, limit 250", "/api/v4/leads/notes?limit=250"),
        ("tasks updated (filter[updated_at][from]), limit 250", "/api/v4/tasks?limit=250&filter[updated_at][from]=0"),
        ("contacts, limit 250", "/api/v4/contacts?limit=250"),
        ("single lead GET /api/v4/leads/{id}", None),
    ]
    total_pages, total_time = 0, 0.0
    for name, path in scenarios:
        pages, nbytes, t = 0, 0, time.perf_counter()
        if path is None:
            while time.perf_counter() - t < min(seconds, 2.0):
                r = s.get(f"{base}/api/v4/leads/{info['leads'][pages % len(info['leads'])]}", timeout=30)
                assert r.status_code == 200, r.status_code
                nbytes += len(r.content)
                pages += 1
        else:
            url = base + path
            while url and time.perf_counter() - t < seconds:
                r = s.get(url, timeout=30)
                if r.status_code == 204:
                    break
                r.raise_for_status()
                nbytes += len(r.content)
                pages += 1
                url = r.json()["_links"].get("next", {}).get("href")
        dt = time.perf_counter() - t
        total_pages, total_time = total_pages + pages, total_time + dt
        print(f"  {name:55s} {pages:5d} pages {pages / dt:7.1f} pages/s  {nbytes / dt / 2**20:6.1f} MB/s")
    print(f"pages/s overall: {total_pages / total_time:.1f}  (rate limit off, one requests.Session, client parses JSON)")
    print(f"emulator peak RSS (VmHWM): {vm_hwm_mb(proc.pid):.0f} MB")
    parent.send("stop")
    proc.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, help="1 = ~1,000 leads; 10 = 10,000 leads")
    ap.add_argument("--data", type=Path, help="an existing amocrm/ folder (skips generation)")
    ap.add_argument("--synthetic", action="store_true", help="use the built-in synthetic account, not generate()")
    ap.add_argument("--seconds", type=float, default=5.0, help="max seconds per paging scenario")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            data, how = args.data, "given"
        else:
            t = time.perf_counter()
            data, how = make_data(Path(tmp), args.scale, args.synthetic)
            print(f"data: {how}, scale {args.scale}, written in {time.perf_counter() - t:.1f} s")
        size = sum(p.stat().st_size for p in Path(data).glob("*")) / 2**20
        print(f"data folder: {data} ({size:.0f} MB)")
        bench(Path(data), args.seconds)


if __name__ == "__main__":
    main()
