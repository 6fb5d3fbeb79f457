"""Digest delivery: what goes to which chat; sending is `crmsum.telegram.send_once` (exactly once per
chat, period and kind, recorded in the `deliveries` table).

- Targets: every chat in CRMSUM_TELEGRAM_ALLOWED_CHATS gets the team digest; chats listed in
  CRMSUM_TELEGRAM_DIGEST_CHATS ("chat_id:Manager Name" or "chat_id:team", comma-separated) get what
  is listed there instead (a personal digest is matched by the manager's real name in the vault, a
  unique first name or surname, or the pseudonym). A chat that is not allowed gets nothing.
- Each digest is one `send_once` call: a chat that got it is never sent it again, a run killed
  between two parts resumes with the next one; `force=True` resends. A run lock keeps two runs from
  sending at once.
- Without a bot token the same digests go to DATA_DIR/outbox/<week>/<chat>.md + .png with
  pseudonyms only (status `outbox`).
- Once a month the team lead's chat (CRMSUM_TELEGRAM_LEAD_CHAT, which must also be allowed) gets the
  ratings summary of the month before (`deliver_feedback_summary`), with the same exactly-once rows
  (week = "YYYY-MM", kind = "feedback-month") and outbox (DATA_DIR/outbox/<YYYY-MM>/feedback_<chat>.html).

Later deliveries (hand-over briefs, ...) call `send_once` the same way: a `Key(period, kind)` and parts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmsum.config import Settings, get_settings
from crmsum.digest import DigestData, RenderedDigest, build_digest, check_week, identity, latest_complete_week, render_digest
from crmsum.errors import CrmsumError
from crmsum.failpoints import failpoint
from crmsum.ru import today as _today
from crmsum.telegram.client import make_bot
from crmsum.telegram.send_once import Channel, File, Key, Outbox, Part, Photo, Sent, Telegram, Text, send_once

log = logging.getLogger(__name__)

OUTBOX_CHAT = 0  # chat id recorded for the outbox copy when no chat is configured


class DeliveryError(CrmsumError, RuntimeError):
    """Delivery cannot run (bad configuration, another run in progress)."""


class DeliveriesFailed(DeliveryError):
    """Every delivery of a run failed: the flow must end Failed, not green."""


def require_delivered(report: dict[str, Any]) -> None:
    """Raise DeliveriesFailed when something was due and every attempt failed (a report as a dict, as
    flows receive it from their task). Nothing due (all already delivered) is not a failure."""
    if report.get("failed") and not report.get("sent") and not report.get("outbox"):
        first = (report.get("errors") or ["no error recorded"])[0]
        raise DeliveriesFailed(f"all {report['failed']} deliveries of {report.get('week') or 'this run'} failed "
                               f"(first: {first}); they are retried on the next run")


# -- targets --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    chat_id: int
    kind: str  # team | manager:<pseudonym>

    @property
    def manager(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("manager:") else None


def match_manager(name: str, managers: list[tuple[str, str]]) -> str | None:
    """Pseudonym of a manager given a full name, a unique first name / surname, or the pseudonym."""
    want = " ".join(name.split()).lower().replace("ё", "е")
    if not want:
        return None
    for p, real in managers:
        if want == p.lower() or want == " ".join(real.split()).lower().replace("ё", "е"):
            return p
    hits = {p for p, real in managers if want in real.lower().replace("ё", "е").split()}
    return hits.pop() if len(hits) == 1 else None


def digest_targets(settings: Settings, managers: list[tuple[str, str]]) -> tuple[list[Target], list[str]]:
    """(targets, warnings) from ALLOWED_CHATS and DIGEST_CHATS."""
    allowed = sorted(settings.allowed_chats)
    warnings: list[str] = []
    listed: dict[int, list[str]] = {}
    for item in settings.telegram_digest_chats.replace(";", ",").split(","):
        if not item.strip():
            continue
        chat, sep, who = item.partition(":")
        try:
            chat_id = int(chat.strip())
        except ValueError:
            warnings.append(f"CRMSUM_TELEGRAM_DIGEST_CHATS: bad entry {item.strip()!r} (expected chat_id:Manager Name)")
            continue
        who = who.strip() if sep else "team"
        if chat_id not in settings.allowed_chats:
            warnings.append(f"chat {chat_id} is in CRMSUM_TELEGRAM_DIGEST_CHATS but not in "
                            "CRMSUM_TELEGRAM_ALLOWED_CHATS: skipped")
            continue
        if who.lower() in ("team", "команда", ""):
            kind = "team"
        else:
            p = match_manager(who, managers)
            if p is None:
                warnings.append(f"CRMSUM_TELEGRAM_DIGEST_CHATS: no unique manager {who!r} for chat {chat_id}")
                continue
            kind = f"manager:{p}"
        listed.setdefault(chat_id, [])
        if kind not in listed[chat_id]:
            listed[chat_id].append(kind)
    targets = []
    for chat_id in allowed:
        for kind in listed.get(chat_id, ["team"]):
            targets.append(Target(chat_id, kind))
    return targets, warnings


# -- the report -----------------------------------------------------------------------------------
@dataclass
class DeliveryReport:
    week: str = ""
    mode: str = "telegram"  # telegram or outbox
    sent: int = 0
    outbox: int = 0
    skipped: int = 0  # already delivered
    failed: int = 0
    messages: int = 0
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"week {self.week} ({self.mode}): {self.sent} sent, {self.outbox} written to the outbox, "
                f"{self.skipped} already delivered, {self.failed} failed")


# -- sending --------------------------------------------------------------------------------------
def digest_parts(rendered: RenderedDigest) -> list[Part]:
    """A rendered digest as Telegram parts: the chart with its caption, then the messages."""
    parts: list[Part] = [Photo(rendered.chart, rendered.caption)] if rendered.chart else []
    return parts + [Text(m) for m in rendered.messages]


def _digest_parts(data: Callable[[], DigestData], show: Callable[[str], str],
                  outbox: Path | None) -> Callable[[], list[Part]]:
    """What `send_once` delivers for one digest, rendered only when it is sent: Telegram parts, or
    for the outbox `<outbox>.md` + `<outbox>.png` (pseudonyms only)."""
    def parts() -> list[Part]:
        r = render_digest(data(), show)
        if outbox is None:
            return digest_parts(r)
        return [File(outbox.with_suffix(".md"), r.markdown.encode("utf-8")), File(outbox.with_suffix(".png"), r.chart)]
    return parts


def _outbox_stem(t: Target, per_chat: dict[int, int]) -> str:
    if t.kind == "team" or per_chat[t.chat_id] == 1:
        return str(t.chat_id)
    return f"{t.chat_id}_{t.kind.replace(':', '_')}"


def _count(report: DeliveryReport, sent: Sent, what: str) -> None:
    """Add one send_once outcome to the report."""
    if sent.status == "skipped":
        report.skipped += 1
    elif sent.status == "failed":
        report.failed += 1
        report.errors.append(f"{what}: {sent.error}")
    elif sent.status == "outbox":
        report.outbox += 1
    else:
        report.sent += 1
        report.messages += sent.new


class _Unbuildable(Exception):
    """A digest that could not be built: that chat fails, the others go on."""


def _managers(settings: Settings, con) -> list[tuple[str, str]]:
    """(pseudonym, real name) of the lake's managers known to the vault."""
    from crmsum.privacy import Vault

    in_lake = {r[0] for r in con.execute("SELECT DISTINCT name FROM crm_users WHERE name IS NOT NULL").fetchall()}
    vault = Vault(settings.vault_dir)
    people = vault.people("manager")
    return [(p, n) for p, n in people if p in in_lake] or [(p, n) for p, n in people]


def deliver_digests(week: str | None = None, force: bool = False, settings: Settings | None = None, lake=None,
                    bot=None, today: dt.date | None = None, sleep: Callable[[float], None] = time.sleep,
                    progress: Callable[[str], None] | None = None) -> DeliveryReport:
    """Build, render and deliver the week's digests (Telegram with a token, else the outbox)."""
    from crmsum.lake import open_lake
    from crmsum.privacy import Vault
    from crmsum.privacy.display import resolver
    from crmsum.state import LockedError, run_lock

    s = settings or get_settings()
    lake = lake or open_lake(s)
    t0 = time.perf_counter()
    con = lake.connect()
    week = check_week(week) if week else latest_complete_week(con, today or _today(s))
    outbox = s.telegram_token is None and bot is None
    report = DeliveryReport(week=week, mode="outbox" if outbox else "telegram")
    targets, warnings = digest_targets(s, _managers(s, con))
    report.warnings += warnings
    for w in warnings:
        log.warning("%s", w)
    if not targets:
        if outbox:
            targets = [Target(OUTBOX_CHAT, "team")]
        else:
            report.warnings.append("no chats to deliver to: set CRMSUM_TELEGRAM_ALLOWED_CHATS")
            report.seconds = round(time.perf_counter() - t0, 3)
            return report
    try:
        lock = run_lock(s.state_dir, "digest")
        lock.__enter__()
    except LockedError as exc:
        raise DeliveryError(str(exc)) from None
    try:
        cache: dict[str, DigestData] = {}
        vault = Vault(s.vault_dir) if not outbox else None
        channel = Outbox() if outbox else Telegram(bot or make_bot(s), sleep)
        per_chat: dict[int, int] = {}
        for t in targets:
            per_chat[t.chat_id] = per_chat.get(t.chat_id, 0) + 1

        def digest_of(t: Target) -> DigestData:
            """Built once per kind, and only for a chat that is still to be served."""
            if t.kind not in cache:
                try:
                    cache[t.kind] = build_digest(con, week, manager=t.manager)
                except Exception as exc:  # noqa: BLE001 - one bad digest must not stop the others
                    log.exception("digest %s could not be built", t.kind)
                    raise _Unbuildable(f"{type(exc).__name__}: {exc}") from exc
            return cache[t.kind]

        for t in targets:
            failpoint("delivery.chat")
            base = s.outbox_dir / week / _outbox_stem(t, per_chat) if outbox else None
            parts = _digest_parts(lambda t=t: digest_of(t), identity if outbox else resolver(vault, s.display_resolve), base)
            try:
                sent = send_once(lake, channel, t.chat_id, Key(week, t.kind), parts, force=force)
            except _Unbuildable as exc:
                sent = Sent("failed", error=str(exc))
            _count(report, sent, f"{t.chat_id} {t.kind}")
            if sent.status == "outbox":
                report.files += [str(base.with_suffix(".md")), str(base.with_suffix(".png"))]
            elif sent.status == "sent" and progress:
                progress(f"{t.chat_id} {t.kind}: {len(sent.message_ids)} messages")
    finally:
        lock.__exit__(None, None, None)
    report.seconds = round(time.perf_counter() - t0, 3)
    log.info("digest: %s", report)
    return report


def chat_digest(chat_id: int, settings: Settings | None = None, lake=None, today: dt.date | None = None,
                con=None) -> tuple[str, list[RenderedDigest]]:
    """This chat's latest digest(s) rendered for display in the chat (the bot's /digest)."""
    from crmsum.lake import open_lake
    from crmsum.privacy import Vault
    from crmsum.privacy.display import resolver

    s = settings or get_settings()
    con = con or (lake or open_lake(s)).connect()
    week = latest_complete_week(con, today or _today(s))
    targets, _ = digest_targets(s, _managers(s, con))
    kinds = [t.kind for t in targets if t.chat_id == int(chat_id)] or ["team"]
    vault = Vault(s.vault_dir)
    show = resolver(vault, s.display_resolve)
    return week, [render_digest(build_digest(con, week, manager=Target(chat_id, k).manager), show)
                  for k in kinds]


# -- monthly ratings summary for the team lead --------------------------------------------------------
FEEDBACK_KIND = "feedback-month"
LOCK_WAIT = 300.0  # seconds to wait for a weekly digest run holding the delivery lock


def previous_month(today: dt.date) -> str:
    """'YYYY-MM' of the calendar month before `today`'s (what the run on the 1st reports on)."""
    last = today.replace(day=1) - dt.timedelta(days=1)
    return f"{last.year}-{last.month:02d}"


def _month_label(month: Any) -> str:
    from crmsum.feedback import _month

    start, _ = _month(month)
    return f"{start.year}-{start.month:02d}"


def _resolve_html(html: str, vault, policy: str | None = None) -> str:
    """Pseudonyms the display policy allows -> real values, escaped for Telegram HTML (a name may hold '&' or '<')."""
    from crmsum.privacy.display import resolve
    from crmsum.telegram.markup import escape

    return resolve(html, vault, policy, escape=escape)


def _monthly_html(lake, month: str) -> tuple[str, bytes]:
    """The lead's monthly message: the ratings summary and «Помогает ли crmsum» (with its chart)."""
    from crmsum.digest import points_block
    from crmsum.feedback import monthly_feedback_summary
    from crmsum.impact import digest_chart, digest_section, impact

    con = lake.connect()
    try:
        rep = impact(con)
    finally:
        con.close()
    sec = digest_section(rep, month)
    html = monthly_feedback_summary(lake, month) + "\n\n" + points_block(sec.title, list(sec.points), str)
    return html, digest_chart(rep, month)


def deliver_feedback_summary(month: Any = None, force: bool = False, settings: Settings | None = None, lake=None,
                             bot=None, today: dt.date | None = None,
                             sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Send the month's ratings summary (`crmsum.feedback.monthly_feedback_summary`) to the lead's chat once.

    `month`: 'YYYY-MM' or a date; default the month before today (the deployment runs on the 1st).
    The chat is Settings.telegram_lead_chat and must be in the allowed chats (else a warning and
    nothing is sent). Without a bot token the summary goes to DATA_DIR/outbox/<month>/ (pseudonyms
    only). A `deliveries` row (week=month, kind='feedback-month') makes reruns skip; `force` resends;
    a run interrupted between parts resumes with the next part.
    """
    from crmsum.telegram import markup as th
    from crmsum.lake import open_lake
    from crmsum.privacy import Vault
    from crmsum.privacy.display import is_allowed
    from crmsum.state import LockedError, run_lock

    s = settings or get_settings()
    lake = lake or open_lake(s)
    t0 = time.perf_counter()
    label = _month_label(month) if month is not None else previous_month(today or _today(s))
    outbox = s.telegram_token is None and bot is None
    report = DeliveryReport(week=label, mode="outbox" if outbox else "telegram")

    def done() -> DeliveryReport:
        report.seconds = round(time.perf_counter() - t0, 3)
        log.info("feedback summary: %s", report)
        return report

    chat = s.telegram_lead_chat
    if chat is not None and not is_allowed(chat, s.allowed_chats):
        msg = (f"chat {chat} is CRMSUM_TELEGRAM_LEAD_CHAT but not in CRMSUM_TELEGRAM_ALLOWED_CHATS: "
               "monthly ratings summary skipped")
        report.warnings.append(msg)
        log.warning("%s", msg)
        return done()
    if chat is None:
        if not outbox:
            report.warnings.append("no chat for the monthly ratings summary: set CRMSUM_TELEGRAM_LEAD_CHAT")
            log.warning("%s", report.warnings[-1])
            return done()
        chat = OUTBOX_CHAT
    target = Target(int(chat), FEEDBACK_KIND)
    try:
        lock = run_lock(s.state_dir, "digest", wait=LOCK_WAIT)  # one delivery run at a time
        lock.__enter__()
    except LockedError as exc:
        raise DeliveryError(str(exc)) from None
    try:
        if outbox:
            path = s.outbox_dir / label / f"feedback_{target.chat_id}.html"
            channel: Channel = Outbox()

            def parts() -> list[Part]:
                html, png = _monthly_html(lake, label)  # pseudonyms only
                return [File(path.with_suffix(".png"), png), File(path, html.encode("utf-8"))]
        else:
            channel = Telegram(bot or make_bot(s), sleep)

            def parts() -> list[Part]:
                html, png = _monthly_html(lake, label)
                allowed = is_allowed(target.chat_id, s.allowed_chats)
                shown = _resolve_html(html, Vault(s.vault_dir), s.display_resolve) if allowed else html
                return [Photo(png, th.b("Продажи к прошлому году и оценки ответов")),
                        *[Text(p) for p in th.split_html(shown, th.MAX_MESSAGE)]]
        sent = send_once(lake, channel, target.chat_id, Key(label, target.kind), parts, force=force)
        _count(report, sent, f"{target.chat_id} {target.kind}")
        if sent.status == "outbox":
            report.files.append(str(path))
        return done()
    finally:
        lock.__exit__(None, None, None)


# -- deal briefs ----------------------------------------------------------------------------------
def brief_html(brief, show: Callable[[str], str]) -> list[str]:
    """A brief as Telegram HTML messages: what happened, then each section's points."""
    from crmsum.digest import points_block
    from crmsum.telegram import markup as th

    why = "Вам передана сделка" if brief.trigger.kind == "handover" else "Сделка на решающем этапе"
    paras = [f"📌 {th.b(why)}\n{th.escape(show(brief.title))}"]
    paras += [points_block(sec.title, list(sec.points), show) for sec in brief.sections]
    return th.join_paragraphs(paras, th.MAX_MESSAGE)


def deliver_briefs(settings: Settings | None = None, lake=None, bot=None, now: dt.datetime | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Deal briefs (`crmsum.briefs`) to the chats mapped to each deal's new or current manager, exactly
    once per chat and trigger. A manager without a chat in CRMSUM_TELEGRAM_DIGEST_CHATS is logged once
    (a `no_chat` row in `deliveries`), not retried every night."""
    from crmsum.briefs import Insights, build_brief, triggers
    from crmsum.lake import open_lake
    from crmsum.privacy import Vault
    from crmsum.ru import now as now_in
    from crmsum.state import run_lock
    from crmsum.telegram.send_once import ledger_row, mark

    s = settings or get_settings()
    lake = lake or open_lake(s)
    now = now or now_in(s).replace(tzinfo=None)
    t0 = time.perf_counter()
    outbox = s.telegram_token is None and bot is None
    report = DeliveryReport(week=f"{now:%G-W%V}", mode="outbox" if outbox else "telegram")
    con = lake.connect()
    try:
        due = triggers(con, now, s.brief_stages)
        if not due:
            return report
        targets, report.warnings = digest_targets(s, _managers(s, con))
        chats: dict[str, list[int]] = {}
        for t in targets:
            if t.manager:
                chats.setdefault(t.manager, []).append(t.chat_id)
        insights, vault = Insights(lake, s), Vault(s.vault_dir)
        channel: Channel = Outbox() if outbox else Telegram(bot or make_bot(s), sleep)
        with run_lock(s.state_dir, "digest", wait=LOCK_WAIT):
            for trig in due:
                key = Key(f"{trig.at:%G-W%V}", trig.key)
                if not chats.get(trig.manager):
                    if ledger_row(lake, OUTBOX_CHAT, key) is None:
                        msg = f"brief {trig.key}: no chat for manager {trig.manager} in CRMSUM_TELEGRAM_DIGEST_CHATS"
                        log.warning("%s", msg)
                        report.warnings.append(msg)
                        mark(lake, OUTBOX_CHAT, key, "no_chat", msg)
                    continue
                for chat in chats[trig.manager]:
                    parts = _brief_parts(lambda t=trig: build_brief(con, t, now, insights), chat, key, s, vault, outbox)
                    sent = send_once(lake, channel, chat, key, parts)
                    _count(report, sent, f"{chat} {trig.key}")
                    if sent.status == "outbox":
                        report.files.append(str(_brief_path(s, chat, key)))
    finally:
        con.close()
        report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _brief_path(s: Settings, chat: int, key: Key) -> Path:
    return s.outbox_dir / key.period / f"{chat}_{key.kind.replace(':', '_')}.html"


def _brief_parts(build: Callable, chat: int, key: Key, s: Settings, vault, outbox: bool) -> Callable[[], list[Part]]:
    from crmsum.privacy.display import is_allowed

    def parts() -> list[Part]:
        brief = build()
        if brief is None:
            return []
        if outbox:  # the dry run keeps pseudonyms
            return [File(_brief_path(s, chat, key), "\n\n".join(brief_html(brief, str)).encode("utf-8"))]
        show = (lambda t: _resolve_html(t, vault, s.display_resolve)) if is_allowed(chat, s.allowed_chats) else str
        return [Text(m) for m in brief_html(brief, show)]

    return parts
