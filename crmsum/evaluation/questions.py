"""The evaluation set: questions with reference answers and reference contexts, from the truth.

The reference comes from `truth/story.json` (what really happened: each lead's outcome, amount,
close time, final manager and loss reason), NOT from crmsum's own facts layer, so the evaluation
can catch a wrong number there too. The lake supplies only identifiers: the managers' pseudonyms
(by amoCRM user id), the anonymized deal titles, and the record ids of the won/lost status
events (`event:<id>`, the citation ids the summarizers emit) as reference contexts.

Attribution mirrors the documented facts semantics: a deal's outcome counts for its final
responsible manager and its company, in the period of its close (Moscow local time).

Each question has two phrasings: `text` with real first names (what a user types; given to the
answer path, which resolves names through the vault like the CLI) and `stored` with pseudonyms
(what may be written to the lake). References use pseudonyms only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crmsum.errors import CrmsumError
from crmsum.evaluation.metrics import RefClaim
from crmsum.facts_sql import LOST, WON
from crmsum.ru import MONTHS_GEN, MONTHS_LOC, MONTHS_NOM, company_core, is_female, money, plural, strip_legal_form

KINDS = ("manager", "company", "period", "comparison", "loss_reasons")
SHARES = {"manager": 0.3, "company": 0.2, "period": 0.2, "comparison": 0.15, "loss_reasons": 0.15}
TEAM_ASPECT = ["команд", "менеджер: все", "все менеджеры", "отдел"]


class QuestionsError(CrmsumError, ValueError):
    """The truth or the lake cannot produce an evaluation set."""


@dataclass
class Question:
    id: str
    kind: str
    text: str  # real names: what the answer path gets (never stored)
    stored: str  # pseudonyms only: what eval_results keeps
    reference: str  # pseudonyms only
    reference_claims: list[RefClaim]
    reference_ids: list[str]
    start: dt.date
    end: dt.date
    managers: list[str] = field(default_factory=list)  # pseudonyms the question is about
    manager_ids: list[int] = field(default_factory=list)
    company: str | None = None
    company_id: int | None = None
    aspects: list[list[str]] = field(default_factory=list)
    today: dt.date | None = None
    reference_leads: list[int] = field(default_factory=list)  # deals the reference is about

    @property
    def scope(self) -> str:
        return "company" if self.company_id is not None else "manager" if self.managers else "team"

    def to_dict(self, real: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["reference_claims"] = [rc.to_dict() for rc in self.reference_claims]
        for k in ("start", "end", "today"):
            d[k] = d[k].isoformat() if d[k] else None
        if not real:
            d.pop("text")
        return d


# -- helpers ---------------------------------------------------------------------------------
def _deals(n: int) -> str:
    return f"{n} {plural(n, 'сделка', 'сделки', 'сделок')}"


def _verb(female: bool, masc: str, fem: str) -> str:
    return fem if female else masc


def _local(ts: int | None, tz: str) -> dt.datetime | None:
    if ts is None:
        return None
    return pd.Timestamp(int(ts), unit="s", tz="UTC").tz_convert(tz).tz_localize(None).to_pydatetime()


def _span_words(start: dt.date, end: dt.date) -> str:
    if start.month == end.month:
        return f"с {start.day} по {end.day} {MONTHS_GEN[end.month - 1]} {end.year}"
    return f"с {start.day} {MONTHS_GEN[start.month - 1]} по {end.day} {MONTHS_GEN[end.month - 1]} {end.year}"


@dataclass
class _Lead:
    id: int
    name: str
    company_id: int
    company: str
    manager_id: int
    outcome: str
    amount: int
    reason: str | None
    created: dt.datetime
    closed: dt.datetime | None
    event: str | None


class _Truth:
    def __init__(self, lake, truth_dir: Path) -> None:
        truth_dir = Path(truth_dir)
        path = truth_dir / "story.json" if (truth_dir / "story.json").exists() else truth_dir / "truth" / "story.json"
        if not path.exists():
            raise QuestionsError(f"no story.json in {truth_dir} (expected DIR/truth/story.json from `crmsum generate`)")
        story = json.loads(path.read_text(encoding="utf-8"))
        self.story = story
        tz = story.get("timezone") or "Europe/Moscow"
        self.start = dt.date.fromisoformat(story["start_date"])
        self.end = dt.date.fromisoformat(story["end_date"])
        con = lake.connect()
        users = dict(con.execute("SELECT user_id, name FROM crm_users").fetchall())
        if not users:
            raise QuestionsError("the lake has no crm_users: ingest the sample account first")
        titles = dict(con.execute("SELECT lead_id, name FROM crm_leads").fetchall())
        ev = con.execute(f"""
            SELECT e.lead_id, e.status_after, e.event_id, e.created_at FROM crm_events e
            WHERE e.type = 'lead_status_changed' AND e.status_after IN ({WON}, {LOST})
            ORDER BY e.created_at, e.event_id""").fetchall()
        last_event: dict[tuple[int, int], str] = {}
        for lead_id, status, eid, _ in ev:
            last_event[(int(lead_id), int(status))] = f"event:{eid}"
        comps = dict(con.execute("SELECT company_id, any_value(name) FROM crm_companies GROUP BY 1").fetchall())
        self.companies = {int(k): v for k, v in comps.items()}
        self.people: dict[int, tuple[str, str]] = {}  # user id -> (real name, pseudonym)
        for m in story["managers"]:
            uid = int(m["user_id"])
            if uid in users:
                self.people[uid] = (m["name"], users[uid])
        self.leads: list[_Lead] = []
        for x in story["leads"]:
            lid = int(x["id"])
            if lid not in titles:
                continue  # not in the lake (deleted or not ingested)
            status = WON if x["outcome"] == "won" else LOST if x["outcome"] == "lost" else None
            self.leads.append(_Lead(
                id=lid, name=titles.get(lid) or x["name"], company_id=int(x["company_id"]),
                company=self.companies.get(int(x["company_id"]), x["company"]),
                manager_id=int(x["final_manager_id"]), outcome=x["outcome"], amount=int(x["amount"] or 0),
                reason=x.get("loss_reason"), created=_local(x["created_at"], tz), closed=_local(x.get("closed_at"), tz),
                event=last_event.get((lid, status)) if status else None))
        firsts = defaultdict(int)
        for name, _ in self.people.values():
            firsts[name.split()[0]] += 1
        self.firsts = firsts

    def pseudonym(self, uid: int) -> str:
        return self.people[uid][1]

    def spoken(self, uid: int, full: bool = False) -> str:
        real = self.people[uid][0]
        first = real.split()[0]
        return real if full or self.firsts[first] > 1 else first

    def female(self, uid: int) -> bool:
        return is_female(self.people[uid][0].split()[0])

    def select(self, start: dt.date, end: dt.date, manager: int | None = None, company: int | None = None):
        lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())

        def mine(x: _Lead) -> bool:
            return (manager is None or x.manager_id == manager) and (company is None or x.company_id == company)
        closed = [x for x in self.leads if mine(x) and x.closed and lo <= x.closed < hi and x.outcome != "open"]
        won = sorted((x for x in closed if x.outcome == "won"), key=lambda x: (x.closed, x.id))
        lost = sorted((x for x in closed if x.outcome == "lost"), key=lambda x: (x.closed, x.id))
        created = [x for x in self.leads if mine(x) and lo <= x.created < hi]
        return won, lost, created


def _outcome_claims(subject: str, won: list[_Lead], lost: list[_Lead], created: list[_Lead],
                    deals: bool = True, with_created: bool = True) -> list[RefClaim]:
    out: list[RefClaim] = []
    if won:
        out.append(RefClaim(f"{subject}: выиграно {_deals(len(won))} на {money(sum(x.amount for x in won))}.",
                            [len(won), sum(x.amount for x in won)], [x.event for x in won if x.event], "won"))
    if lost:
        out.append(RefClaim(f"{subject}: проиграно {_deals(len(lost))} на {money(sum(x.amount for x in lost))}.",
                            [len(lost), sum(x.amount for x in lost)], [x.event for x in lost if x.event], "lost"))
    if won or lost:
        pct = round(100 * len(won) / (len(won) + len(lost)))
        out.append(RefClaim(f"Конверсия закрытых сделок — {pct}%.", [pct], [], "win_rate"))
    reasons: dict[str, list[_Lead]] = defaultdict(list)
    for x in lost:
        reasons[x.reason or "не указана"].append(x)
    for r, xs in sorted(reasons.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append(RefClaim(f"Причина потерь «{r}» — {_deals(len(xs))}.", [r, len(xs)],
                            [x.event for x in xs if x.event], "reason"))
    if deals:
        for x in won:
            out.append(RefClaim(f"Выиграна сделка «{x.name}» ({x.company}) на {money(x.amount)}.", [x.name],
                                [x.event] if x.event else [], "deal"))
    if with_created and created:
        out.append(RefClaim(f"Новых сделок: {len(created)} на {money(sum(x.amount for x in created))}.",
                            [len(created), sum(x.amount for x in created)], [], "created"))
    if not out:
        out.append(RefClaim(f"{subject}: закрытых и новых сделок за период не было.", [], [], "none"))
    return out


def _period_aspect(start: dt.date, end: dt.date) -> list[str]:
    return [f"{start:%d.%m.%Y}", f"{start:%Y-%m-%d}"]


def _months(t: _Truth) -> list[tuple[dt.date, dt.date]]:
    out = []
    d = dt.date(t.start.year, t.start.month, 1)
    while d <= t.end:
        nxt = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        out.append((d, nxt - dt.timedelta(days=1)))
        d = nxt
    return out


def _weeks(t: _Truth) -> list[tuple[dt.date, dt.date]]:
    d = t.start + dt.timedelta(days=(7 - t.start.weekday()) % 7)
    out = []
    while d + dt.timedelta(days=6) <= t.end:
        out.append((d, d + dt.timedelta(days=6)))
        d += dt.timedelta(days=7)
    return out


def _pick(cands: list[tuple[float, Any]], k: int) -> list[Any]:
    """Top-k by score, spread: candidates are (score, item) and ties keep their order."""
    return [c for _, c in sorted(cands, key=lambda sc: -sc[0])[:k]]


# -- the builder -----------------------------------------------------------------------------
def build_questions(lake, truth_dir: str | Path, n: int = 40, today: dt.date | None = None) -> list[Question]:
    """About `n` questions (Russian, as users ask) with references from the truth, deterministic.

    Kinds: manager (month), company (month), period (team or manager, ISO week), comparison
    (which of two managers won more in a month), loss_reasons (why deals were lost in a month).
    """
    t = _Truth(lake, Path(truth_dir))
    today = today or (t.end + dt.timedelta(days=1))
    months, weeks = _months(t), _weeks(t)
    quota = {k: max(1, round(n * SHARES[k])) for k in KINDS}
    qs: list[Question] = []
    managers = sorted(t.people)

    # manager x month
    cands = []
    for mi, (s, e) in enumerate(months):
        for uid in managers:
            won, lost, created = t.select(s, e, manager=uid)
            if won or lost or created:
                cands.append((len(won) * 2 + len(lost) + 0.5 * len(created) + 0.01 * mi, (uid, s, e, won, lost, created)))
    templates = [("Что {name} {v} в {mon_loc} {y}?", "делал", "делала"),
                 ("Как {name} {v} {mon_nom} {y}?", "отработал", "отработала"),
                 ("Расскажи, чем {name} {v} в {mon_loc} {y}", "занимался", "занималась")]
    for i, (uid, s, e, won, lost, created) in enumerate(_pick(cands, quota["manager"])):
        tpl, vm, vf = templates[i % len(templates)]
        fem = t.female(uid)
        args = dict(v=_verb(fem, vm, vf), mon_loc=MONTHS_LOC[s.month - 1], mon_nom=MONTHS_NOM[s.month - 1], y=s.year)
        p = t.pseudonym(uid)
        qs.append(Question(
            id="", kind="manager", text=tpl.format(name=t.spoken(uid, full=i % 3 == 2), **args),
            stored=tpl.format(name=p, **args), reference="", reference_claims=_outcome_claims(p, won, lost, created),
            reference_ids=[], start=s, end=e, managers=[p], manager_ids=[uid],
            aspects=[[p], _period_aspect(s, e), ["сделк"]], today=today))

    # company x month
    cands = []
    for mi, (s, e) in enumerate(months):
        for cid in sorted({x.company_id for x in t.leads}):
            won, lost, created = t.select(s, e, company=cid)
            if won or lost:
                cands.append((len(won) * 2 + len(lost) + 0.01 * mi, (cid, s, e, won, lost, created)))
    ctpl = ["Что было по {c} в {mon_loc} {y}?", "Как дела с {c} в {mon_loc} {y}?", "Итоги по {c} за {mon_nom} {y}"]
    for i, (cid, s, e, won, lost, created) in enumerate(_pick(cands, quota["company"])):
        name = t.companies.get(cid, "")
        phrase = strip_legal_form(name)
        tpl = ctpl[i % len(ctpl)]
        text = tpl.format(c=phrase, mon_loc=MONTHS_LOC[s.month - 1], mon_nom=MONTHS_NOM[s.month - 1], y=s.year)

        qs.append(Question(
            id="", kind="company", text=text, stored=text, reference="",
            reference_claims=_outcome_claims(name, won, lost, created), reference_ids=[], start=s, end=e,
            company=name, company_id=cid, aspects=[[company_core(name), phrase], _period_aspect(s, e), ["сделк"]],
            today=today))

    # period: ISO weeks, alternating team and manager
    cands = []
    for wi, (s, e) in enumerate(weeks):
        won, lost, created = t.select(s, e)
        if won or lost:
            cands.append((len(won) * 2 + len(lost) + 0.01 * wi, (None, s, e, won, lost, created)))
        for uid in managers:
            won, lost, created = t.select(s, e, manager=uid)
            if won or lost:
                cands.append((len(won) * 2 + len(lost) + 0.01 * wi - 0.5, (uid, s, e, won, lost, created)))
    team = [c for c in cands if c[1][0] is None]
    mine = [c for c in cands if c[1][0] is not None]
    k_team = (quota["period"] + 1) // 2
    chosen = _pick(team, k_team) + _pick(mine, quota["period"] - min(k_team, len(team)))
    for i, (uid, s, e, won, lost, created) in enumerate(chosen):
        span = _span_words(s, e)
        if uid is None:
            text = f"Как прошла неделя {span}?" if i % 2 == 0 else f"Что происходило в отделе продаж {span}?"
            qs.append(Question(
                id="", kind="period", text=text, stored=text, reference="",
                reference_claims=_outcome_claims("Команда", won, lost, created), reference_ids=[], start=s, end=e,
                aspects=[TEAM_ASPECT, _period_aspect(s, e), ["сделк"]], today=today))
        else:
            p, v = t.pseudonym(uid), _verb(t.female(uid), "делал", "делала")
            qs.append(Question(
                id="", kind="period", text=f"Что {t.spoken(uid)} {v} {span}?", stored=f"Что {p} {v} {span}?",
                reference="", reference_claims=_outcome_claims(p, won, lost, created), reference_ids=[], start=s,
                end=e, managers=[p], manager_ids=[uid], aspects=[[p], _period_aspect(s, e), ["сделк"]], today=today))

    # comparison: two managers in a month (the one with most wins vs the runner-up)
    cands = []
    for mi, (s, e) in enumerate(months):
        stats = []
        for uid in managers:
            won, lost, _ = t.select(s, e, manager=uid)
            if won or lost:
                stats.append((len(won), sum(x.amount for x in won), uid, won, lost))
        stats.sort(key=lambda x: (-x[0], -x[1], x[2]))
        for j in range(0, len(stats) - 1, 2):
            a, b = stats[j], stats[j + 1]
            cands.append((a[0] + b[0] + 0.01 * mi - j, (s, e, a, b)))
    for i, (s, e, a, b) in enumerate(_pick(cands, quota["comparison"])):
        ua, ub = a[2], b[2]
        if i % 2:
            ua, ub, a, b = ub, ua, b, a
        pa, pb = t.pseudonym(ua), t.pseudonym(ub)
        y, mon = s.year, MONTHS_LOC[s.month - 1]
        text = f"Кто выиграл больше сделок в {mon} {y}: {t.spoken(ua)} или {t.spoken(ub)}?"
        stored = f"Кто выиграл больше сделок в {mon} {y}: {pa} или {pb}?"
        claims = []
        for p, st in ((pa, a), (pb, b)):
            claims.append(RefClaim(f"{p}: выиграно {_deals(st[0])} на {money(st[1])}.", [st[0], st[1]] if st[0] else [st[0]],
                                   [x.event for x in st[3] if x.event], "won"))
        if a[0] != b[0]:
            w = pa if a[0] > b[0] else pb
            claims.append(RefClaim(f"Больше сделок выиграл(а) {w}.", [w], [], "verdict"))
        else:
            claims.append(RefClaim("Выиграно поровну.", [], [], "verdict"))
        qs.append(Question(
            id="", kind="comparison", text=text, stored=stored, reference="", reference_claims=claims,
            reference_ids=[], start=s, end=e, managers=[pa, pb], manager_ids=[ua, ub],
            aspects=[[pa], [pb], _period_aspect(s, e), ["выигр"]], today=today))

    # loss reasons: team, month (or week when few months)
    cands = []
    for mi, (s, e) in enumerate(months):
        _, lost, _ = t.select(s, e)
        if lost:
            cands.append((len(lost) + 0.01 * mi, (s, e, lost)))
    for wi, (s, e) in enumerate(weeks):
        _, lost, _ = t.select(s, e)
        if len(lost) >= 2:
            cands.append((len(lost) - 100 + 0.01 * wi, (s, e, lost)))
    ltpl = ["Почему проигрывали сделки в {mon_loc} {y}?", "Какие причины потерь сделок в {mon_loc} {y}?",
            "Почему теряли сделки {span}?"]
    for i, (s, e, lost) in enumerate(_pick(cands, quota["loss_reasons"])):
        month = s.day == 1 and (e + dt.timedelta(days=1)).day == 1
        tpl = ltpl[i % 2] if month else ltpl[2]
        text = tpl.format(mon_loc=MONTHS_LOC[s.month - 1], y=s.year, span=_span_words(s, e))
        claims = [c for c in _outcome_claims("Команда", [], lost, [], deals=False, with_created=False)
                  if c.kind in ("lost", "reason")]
        qs.append(Question(
            id="", kind="loss_reasons", text=text, stored=text, reference="", reference_claims=claims,
            reference_ids=[], start=s, end=e, aspects=[["причин"], _period_aspect(s, e)], today=today,
            reference_leads=[x.id for x in lost]))

    qs = qs[:n] if n and len(qs) > n else qs
    for i, q in enumerate(qs, 1):
        q.id = f"q{i:03d}-{q.kind}"
        q.reference = " ".join(rc.text for rc in q.reference_claims)
        q.reference_ids = list(dict.fromkeys(i for rc in q.reference_claims for i in rc.ids))
    return qs


def real_names(truth_dir: str | Path) -> list[str]:
    """Every planted personal name (truth/pii.json) plus the managers' names, for privacy scans."""
    truth_dir = Path(truth_dir)
    base = truth_dir if (truth_dir / "story.json").exists() else truth_dir / "truth"
    names: set[str] = set()
    pii = base / "pii.json"
    if pii.exists():
        names |= set(json.loads(pii.read_text(encoding="utf-8")).get("names", []))
    story = base / "story.json"
    if story.exists():
        names |= {m["name"] for m in json.loads(story.read_text(encoding="utf-8")).get("managers", [])}
    return sorted(n for n in names if n and len(n) >= 3)
