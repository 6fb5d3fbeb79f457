"""Sample-account generator: a deterministic, realistic amoCRM account plus the team's Telegram chat.

Why: every other part of crmsum (ingest, privacy, facts, summaries, the bot) needs data that looks and
misbehaves like a real sales team's — inflected Russian names, phones typed five ways, hand-overs,
prompt injections in notes — together with the ground truth (`truth/pii.json`, `truth/story.json`) to
measure against. Same seed + end date = byte-identical output; JSONL is streamed and events are
ordered with an on-disk merge so memory stays flat at 10x scale.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
import operator
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from crmsum.errors import CrmsumError
from crmsum.sandbox import sample_corpus as C
from crmsum.sandbox.sample_people import (
    PHONE_STYLES, Person, card, fmt_phone, inn_personal, landline, new_person, passport, snils,
    translit,
)

MSK = dt.timezone(dt.timedelta(hours=3))
MAX_LEADS = 200_000
MAX_CHAT_DAYS = 20 * 366
SELLER_DOMAIN = "promsnab-demo.ru"
WON, LOST = 142, 143
LOSS_REASONS = ["Дорого", "Выбрали конкурента", "Нет бюджета", "Не вышли на ЛПР", "Сроки не устроили",
                "Пропал клиент"]
# Outcome model (logit scale): recorded verbatim in story.json.
EFFECTS = {"base": -1.7, "fast_follow_up": 0.9, "meeting_held": 1.1, "discount_offered": 0.6,
           "tender_pipeline": -0.5, "log_amount_vs_median": -0.35}
_B32 = "0123456789abcdefghjkmnpqrstvwxyz"
_CHUNK_LEADS = 256


class GenerateError(CrmsumError, ValueError):
    """Nonsense arguments for `generate` (one clear line)."""


# ----------------------------------------------------------------------------- helpers

def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_B32_PAIRS = [a + b for a in _B32 for b in _B32]   # 10 bits -> two characters


def _ulid(ts: int, rng: random.Random) -> str:
    """ULID-like id as amoCRM uses for events: 48-bit ms time + 80 random bits, Crockford base32."""
    value = ((ts * 1000 + rng.randrange(1000)) << 80) | rng.getrandbits(80)
    pairs = _B32_PAIRS
    return "".join([pairs[(value >> s) & 1023] for s in range(120, -1, -10)])


def _ts(d: dt.date, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(d.year, d.month, d.day, hour, minute, second, tzinfo=MSK).timestamp())


def _local(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, MSK).replace(tzinfo=None)


def _work_time(ts: int, rng: random.Random, weekend_ok: float = 0.05) -> int:
    """Move a moment into working hours (9–19 MSK, weekdays), keeping it at or after ts."""
    t = _local(ts)
    d = t.date()
    if t.hour >= 19:
        d += dt.timedelta(days=1)
        t = dt.datetime(d.year, d.month, d.day, 9, 0)
    elif t.hour < 9:
        t = dt.datetime(d.year, d.month, d.day, 9, 0)
    while d.weekday() >= 5 and rng.random() >= weekend_ok:
        d += dt.timedelta(days=1)
        t = dt.datetime(d.year, d.month, d.day, 9, 0)
    if t.hour == 9 and t.minute == 0:
        t += dt.timedelta(minutes=rng.randrange(0, 90), seconds=rng.randrange(60))
    return max(ts, int(t.replace(tzinfo=MSK).timestamp()))


def _money(v: int) -> str:
    if v >= 1_000_000 and v % 10_000 == 0:
        s = f"{v / 1_000_000:.2f}".rstrip("0").rstrip(".").replace(".", ",")
        return f"{s} млн ₽"
    return f"{v:,}".replace(",", " ") + " руб."


class Registry:
    """Every personal value planted anywhere, exactly as written."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.phones: set[str] = set()
        self.emails: set[str] = set()
        self.documents: set[str] = set()
        self.handles: set[str] = set()

    def as_json(self) -> dict[str, list[str]]:
        return {"names": sorted(self.names), "phones": sorted(self.phones), "emails": sorted(self.emails),
                "documents": sorted(self.documents), "handles": sorted(self.handles)}


class Ctx(dict):
    """Lazy template context: personal values are drawn (phones in a random format) and registered
    only when a template actually uses them; `planted` keeps what went into the last text."""

    def __init__(self, reg: Registry, rng: random.Random, person: Person | None, **fixed: Any) -> None:
        super().__init__()
        if isinstance(fixed.get("product"), tuple):
            fixed["product"], fixed["product_acc"], fixed["product_dat"] = fixed["product"]
        self.reg, self.rng, self.p, self.fixed = reg, rng, person, fixed
        self.planted: list[tuple[str, str]] = []

    def __missing__(self, key: str) -> str:
        p, reg, rng = self.p, self.reg, self.rng
        if key in self.fixed:
            v = self.fixed[key]
            if key == "mgr":
                reg.names.add(v)
                self.planted.append(("name", v))
            return str(v)
        if p is None:
            raise KeyError(key)
        case = {"nom": "nomn", "gen": "gent", "dat": "datv", "acc": "accs", "ins": "ablt", "loc": "loct"}
        kind, _, suffix = key.partition("_")
        if kind == "c" and suffix in case:
            v = p.full_case(case[suffix])
        elif kind == "c" and suffix == "rev":
            v = p.reversed
        elif kind == "s" and suffix in case:
            v = p.surname(case[suffix])
        elif kind == "io" and suffix in case:
            v = p.io(case[suffix])
        elif key == "first":
            return p.first
        elif key == "a":      # past-tense agreement: подтвердил / подтвердила
            return "а" if p.gender == "femn" else ""
        elif key == "sya":    # отказался / отказалась
            return "ась" if p.gender == "femn" else "ся"
        elif key == "phone":
            v = fmt_phone(p.phone, rng.randrange(PHONE_STYLES))
            reg.phones.add(v)
            self.planted.append(("phone", v))
            return v
        elif key == "email":
            reg.emails.add(p.email)
            self.planted.append(("email", p.email))
            return p.email
        elif key in ("passport", "inn", "snils", "card"):
            v = {"passport": passport, "inn": inn_personal, "snils": snils, "card": card}[key](rng)
            reg.documents.add(v)
            return v
        else:
            raise KeyError(key)
        reg.names.add(v)
        self.planted.append(("name", v))
        return v

    def render(self, template: str) -> str:
        self.planted = []
        return template.format_map(self)


@dataclass
class Manager:
    uid: int
    person: Person
    joined: int          # unix ts (window start for founders)
    left: int | None
    fast: bool
    meetings: bool
    discounts: bool
    skill: float
    handle: str
    tg_id: int
    is_head: bool = False
    stats: dict[str, int] = field(default_factory=lambda: {"leads": 0, "won": 0, "lost": 0, "open": 0,
                                                           "revenue": 0})


@dataclass
class Company:
    cid: int
    name: str
    domain: str
    phone: str
    email: str
    created: int
    contacts: list[int] = field(default_factory=list)
    responsible: int = 0
    updated: int = 0
    inn: str = ""
    address: str = ""


@dataclass
class Contact:
    cid: int
    person: Person
    company: int
    position: str
    created: int
    phone_repr: str
    updated: int = 0
    responsible: int = 0


# ----------------------------------------------------------------------------- validation

def _int_arg(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise GenerateError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise GenerateError(f"{name} must be an integer, got {value!r}") from None


def _validate(out: Path, leads: Any, chat_days: Any, seed: Any, end_date: Any) -> tuple[Path, dt.date]:
    leads, chat_days = _int_arg("leads", leads), _int_arg("chat_days", chat_days)
    _int_arg("seed", seed)
    if leads < 1:
        raise GenerateError(f"leads must be at least 1, got {leads}")
    if leads > MAX_LEADS:
        raise GenerateError(f"leads must be at most {MAX_LEADS}, got {leads}")
    if chat_days < 1:
        raise GenerateError(f"chat_days must be at least 1, got {chat_days}")
    if chat_days > MAX_CHAT_DAYS:
        raise GenerateError(f"chat_days must be at most {MAX_CHAT_DAYS} (20 years), got {chat_days}")
    today = dt.date.today()
    if end_date is None:
        end_date = today - dt.timedelta(days=1)
    if isinstance(end_date, dt.datetime) or not isinstance(end_date, dt.date):
        raise GenerateError(f"end_date must be a date, got {end_date!r}")
    if end_date > today:
        raise GenerateError(f"end_date {end_date.isoformat()} is in the future (today is {today.isoformat()})")
    if end_date - dt.timedelta(days=chat_days) < dt.date(2000, 1, 1):
        raise GenerateError(f"history would start before 2000-01-01: end_date {end_date} minus {chat_days} days")
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise GenerateError(f"out must be a folder path, got {out!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GenerateError(f"--out {out} exists and is not a directory")
    return out, end_date


def generate(out: Path, leads: int = 1000, chat_days: int = 1095, seed: int = 7,
             end_date: dt.date | None = None, progress: Any = None) -> dict[str, int]:
    """Write the sample account into `out` and return counts of what was written.

    `progress(step, advance=1, total=None)` (see `crmsum.progress`) hears of each lead and chat day."""
    out, end = _validate(out, leads, chat_days, seed, end_date)
    leads, chat_days, seed = operator.index(leads), operator.index(chat_days), operator.index(seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for sub in ("amocrm", "telegram", "truth"):
            (out / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise GenerateError(f"cannot create {out}: {exc.strerror or exc}") from None
    return _Generator(out, leads, chat_days, seed, end, progress).run()


# ----------------------------------------------------------------------------- the generator

class _Generator:
    def __init__(self, out: Path, n_leads: int, chat_days: int, seed: int, end: dt.date, progress: Any = None) -> None:
        self.out, self.n_leads, self.chat_days, self.seed, self.end = out, n_leads, chat_days, seed, end
        self.progress = progress or (lambda *a, **k: None)
        self.start = end - dt.timedelta(days=chat_days - 1)
        self.start_ts = _ts(self.start)
        self.end_ts = _ts(end, 23, 59, 59)
        self.span = self.end_ts - self.start_ts
        self.rng = random.Random(f"crmsum-sample/{seed}")
        self.reg = Registry()
        self.stats = {"leads": 0, "events": 0, "notes": 0, "tasks": 0, "contacts": 0, "companies": 0,
                      "users": 0, "messages": 0}
        self.used_names: set[tuple[str, str]] = set()
        self.note_ids: set[int] = set()
        self.task_ids: set[int] = set()
        self.moments: dict[int, list[tuple]] = {}

    # -- setup ---------------------------------------------------------------------------------
    def _rand_id(self, lo: int, hi: int, used: set[int]) -> int:
        while True:
            v = self.rng.randrange(lo, hi)
            if v not in used:
                used.add(v)
                return v

    def _setup(self) -> None:
        rng = self.rng
        self.account_id = rng.randrange(30_000_000, 32_000_000)
        used: set[int] = set()
        n_mgr = 10
        founders = self.start_ts - 86400 * rng.randrange(30, 400)
        people = []
        for _ in range(n_mgr + 1):
            p = new_person(rng, self.used_names)
            p.email = f"{translit(p.first)[0]}.{translit(p.last_forms[0])}@{SELLER_DOMAIN}"
            people.append(p)
        self.managers: list[Manager] = []
        # traits are spread so that each behaviour is present on both sides
        fast = [True, True, False, True, False, False, True, False, True, False]
        meet = [True, False, True, True, False, True, False, False, True, False]
        disc = [False, True, True, False, True, False, False, True, True, False]
        for i, p in enumerate(people):
            uid = self._rand_id(5_000_000, 9_999_999, used)
            handle = f"{translit(p.first)}_{translit(p.last_forms[0])}".replace("'", "")
            m = Manager(uid, p, founders, None, False, False, False, 0.0, handle,
                        self._rand_id(100_000_000, 6_999_999_999, used), is_head=(i == 0))
            if i > 0:
                j = i - 1
                m.fast, m.meetings, m.discounts = fast[j], meet[j], disc[j]
                m.skill = round(rng.uniform(-0.5, 0.5), 2)
            self.managers.append(m)
        head, sales = self.managers[0], self.managers[1:]
        # one manager leaves, one joins (his replacement), one joins later on top
        leaver, joiner, late = sales[7], sales[8], sales[9]
        leaver.left = self.start_ts + int(self.span * 0.55)
        joiner.joined = self.start_ts + int(self.span * 0.45)
        late.joined = self.start_ts + int(self.span * 0.2)
        self.head, self.sales = head, sales
        self.leaver, self.joiner = leaver, joiner
        for m in self.managers:
            self.reg.names.add(m.person.full)
            self.reg.emails.add(m.person.email)
            self.reg.handles.add("@" + m.handle)
        self.stats["users"] = len(self.managers)

        # pipelines and statuses
        self.pipelines = []
        sid = set()
        main_stages = ["Первичный контакт", "Квалификация", "Встреча / презентация", "КП отправлено",
                       "Переговоры", "Согласование договора", "Счёт выставлен"]
        tender_stages = ["Новый тендер", "Подготовка заявки", "Заявка подана", "Переговоры",
                         "Согласование договора"]
        for pi, (name, stages) in enumerate([("Продажи", main_stages), ("Тендеры", tender_stages)]):
            pid = self._rand_id(1_900_000, 7_999_999, used)
            st = [{"id": self._rand_id(28_000_000, 69_999_999, sid), "name": "Неразобранное", "sort": 10,
                   "is_editable": False, "pipeline_id": pid, "color": "#c1c1c1", "type": 1,
                   "account_id": self.account_id}]
            for k, s in enumerate(stages):
                st.append({"id": self._rand_id(28_000_000, 69_999_999, sid), "name": s, "sort": 20 + 10 * k,
                           "is_editable": True, "pipeline_id": pid, "color": "#99ccff", "type": 0,
                           "account_id": self.account_id})
            st.append({"id": WON, "name": "Успешно реализовано", "sort": 10000, "is_editable": False,
                       "pipeline_id": pid, "color": "#CCFF66", "type": 0, "account_id": self.account_id})
            st.append({"id": LOST, "name": "Закрыто и не реализовано", "sort": 11000, "is_editable": False,
                       "pipeline_id": pid, "color": "#D5D8DB", "type": 0, "account_id": self.account_id})
            self.pipelines.append({"id": pid, "name": name, "sort": 1 + pi, "is_main": pi == 0,
                                   "is_unsorted_on": pi == 0, "is_archive": False, "account_id": self.account_id,
                                   "_embedded": {"statuses": st}})
        self.loss_reasons = []
        for k, name in enumerate(LOSS_REASONS):
            created = self.start_ts - 86400 * 200
            self.loss_reasons.append({"id": self._rand_id(9_000_000, 9_999_999, used), "name": name,
                                      "sort": k + 1, "created_at": created, "updated_at": created})
        self.loss_by_name = {r["name"]: r for r in self.loss_reasons}

        # field ids
        self.f = {k: self._rand_id(480_000, 499_999, used) for k in
                  ("utm_source", "utm_medium", "utm_campaign", "page", "cookies", "form", "source", "comment",
                   "phone", "email", "position", "web", "address", "inn")}
        self.enum_ids = {"WORK": self._rand_id(900_000, 999_999, used), "MOB": self._rand_id(900_000, 999_999, used),
                         "OTHER": self._rand_id(900_000, 999_999, used)}

        # companies and contacts
        n_comp = max(3, round(self.n_leads * 0.3))
        names: set[str] = set()
        self.companies: list[Company] = []
        self.contacts: list[Contact] = []
        cids: set[int] = set()
        for _ in range(n_comp):
            while True:
                if rng.random() < 0.7:
                    base = rng.choice(C.COMPANY_ROOT_A) + rng.choice(C.COMPANY_ROOT_B).lower()
                    suffix = rng.choice(C.COMPANY_ROOT_C)
                    if suffix.strip().lower() not in base.lower():
                        base += suffix
                else:
                    base = rng.choice(C.COMPANY_WORDS) + rng.choice(["", "", "-Урал", "-Сибирь", " Плюс", " Групп"])
                r = rng.random()
                name = f"{rng.choice(C.LEGAL_FORMS)} «{base}»" if r < 0.55 else (f"«{base}»" if r < 0.65 else base)
                if name not in names:
                    names.add(name)
                    break
            slug = translit(base).replace(" ", "").replace("-", "").replace("«", "").replace("»", "")
            domain = f"{slug}.ru"
            co = Company(self._rand_id(40_000_000, 59_999_999, cids), name, domain, landline(rng),
                         rng.choice(["info", "zakupki", "office", "snab", "sales"]) + "@" + domain, 0)
            co.inn = f"{rng.randrange(10**9, 10**10)}"
            co.address = f"{rng.choice(C.CITIES)}, {rng.choice(C.STREETS)}, д. {rng.randrange(1, 120)}"
            self.reg.emails.add(co.email)
            for _k in range(rng.choice([1, 1, 2, 2, 2, 3])):
                p = new_person(rng, self.used_names, domain)
                ct = Contact(self._rand_id(40_000_000, 59_999_999, cids), p, co.cid, rng.choice(C.POSITIONS), 0,
                             fmt_phone(p.phone, rng.choice([0, 2, 3, 3, 5])))
                co.contacts.append(len(self.contacts))
                self.contacts.append(ct)
            self.companies.append(co)

    # -- helpers ------------------------------------------------------------------------------
    def _active(self, ts: int) -> list[Manager]:
        return [m for m in self.sales if m.joined <= ts and (m.left is None or ts < m.left)]

    def _note_id(self, ts: int) -> int:
        v = 200_000_000 + (ts - self.start_ts) * 4
        while v in self.note_ids:
            v += 1
        self.note_ids.add(v)
        return v

    def _task_id(self, ts: int) -> int:
        v = 30_000_000 + (ts - self.start_ts) * 4
        while v in self.task_ids:
            v += 1
        self.task_ids.add(v)
        return v

    def _moment(self, ts: int, *payload: Any) -> None:
        day = (_local(ts).date() - self.start).days
        if 0 <= day < self.chat_days:
            self.moments.setdefault(day, []).append((ts, *payload))

    # -- run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, int]:
        self._setup()
        a = self.out / "amocrm"
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=self.out))
        try:
            self.story_leads: list[dict] = []
            chunks: list[Path] = []
            with open(a / "leads.jsonl", "w", encoding="utf-8", newline="\n") as fl, \
                    open(a / "notes.jsonl", "w", encoding="utf-8", newline="\n") as fn, \
                    open(a / "tasks.jsonl", "w", encoding="utf-8", newline="\n") as ft:
                buf: list[tuple[str, str]] = []
                for idx, plan in enumerate(self._plan_leads()):
                    buf.extend(self._lead(idx, plan, fl, fn, ft))
                    self.progress("deal cards", 1, total=self.n_leads)
                    if (idx + 1) % _CHUNK_LEADS == 0:
                        chunks.append(self._flush_chunk(tmp, len(chunks), buf))
                        buf = []
                if buf:
                    chunks.append(self._flush_chunk(tmp, len(chunks), buf))
            self._merge_events(chunks, a / "events.jsonl")
            self._write_static(a)
            self._write_chat(self.out / "telegram" / "result.json")
            self._write_truth(self.out / "truth")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {k: self.stats[k] for k in ("leads", "events", "notes", "tasks", "contacts", "companies", "users",
                                           "messages")}

    def _flush_chunk(self, tmp: Path, n: int, buf: list[tuple[str, str]]) -> Path:
        buf.sort()
        p = tmp / f"events-{n:05d}.txt"
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            for key, line in buf:
                f.write(key + "\t" + line + "\n")
        return p

    def _merge_events(self, chunks: list[Path], dest: Path) -> None:
        files = [open(p, encoding="utf-8") for p in chunks]
        try:
            with open(dest, "w", encoding="utf-8", newline="\n") as out:
                for line in heapq.merge(*files):
                    out.write(line.split("\t", 1)[1])
        finally:
            for f in files:
                f.close()

    # -- leads ----------------------------------------------------------------------------------
    def _plan_leads(self) -> Iterator[dict]:
        rng = self.rng
        n = self.n_leads
        times = sorted(self.start_ts + int(self.span * (rng.random() ** 0.9)) for _ in range(n))
        weights = [1.0 / (r + 1) ** 0.7 for r in range(len(self.companies))]
        order = list(range(len(self.companies)))
        rng.shuffle(order)
        lead_id = rng.randrange(20_000_000, 24_000_000)
        for t in times:
            t = min(_work_time(t, rng, 0.08), self.end_ts - 3600)
            lead_id += rng.randrange(3, 400)
            co_idx = order[rng.choices(range(len(order)), weights)[0]]
            active = self._active(t) or self.sales[:1]
            mgr = rng.choices(active, [1.3 if m.is_head else 1.0 for m in active])[0]
            yield {"id": lead_id, "created": t, "company": co_idx, "manager": mgr,
                   "tender": rng.random() < 0.15}

    def _lead(self, idx: int, plan: dict, fl, fn, ft) -> list[tuple[str, str]]:
        rng = random.Random(f"crmsum-sample/{self.seed}/lead/{idx}")
        reg = self.reg
        lid, created, mgr = plan["id"], plan["created"], plan["manager"]
        co = self.companies[plan["company"]]
        pipe = self.pipelines[1 if plan["tender"] else 0]
        statuses = pipe["_embedded"]["statuses"]
        stages = [s for s in statuses if s["type"] == 0 and s["id"] not in (WON, LOST)]
        unsorted = statuses[0]
        # contacts: one or two of the company's people
        cands = co.contacts[:]
        rng.shuffle(cands)
        lead_contacts = [self.contacts[i] for i in cands[: 1 if rng.random() < 0.7 or len(cands) == 1 else 2]]
        main = lead_contacts[0]
        person = main.person
        ctx = Ctx(reg, rng, person, company=co.name, product=rng.choice(C.PRODUCTS),
                  competitor=rng.choice(C.COMPETITORS), position=main.position, address=co.address,
                  date=(_local(created) + dt.timedelta(days=rng.randrange(3, 15))).strftime("%d.%m"))
        product = ctx.fixed["product"]

        # behaviours and outcome
        fast = rng.random() < (0.85 if mgr.fast else 0.2)
        meeting = rng.random() < (0.75 if mgr.meetings else 0.25)
        discount = rng.random() < (0.65 if mgr.discounts else 0.15)
        amount = int(round(math.exp(rng.gauss(math.log(450_000), 0.9)) / 1000) * 1000) + 20_000
        if plan["tender"]:
            amount *= 3
        logit = (EFFECTS["base"] + mgr.skill + EFFECTS["fast_follow_up"] * fast + EFFECTS["meeting_held"] * meeting
                 + EFFECTS["discount_offered"] * discount + EFFECTS["tender_pipeline"] * plan["tender"]
                 + EFFECTS["log_amount_vs_median"] * math.log(amount / 450_000))
        p_win = 1 / (1 + math.exp(-logit))
        outcome = "won" if rng.random() < p_win else "lost"
        if outcome == "won":
            days = min(200.0, max(5.0, math.exp(rng.gauss(math.log(35), 0.6))))
        else:
            days = min(200.0, max(1.0, math.exp(rng.gauss(math.log(20), 0.8))))
        close_ts = _work_time(created + int(days * 86400), rng)
        loss_reason = None
        if outcome == "lost":
            w = {"Дорого": 3 if not discount else 1, "Выбрали конкурента": 2 if not fast else 1,
                 "Нет бюджета": 1.5, "Не вышли на ЛПР": 3 if not meeting else 0.7,
                 "Сроки не устроили": 1, "Пропал клиент": 2.5 if not fast else 0.8}
            loss_reason = rng.choices(list(w), list(w.values()))[0]
        stale = rng.random() < 0.04   # forgotten deals: still open, nothing happens any more
        if close_ts > self.end_ts or stale:
            outcome, loss_reason = "open", None
            close_ts = min(close_ts, self.end_ts)
        horizon = close_ts if outcome != "open" or stale else self.end_ts

        # stage path
        path = [s for s in stages if meeting or not s["name"].startswith("Встреча")]
        if outcome == "won":
            reach = len(path)
        elif outcome == "lost":
            reach = rng.randint(1, max(1, len(path) - 1))
        else:
            frac = (horizon - created) / max(1, days * 86400) * (rng.uniform(0.3, 0.8) if stale else 1.0)
            reach = max(1, min(len(path), int(len(path) * frac) + 1))
        path = path[:reach]

        records: list[tuple[int, str, Any]] = []   # (ts, kind, data) -> materialized below
        from_site = rng.random() < 0.45 and not plan["tender"]
        creator = 0 if from_site else mgr.uid
        records.append((created, "ev", ("lead_added", creator, [], [])))
        tags = rng.sample(C.TAGS, rng.choice([0, 1, 1, 2]))
        if plan["tender"] and "тендер" not in tags:
            tags.append("тендер")
        if from_site and "tilda" not in tags:
            tags.append("tilda")
        cfv: list[dict] = []
        if from_site:
            src = C.SOURCE_ENUM[0]
            uid = f"{rng.randrange(10**18, 10**19)}"
            ga = f"{rng.randrange(10**8, 10**9)}.{created - rng.randrange(0, 86400 * 30)}"
            cookie = (f"_ga=GA1.2.{ga}; _gid=GA1.2.{rng.randrange(10**8, 10**9)}.{created}; _ym_uid={uid}; "
                      f"_ym_d={created}; _ym_isad=2; previousUrl=promsnab-demo.ru%2Fcatalog")
            tracking = [("utm_source", rng.choice(C.UTM_SOURCES)), ("utm_medium", rng.choice(C.UTM_MEDIUMS)),
                        ("utm_campaign", rng.choice(C.UTM_CAMPAIGNS)), ("page", rng.choice(C.SITE_PAGES)),
                        ("cookies", cookie), ("form", f"form{rng.randrange(10**8, 10**9)}")]
            for key, val in tracking:
                cfv.append({"field_id": self.f[key], "field_name": key if key.startswith("utm") else
                            {"page": "Страница", "cookies": "COOKIES", "form": "FORMID"}[key],
                            "field_code": key.upper(), "field_type": "tracking_data", "values": [{"value": val}]})
                records.append((created, "ev", (f"custom_field_{self.f[key]}_value_changed", 0,
                                                [{"custom_field_value": {"field_id": self.f[key], "field_type": 9,
                                                                         "enum_id": None, "text": val}}], [])))
        else:
            src = rng.choice(C.SOURCE_ENUM[1:])
        cfv.append({"field_id": self.f["source"], "field_name": "Источник", "field_code": None, "field_type": "select",
                    "values": [{"value": src[0], "enum_id": src[1]}]})
        records.append((created + 60, "ev", (f"custom_field_{self.f['source']}_value_changed", creator or mgr.uid,
                                             [{"custom_field_value": {"field_id": self.f["source"], "field_type": 4,
                                                                      "enum_id": src[1], "text": src[0]}}], [])))
        for t in tags:
            records.append((created, "ev", ("entity_tag_added", 0 if from_site else mgr.uid, [{"tag": {"name": t}}], [])))
        for ct in lead_contacts:
            records.append((created, "ev", ("entity_linked", creator, [{"link": {"entity": {"type": "contact", "id": ct.cid}}}], [])))
        records.append((created, "ev", ("entity_linked", creator, [{"link": {"entity": {"type": "company", "id": co.cid}}}], [])))
        if from_site:
            records.append((created, "note", ("service_message", {"service": "Tilda",
                                                                     "text": rng.choice(C.FORM_TEXTS)})))

        # responsible over time (hand-over when the manager leaves, rare re-assignments)
        resp_changes: list[tuple[int, int, int, int]] = []  # (ts, by, before, after)
        owner = mgr
        if mgr.left is not None and created < mgr.left < horizon:
            t = _work_time(mgr.left - 3600 * rng.randrange(1, 20), rng)
            t = max(t, created + 60)
            new = self.joiner if rng.random() < 0.7 else rng.choice([m for m in self._active(mgr.left) if m is not mgr])
            resp_changes.append((t, self.head.uid, mgr.uid, new.uid))
        elif rng.random() < 0.04 and horizon - created > 86400 * 3:
            t = _work_time(created + rng.randrange(86400, max(86401, horizon - created)), rng)
            cand = [m for m in self._active(t) if m is not mgr]
            if cand and t < horizon:
                resp_changes.append((t, self.head.uid, mgr.uid, rng.choice(cand).uid))
        by_uid = {m.uid: m for m in self.managers}

        def owner_at(ts: int) -> Manager:
            o = mgr
            for t, _b, _bef, aft in resp_changes:
                if ts >= t:
                    o = by_uid[aft]
            return o

        for t, by, bef, aft in resp_changes:
            records.append((t, "ev", ("entity_responsible_changed", by, [{"responsible_user": {"id": aft}}],
                                      [{"responsible_user": {"id": bef}}])))

        # first response: the behaviour "fast_follow_up"
        first_resp = created + (rng.randrange(3 * 60, 50 * 60) if fast else rng.randrange(26 * 3600, 5 * 86400))
        first_resp = _work_time(first_resp, rng) if not fast else first_resp
        first_resp = min(first_resp, horizon - 1) if horizon > created + 120 else created + 60
        # stage changes spread over the lifetime
        span = max(600, horizon - first_resp)
        cuts = sorted(rng.random() for _ in range(len(path)))
        stage_times = [first_resp + 30] + [first_resp + int(span * c * (0.9 if outcome == "open" else 1.0))
                                           for c in cuts[1:]]
        stage_times = [min(max(t, first_resp + 30), horizon - 1) for t in stage_times]
        stage_times.sort()
        prev = unsorted["id"]
        for s, t in zip(path, stage_times):
            records.append((t, "ev", ("lead_status_changed", owner_at(t).uid,
                                      [{"lead_status": {"id": s["id"], "pipeline_id": pipe["id"]}}],
                                      [{"lead_status": {"id": prev, "pipeline_id": pipe["id"]}}])))
            prev = s["id"]
        final_status = prev
        if outcome in ("won", "lost"):
            final_status = WON if outcome == "won" else LOST
            records.append((close_ts, "ev", ("lead_status_changed", owner_at(close_ts).uid,
                                             [{"lead_status": {"id": final_status, "pipeline_id": pipe["id"]}}],
                                             [{"lead_status": {"id": prev, "pipeline_id": pipe["id"]}}])))
        price = amount
        records.append((first_resp + 20, "ev", ("sale_field_changed", mgr.uid if not from_site else owner_at(first_resp).uid,
                                                [{"sale_field_value": {"sale": amount}}], [])))

        # first contact call
        records.append((first_resp, "call", ("call_out", ctx.render(rng.choice(C.FIRST_CONTACT_NOTES)))))
        self._moment(first_resp + rng.randrange(60, 3600), "new", owner_at(first_resp).uid, plan["company"], main.cid)

        stage_name_at = lambda ts: next((s["name"] for s, t in reversed(list(zip(path, stage_times))) if ts >= t),  # noqa: E731
                                        path[0]["name"])

        # how many records this card gets (10..200, skewed)
        target = int(min(196, max(12, math.exp(rng.gauss(math.log(38), 0.75)))))
        mandatory = sum(1 if k == "ev" else 4 if k == "call" else 2 for _t, k, _d in records)
        budget = target - mandatory
        discount_pct = 0
        if discount:
            discount_pct = rng.choice([3, 5, 5, 7, 10, 10, 12, 15])
            neg = [t for s, t in zip(path, stage_times) if s["name"] in ("Переговоры", "КП отправлено")]
            t = (neg[-1] if neg else stage_times[-1]) + rng.randrange(3600, 86400 * 3)
            t = _work_time(t, rng)
            if t >= horizon - 86400:  # agreed during the negotiation, not in the closing minute
                t = first_resp + max(1, (horizon - first_resp) // 2)
            new_price = int(round(amount * (1 - discount_pct / 100) / 1000) * 1000)
            ctx.fixed["discount"] = discount_pct
            ctx.fixed["amount"] = _money(new_price)
            records.append((t, "note", ("common", ctx.render(rng.choice(C.DISCOUNT_NOTES)))))
            records.append((t + 30, "ev", ("sale_field_changed", owner_at(t).uid, [{"sale_field_value": {"sale": new_price}}],
                                           [{"sale_field_value": {"sale": amount}}])))
            self._moment(t - rng.randrange(600, 7200), "discount", owner_at(t).uid, plan["company"], main.cid,
                         discount_pct)
            price = new_price
            budget -= 3
        if meeting:
            ms = [t for s, t in zip(path, stage_times) if s["name"].startswith("Встреча")]
            t0 = ms[0] if ms else stage_times[0]
            t_meet = _work_time(t0 + rng.randrange(86400, 86400 * 6), rng)
            if t_meet >= horizon - 86400:  # held while the deal was alive, not at its close
                t_meet = t0 + max(0, (horizon - t0) // 2)
            if t_meet > t0:
                ctx.fixed["date"] = _local(t_meet).strftime("%d.%m")
                records.append((t0 + 60, "task", (2, ctx.render(rng.choice(C.TASK_MEETING_TEXTS)), t_meet,
                                                  t_meet <= self.end_ts and t_meet < horizon,
                                                  "Встреча проведена, клиент заинтересован")))
                records.append((t_meet + 3600, "note", ("common", ctx.render(rng.choice(C.MEETING_NOTES)))))
                self._moment(t_meet + 7200, "meeting", owner_at(t_meet).uid, plan["company"], main.cid)
                budget -= 5
        ctx.fixed.setdefault("amount", _money(amount))
        ctx.fixed.setdefault("discount", rng.choice([5, 7, 10]))

        # fill with activities
        n_inj = 0
        while budget >= 2:
            t = first_resp + int((horizon - first_resp) * rng.random())
            t = min(_work_time(t, rng), horizon - 1)
            if t <= first_resp:
                t = first_resp + rng.randrange(60, 3600)
            stage = stage_name_at(t)
            ctx.fixed["date"] = (_local(t) + dt.timedelta(days=rng.randrange(2, 14))).strftime("%d.%m")
            r = rng.random()
            if r < 0.30:
                pool = {"Первичный контакт": C.QUALIFY_NOTES, "Квалификация": C.QUALIFY_NOTES,
                        "КП отправлено": C.KP_NOTES, "Переговоры": C.NEGOTIATION_NOTES,
                        "Согласование договора": C.CONTRACT_NOTES, "Счёт выставлен": C.CONTRACT_NOTES,
                        "Подготовка заявки": C.QUALIFY_NOTES, "Заявка подана": C.KP_NOTES}.get(stage, C.GENERIC_NOTES)
                if rng.random() < 0.3:
                    pool = C.GENERIC_NOTES
                r2 = rng.random()
                if r2 < 0.006 and n_inj == 0:
                    text = rng.choice(C.INJECTION_NOTES)
                    n_inj += 1
                elif r2 < 0.018:
                    text = ctx.render(rng.choice(C.PERSONAL_DOC_NOTES))
                else:
                    text = ctx.render(rng.choice(pool))
                records.append((t, "note", ("common", text)))
                budget -= 2
            elif r < 0.55:
                with_text = budget >= 4 and rng.random() < 0.6
                records.append((t, "call", (rng.choice(["call_out", "call_out", "call_in"]),
                                            ctx.render(rng.choice(C.CALL_RESULTS)) if with_text else None)))
                budget -= 4 if with_text else 2
            elif r < 0.62:
                kind = rng.choice(["sms_out", "sms_in"])
                ctx.fixed["mgr"] = owner_at(t).person.full
                text = ctx.render(rng.choice(C.SMS_TEXTS if kind == "sms_out" else C.SMS_IN_TEXTS))
                records.append((t, "note", (kind, text)))
                budget -= 2
            elif budget >= 3:
                till = _work_time(t + rng.randrange(3600, 86400 * 4), rng)
                ttype = 1 if rng.random() < 0.7 else rng.choice([2, 3])
                tmpl = rng.choice(C.TASK_CALL_TEXTS if ttype == 1 else C.TASK_MEETING_TEXTS if ttype == 2 else C.TASK_OTHER_TEXTS)
                done = till < horizon and (outcome != "open" or rng.random() < 0.85)
                records.append((t, "task", (ttype, ctx.render(tmpl), till, done, None)))
                budget -= 3 if done else 2
            else:
                break
        if outcome == "won":
            ctx.fixed["date"] = (_local(close_ts) + dt.timedelta(days=3)).strftime("%d.%m")
            records.append((close_ts - 120, "note", ("common", ctx.render(rng.choice(C.WON_NOTES)))))
            self._moment(close_ts + rng.randrange(300, 5400), "won", owner_at(close_ts).uid, plan["company"],
                         main.cid, price)
        elif outcome == "lost":
            records.append((close_ts - 120, "note", ("common", ctx.render(rng.choice(C.LOST_NOTES[loss_reason])))))
            self._moment(close_ts + rng.randrange(300, 5400), "lost", owner_at(close_ts).uid, plan["company"],
                         main.cid, loss_reason)
        elif rng.random() < 0.5 or stale:
            # open deals keep a pending task, sometimes already overdue (always for stale ones)
            t = _work_time((horizon if stale else self.end_ts) - rng.randrange(86400, 86400 * 20), rng)
            t = max(t, first_resp + 60)
            if t < self.end_ts:
                till = t + rng.randrange(86400, 86400 * 10)
                records.append((t, "task", (1, ctx.render(rng.choice(C.TASK_CALL_TEXTS)), till, False, None)))

        # materialize in time order
        records = sorted(((min(ts, self.end_ts), kind, data) for ts, kind, data in records),
                         key=lambda r: (r[0], r[1]))
        events: list[tuple[str, str]] = []
        updated = created
        open_tasks: list[int] = []
        n_rec = 0
        owner = mgr

        def ev(ts: int, etype: str, by: int, after: list, before: list) -> None:
            nonlocal n_rec
            eid = _ulid(ts, rng)
            obj = {"id": eid, "type": etype, "entity_id": lid, "entity_type": "lead", "created_by": by,
                   "created_at": ts, "value_after": after, "value_before": before, "account_id": self.account_id,
                   "_embedded": {"entity": {"id": lid}}}
            events.append((f"{ts:011d} {eid}", _dump(obj)))
            n_rec += 1

        for ts, kind, data in records:
            owner = owner_at(ts)
            updated = max(updated, ts)
            if kind == "ev":
                ev(ts, *data)
            elif kind in ("note", "call"):
                ntype, text = data
                nid = self._note_id(ts)
                by = owner.uid if ntype != "service_message" else 0
                if kind == "call":
                    dur = 0 if text and "Не дозвонился" in text else rng.randrange(15, 900)
                    params = {"uniq": f"{rng.getrandbits(128):032x}", "duration": dur, "source": "onlinePBX",
                              "link": f"https://records.onlinepbx.example/{rng.getrandbits(64):016x}.mp3",
                              "phone": "+7" + person.phone}
                    reg.phones.add(params["phone"])
                    # the call's free text lives in a separate common note
                    self._write_note(fn, nid, lid, by, ts, owner.uid, ntype, params)
                    ev(ts, "outgoing_call" if ntype == "call_out" else "incoming_call", by, [{"note": {"id": nid}}], [])
                    if text:
                        t2 = min(ts + 90, self.end_ts)
                        nid2 = self._note_id(t2)
                        self._write_note(fn, nid2, lid, by, t2, owner.uid, "common", {"text": text})
                        ev(t2, "common_note_added", by, [{"note": {"id": nid2}}], [])
                        n_rec += 1
                        updated = max(updated, t2)
                    n_rec += 1
                    continue
                if ntype in ("sms_in", "sms_out"):
                    params = {"text": text, "phone": "+7" + person.phone}
                    reg.phones.add(params["phone"])
                    etype = "incoming_sms" if ntype == "sms_in" else "outgoing_sms"
                elif ntype == "service_message":
                    params = text
                    etype = "service_note_added"
                else:
                    params = {"text": text}
                    etype = "common_note_added"
                self._write_note(fn, nid, lid, by, ts, owner.uid, ntype, params)
                ev(ts, etype, by, [{"note": {"id": nid}}], [])
                n_rec += 1
            elif kind == "task":
                ttype, text, till, done, result = data
                tid = self._task_id(ts)
                ev(ts, "task_added", owner.uid, [{"task": {"id": tid}}], [])
                done_ts = None
                if done:
                    done_ts = min(max(ts + 600, till - rng.randrange(0, 7200)), self.end_ts, horizon)
                    if done_ts > ts:
                        ev(done_ts, "task_completed", owner.uid, [{"task": {"id": tid}}], [])
                        updated = max(updated, done_ts)
                    else:
                        done_ts = None
                res_text = result or rng.choice(C.TASK_RESULTS[ttype]) if done_ts else None
                if res_text and ttype == 2 and result is None and not meeting:
                    # the story says no meeting was held: a meeting task's result must not report one
                    res_text = C.TASK_MEETING_NOT_HELD[C.TASK_RESULTS[2].index(res_text)]
                res = {"text": res_text} if done_ts else []
                task = {"id": tid, "created_by": owner.uid, "updated_by": owner.uid, "created_at": ts,
                        "updated_at": done_ts or ts, "responsible_user_id": owner.uid, "group_id": 0,
                        "entity_id": lid, "entity_type": "leads", "duration": 3600 if ttype == 2 else 0,
                        "is_completed": bool(done_ts), "task_type_id": ttype, "text": text, "result": res,
                        "complete_till": till, "account_id": self.account_id}
                ft.write(_dump(task) + "\n")
                self.stats["tasks"] += 1
                n_rec += 1
                if not done_ts:
                    open_tasks.append(till)

        final_owner = owner_at(self.end_ts)
        closed_at = close_ts if outcome != "open" else None
        lr = self.loss_by_name[loss_reason] if loss_reason else None
        lead = {
            "id": lid, "name": self._lead_name(rng, co.name, product, plan["tender"], from_site), "price": price,
            "responsible_user_id": final_owner.uid, "group_id": 0, "status_id": final_status,
            "pipeline_id": pipe["id"], "loss_reason_id": lr["id"] if lr else None, "created_by": creator,
            "updated_by": final_owner.uid, "created_at": created, "updated_at": updated, "closed_at": closed_at,
            "closest_task_at": min(open_tasks) if open_tasks else None, "is_deleted": False, "is_price_modified_by_robot": False,
            "custom_fields_values": cfv or None, "score": None, "account_id": self.account_id, "labor_cost": None,
            "_embedded": {
                "tags": [{"id": 10_000 + C.TAGS.index(t), "name": t, "color": None} for t in tags],
                "companies": [{"id": co.cid}],
                "contacts": [{"id": ct.cid, "is_main": k == 0} for k, ct in enumerate(lead_contacts)],
                "loss_reason": [dict(lr)] if lr else [],
            },
        }
        fl.write(_dump(lead) + "\n")
        self.stats["leads"] += 1
        self.stats["events"] += len(events)
        # entities linked to the lead: created before it, touched by it
        if not co.created or created < co.created:
            co.created = max(self.start_ts, created - rng.randrange(60, 86400 * 3))
            co.responsible = mgr.uid
        co.updated = max(co.updated, created)
        for ct in lead_contacts:
            if not ct.created or created < ct.created:
                ct.created = max(co.created, created - rng.randrange(30, 3600))
                ct.responsible = mgr.uid
            ct.updated = max(ct.updated, created)
        final_owner.stats["leads"] += 1
        final_owner.stats[outcome] += 1
        if outcome == "won":
            final_owner.stats["revenue"] += price
        self.story_leads.append({
            "id": lid, "name": lead["name"], "pipeline": pipe["name"], "company_id": co.cid, "company": co.name,
            "main_contact_id": main.cid, "manager_id": mgr.uid, "final_manager_id": final_owner.uid,
            "handovers": [{"at": t, "from": b, "to": a} for t, _by, b, a in resp_changes if t <= self.end_ts],
            "created_at": created, "closed_at": closed_at, "outcome": outcome, "amount": price,
            "initial_amount": amount, "loss_reason": loss_reason, "win_probability": round(p_win, 4),
            "drivers": {"fast_follow_up": fast, "first_response_minutes": max(0, (first_resp - created) // 60),
                        "meeting_held": meeting, "discount_offered": discount, "discount_pct": discount_pct,
                        "tender": plan["tender"], "from_site": from_site, "stale": stale},
            "records": n_rec, "prompt_injection": n_inj > 0,
        })
        return events

    def _lead_name(self, rng: random.Random, company: str, product: str, tender: bool, from_site: bool) -> str:
        if tender:
            t = rng.choice(["Тендер: {product}", "Тендер {company}", "{company}: тендер на поставку"])
        elif from_site and rng.random() < 0.4:
            t = rng.choice(["Заявка с сайта", "Заявка с формы: {product}", "Заявка с сайта — {company}"])
        else:
            t = rng.choice([x for x in C.LEAD_TITLES if "Тендер" not in x and "Заявка" not in x])
        return t.format(product=product, product_cap=product[:1].upper() + product[1:], company=company)

    def _write_note(self, fn, nid: int, lid: int, by: int, ts: int, resp: int, ntype: str, params: dict) -> None:
        fn.write(_dump({"id": nid, "entity_id": lid, "created_by": by, "updated_by": by, "created_at": ts,
                        "updated_at": ts, "responsible_user_id": resp, "group_id": 0, "note_type": ntype,
                        "params": params, "account_id": self.account_id, "is_needs_to_be_linked": False}) + "\n")
        self.stats["notes"] += 1

    # -- static entities ---------------------------------------------------------------------------
    def _write_static(self, a: Path) -> None:
        rng = random.Random(f"crmsum-sample/{self.seed}/static")
        acc = {"id": self.account_id, "name": "ПромСнаб — отдел продаж", "subdomain": "promsnab",
               "created_at": self.start_ts - 86400 * 500, "created_by": self.head.uid,
               "updated_at": self.end_ts - 86400, "updated_by": self.head.uid, "current_user_id": self.head.uid,
               "country": "RU", "currency": "RUB", "currency_symbol": "₽", "customers_mode": "disabled",
               "is_unsorted_on": True, "is_loss_reason_enabled": True, "is_helpbot_enabled": False,
               "is_technical_account": False, "contact_name_display_order": 1, "mobile_feature_version": 0}
        (a / "account.json").write_text(json.dumps(acc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        rights = {"leads": {"view": "A", "edit": "A", "add": "A", "delete": "D", "export": "D"},
                  "contacts": {"view": "A", "edit": "A", "add": "A", "delete": "D", "export": "D"},
                  "companies": {"view": "A", "edit": "A", "add": "A", "delete": "D", "export": "D"},
                  "tasks": {"edit": "A", "delete": "A"}, "mail_access": True, "catalog_access": True,
                  "status_rights": [], "is_admin": False, "is_free": False, "is_active": True,
                  "group_id": None, "role_id": None}
        with open(a / "users.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for m in sorted(self.managers, key=lambda m: m.uid):
                r = json.loads(json.dumps(rights))
                r["is_admin"] = m.is_head
                r["is_active"] = m.left is None
                f.write(_dump({"id": m.uid, "name": m.person.full, "email": m.person.email, "lang": "ru",
                               "rights": r}) + "\n")
        (a / "pipelines.json").write_text(json.dumps(self.pipelines, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
        phone_f = {"field_id": self.f["phone"], "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext"}
        email_f = {"field_id": self.f["email"], "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext"}
        with open(a / "companies.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for co in self.companies:
                if not co.created:  # never used by a lead: created some time in the window
                    co.created = co.updated = self.start_ts + rng.randrange(self.span)
                    co.responsible = rng.choice(self.sales).uid
                ph = fmt_phone(co.phone, rng.choice([0, 5, 6]))
                self.reg.phones.add(ph)
                f.write(_dump({
                    "id": co.cid, "name": co.name, "responsible_user_id": co.responsible, "group_id": 0,
                    "created_by": co.responsible, "updated_by": co.responsible, "created_at": co.created,
                    "updated_at": max(co.updated, co.created), "closest_task_at": None, "is_deleted": False,
                    "custom_fields_values": [
                        {**phone_f, "values": [{"value": ph, "enum_id": self.enum_ids["WORK"], "enum_code": "WORK"}]},
                        {**email_f, "values": [{"value": co.email, "enum_id": self.enum_ids["WORK"], "enum_code": "WORK"}]},
                        {"field_id": self.f["web"], "field_name": "Web", "field_code": "WEB", "field_type": "url",
                         "values": [{"value": f"https://{co.domain}"}]},
                        {"field_id": self.f["address"], "field_name": "Адрес", "field_code": "ADDRESS",
                         "field_type": "textarea", "values": [{"value": co.address}]},
                        {"field_id": self.f["inn"], "field_name": "ИНН", "field_code": None, "field_type": "text",
                         "values": [{"value": co.inn}]},
                    ],
                    "account_id": self.account_id,
                    "_embedded": {"tags": [], "contacts": [{"id": self.contacts[i].cid} for i in co.contacts]},
                }) + "\n")
                self.stats["companies"] += 1
        with open(a / "contacts.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for ct in self.contacts:
                co = next(c for c in [self._company_by_id(ct.company)])
                if not ct.created:
                    ct.created = ct.updated = max(co.created, co.created + rng.randrange(60, 86400))
                    ct.responsible = co.responsible
                p = ct.person
                self.reg.names.add(p.crm_name)
                self.reg.names.add(p.last_forms[0])   # last_name: a surname on its own
                self.reg.phones.add(ct.phone_repr)
                self.reg.emails.add(p.email)
                f.write(_dump({
                    "id": ct.cid, "name": p.crm_name, "first_name": p.first, "last_name": p.last_forms[0],
                    "responsible_user_id": ct.responsible, "group_id": 0, "created_by": ct.responsible,
                    "updated_by": ct.responsible, "created_at": ct.created, "updated_at": max(ct.updated, ct.created),
                    "closest_task_at": None, "is_deleted": False, "is_unsorted": False,
                    "custom_fields_values": [
                        {**phone_f, "values": [{"value": ct.phone_repr, "enum_id": self.enum_ids["MOB"], "enum_code": "MOB"}]},
                        {**email_f, "values": [{"value": p.email, "enum_id": self.enum_ids["WORK"], "enum_code": "WORK"}]},
                        {"field_id": self.f["position"], "field_name": "Должность", "field_code": "POSITION",
                         "field_type": "text", "values": [{"value": ct.position}]},
                    ],
                    "account_id": self.account_id,
                    "_embedded": {"tags": [], "companies": [{"id": ct.company}]},
                }) + "\n")
                self.stats["contacts"] += 1

    def _company_by_id(self, cid: int) -> Company:
        if not hasattr(self, "_co_index"):
            self._co_index = {c.cid: c for c in self.companies}
        return self._co_index[cid]

    # -- chat -----------------------------------------------------------------------------------------
    def _write_chat(self, dest: Path) -> None:
        from crmsum.sandbox.sample_chat import write_chat

        self.stats["messages"] = write_chat(self, dest)

    # -- truth ----------------------------------------------------------------------------------------
    def _write_truth(self, d: Path) -> None:
        (d / "pii.json").write_text(json.dumps(self.reg.as_json(), ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
        mgrs = []
        for m in self.managers:
            closed = m.stats["won"] + m.stats["lost"]
            mgrs.append({
                "user_id": m.uid, "name": m.person.full, "role": "head" if m.is_head else "manager",
                "email": m.person.email, "telegram_from_id": f"user{m.tg_id}", "telegram_handle": "@" + m.handle,
                "joined_at": m.joined if m.joined >= self.start_ts else None, "left_at": m.left,
                "traits": None if m.is_head else {"fast_follow_up": m.fast, "meetings": m.meetings,
                                                  "discounts": m.discounts, "skill": m.skill},
                **m.stats, "true_win_rate": round(m.stats["won"] / closed, 4) if closed else None,
            })

        def rate(flag: str, value: bool) -> dict[str, Any]:
            sel = [x for x in self.story_leads if x["outcome"] != "open" and x["drivers"][flag] == value]
            won = sum(1 for x in sel if x["outcome"] == "won")
            return {"closed": len(sel), "won": won, "win_rate": round(won / len(sel), 4) if sel else None}

        story = {
            "seed": self.seed, "start_date": self.start.isoformat(), "end_date": self.end.isoformat(),
            "timezone": "Europe/Moscow", "account_id": self.account_id,
            "outcome_model": {"logit_effects": EFFECTS,
                              "note": "P(win) = sigmoid(base + manager skill + effects of the lead's drivers)"},
            "behaviour_win_rates": {f: {"with": rate(f, True), "without": rate(f, False)}
                                    for f in ("fast_follow_up", "meeting_held", "discount_offered")},
            "handover": {"from": self.leaver.uid, "to": self.joiner.uid, "at": self.leaver.left},
            "managers": mgrs,
            "leads": self.story_leads,
        }
        (d / "story.json").write_text(json.dumps(story, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
