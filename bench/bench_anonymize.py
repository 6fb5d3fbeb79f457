"""Benchmark crmsum.privacy: records/s (one process, both cores), NER share, peak memory, recall.

    python bench/bench_anonymize.py [--n 20000] [--seed 7] [--sample DIR]

Inputs are synthetic Russian sales notes / chat messages (1–3 sentences) with names of known
and unknown people in inflected forms, phones in many formats, e-mails, handles, plus business
data that must survive (companies, amounts, dates, company INN, order numbers). If the sample
generator (crmsum.sandbox.generate) exists, recall on its truth/pii.json is measured as well.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import vm_hwm_mb  # noqa: E402
from crmsum.ru import CASES, case_forms, strip_legal_form  # noqa: E402

FIRST_M = ["Юрий", "Иван", "Сергей", "Алексей", "Дмитрий", "Андрей", "Михаил", "Николай", "Павел", "Олег",
           "Кирилл", "Артём", "Виктор", "Григорий", "Денис", "Константин"]
FIRST_F = ["Ольга", "Ева", "Анна", "Мария", "Елена", "Татьяна", "Наталья", "Ирина", "Светлана", "Марина",
           "Ксения", "Дарья", "Юлия", "Екатерина", "Алина", "Вероника"]
SURN = ["Федосеев", "Смирнов", "Соколов", "Кузнецов", "Попов", "Лебедев", "Козлов", "Новиков", "Морозов",
        "Волков", "Зайцев", "Павлов", "Семенов", "Голубев", "Виноградов", "Богданов", "Воробьев", "Михайлов",
        "Белов", "Тарасов", "Беляев", "Комаров", "Орлов", "Киселев", "Макаров", "Андреев", "Ковалев", "Ильин",
        "Гусев", "Титов", "Кудрявцев", "Баранов", "Куликов", "Алексеев", "Степанов", "Яковлев", "Сорокин",
        "Сергеев", "Романов", "Захаров", "Борисов", "Королев", "Герасимов", "Пономарев", "Григорьев"]
COMPANIES = ["Теххренмаш", "Альфа-Строй", "СибМеталлТорг", "Уралпромснаб", "Векторснаб", "ГрандЛогистик",
             "Промтехкомплект", "Северсталь-Сервис", "Агроресурс", "Электрокомплект"]
RARE_SURN = ["Бжезинский", "Шевчук", "Хабибуллин", "Гарипов", "Цой", "Ким", "Нгуен", "Оганесян", "Абдуллаев",
             "Кшиштофский", "Гринберг", "Шмидт", "Ткаченко", "Бондаренко", "Мельник", "Сафин", "Зиннатуллин"]
CITIES = ["Москве", "Казани", "Екатеринбурге", "Новосибирске", "Перми", "Самаре"]
PRODUCTS = ["станок ЧПУ", "линию упаковки", "компрессор", "сервисный контракт", "запчасти", "поставку металла"]

TEMPLATES = [
    ("Созвонились с {ablt}, обсудили {prod}. Ждут КП до {date}.", "ablt"),
    ("{datv} отправил КП на {amount} руб.", "datv"),
    ("Встреча у {gent} в {city} {date} в 11:00, {company} хотят {prod}.", "gent"),
    ("{nomn} просит перезвонить по номеру {phone}.", "nomn"),
    ("Написал {datv} на {email}, ответа пока нет.", "datv"),
    ("Клиент {company}: ЛПР — {nomn}, тел. {phone}, почта {email}.", "nomn"),
    ("По заказу №{order} от {date} оплата {amount} руб. получена, ИНН {company_inn}.", None),
    ("{company} тянут с решением, бюджет {amount} руб., обещали ответ в {month}.", None),
    ("Договорились с {ablt} о демо {prod}. Телеграм {handle}.", "ablt"),
    ("Передал контакт {gent} коллегам, мобильный {phone}.", "gent"),
    ("КП отправлено, ждём ответа до пятницы.", None),
    ("Созвон перенесли на {date}, {company} согласовывают бюджет.", None),
    ("Говорил о {loct}: он(а) решает по {prod}, звонить после 15:00 на {phone}.", "loct"),
    ("Отправил договор {datv} ({email}), копию — {manager_datv}.", "datv"),
    ("{manager_nomn}, возьми {accs} на себя, клиент {company} горячий.", "accs"),
]

PHONE_FORMATS = [
    lambda d: f"+7 ({d[0:3]}) {d[3:6]}-{d[6:8]}-{d[8:10]}", lambda d: f"8-{d[0:3]}-{d[3:6]}-{d[6:8]}-{d[8:10]}",
    lambda d: f"8 ({d[0:3]}) {d[3:10]}", lambda d: f"8{d}", lambda d: f"+7{d}", lambda d: f"{d[0:3]} {d[3:6]} {d[6:8]} {d[8:10]}",
    lambda d: f"+7 {d[0:3]} {d[3:6]} {d[6:10]}",
]


def _inflect(word: str, case: str, gender: str, kind: str) -> str:
    try:
        return case_forms(word, kind, gender)[CASES.index(case)]
    except ValueError:  # a name pymorphy3 does not know stays as written
        return word


def make_person(rng: random.Random, rare: bool = False) -> tuple[str, str, str]:
    fem = rng.random() < 0.5
    first = rng.choice(FIRST_F if fem else FIRST_M)
    if rare:
        fem = False
        first = rng.choice(FIRST_M)
        surn = rng.choice(RARE_SURN)
        return first, surn, "masc"
    surn = rng.choice(SURN)
    if fem:
        surn = surn + "а"
    return first, surn, "femn" if fem else "masc"


def name_in(person, case: str, rng: random.Random) -> str:
    first, surn, g = person
    f = _inflect(first, case, g, "Name")
    s = _inflect(surn, case, g, "Surn")
    r = rng.random()
    if r < 0.6:
        return f"{f} {s}"
    if r < 0.75:
        return f"{s} {f}"
    if r < 0.9:
        return s
    return f


def build_corpus(n: int, seed: int = 7):
    """(records, known_people, companies, planted) — planted[i] is the PII strings of record i."""
    rng = random.Random(seed)
    managers = [make_person(rng) for _ in range(6)]
    contacts = [make_person(rng) for _ in range(150)]
    strangers = [make_person(rng) for _ in range(100)] + [make_person(rng, rare=True) for _ in range(50)]
    known = [(f"{p[0]} {p[1]}", "manager") for p in managers] + [(f"{p[0]} {p[1]}", "contact") for p in contacts]
    cache: dict = {}
    recs, planted = [], []
    for _ in range(n):
        tpl, case = rng.choice(TEMPLATES)
        pii: list[str] = []
        vals = {}
        if case:
            person = rng.choice(contacts if rng.random() < 0.8 else strangers)
            key = (person, case, rng.random() < 0.5)
            nm = cache.get(key) or name_in(person, case, rng)
            cache[key] = nm
            vals[case] = nm
            pii.extend(nm.split())
        m = rng.choice(managers)
        vals["manager_nomn"] = m[0]
        vals["manager_datv"] = _inflect(m[0], "datv", m[2], "Name")
        if "{manager" in tpl:
            pii.append(vals["manager_datv"] if "manager_datv" in tpl else m[0])
        d = "9" + "".join(rng.choice("0123456789") for _ in range(9))
        vals["phone"] = rng.choice(PHONE_FORMATS)(d)
        if "{phone}" in tpl:
            pii.append(vals["phone"])
        vals["email"] = f"{rng.choice(['ivan', 'olga', 'sales', 'y.fedoseev', 'm_petrova'])}{rng.randint(1, 999)}@{rng.choice(['mail.ru', 'yandex.ru', 'gmail.com', 'tehh.ru'])}"
        if "{email}" in tpl:
            pii.append(vals["email"])
        vals["handle"] = "@" + rng.choice(["ivan", "olga", "petrov", "buyer"]) + str(rng.randint(10, 9999))
        if "{handle}" in tpl:
            pii.append(vals["handle"])
        vals.update(company=rng.choice(COMPANIES), city=rng.choice(CITIES), prod=rng.choice(PRODUCTS),
                    date=f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2026",
                    amount=f"{rng.randint(1, 99)} {rng.randint(0, 999):03d} {rng.randint(0, 999):03d}",
                    order=str(rng.randint(1000, 999999)), company_inn="77" + "".join(rng.choice("0123456789") for _ in range(8)),
                    month=rng.choice(["марте", "апреле", "мае"]))
        recs.append(tpl.format(**vals))
        planted.append(pii)
    return recs, known, COMPANIES, planted


def leaked(out: str, pii: list[str]) -> list[str]:
    bad = []
    for v in pii:
        if re.search(r"(?<![\w@])" + re.escape(v) + r"(?![\w])", out):
            bad.append(v)
    return bad


def sample_recall(anon_factory, tmp: Path, leads: int = 60, chat_days: int = 60) -> dict | None:
    try:
        from crmsum.sandbox.generate import generate  # type: ignore
    except Exception:
        return None
    out = tmp / "sample"
    generate(out, leads=leads, chat_days=chat_days, seed=3)
    texts: list[str] = []
    for line in (out / "amocrm" / "notes.jsonl").read_text(encoding="utf-8").splitlines():
        t = (json.loads(line).get("params") or {}).get("text")
        if t:
            texts.append(t)
    for line in (out / "amocrm" / "tasks.jsonl").read_text(encoding="utf-8").splitlines():
        o = json.loads(line)
        texts.append(o.get("text") or "")
        r = o.get("result")
        if isinstance(r, dict) and r.get("text"):
            texts.append(r["text"])
    chat = json.loads((out / "telegram" / "result.json").read_text(encoding="utf-8"))
    for msg in chat.get("messages", []):
        t = msg.get("text")
        if isinstance(t, list):
            t = "".join(x if isinstance(x, str) else x.get("text", "") for x in t)
        if t:
            texts.append(t)
    pii = json.loads((out / "truth" / "pii.json").read_text(encoding="utf-8"))
    people = []
    for line in (out / "amocrm" / "users.jsonl").read_text(encoding="utf-8").splitlines():
        people.append((json.loads(line)["name"], "manager"))
    for line in (out / "amocrm" / "contacts.jsonl").read_text(encoding="utf-8").splitlines():
        people.append((json.loads(line)["name"], "contact"))
    companies = [json.loads(l)["name"] for l in (out / "amocrm" / "companies.jsonl").read_text(encoding="utf-8").splitlines()]
    anon = anon_factory(tmp / "vault_sample")
    anon.learn_people(people)
    anon.learn_companies(companies)
    outs = anon.texts(texts)
    joined = "\n".join(o for o in outs if o)
    values = [v for k in ("names", "phones", "emails") for v in pii.get(k, [])]
    left = [v for v in values if v and re.search(r"(?<![\w@])" + re.escape(v) + r"(?![\w])", joined)]
    original = "\n".join(t for t in texts if t)
    bare = [re.sub(r"[«»\"]", "", strip_legal_form(c)).strip() for c in companies]
    mentioned = [c for c in set(bare) if c and c in original]
    kept_companies = f"{sum(1 for c in mentioned if c in joined)}/{len(mentioned)}"
    return {"texts": len(texts), "planted_values": len(values), "leaked": len(left), "leaked_examples": left[:10],
            "recall": 1 - len(left) / max(1, len(values)), "company_names_still_readable": kept_companies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    import psutil
    from crmsum.privacy import Anonymizer, Vault

    tmp = Path(tempfile.mkdtemp(prefix="crmsum-bench-"))
    recs, known, companies, planted = build_corpus(args.n, args.seed)

    def factory(path, **kw):
        return Anonymizer(Vault(path), **kw)

    t0 = time.perf_counter()
    anon = factory(tmp / "vault", workers=1)
    anon.learn_people(known)
    anon.learn_companies(companies)
    from crmsum.privacy.people import ner_tagger
    ner_tagger()
    t_setup = time.perf_counter() - t0

    # warm-up on other records (fills per-token caches like a long-running ingest would)
    warm, *_ = build_corpus(2000, args.seed + 1)
    anon.texts(warm)
    anon.stats = {"texts": 0, "ner": 0}

    t0, c0 = time.perf_counter(), time.process_time()
    out1 = anon.texts(recs)
    t1, c1 = time.perf_counter() - t0, time.process_time() - c0
    ner_share = anon.stats["ner"] / max(1, anon.stats["texts"])
    anon.vault.flush()

    anon2 = factory(tmp / "vault", workers=2, pool_threshold=1)
    anon2.texts(warm)   # pool start-up + worker warm-up, not measured
    import psutil as _ps
    kids = _ps.Process().children()
    k0 = {k.pid: sum(k.cpu_times()[:2]) for k in kids}
    t0 = time.perf_counter()
    out2 = anon2.texts(recs)
    t2 = time.perf_counter() - t0
    kcpu = [sum(k.cpu_times()[:2]) - k0[k.pid] for k in kids]
    anon2.close()

    leaks = [(r, o, leaked(o, p)) for r, o, p in zip(recs, out1, planted) if leaked(o, p)]
    n_pii = sum(len(p) for p in planted)
    n_leak = sum(len(x[2]) for x in leaks)
    kept = sum(1 for r, o in zip(recs, out1) for c in companies if c in r and c not in o)
    proc = psutil.Process()
    rss = max([proc.memory_info().rss] + [c.memory_info().rss for c in proc.children(recursive=True)] or [0])
    peak = vm_hwm_mb() * 2**20
    if peak != peak:  # NaN: no /proc (not Linux)
        peak = rss
    res = {
        "records": len(recs),
        "setup_s (models + gazetteer)": round(t_setup, 2),
        "records_per_s_single": round(len(recs) / t1),
        "records_per_cpu_s_single": round(len(recs) / c1),
        "load_avg_1m (shared machine)": round(os.getloadavg()[0], 2),
        "records_per_s_both_cores": round(len(recs) / t2),
        "records_per_s_both_cores_if_idle": round(len(recs) / max(max(kcpu), 1e-9)),
        "worker_cpu_s": [round(x, 2) for x in kcpu],
        "ner_share": round(ner_share, 4),
        "batch_equals_parallel": out1 == out2,
        "planted_pii_values": n_pii,
        "leaked": n_leak,
        "recall": round(1 - n_leak / max(1, n_pii), 5),
        "company_mentions_lost": kept,
        "peak_rss_mb": round(peak / 2**20, 1),
    }
    for k, v in res.items():
        print(f"{k:32s} {v}")
    for r, o, l in leaks[:8]:
        print("LEAK", l, "|", r, "->", o)
    s = sample_recall(lambda p: factory(p), tmp)
    if s is None:
        print("sample generator not available: recall on truth/pii.json not measured")
    else:
        for k, v in s.items():
            print(f"sample_{k:25s} {v}")


if __name__ == "__main__":
    main()
