"""Telegram export import: time, messages/s and peak memory, for a three-year team chat and a
ten-times-larger synthetic export. Shows that memory stays flat as the export grows (streaming).

    python bench/bench_chat_import.py [--days 1095] [--scale 10] [--no-ner] [--keep DIR]

Each import runs in a fresh child process so its peak RSS is its own; RSS is also sampled while
the file is read (at 25/50/75/100 % of the bytes) to show it does not grow with the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import vm_hwm_mb  # noqa: E402

PEOPLE = ["Ева Соколова", "Олег Петров", "Анна Кузнецова", "Игорь Смирнов", "Мария Волкова",
          "Денис Орлов", "Светлана Морозова"]
COMPANIES = ["Теххренмаш", "СтройИнвест", "АгроПлюс", "МедТехника", "ЛогистикГрупп", "ЭнергоСбыт"]
TEMPLATES = [
    "Созвонился с {c}, просят КП до пятницы",
    "{p}, посмотри договор с {c}, пожалуйста",
    "Отправил счёт {c} на {n} 000 руб.",
    "{c} перенесли встречу на следующую неделю",
    "Клиент {c} выбрал конкурента, дорого",
    "Телефон ЛПР {c}: +7 916 {a}-{b}-{d}",
    "ок",
    "Доброе утро! План на сегодня: {c}, {c2}",
    "Кто возьмёт входящую заявку от {c}?",
    "Напишите {e}, он ждёт прайс",
]


def _text(rng: random.Random) -> object:
    t = rng.choice(TEMPLATES).format(c=rng.choice(COMPANIES), c2=rng.choice(COMPANIES), p=rng.choice(PEOPLE).split()[0],
                                     n=rng.randint(50, 900), a=rng.randint(100, 999), b=rng.randint(10, 99),
                                     d=rng.randint(10, 99), e=f"client{rng.randint(1, 99)}@example.com")
    if rng.random() < 0.1:
        return [t + " ", {"type": "bold", "text": rng.choice(COMPANIES)}]
    return t


def write_export(path: Path, days: int, seed: int = 7, repeat: int = 1) -> int:
    """Stream-write a single-chat export: `days` of 5-100 messages a day, the whole history
    repeated `repeat` times (each copy shifted in time, with fresh ids). Returns the message count."""
    rng = random.Random(seed)
    start = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
    mid = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{\n "name": "Отдел продаж",\n "type": "private_supergroup",\n "id": 1234567890,\n "messages": [')
        first = True
        for copy in range(repeat):
            for day in range(days):
                for _ in range(rng.randint(5, 100)):
                    mid += 1
                    when = start + dt.timedelta(days=day + copy * days, seconds=rng.randint(8 * 3600, 20 * 3600))
                    ts = int(when.timestamp())
                    who = rng.choice(PEOPLE)
                    m = {"id": mid, "type": "message", "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
                         "date_unixtime": str(ts), "from": who, "from_id": f"user{1000 + PEOPLE.index(who)}"}
                    if rng.random() < 0.03:
                        m.update(type="service", actor=m.pop("from"), actor_id=m.pop("from_id"),
                                 action="invite_members", members=[rng.choice(PEOPLE)], text="")
                    else:
                        m["text"] = _text(rng)
                        if rng.random() < 0.2 and mid > 1:
                            m["reply_to_message_id"] = mid - rng.randint(1, min(mid - 1, 20))
                        if rng.random() < 0.05:
                            m.update(photo="photos/p.jpg", width=800, height=600)
                        if rng.random() < 0.1:
                            m["reactions"] = [{"type": "emoji", "count": rng.randint(1, 3), "emoji": "👍"}]
                    fh.write(("\n  " if first else ",\n  ") + json.dumps(m, ensure_ascii=False))
                    first = False
        fh.write("\n ]\n}\n")
    return mid


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _child(export: str, root: str, use_ner: bool, out) -> None:
    from crmsum.ingest.telegram import import_export
    from crmsum.lake import Lake
    from crmsum.privacy import Anonymizer, Vault

    lake = Lake(Path(root) / "lake")
    anon = Anonymizer(Vault(Path(root) / "vault"), use_ner=use_ner)
    samples: dict[int, float] = {}

    def progress(done: int, total: int) -> None:
        q = done * 4 // max(total, 1)
        if q and q not in samples:
            samples[q] = _rss_mb()

    base = _rss_mb()
    t0 = time.perf_counter()
    rep = import_export(Path(export), lake, anon, progress, timezone="Europe/Moscow")
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    rep2 = import_export(Path(export), lake, anon, timezone="Europe/Moscow")
    again = time.perf_counter() - t1
    anon.close()
    out.send({"read": rep.messages_read, "written": rep.messages_written, "skipped": rep.skipped,
              "seconds": elapsed, "reimport_seconds": again, "reimport_written": rep2.messages_written,
              "base_mb": base, "samples": samples,
              "peak_mb": vm_hwm_mb()})


def run(export: Path, root: Path, use_ner: bool) -> dict:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(str(export), str(root), use_ner, send))
    p.start()
    result = recv.recv()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=1095)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--no-ner", action="store_true", help="anonymizer without the NER model (faster)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-chat-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, repeat in (("3-year chat", 1), (f"{args.scale}x synthetic", args.scale)):
        export = work / f"export-{repeat}" / "result.json"
        export.parent.mkdir(exist_ok=True)
        t = time.perf_counter()
        n = write_export(export, args.days, repeat=repeat)
        size = export.stat().st_size / 2**20
        print(f"{label}: wrote {n:,} messages, {size:,.1f} MB in {time.perf_counter() - t:.1f}s", flush=True)
        r = run(export, work / f"data-{repeat}", not args.no_ner)
        s = r["samples"]
        print(f"  import {r['seconds']:.1f}s = {r['read'] / r['seconds']:,.0f} msg/s, written {r['written']:,}, "
              f"skipped {r['skipped']}; re-import {r['reimport_seconds']:.1f}s wrote {r['reimport_written']}", flush=True)
        print(f"  RSS MB: start {r['base_mb']:.0f}, at 25/50/75/100% of file "
              + "/".join(f"{s.get(q, float('nan')):.0f}" for q in (1, 2, 3, 4))
              + f"; peak {r['peak_mb']:.0f}", flush=True)
        rows.append((label, n, size, r))
    (a, na, sa, ra), (b, nb, sb, rb) = rows
    print(f"\nfile x{sb / sa:.1f}, messages x{nb / na:.1f}: peak RSS {ra['peak_mb']:.0f} -> {rb['peak_mb']:.0f} MB "
          f"(x{rb['peak_mb'] / ra['peak_mb']:.2f})")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
