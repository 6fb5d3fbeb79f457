"""The insights in plain Russian: digest sections (`Section` / `Point` records) and the CLI's text.

Every percentage is shown with its base (n), and each point keeps the exact figures of
`InsightsReport.to_dict()` in `Point.figures`, so a digest line and `crmsum insights --json` agree.
"""

from __future__ import annotations

from crmsum.insights.records import Driver, HabitsComparison, InsightsReport, Risk
from crmsum.ru import money, percent
from crmsum.summarize.model import Point, Section

RISKS_KEY, PLAYBOOK_KEY, HABITS_KEY = "risks", "playbook", "habits"
MAX_RISKS, MAX_DRIVERS = 5, 5

# feature -> (with, without) endings of «Сделки … выигрываются в A% случаев против B% …»
PHRASING = {
    "meetings_held": ("со встречей", "без неё"),
    "proposal_sent": ("с отправленным КП", "без КП"),
    "discount_offered": ("со скидкой", "без скидки"),
    "first_response_minutes": ("с первым ответом не позже {t} мин", "при более позднем ответе"),
    "calls": ("с числом звонков больше {t}", "с меньшим числом звонков"),
    "notes": ("с числом заметок больше {t}", "с меньшим числом заметок"),
    "tasks_overdue": ("с просроченными задачами", "без просрочек"),
    "days_since_activity": ("с паузой без действий дольше {t} дн.", "без таких пауз"),
    "handovers": ("переданные другому менеджеру", "без передачи"),
    "chat_mentions": ("обсуждавшиеся в чате", "не упомянутые в чате"),
}


def _t(threshold: float | None) -> str:
    from crmsum.ru import number

    return number(threshold) if threshold is not None else ""


def driver_sentence(d: Driver) -> str:
    """«Сделки со встречей выигрываются в 43% случаев против 23% без неё (n=212/318)»."""
    w, wo = PHRASING.get(d.feature, (f"с признаком «{d.label}»", "без него"))
    w, wo = w.format(t=_t(d.threshold)), wo.format(t=_t(d.threshold))
    text = (f"Сделки {w} выигрываются в {percent(d.win_rate_with)} случаев против {percent(d.win_rate_without)} {wo} "
            f"(n={d.n_with}/{d.n_without})")
    if d.ci95:
        text += f"; разница {round(d.ci95[0] * 100):+d}…{round(d.ci95[1] * 100):+d} п.п. (95%)"
    if d.adjusted_odds_ratio is not None:
        text += f", с поправкой на менеджера, воронку и сумму — шансы ×{d.adjusted_odds_ratio:.1f}".replace(".", ",")
    return text


def _driver_figures(d: Driver) -> dict:
    f = d.to_dict()
    return {k: f[k] for k in ("feature", "win_rate_with", "win_rate_without", "n_with", "n_without", "ci95",
                              "adjusted_odds_ratio", "significant")}


def playbook_section(rep: InsightsReport) -> Section:
    """«Что выигрывает сделки»: the significant drivers, or one line saying why there are none."""
    if rep.reason:
        pts = (Point(kind="driver", text=rep.reason, figures={"closed": rep.closed, "won": rep.won}),)
    elif not [d for d in rep.significant if d.kind != "milestone"]:
        pts = (Point(kind="driver", text=f"Надёжных закономерностей нет: ни один признак не проходит проверку "
                                         f"значимости на {rep.closed} закрытых сделках.",
                     figures={"closed": rep.closed, "won": rep.won}),)
    else:
        pts = tuple(Point(kind="driver", text=driver_sentence(d), figures=_driver_figures(d),
                          cites=tuple(f"lead:{x}" for x in d.examples[:3]))
                    for d in [d for d in rep.significant if d.kind != "milestone"][:MAX_DRIVERS])
    return Section(key=PLAYBOOK_KEY, title="Что выигрывает сделки", points=pts)


def risk_line(r: Risk) -> str:
    who = f", {r.manager}" if r.manager else ""
    reason = r.reasons[0] if r.reasons else ""
    return f"{r.name or 'Сделка ' + str(r.lead_id)} — {money(r.amount)}{who}: шанс {percent(r.win_probability)}; {reason}"


def risks_section(rep: InsightsReport, limit: int = MAX_RISKS) -> Section:
    """«Риски недели»: the open deals with the most money at stake, one line each with its main reason."""
    pts = tuple(Point(kind="risk", text=risk_line(r), figures=r.to_dict(), cites=(f"lead:{r.lead_id}",),
                      lead_id=r.lead_id) for r in rep.risks[:limit])
    m = rep.model
    if pts and m is not None and m.auc is not None:  # the base of every «шанс N%» above
        auc_text = str(round(m.auc, 2)).replace(".", ",")
        pts += (Point(kind="fact", text=f"Шанс — оценка модели по закрытым сделкам (проверена на {m.validated_on} "
                                        f"сделках, закрытых после {m.cutoff}: AUC {auc_text})",
                      figures={"auc": round(m.auc, 4), "validated_on": m.validated_on, "n_train": m.n_train}),)
    return Section(key=RISKS_KEY, title="Риски недели", points=pts)


def habits_section(h: HabitsComparison) -> Section:
    """A manager's habits beside the team's, the one that matters most first."""
    if h.reason:
        return Section(key=HABITS_KEY, title="Привычки и команда", points=(Point(kind="habit", text=h.reason),))
    pts = []
    if h.top is not None:
        pts.append(Point(kind="habit", text="Главное: " + h.top.note,
                         figures={"feature": h.top.feature, "value": h.top.value, "team": h.top.reference}))
    for g in h.habits:
        if h.top is None or g.feature != h.top.feature:
            pts.append(Point(kind="habit", text=g.note, figures={"feature": g.feature, "value": g.value,
                                                                 "team": g.reference}))
    return Section(key=HABITS_KEY, title="Привычки и команда", points=tuple(pts))


def render_text(rep: InsightsReport) -> str:
    """The CLI's plain-text report (pseudonyms; the terminal user is the operator)."""
    head = f"Закрыто сделок: {rep.closed}, выиграно {rep.won}"
    if rep.win_rate is not None:
        head += f" ({percent(rep.win_rate)}, n={rep.closed})"
    lines = [head]
    if rep.reason:
        lines.append(rep.reason)
    for d in rep.drivers:
        mark = "✔" if d.significant else " "
        lines.append(f"{mark} {driver_sentence(d)}; q={d.q_value:.3f}" if d.q_value is not None else
                     f"{mark} {driver_sentence(d)}")
    if rep.phrases:
        lines.append("Фразы, отличающие выигранные и проигранные сделки:")
        lines += [f"  [{p.side}] «{p.phrase}» z={p.score:+.1f}, в {p.n_deals} сделках (выигр. {p.n_won}, проигр. "
                  f"{p.n_lost})" for p in rep.phrases]
    if rep.risks:
        lines.append("Открытые сделки под риском:")
        lines += ["  " + risk_line(r) for r in rep.risks]
    m = rep.model
    if m is not None:
        if m.auc is not None:
            lines.append(f"Модель: AUC {m.auc:.2f}, Брайер {m.brier:.3f} (без модели {m.brier_baseline:.3f}) на "
                         f"{m.validated_on} сделках, закрытых после {m.cutoff}; обучена на {m.n_train}")
        elif m.reason:
            lines.append(f"Модель не проверена: {m.reason}")
    return "\n".join(lines)


def resolve_manager(lake, name: str) -> str:
    """A pseudonym as is; a real name (or surname) through the vault of the current settings."""
    from crmsum.insights.analysis import InsightsError
    from crmsum.privacy import PSEUDONYM_RE

    if PSEUDONYM_RE.fullmatch(name.strip()):
        return name.strip()
    from crmsum.config import get_settings
    from crmsum.privacy import Vault

    vault = Vault(get_settings().vault_dir)
    try:
        low = name.strip().lower()
        hits = [p for p, real in vault.people("manager") if low == real.lower() or low in real.lower().split()]
    finally:
        vault.close()
    if len(hits) != 1:
        raise InsightsError(f"manager {name!r} {'is ambiguous' if hits else 'not found'}: use the full name or pseudonym")
    return hits[0]


def digest_sections(con, week_start, week_end, manager: str | None = None) -> list[Section]:
    """The insights sections of a weekly digest: «Риски недели» always; «Что выигрывает сделки» in the
    month's digest (the week holding the month's first Monday); a personal digest gets the habits.
    Figures are those of `crmsum insights --json` (no period filter): the same report, rendered here."""
    import datetime as dt

    from crmsum.errors import CrmsumError
    from crmsum.insights.analysis import build_report, load_features
    from crmsum.insights.compare import manager_habits

    try:
        feats = load_features(con)
        if feats.empty:
            return []
        team = build_report(con, features=feats)
        out = []
        if manager is None:
            out.append(risks_section(team))
            first_monday = next(week_start + dt.timedelta(days=i) for i in range(7)
                                if (week_start + dt.timedelta(days=i)).day <= 7
                                and (week_start + dt.timedelta(days=i)).weekday() == 0) \
                if week_start.day <= 7 else None
            if first_monday is not None:
                out.append(playbook_section(team))
        else:
            out.append(risks_section(build_report(con, features=feats, manager=manager)))
            out.append(habits_section(manager_habits(con, manager)))
        return [s for s in out if s.points]
    except CrmsumError:
        return []
