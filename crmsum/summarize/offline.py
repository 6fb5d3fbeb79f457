"""Offline summarizer: facts in readable Russian plus extractive key points. Deterministic, no network.

Fills the summary records (`crmsum.summarize.model`): each fact sentence is a `Point` of kind
`fact` (or `deal_won` / `deal_lost` for the lists of closed deals, citing their status changes)
with the facts it states as `figures`; each key point is a `keypoint` citing its record.
"""

from __future__ import annotations

import datetime as dt

from typing import Any

from crmsum.ru import count, money, number, plural
from crmsum.summarize.keypoints import KeyPoint, key_points
from crmsum.summarize.model import DEAL_LOST, DEAL_WON, FACT, KEYPOINT, SUMMARY_SECTIONS, Point, Section, summary_sections


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


def _figures(facts: dict, *keys: str) -> dict[str, Any]:
    return {k: facts.get(k) for k in keys if facts.get(k) is not None}


def fact_points(facts: dict, known: set[str] | None = None) -> dict[str, list[Point]]:
    """Fact sentences per section key as points; won / lost deal lists cite the status changes of
    the listed deals when those records are known (`known` record ids)."""
    g = lambda k: int(facts.get(k) or 0)  # noqa: E731
    f = lambda *keys: _figures(facts, *keys)  # noqa: E731
    out: dict[str, list[Point]] = {s: [] for s in SUMMARY_SECTIONS}
    h = out["happened"]
    if g("deals_touched"):
        line = f"В работе было {count(g('deals_touched'), 'сделка', 'сделки', 'сделок')}"
        if g("deals_created"):
            line += f", новых — {g('deals_created')} на {money(g('created_amount'))}"
        h.append(Point(FACT, line + ".", f("deals_touched", "deals_created", "created_amount")))
    elif g("deals_created"):
        h.append(Point(FACT, f"Новых сделок: {g('deals_created')} на {money(g('created_amount'))}.",
                       f("deals_created", "created_amount")))
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
        h.append(Point(FACT, line + ".", f("deals_won", "won_amount", "deals_lost", "lost_amount", "win_rate")))
    if g("stage_moves"):
        line = f"{count(g('stage_moves'), 'переход', 'перехода', 'переходов')} по этапам"
        if facts.get("median_days_in_stage") is not None:
            m = float(facts["median_days_in_stage"])
            line += f", медианное время в этапе — {number(m)} {plural(round(m, 1), 'день', 'дня', 'дней')}"
        h.append(Point(FACT, line + ".", f("stage_moves", "median_days_in_stage")))
    if activity := _activity(facts):
        h.append(Point(FACT, "Активность: " + ", ".join(activity) + ".",
                       f("calls", "calls_in", "calls_out", "notes", "tasks_done", "chat_messages")))
    if not h:
        h.append(Point(FACT, "Активности за период не было."))
    out["worked"] += _won_points(facts, known)
    out["failed"] += _lost_points(facts, known)
    if g("tasks_overdue"):
        out["failed"].append(Point(FACT, f"Просрочено задач: {g('tasks_overdue')}.", f("tasks_overdue")))
        out["next"].append(Point(FACT, f"Закрыть просроченные задачи ({g('tasks_overdue')}) и перенести сроки с клиентами.",
                                 f("tasks_overdue")))
    out["next"] += _open_points(facts)
    return out


def _activity(facts: dict) -> list[str]:
    g = lambda k: int(facts.get(k) or 0)  # noqa: E731
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
    return acts


def _closed_head(facts: dict, label: str, n_key: str, amount_key: str) -> tuple[int, str]:
    """How many deals closed one way, and the line that starts their point («Потеряно: 2 сделки на …»)."""
    n = int(facts.get(n_key) or 0)
    return n, f"{label}: {count(n, 'сделка', 'сделки', 'сделок')} на {money(int(facts.get(amount_key) or 0))}"


def _won_points(facts: dict, known: set[str] | None) -> list[Point]:
    n, line = _closed_head(facts, "Успешно закрыто", "deals_won", "won_amount")
    if not n:
        return []
    won = facts.get("won_deals") or []
    if won:
        line += (": " if len(won) == n else ", крупнейшие: ") + "; ".join(_closed(d) for d in won)
    return [Point(DEAL_WON, line + ".", _figures(facts, "deals_won", "won_amount"),
                  tuple(_close_cites(facts, "won_deals", known)))]


def _lost_points(facts: dict, known: set[str] | None) -> list[Point]:
    n, line = _closed_head(facts, "Потеряно", "deals_lost", "lost_amount")
    if not n:
        return []
    reasons = facts.get("loss_reasons") or []
    if reasons:
        line += "; причины: " + ", ".join(f"«{r['reason']}» ({r['count']})" for r in reasons)
    out = [Point(FACT, line + ".", _figures(facts, "deals_lost", "lost_amount"))]
    lost = facts.get("lost_deals") or []
    if lost:
        out.append(Point(DEAL_LOST, ("Потерянные сделки: " if len(lost) == n else "Крупнейшие потерянные: ")
                         + "; ".join(_closed(d, reason=True) for d in lost) + ".",
                         _figures(facts, "deals_lost", "lost_amount"), tuple(_close_cites(facts, "lost_deals", known))))
    return out


def _open_points(facts: dict) -> list[Point]:
    out = []
    stalled = facts.get("stalled_deals") or []
    n = int(facts.get("stalled_count") or 0)
    if n:
        line = (f"Оживить {count(n, 'сделку', 'сделки', 'сделок')} без активности "
                f"больше {count(int(facts.get('stall_days') or 14), 'дня', 'дней', 'дней')}")
        if stalled:
            line += ": " + "; ".join(_deal(d) for d in stalled)
        out.append(Point(FACT, line + ".", _figures(facts, "stalled_count", "stall_days")))
    opens = facts.get("open_deals") or []
    if opens:
        out.append(Point(FACT, f"В фокусе крупнейшие открытые сделки (всего {int(facts.get('open_deals_count') or 0)} на "
                               f"{money(int(facts.get('open_amount') or 0))}): " + "; ".join(_deal(d) for d in opens) + ".",
                         _figures(facts, "open_deals_count", "open_amount")))
    return out


def _lead_of(rec: dict | None) -> int | None:
    v = (rec or {}).get("lead_id")
    try:
        return int(v) if v is not None and v == v else None
    except (TypeError, ValueError):
        return None


def keypoint_point(kp: KeyPoint, rec: dict | None) -> Point:
    """An extractive key point as a summary point citing its record."""
    return Point(KEYPOINT, kp.text, cites=(kp.cite,), lead_id=_lead_of(rec))


def summarize_offline(facts: dict, records: list[dict], limit: int = 8) -> list[Section]:
    """Offline summary sections of one scope and period (before the grounding check)."""
    by_id = {r["id"]: r for r in records}
    points = fact_points(facts, set(by_id))
    for kp in key_points(records, limit=limit):
        points[kp.section].append(keypoint_point(kp, by_id.get(kp.cite)))
    return summary_sections(points)
