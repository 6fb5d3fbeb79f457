"""The answer path shared by the bot and `crmsum ask`: question -> parse -> precomputed or live summary.

    answer_question("Что Ева делала в марте по Теххренмашу?") -> Answer(text, source, manager, ...)

1. The question is parsed (`crmsum.query.parse_question`) against the managers' real names from
   the vault and the companies of the lake; the manager found is mapped back to its pseudonym.
2. If a precomputed summary covers it (one manager, one company or the team, and the period is
   exactly an ISO week or a calendar month) the answer is read from `summaries` at once.
3. Otherwise a live summary is computed (`crmsum.summarize.summarize_scope`).
4. Comparisons («Кто выиграл больше в мае: Галина или Николай?», «Теххренмаш или Ромашка — где
   больше сделок?»): two or more managers (or companies) mentioned get their facts side by side and
   who leads on what was asked (won deals by default; won amounts for «сумма/выручка»; win rate,
   losses or activity when asked). Facts come from the precomputed summaries when every part is
   covered, else from SQL (`crmsum.facts.facts_query`); `manager`/`company` hold the first one.
5. Unclear questions (nothing recognized, or an ambiguous name) get a short clarification that
   lists the names the bot knows.

`Answer.text` holds pseudonyms only (that is what goes to the `answers` table); `Answer.display()`
resolves them for allowed readers. Per process, one `AnswerContext` per lake keeps a DuckDB
connection, an in-memory copy of `summaries` and the name lists, refreshed when the lake changes,
so a precomputed answer costs a few milliseconds.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from crmsum.config import Settings, get_settings
from crmsum.facts import period_bounds, period_label
from crmsum.ru import money, plural
from crmsum.summarize.model import Section, sections_from_json
from crmsum.summarize.render import TEXT, answer_layout, layout_text

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
MONTHS = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
          "ноябрь", "декабрь"]
_NAME_LIST_MAX = 12
COMPARE_MAX = 6  # parts of one comparison (a longer list is cut: the answer must stay readable)


@dataclass
class Answer:
    """One answer; `text` and `manager` carry pseudonyms only."""

    text: str
    source: str  # precomputed | live | clarify
    manager: str | None = None  # pseudonym
    company: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    backend: str | None = None
    answer_id: str | None = None
    period: str | None = None  # 2024-W10, 2024-03 or 2024-03-01..2024-03-15
    latency_ms: float = 0.0
    question: str = ""
    chat_id: int | None = None
    manager_name: str | None = None  # real name: display only, never stored
    candidates: list[str] = field(default_factory=list)  # clarifications: names to choose from
    compared: list[str] = field(default_factory=list)  # comparisons: the parts (pseudonyms / company names)
    leader: list[str] = field(default_factory=list)  # comparisons: who leads (several on a tie, none if all zero)
    heading: list[str] = field(default_factory=list)  # what and when, then the source (empty: a clarification)
    lines: list[str] = field(default_factory=list)  # free lines before the sections (a comparison's body)
    sections: list[Section] = field(default_factory=list)  # the summary records the answer shows

    def layout(self) -> list[tuple[str, str]]:
        """(style, line) pairs every edge renders (`crmsum.summarize.render.answer_layout`)."""
        if not self.heading:
            return [(TEXT, line) for line in self.text.split("\n")]
        return answer_layout(self.heading, self.sections, self.lines)

    @property
    def clarify(self) -> bool:
        return self.source == "clarify"

    def display(self, vault=None) -> str:
        """The text with pseudonyms resolved (for allowed chats and the operator's terminal)."""
        if vault is None:
            return self.text
        return vault.resolve(self.text)

    def to_json(self, vault=None) -> dict[str, Any]:
        """The `crmsum ask --json` object (design: answer, source, manager, company, start, end)."""
        manager = self.manager
        if manager and vault is not None:
            manager = vault.real(manager) or manager
        return {"answer": self.display(vault), "source": "live" if self.clarify else self.source,
                "manager": manager, "company": self.company,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


@dataclass
class ComparePart:
    """One side of a comparison: a manager (optionally within a company) or a company (optionally of a manager)."""

    scope: str  # manager | company
    label: str  # manager pseudonym or company name
    manager: str | None = None  # pseudonym
    company: str | None = None
    company_id: int | None = None
    summary_id: str | None = None  # set when a precomputed summary covers this part


@dataclass
class Prepared:
    """A parsed question and how it will be answered (the bot shows «Собираю данные…» before `finish`)."""

    question: str
    chat_id: int | None
    manager: str | None
    manager_name: str | None
    company: str | None
    company_id: int | None
    start: dt.date | None
    end: dt.date | None
    summary_id: str | None  # set when precomputed covers it
    period: str | None
    clarification: Answer | None = None
    t0: float = 0.0
    compare: list[ComparePart] = field(default_factory=list)  # two or more parts: a comparison
    metric: str = "won"  # what the comparison ranks by (see COMPARE_METRICS)

    @property
    def live(self) -> bool:
        if self.clarification is not None:
            return False
        if self.compare:
            return not all(p.summary_id for p in self.compare)
        return self.summary_id is None


# -- per-process context ------------------------------------------------------------------------
class AnswerContext:
    """Connection, summaries snapshot and name lists for one lake (thread-safe, refreshed on change)."""

    def __init__(self, settings: Settings, lake) -> None:
        from crmsum.privacy import Vault

        self.settings = settings
        self.lake = lake
        self.vault = Vault(settings.vault_dir)
        self.con = lake.connect()
        self._lock = threading.RLock()
        self._sig: tuple = ()
        self._checked = 0.0
        self._anonymizer = None
        self._writer: _BatchWriter | None = None  # recording never delays an answer
        self.summary_ids: set[str] = set()
        self.managers: list[tuple[str, str]] = []  # (pseudonym, real name)
        self.companies: dict[str, int] = {}  # name -> id
        self.refresh(force=True)

    def cursor(self):
        """A connection of this context's database for the calling thread (DuckDB connections are not shared)."""
        with self._lock:
            return self.con.cursor()

    def _signature(self) -> tuple:
        return tuple(tuple(self.lake.parts(t)) for t in ("summaries", "crm_users", "crm_companies"))

    def refresh(self, force: bool = False) -> None:
        """Reload the snapshot and the names when the lake's part files changed."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            self._checked = now
            sig = self._signature()
            if not force and sig == self._sig:
                return
            cur = self.cursor()
            cur.execute("""CREATE OR REPLACE TABLE answer_summaries AS
                           SELECT summary_id, scope, key, label, period_kind, period, start, "end", sections,
                                  backend, facts
                           FROM summaries""")
            cur.execute("CREATE INDEX answer_summaries_id ON answer_summaries (summary_id)")
            self.summary_ids = {r[0] for r in cur.execute("SELECT summary_id FROM answer_summaries").fetchall()}
            in_lake = {r[0] for r in cur.execute("SELECT DISTINCT name FROM crm_users WHERE name IS NOT NULL").fetchall()}
            people = self.vault.people("manager")
            self.managers = [(p, n) for p, n in people if p in in_lake] or list(people)
            rows = cur.execute("SELECT company_id, any_value(name) FROM crm_companies WHERE name IS NOT NULL "
                               "GROUP BY company_id ORDER BY company_id").fetchall()
            self.companies = {}
            for cid, name in rows:
                self.companies.setdefault(name, int(cid))
            self._sig = sig

    @property
    def manager_names(self) -> list[str]:
        return [n for _, n in self.managers]

    def pseudonym_of(self, real: str | None) -> str | None:
        if real is None:
            return None
        return next((p for p, n in self.managers if n == real), None)

    def summary(self, summary_id: str) -> dict | None:
        """One precomputed row (from the in-memory snapshot), or None."""
        if summary_id not in self.summary_ids:
            return None
        cur = self.cursor()
        cur.execute("SELECT * FROM answer_summaries WHERE summary_id = ?", [summary_id])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def record(self, table: str, row: dict, prepare=None) -> None:
        """Queue a row for the lake (written in the background, batched)."""
        with self._lock:
            if self._writer is None:
                self._writer = _BatchWriter(self.lake)
        self._writer.put(table, row, prepare)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued row is in the lake."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def anonymize(self, text: str) -> str:
        """The question as it may be stored: known people, phones, e-mails become pseudonyms."""
        with self._lock:
            if self._anonymizer is None:
                from crmsum.privacy import Anonymizer

                self._anonymizer = Anonymizer(self.vault, use_ner=False)
            return self._anonymizer.text(text) or ""


class _BatchWriter:
    """A daemon thread that writes queued rows to the lake, a batch per table at a time."""

    def __init__(self, lake, linger: float = 0.2) -> None:
        import queue

        self.lake, self.linger = lake, linger
        self.q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crmsum-answers", daemon=True)
        self._thread.start()

    def put(self, table: str, row: dict, prepare=None) -> None:
        self.q.put((table, row, prepare))

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread (at exit)."""
        self.q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        import queue

        import pandas as pd

        while True:
            first = self.q.get()
            if first is None:
                self.q.task_done()
                return
            items = [first]
            end = time.monotonic() + self.linger
            while (left := end - time.monotonic()) > 0:
                try:
                    nxt = self.q.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)  # stop after this batch
                    self.q.task_done()
                    break
                items.append(nxt)
            try:
                tables: dict[str, list[dict]] = {}
                for table, row, prepare in items:
                    tables.setdefault(table, []).append(prepare(row) if prepare else row)
                for table, rows in tables.items():
                    self.lake.write(table, pd.DataFrame(rows))
            except Exception:  # noqa: BLE001 - a lost log row must not stop the bot
                log.exception("could not record %d rows", len(items))
            finally:
                for _ in items:
                    self.q.task_done()


_contexts: dict[tuple[str, str], AnswerContext] = {}
_contexts_lock = threading.Lock()


def get_context(settings: Settings | None = None, lake=None) -> AnswerContext:
    """The cached context of a lake (one per process and lake)."""
    from crmsum.lake import open_lake

    s = settings or get_settings()
    lake = lake or open_lake(s)
    key = (lake.root, str(s.vault_dir))
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = AnswerContext(s, lake)
    ctx.settings = s
    ctx.refresh()
    return ctx


def reset_contexts() -> None:
    """Forget cached contexts (tests; after the lake was rebuilt)."""
    flush()
    with _contexts_lock:
        _contexts.clear()


def flush(timeout: float = 30.0) -> None:
    """Wait until all recorded answers are written (the CLI and tests call this)."""
    with _contexts_lock:
        ctxs = list(_contexts.values())
    for ctx in ctxs:
        ctx.flush(timeout)


def _shutdown() -> None:
    """At exit: write what is queued, then close the DuckDB connections."""
    with _contexts_lock:
        for ctx in _contexts.values():
            try:
                if ctx._writer is not None:
                    ctx._writer.close()
                ctx.con.close()
            except Exception:  # noqa: BLE001
                pass


atexit.register(_shutdown)


# -- periods ------------------------------------------------------------------------------------
def today_in(settings: Settings) -> dt.date:
    try:
        from zoneinfo import ZoneInfo

        return dt.datetime.now(ZoneInfo(settings.timezone)).date()
    except Exception:  # noqa: BLE001
        return dt.date.today()


def covering_period(start: dt.date, end: dt.date) -> tuple[str, str] | None:
    """('week', '2024-W10') or ('month', '2024-03') when the range is exactly one of them."""
    if start.weekday() == 0 and end == start + dt.timedelta(days=6):
        return "week", period_label("week", start)
    if start.day == 1 and (end + dt.timedelta(days=1)).day == 1 and end.month == start.month and end.year == start.year:
        return "month", period_label("month", start)
    return None


def period_text(start: dt.date, end: dt.date) -> str:
    cov = covering_period(start, end)
    span = f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"
    if cov and cov[0] == "week":
        return f"неделя {cov[1]} ({span})"
    if cov and cov[0] == "month":
        return f"{MONTHS[start.month - 1]} {start.year} ({span})"
    return span


# -- the path -----------------------------------------------------------------------------------
def _clarify(ctx: AnswerContext, question: str, chat_id: int | None, ambiguous: list[str]) -> Answer:
    if ambiguous:
        opts = [ctx.pseudonym_of(n) or n for n in ambiguous]
        text = ("Уточните, кого вы имеете в виду: " + ", ".join(opts) + "? "
                "Напишите имя и фамилию, например: «Что " + opts[0] + " делал(а) в марте?»")
        return Answer(text=text, source="clarify", question=question, chat_id=chat_id, candidates=opts)
    names = [p for p, _ in ctx.managers][:_NAME_LIST_MAX]
    comps = list(ctx.companies)[:_NAME_LIST_MAX]
    text = "Не понял, о ком или о каком периоде вопрос."
    if names:
        text += " Я знаю менеджеров: " + ", ".join(names) + ("…" if len(ctx.managers) > _NAME_LIST_MAX else "") + "."
    if comps:
        text += " Компании: " + ", ".join(comps) + ("…" if len(ctx.companies) > _NAME_LIST_MAX else "") + "."
    example_m = names[0] if names else "Ева"
    example_c = comps[0] if comps else "Теххренмаш"
    text += f" Спросите, например: «Что {example_m} делал(а) в марте по {example_c}?» или «Итоги команды за прошлую неделю»."
    return Answer(text=text, source="clarify", question=question, chat_id=chat_id, candidates=names)


def prepare(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
            chat_id: int | None = None) -> Prepared:
    """Parse a question and decide how it is answered (clarify / precomputed / live)."""
    from crmsum.digest import DigestError, latest_complete_week
    from crmsum.query import parse_question

    t0 = time.perf_counter()
    s = settings or get_settings()
    ctx = get_context(s, lake)
    today = today or today_in(s)
    question = (question or "").strip()
    parsed = parse_question(question, ctx.manager_names, list(ctx.companies), today)
    manager = ctx.pseudonym_of(parsed.manager)
    company = parsed.company
    prep = Prepared(question=question, chat_id=chat_id, manager=manager, manager_name=parsed.manager,
                    company=company, company_id=ctx.companies.get(company) if company else None,
                    start=parsed.start, end=parsed.end, summary_id=None, period=None, t0=t0)
    if manager is None and parsed.ambiguous_managers:
        prep.clarification = _clarify(ctx, question, chat_id, parsed.ambiguous_managers)
        return prep
    if manager is None and company is None and parsed.start is None:
        prep.clarification = _clarify(ctx, question, chat_id, [])
        return prep
    if prep.start is None or prep.end is None:
        # no period: the latest complete week with data (what the weekly digest covers)
        try:
            wk = latest_complete_week(ctx.cursor(), today)
            prep.start, prep.end = period_bounds("week", wk)
        except DigestError:
            prep.end = today
            prep.start = today - dt.timedelta(days=today.weekday())
    cov = covering_period(prep.start, prep.end)
    prep.period = cov[1] if cov else f"{prep.start.isoformat()}..{prep.end.isoformat()}"
    parts = _compare_parts(ctx, parsed)
    if parts:
        prep.compare, prep.metric = parts, compare_metric(question)
        prep.manager = next((p.manager for p in parts if p.manager), None)
        prep.manager_name = next((n for p_, n in ctx.managers if p_ == prep.manager), None)
        prep.company = next((p.company for p in parts if p.company), None)
        prep.company_id = ctx.companies.get(prep.company) if prep.company else None
        if cov:
            for p in parts:
                if p.scope == "manager" and p.company is None:
                    sid = f"manager:{p.manager}:{cov[1]}"
                elif p.scope == "company" and p.manager is None:
                    sid = f"company:{p.company_id}:{cov[1]}"
                else:
                    continue  # manager within a company: never precomputed
                if sid in ctx.summary_ids:
                    p.summary_id = sid
        return prep
    if cov and not (manager and company):
        scope, key = ("manager", manager) if manager else ("company", str(prep.company_id)) if company else ("team", "team")
        sid = f"{scope}:{key}:{cov[1]}"
        if sid in ctx.summary_ids:
            prep.summary_id = sid
    return prep


# -- comparisons --------------------------------------------------------------------------------
# metric -> (facts key, what it is called in the verdict, is it money, does more mean better)
COMPARE_METRICS: dict[str, tuple[str, str, bool]] = {
    "won": ("deals_won", "выигранным сделкам", False),
    "won_amount": ("won_amount", "сумме выигранных сделок", True),
    "win_rate": ("win_rate", "доле выигранных сделок", False),
    "lost": ("deals_lost", "проигранным сделкам", False),
    "lost_amount": ("lost_amount", "сумме проигранных сделок", True),
    "activity": ("activity", "активности (смены этапов, заметки, звонки, задачи, сообщения)", False),
    "touched": ("deals_touched", "сделкам в работе", False),
}
_METRIC_WORDS = [  # first match wins
    ("win_rate", re.compile(r"конверси|процент|дол[яеию]\s+(?:побед|выигр)|win\s*-?rate|winrate|эффективн")),
    ("won_amount", re.compile(r"сумм|выручк|денег|деньг|оборот|заработ|принес|рубл|₽|revenue|amount|money")),
    ("lost", re.compile(r"проигр|потерял|слил|упустил|\blost\b|\blose\b")),
    ("activity", re.compile(r"активн|актив\w*|занят|работал\w* больше|звонк|заметк|\bactive\b|activity")),
]


def compare_metric(question: str) -> str:
    """What a comparison ranks by: won deals unless the question asks about money, win rate, losses or activity."""
    q = (question or "").lower().replace("ё", "е")
    hits = [m for m, rx in _METRIC_WORDS if rx.search(q)]
    if "won_amount" in hits and "lost" in hits:
        return "lost_amount"
    for metric, rx in _METRIC_WORDS:
        if rx.search(q):
            return metric
    return "won"


def _compare_parts(ctx: AnswerContext, parsed) -> list[ComparePart]:
    """Two or more managers (or companies) mentioned: the sides of a comparison; else []."""
    mgrs = list(dict.fromkeys(p for p in (ctx.pseudonym_of(n) for n in parsed.managers_mentioned or []) if p))
    comps = list(dict.fromkeys(c for c in (parsed.companies_mentioned or []) if c in ctx.companies))
    if len(mgrs) >= 2:
        company = comps[0] if len(comps) == 1 else None  # «Ева или Анна — кто больше по Теххренмашу?»
        return [ComparePart("manager", m, manager=m, company=company,
                            company_id=ctx.companies.get(company) if company else None) for m in mgrs[:COMPARE_MAX]]
    if len(comps) >= 2:
        manager = mgrs[0] if len(mgrs) == 1 else None  # «Теххренмаш или Ромашка — где у Евы больше?»
        return [ComparePart("company", c, manager=manager, company=c, company_id=ctx.companies[c])
                for c in comps[:COMPARE_MAX]]
    return []


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if x != x else x  # NaN


def _activity(f: dict) -> int:
    return int(sum(_num(f.get(k)) for k in ("stage_moves", "notes", "calls", "tasks_done", "chat_messages")))


def _metric_value(f: dict, metric: str) -> float | None:
    if metric == "activity":
        return float(_activity(f))
    if metric == "win_rate":
        closed = _num(f.get("deals_won")) + _num(f.get("deals_lost"))
        return _num(f.get("deals_won")) / closed if closed else None
    return _num(f.get(COMPARE_METRICS[metric][0]))


def _metric_text(v: float | None, metric: str) -> str:
    if v is None:
        return "нет закрытых сделок"
    if metric in ("won_amount", "lost_amount"):
        return money(v)
    if metric == "win_rate":
        return f"{v:.0%}"
    n = int(v)
    if metric == "activity":
        return f"{n} {plural(n, 'действие', 'действия', 'действий')}"
    return f"{n} {plural(n, 'сделка', 'сделки', 'сделок')}"


def compare_line(label: str, f: dict) -> str:
    """One side of a comparison: won / lost with amounts, win rate, activity."""
    won, lost = int(_num(f.get("deals_won"))), int(_num(f.get("deals_lost")))
    rate = _metric_value(f, "win_rate")
    act = [f"сделок в работе {int(_num(f.get('deals_touched')))}", f"смен этапов {int(_num(f.get('stage_moves')))}",
           f"заметок {int(_num(f.get('notes')))}", f"звонков {int(_num(f.get('calls')))}",
           f"задач выполнено {int(_num(f.get('tasks_done')))}", f"сообщений в чате {int(_num(f.get('chat_messages')))}"]
    return (f"• {label}: выиграно {won} {plural(won, 'сделка', 'сделки', 'сделок')} на "
            f"{money(_num(f.get('won_amount')))}, проиграно {lost} на {money(_num(f.get('lost_amount')))}, "
            f"доля побед {'—' if rate is None else f'{rate:.0%}'}\n  активность: " + ", ".join(act))


def compare_verdict(labels: list[str], facts: list[dict], metric: str) -> tuple[str, list[str]]:
    """(the sentence saying who leads on `metric`, the leaders)."""
    _, what, _ = COMPARE_METRICS[metric]
    vals = [_metric_value(f, metric) for f in facts]
    known = [(lab, v) for lab, v in zip(labels, vals) if v is not None]
    if not known or all(v == 0 for _, v in known):
        return f"По {what} лидера нет: за период у всех ноль.", []
    best = max(v for _, v in known)
    leaders = [lab for lab, v in known if v == best]
    others = [(lab, v) for lab, v in zip(labels, vals) if lab not in leaders]
    if len(leaders) == len(labels):
        return f"По {what} поровну: у всех {_metric_text(best, metric)}.", leaders
    vs = ", ".join(f"{lab} — {_metric_text(v, metric)}" for lab, v in others)
    if len(leaders) > 1:
        return f"По {what} впереди {' и '.join(leaders)}: по {_metric_text(best, metric)} (против: {vs}).", leaders
    return f"По {what} впереди {leaders[0]}: {_metric_text(best, metric)} (против: {vs}).", leaders


def _compare_facts(ctx: AnswerContext, prep: Prepared) -> tuple[str, list[dict]]:
    """('precomputed' | 'live', facts per part): precomputed only when every part is."""
    if all(p.summary_id for p in prep.compare):
        out = []
        for p in prep.compare:
            row = ctx.summary(p.summary_id)
            try:
                facts = json.loads(row["facts"]) if row and row.get("facts") else None
            except (TypeError, ValueError):
                facts = None
            if not isinstance(facts, dict):
                break
            out.append(facts)
        else:
            return "precomputed", out
    from crmsum.facts import FactsError, facts_query

    cur = ctx.cursor()
    out = []
    for p in prep.compare:
        try:
            out.append(facts_query(cur, prep.start, prep.end, manager=p.manager, company=p.company_id))
        except FactsError:  # a manager without a CRM user row: nothing to count
            out.append({})
    return "live", out


def _compare_text(prep: Prepared, source: str, facts: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(heading, body lines, leaders) of a comparison."""
    labels = [p.label for p in prep.compare]
    head = [f"Сравнение: {' / '.join(labels)}"]
    first = prep.compare[0]
    if first.scope == "manager" and first.company:
        head.append(f"Компания: {first.company}")
    if first.scope == "company" and first.manager:
        head.append(f"Менеджер: {first.manager}")
    head.append(f"Период: {period_text(prep.start, prep.end)}")
    src = "готовые сводки (precomputed)" if source == "precomputed" else "собрано по запросу (live)"
    verdict, leaders = compare_verdict(labels, facts, prep.metric)
    body = [verdict, ""] + [compare_line(lab, f) for lab, f in zip(labels, facts)]
    return [" · ".join(head), f"Источник: {src}"], "\n".join(body).split("\n"), leaders


def _finish_compare(prep: Prepared, ctx: AnswerContext, record: bool) -> Answer:
    source, facts = _compare_facts(ctx, prep)
    heading, lines, leaders = _compare_text(prep, source, facts)
    a = Answer(text=layout_text(answer_layout(heading, lines=lines)), source=source, manager=prep.manager, company=prep.company, start=prep.start,
               end=prep.end, backend="offline", answer_id=uuid.uuid4().hex[:16], period=prep.period,
               question=prep.question, chat_id=prep.chat_id, manager_name=prep.manager_name,
               compared=[p.label for p in prep.compare], leader=leaders, heading=heading, lines=lines)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    if record:
        record_answer(a, ctx)
    return a


def _header(p: Prepared, source: str, backend: str | None) -> list[str]:
    parts = [f"Менеджер: {p.manager or 'все'}", f"Компания: {p.company or 'все'}",
             f"Период: {period_text(p.start, p.end)}"]
    src = "готовая сводка (precomputed)" if source == "precomputed" else "собрано по запросу (live)"
    if backend == "llm":
        src += ", LLM"
    return [" · ".join(parts), f"Источник: {src}"]


def finish(prep: Prepared, settings: Settings | None = None, lake=None, record: bool = True) -> Answer:
    """Answer a prepared question (reads the precomputed row or computes a live summary) and record it."""
    s = settings or get_settings()
    ctx = get_context(s, lake)
    if prep.clarification is not None:
        a = prep.clarification
        a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
        return a
    if prep.compare:
        return _finish_compare(prep, ctx, record)
    if prep.summary_id is not None and (row := ctx.summary(prep.summary_id)) is not None:
        stored = row.get("sections")
        sections = sections_from_json(stored if isinstance(stored, str) else None)
        source, backend = "precomputed", row.get("backend")
    else:
        from crmsum.summarize import summarize_scope

        target = ctx.lake if s.use_llm else ctx.cursor()
        summ = summarize_scope(target, manager=prep.manager, company=prep.company_id, start=prep.start,
                               end=prep.end, settings=s, question=ctx.anonymize(prep.question) if s.use_llm else None)
        source, backend, sections = "live", summ.backend, summ.sections
    heading = _header(prep, source, backend)
    a = Answer(text=layout_text(answer_layout(heading, sections)), source=source, manager=prep.manager, company=prep.company, start=prep.start,
               end=prep.end, backend=backend, answer_id=uuid.uuid4().hex[:16], period=prep.period,
               question=prep.question, chat_id=prep.chat_id, manager_name=prep.manager_name, heading=heading,
               sections=sections)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    if record:
        record_answer(a, ctx)
    return a


def answer_question(question: str, settings: Settings | None = None, lake=None, today: dt.date | None = None,
                    chat_id: int | None = None, record: bool = True) -> Answer:
    """Answer one question (the shared path of the bot and `crmsum ask`)."""
    s = settings or get_settings()
    prep = prepare(question, s, lake, today, chat_id)
    return finish(prep, s, lake, record=record)


# -- recording ----------------------------------------------------------------------------------
def record_answer(a: Answer, ctx: AnswerContext) -> None:
    """Store the answer (question anonymized, pseudonyms only) in `answers`, in the background."""
    def prepare(row: dict) -> dict:
        return dict(row, question=ctx.anonymize(row["question"]))

    ctx.record("answers", {
        "answer_id": a.answer_id, "chat_id": int(a.chat_id or 0), "question": a.question,
        "manager": a.manager, "company": a.company, "start": a.start, "end": a.end, "source": a.source,
        "backend": a.backend, "text": a.text, "latency_ms": float(a.latency_ms),
        "created_at": dt.datetime.now().replace(microsecond=0)}, prepare)


def user_pseudonym(vault, user_id: int) -> str:
    """Keyed pseudonym of a Telegram user id (raters are people too)."""
    return vault.pseudonym("handle", f"telegram-user-id:{int(user_id)}")


def record_feedback(answer_id: str, chat_id: int, message_id: int, user_id: int, rating: int,
                    settings: Settings | None = None, lake=None) -> str:
    """Store a 1–5 rating in `feedback` (one row per chat, message and rater; a new rating replaces it)."""
    import pandas as pd

    if not 1 <= int(rating) <= 5:
        raise ValueError("rating must be 1..5")
    ctx = get_context(settings or get_settings(), lake)
    user = user_pseudonym(ctx.vault, user_id)
    fid = f"{int(chat_id)}:{int(message_id)}:{user}"
    ctx.lake.write("feedback", pd.DataFrame([{
        "feedback_id": fid, "answer_id": answer_id, "chat_id": int(chat_id), "user": user, "rating": int(rating),
        "created_at": dt.datetime.now().replace(microsecond=0)}]))
    return fid


# -- access and limits --------------------------------------------------------------------------
class AccessGate:
    """Allowed chats get answers; any other chat gets one refusal per process, then silence."""

    REFUSAL = ("Извините, этот бот отвечает только в чатах отдела продаж. "
               "Если вам нужен доступ, попросите администратора добавить этот чат.")

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = set(allowed)
        self._refused: set[int] = set()
        self._lock = threading.Lock()

    def check(self, chat_id: int) -> str:
        """'ok', 'refuse' (send the refusal now) or 'ignore'."""
        if int(chat_id) in self.allowed:
            return "ok"
        with self._lock:
            if int(chat_id) in self._refused:
                return "ignore"
            self._refused.add(int(chat_id))
            return "refuse"


class RateLimiter:
    """At most `per_hour` questions per user in any sliding hour."""

    def __init__(self, per_hour: int, window: float = 3600.0, clock=time.monotonic) -> None:
        self.per_hour = int(per_hour)
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque] = {}
        self._lock = threading.Lock()

    def allow(self, user_id: int) -> tuple[bool, float]:
        """(allowed, seconds until the next question is allowed)."""
        if self.per_hour <= 0:
            return True, 0.0
        now = self.clock()
        with self._lock:
            q = self._hits.setdefault(int(user_id), deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.per_hour:
                return False, q[0] + self.window - now
            q.append(now)
            return True, 0.0
