"""Comparisons: two or more managers (or companies) side by side and who leads on what was asked.

«Кто выиграл больше в мае: Галина или Николай?», «Теххренмаш или Ромашка — где больше сделок?»: won
deals by default; won amounts for «сумма/выручка»; win rate, losses or activity when asked. Facts come
from the precomputed summaries when every part is covered, else from SQL (`crmsum.facts.facts_query`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from crmsum.answer.model import Answer, ComparePart, Prepared
from crmsum.answer.periods import period_text
from crmsum.ru import money, plural

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext

COMPARE_MAX = 6  # parts of one comparison (a longer list is cut: the answer must stay readable)

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


def compare_parts(ctx: AnswerContext, parsed) -> list[ComparePart]:
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
    return (f"• {label}: выиграно: {won} {plural(won, 'сделка', 'сделки', 'сделок')} на "
            f"{money(_num(f.get('won_amount')))}, проиграно: {lost} на {money(_num(f.get('lost_amount')))}, "
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


def compare_facts(ctx: AnswerContext, prep: Prepared) -> tuple[str, list[dict]]:
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
    body = list(prep.notes) + [verdict, ""] + [compare_line(lab, f) for lab, f in zip(labels, facts)]
    return [" · ".join(head), f"Источник: {src}"], "\n".join(body).split("\n"), leaders


def answer_compare(prep: Prepared, ctx: AnswerContext) -> Answer:
    """The comparison answer (not yet recorded)."""
    from crmsum.summarize.render import answer_layout, layout_text

    source, facts = compare_facts(ctx, prep)
    heading, lines, leaders = _compare_text(prep, source, facts)
    a = Answer(text=layout_text(answer_layout(heading, lines=lines)), source=source, manager=prep.manager,
               company=prep.company, start=prep.start, end=prep.end, backend="offline",
               answer_id=uuid.uuid4().hex[:16], period=prep.period, question=prep.question, chat_id=prep.chat_id,
               manager_name=prep.manager_name, compared=[p.label for p in prep.compare], leader=leaders,
               intent="compare", heading=heading, lines=lines, unresolved=list(prep.unresolved),
               period_defaulted=prep.period_defaulted)
    a.latency_ms = round((time.perf_counter() - prep.t0) * 1000, 2)
    return a
