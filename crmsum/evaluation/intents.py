"""Questions of every intent with exact references from the truth, and their scoring.

`build_intent_questions(lake, truth_dir)` makes a few questions per intent, phrased as users ask,
whose expected values are computed from `truth/story.json` (not from crmsum's own tables):
- `ranking`: the managers ordered by win rate / won amount of a year, with each one's base;
- `deals`: the lead ids lost for a reason in a year, or won by a manager in a month;
- `metric`: a manager's average won deal, win rate or won count in a period;
- `compare`: who of two managers won more in a year; `why`: every lost deal of a company named;
- `what_wins`, `stalled`, `similar`, `clarify`: the intent only (their content is judged elsewhere).
`score(answer, q)` says whether the intent was recognised and whether the exact value matched.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmsum.evaluation.questions import _Truth
from crmsum.ru import MONTHS_LOC, strip_legal_form

log = logging.getLogger(__name__)

REASON_WORDS = {"Дорого": "по цене", "Выбрали конкурента": "из-за конкурентов", "Нет бюджета": "из-за бюджета",
                "Сроки не устроили": "из-за сроков"}


@dataclass
class IntentQuestion:
    id: str
    intent: str
    text: str  # real names: what the answer path gets (never stored)
    stored: str  # pseudonyms only
    expected: Any = None  # the exact value (None: intent only)
    check: str = "intent"  # intent | order | set | value | leader | covers
    today: dt.date | None = None
    notes: list[str] = field(default_factory=list)


def _rate(won: int, lost: int) -> float | None:
    return won / (won + lost) if won + lost else None


def build_intent_questions(lake, truth_dir: str | Path, per_intent: int = 3,
                           today: dt.date | None = None) -> list[IntentQuestion]:
    """Deterministic questions of every intent (see the module docstring)."""
    t = _Truth(lake, Path(truth_dir))
    today = today or (t.end + dt.timedelta(days=1))
    years = sorted({x.closed.year for x in t.leads if x.closed})[-2:]
    uids = sorted(t.people)
    qs: list[IntentQuestion] = []

    def add(intent: str, text: str, stored: str, expected=None, check: str = "intent") -> None:
        qs.append(IntentQuestion(f"{intent}-{sum(q.intent == intent for q in qs) + 1}", intent, text, stored,
                                 expected, check, today))

    for y in years[-per_intent:]:
        s, e = dt.date(y, 1, 1), dt.date(y, 12, 31)
        rates = []
        for uid in uids:
            won, lost, _ = t.select(s, e, manager=uid)
            if won or lost:
                rates.append((t.pseudonym(uid), _rate(len(won), len(lost)), len(won) + len(lost)))
        add("ranking", f"Кто лучший по конверсии в {y} году?", f"Кто лучший по конверсии в {y} году?",
            {p: (r, n) for p, r, n in rates}, "order")
        sums = {t.pseudonym(uid): float(sum(x.amount for x in t.select(s, e, manager=uid)[0])) for uid in uids}
        add("ranking", f"Топ менеджеров по выручке за {y} год", f"Топ менеджеров по выручке за {y} год",
            {p: (v, None) for p, v in sums.items() if v}, "order")
        for reason, words in list(REASON_WORDS.items())[:2]:
            _, lost, _ = t.select(s, e)
            ids = sorted(x.id for x in lost if x.reason == reason)
            add("deals", f"Какие сделки проиграли {words} в {y} году?", f"Какие сделки проиграли {words} в {y} году?",
                ids, "set")
    months = sorted({(x.closed.year, x.closed.month) for x in t.leads if x.closed and x.outcome == "won"})[-per_intent:]
    for (y, m), uid in zip(months, uids):
        s = dt.date(y, m, 1)
        e = (s + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        won, lost, _ = t.select(s, e, manager=uid)
        name, p = t.spoken(uid, full=True), t.pseudonym(uid)
        add("deals", f"Какие сделки выиграл(а) {name} в {MONTHS_LOC[m - 1]} {y}?",
            f"Какие сделки выиграл(а) {p} в {MONTHS_LOC[m - 1]} {y}?", sorted(x.id for x in won), "set")
        add("metric", f"Сколько сделок выиграл(а) {name} в {MONTHS_LOC[m - 1]} {y}?",
            f"Сколько сделок выиграл(а) {p} в {MONTHS_LOC[m - 1]} {y}?", float(len(won)), "value")
    for y, uid in zip(years, uids[1:]):
        s, e = dt.date(y, 1, 1), dt.date(y, 12, 31)
        won, lost, _ = t.select(s, e, manager=uid)
        name, p = t.spoken(uid, full=True), t.pseudonym(uid)
        if won:
            add("metric", f"{name}: какой средний чек в {y} году?", f"{p}: какой средний чек в {y} году?",
                sum(x.amount for x in won) / len(won), "value")
        if won or lost:
            add("metric", f"Какая конверсия у менеджера {name} в {y} году?",
                f"Какая конверсия у менеджера {p} в {y} году?", _rate(len(won), len(lost)), "value")
    for y in years:
        s, e = dt.date(y, 1, 1), dt.date(y, 12, 31)
        a, b = uids[0], uids[-1]
        wa, wb = len(t.select(s, e, manager=a)[0]), len(t.select(s, e, manager=b)[0])
        lead = [t.pseudonym(a)] if wa > wb else [t.pseudonym(b)] if wb > wa else [t.pseudonym(a), t.pseudonym(b)]
        add("compare", f"Кто лучше продаёт: {t.spoken(a, True)} или {t.spoken(b, True)} в {y} году?",
            f"Кто лучше продаёт: {t.pseudonym(a)} или {t.pseudonym(b)} в {y} году?",
            lead if (wa or wb) else [], "leader")
    lost_by_company: dict[int, list[int]] = {}
    for x in t.leads:
        if x.outcome == "lost":
            lost_by_company.setdefault(x.company_id, []).append(x.id)
    for cid in sorted(lost_by_company, key=lambda c: (-len(lost_by_company[c]), c))[:per_intent]:
        name = strip_legal_form(t.companies.get(cid, ""))
        add("why", f"Почему проиграли {name}?", f"Почему проиграли {name}?", sorted(lost_by_company[cid]), "covers")
    for text in ("Что помогает выигрывать сделки?", "Почему мы проигрываем?", "Что влияет на победу в сделке?"):
        add("what_wins", text, text)
    for text in ("Какие сделки висят без движения?", "Какие сделки зависли?", "Где риск потерять сделку?"):
        add("stalled", text, text)
    comps = sorted({x.company_id for x in t.leads})[:per_intent]
    for cid in comps:
        name = strip_legal_form(t.companies.get(cid, ""))
        add("similar", f"Покажи похожие сделки на {name}", f"Покажи похожие сделки на {name}")
    for uid in uids[:per_intent]:
        add("activity", f"Что {t.spoken(uid, True)} делал(а) на прошлой неделе?",
            f"Что {t.pseudonym(uid)} делал(а) на прошлой неделе?")
    for text in ("🙂🙂", "Что было 31 февраля?", "Как дела?"):
        add("clarify", text, text)
    return qs


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= max(1e-6, 1e-6 * abs(float(b)))


def score(answer, q: IntentQuestion) -> dict[str, Any]:
    """{'intent_ok', 'exact_ok' (None when the question has no exact value), 'detail'}."""
    intent_ok = answer.intent == q.intent
    exact = None
    if q.check == "set":
        got = sorted(int(d["lead_id"]) for d in (answer.items or []))
        exact = got == q.expected
    elif q.check == "value":
        exact = _close(answer.value, q.expected)
    elif q.check == "order":
        got = {r["key"]: r["value"] for r in (answer.items or [])}
        want = q.expected
        exact = bool(want) and all(_close(got.get(p), v) for p, (v, _n) in want.items())
    elif q.check == "leader":
        exact = sorted(answer.leader or []) == sorted(q.expected)
    elif q.check == "covers":
        exact = all(f"#{i}" in answer.text or str(i) in answer.text for i in q.expected)
    return {"intent_ok": intent_ok, "exact_ok": exact}


def run_intent_questions(settings, lake, truth: Path, scrub, run_id: str, notes: list[str], answer, metrics,
                         limit: int | None = None):
    """Every intent's questions through the answer path (`answer(text, settings, lake, today)`, at most
    `limit` per intent), scored on intent and exact value: one `eval_results`-shaped row each."""
    import pandas as pd

    rows = []
    seen: Counter = Counter()
    for q in build_intent_questions(lake, truth):
        seen[q.intent] += 1
        if limit and seen[q.intent] > limit:
            continue
        try:
            a = answer(q.text, settings, lake, q.today)
        except Exception as exc:  # noqa: BLE001 - a failing question is a data point
            log.exception("answer failed for %s", q.id)
            notes.append(f"intent/{q.id}: answer path raised {type(exc).__name__}: {exc}")
            continue
        sc = score(a, q)
        rows.append({"run_id": run_id, "question_id": f"{q.id}@{settings.llm}", "kind": f"intent:{q.intent}",
                     "question": scrub(q.stored), "reference": scrub(str(q.expected)), "answer": scrub(a.text),
                     "backend": settings.llm, "judge": "exact", **{m: None for m in metrics},
                     "answer_correctness": None if sc["exact_ok"] is None else float(sc["exact_ok"]),
                     "created_at": dt.datetime.now().replace(microsecond=0),
                     "intent": q.intent, "got_intent": a.intent, "intent_ok": sc["intent_ok"],
                     "exact_ok": sc["exact_ok"], "source": a.source})
    df = pd.DataFrame(rows)
    if len(df):
        bad = df[~df["intent_ok"]]
        if len(bad):
            notes.append("intent misread: " + ", ".join(f"{r.question_id} → {r.got_intent}" for r in bad.head(8).itertuples()))
        wrong = df[df["exact_ok"] == False]  # noqa: E712 - None means no exact value
        if len(wrong):
            notes.append("exact value wrong: " + ", ".join(wrong["question_id"].head(8)))
    return df


def by_intent(intent_rows, rag_rows, backend: str, metrics):
    """Per intent: n, intent accuracy, exact-value accuracy (intent questions), and the mean RAG metrics
    of the RAG questions (their kinds are `activity` questions, `comparison` ones are `compare`)."""
    import pandas as pd

    frames = []
    if len(intent_rows):
        g = intent_rows.groupby("intent")
        exact = g["exact_ok"].apply(lambda x: x.dropna().astype(float).mean() if x.notna().any() else float("nan"))
        frames.append(pd.DataFrame({"n": g.size(), "intent_accuracy": g["intent_ok"].mean(), "exact_accuracy": exact}))
    if len(rag_rows):
        rag = rag_rows[rag_rows["backend"] == backend].copy()
        rag["intent"] = rag["kind"].map(lambda k: "compare" if k == "comparison" else "activity")
        frames.append(rag.groupby("intent")[list(metrics)].mean(numeric_only=True))
    return pd.concat(frames, axis=1).round(3) if frames else pd.DataFrame()


def render_by_intent(console, table) -> None:
    """The «by intent» table of `crmsum eval`."""
    import pandas as pd
    from rich.table import Table

    if not len(table):
        return
    t = Table(title="by intent")
    t.add_column("intent", no_wrap=True)
    short = {"intent_accuracy": "intent", "exact_accuracy": "exact", "faithfulness": "faith",
             "answer_relevancy": "relev", "context_precision": "c.prec", "context_recall": "c.rec",
             "semantic_similarity": "sim", "answer_correctness": "correct"}
    for c in table.columns:
        t.add_column(short.get(c, c), justify="right", no_wrap=True)
    for intent, r in table.iterrows():
        t.add_row(str(intent), *["—" if pd.isna(v) else (f"{int(v)}" if c == "n" else f"{v:.2f}") for c, v in r.items()])
    console.print(t)
