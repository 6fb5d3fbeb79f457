"""Offline summarizer: facts in readable Russian plus extractive key points. Deterministic, no network."""

from __future__ import annotations

import datetime as dt

from crmsum.ru import count, money, number, plural
from crmsum.summarize.keypoints import KeyPoint, key_points

SECTION_TITLES = {
    "happened": "Что произошло",
    "worked": "Что сработало",
    "failed": "Что не получилось",
    "next": "Что делать дальше",
}
SECTIONS = tuple(SECTION_TITLES)


def period_title(facts: dict) -> str:
    kind, period = facts.get("period_kind"), facts.get("period")
    start, end = (dt.date.fromisoformat(str(facts[k])[:10]) for k in ("start", "end"))
    span = f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"
    if kind == "week":
        return f"неделя {period} ({span})"
    if kind == "month":
        return f"месяц {period} ({span})"
    return span


def _deal(d: dict) -> str:
    stage = f", этап «{d['stage']}»" if d.get("stage") else ""
    idle = f", {count(int(d['days_idle']), 'день', 'дня', 'дней')} без действий" if d.get("days_idle") is not None else ""
    return f"«{d.get('name') or 'сделка ' + str(d.get('lead_id'))}» ({money(d.get('price') or 0)}{stage}{idle})"


def _closed(d: dict, reason: bool = False) -> str:
    """«Сделка» (1 250 000 ₽, Компания[, причина «…»])."""
    extra = f", {d['company']}" if d.get("company") else ""
    if reason and d.get("reason"):
        extra += f", причина «{d['reason']}»"
    return f"«{d.get('name') or 'сделка ' + str(d.get('lead_id'))}» ({money(d.get('price') or 0)}{extra})"


def _close_cites(facts: dict, key: str, known: set[str] | None) -> list[str]:
    """`event:<id>` of the listed deals' status changes that are among the records (citable)."""
    ids = [f"event:{d['event_id']}" for d in facts.get(key) or [] if d.get("event_id") is not None]
    return [i for i in dict.fromkeys(ids) if known is not None and i in known]


def fact_items(facts: dict, known: set[str] | None = None) -> dict[str, list[dict]]:
    """Fact sentences per section as items {text, cites}; won / lost deal lines cite the status
    changes of the listed deals when those records are known (`known` record ids)."""
    out: dict[str, list[dict]] = {}
    for sec, lines in fact_lines(facts).items():
        out[sec] = []
        for t in lines:
            cites: list[str] = []
            if t.startswith("Успешно закрыто:"):
                cites = _close_cites(facts, "won_deals", known)
            elif t.startswith(("Потерянные сделки:", "Крупнейшие потерянные:")):
                cites = _close_cites(facts, "lost_deals", known)
            out[sec].append({"text": t, "cites": cites})
    return out


def fact_lines(facts: dict) -> dict[str, list[str]]:
    """Fact sentences per section."""
    g = lambda k: int(facts.get(k) or 0)  # noqa: E731
    out: dict[str, list[str]] = {s: [] for s in SECTIONS}
    h = out["happened"]
    if g("deals_touched"):
        line = f"В работе было {count(g('deals_touched'), 'сделка', 'сделки', 'сделок')}"
        if g("deals_created"):
            line += f", новых — {g('deals_created')} на {money(g('created_amount'))}"
        h.append(line + ".")
    elif g("deals_created"):
        h.append(f"Новых сделок: {g('deals_created')} на {money(g('created_amount'))}.")
    if g("deals_won") or g("deals_lost"):
        parts = []
        if g("deals_won"):
            parts.append(f"{count(g('deals_won'), 'сделка', 'сделки', 'сделок')} "
                         f"{plural(g('deals_won'), 'выиграна', 'выиграны', 'выиграно')} на {money(g('won_amount'))}")
        if g("deals_lost"):
            parts.append(f"{count(g('deals_lost'), 'сделка', 'сделки', 'сделок')} "
                         f"{plural(g('deals_lost'), 'проиграна', 'проиграны', 'проиграно')} на {money(g('lost_amount'))}")
        line = "Итоги: " + ", ".join(parts)
        if facts.get("win_rate") is not None:
            line += f" (конверсия {round(float(facts['win_rate']) * 100)}%)"
        h.append(line + ".")
    if g("stage_moves"):
        line = f"{count(g('stage_moves'), 'переход', 'перехода', 'переходов')} по этапам"
        if facts.get("median_days_in_stage") is not None:
            m = float(facts["median_days_in_stage"])
            line += f", медианное время в этапе — {number(m)} {plural(round(m, 1), 'день', 'дня', 'дней')}"
        h.append(line + ".")
    acts = []
    if g("calls"):
        kinds = [f"{g(k)} {plural(g(k), one, many, many)}" for k, one, many in
                 (("calls_in", "входящий", "входящих"), ("calls_out", "исходящий", "исходящих")) if g(k)]
        acts.append(f"{count(g('calls'), 'звонок', 'звонка', 'звонков')}" + (f" ({', '.join(kinds)})" if kinds else ""))
    if g("notes"):
        acts.append(count(g("notes"), "заметка", "заметки", "заметок"))
    if g("tasks_done"):
        acts.append(f"{count(g('tasks_done'), 'задача выполнена', 'задачи выполнены', 'задач выполнено')}")
    if g("chat_messages"):
        acts.append(count(g("chat_messages"), "сообщение в чате", "сообщения в чате", "сообщений в чате"))
    if acts:
        h.append("Активность: " + ", ".join(acts) + ".")
    if not h:
        h.append("Активности за период не было.")
    if g("deals_won"):
        line = (f"Успешно закрыто: {count(g('deals_won'), 'сделка', 'сделки', 'сделок')} "
                f"на {money(g('won_amount'))}")
        won = facts.get("won_deals") or []
        if won:
            line += (": " if len(won) == g("deals_won") else ", крупнейшие: ") + "; ".join(_closed(d) for d in won)
        out["worked"].append(line + ".")
    if g("deals_lost"):
        line = f"Потеряно: {count(g('deals_lost'), 'сделка', 'сделки', 'сделок')} на {money(g('lost_amount'))}"
        reasons = facts.get("loss_reasons") or []
        if reasons:
            line += "; причины: " + ", ".join(f"«{r['reason']}» ({r['count']})" for r in reasons)
        out["failed"].append(line + ".")
        lost = facts.get("lost_deals") or []
        if lost:
            out["failed"].append(("Потерянные сделки: " if len(lost) == g("deals_lost") else "Крупнейшие потерянные: ")
                                 + "; ".join(_closed(d, reason=True) for d in lost) + ".")
    if g("tasks_overdue"):
        out["failed"].append(f"Просрочено задач: {g('tasks_overdue')}.")
        out["next"].append(f"Закрыть просроченные задачи ({g('tasks_overdue')}) и перенести сроки с клиентами.")
    stalled = facts.get("stalled_deals") or []
    if g("stalled_count"):
        line = (f"Оживить {count(g('stalled_count'), 'сделку', 'сделки', 'сделок')} без активности "
                f"больше {count(int(facts.get('stall_days') or 14), 'дня', 'дней', 'дней')}")
        if stalled:
            line += ": " + "; ".join(_deal(d) for d in stalled)
        out["next"].append(line + ".")
    opens = facts.get("open_deals") or []
    if opens:
        out["next"].append(f"В фокусе крупнейшие открытые сделки (всего {g('open_deals_count')} на "
                           f"{money(g('open_amount'))}): " + "; ".join(_deal(d) for d in opens) + ".")
    return out


def render(facts: dict, points: list[KeyPoint], records: list[dict] | None = None) -> tuple[str, dict[str, list[dict]], list[dict]]:
    """(text, sections, citations): sections map to items {text, cites}."""
    known = {r["id"] for r in records} if records is not None else None
    sections = fact_items(facts, known)
    by_id = {r["id"]: r for r in records or []}
    fact_cites = [{"id": c, "section": sec, "quote": (by_id[c].get("text") or "")[:300], "ts": by_id[c].get("ts")}
                  for sec, items in sections.items() for it in items for c in it["cites"]]
    for p in points:
        sections[p.section].append({"text": p.text, "cites": [p.cite]})
    citations = fact_cites + [{"id": p.cite, "section": p.section, "quote": p.text, "ts": p.ts} for p in points]
    return render_text(facts, sections), sections, citations


def render_text(facts: dict, sections: dict[str, list[dict]]) -> str:
    lines = [f"{facts.get('label') or facts.get('key')}: {period_title(facts)}"]
    for sec, title in SECTION_TITLES.items():
        items = sections.get(sec) or []
        if not items:
            continue
        lines.append("")
        lines.append(f"{title}:")
        for it in items:
            cites = "".join(f" [{c}]" for c in it.get("cites") or [])
            lines.append(f"• {it['text']}{cites}")
    return "\n".join(lines)


def summarize_offline(facts: dict, records: list[dict], limit: int = 8) -> tuple[str, dict, list[dict], list[KeyPoint]]:
    """Offline summary of one scope and period."""
    points = key_points(records, limit=limit)
    text, sections, citations = render(facts, points, records)
    return text, sections, citations, points
