"""Digest delivery: exactly once per (chat, week, kind), recorded in the `deliveries` table.

- Targets: every chat in CRMSUM_TELEGRAM_ALLOWED_CHATS gets the team digest; chats listed in
  CRMSUM_TELEGRAM_DIGEST_CHATS ("chat_id:Manager Name" or "chat_id:team", comma-separated) get what
  is listed there instead (a personal digest is matched by the manager's real name in the vault, a
  unique first name or surname, or the pseudonym). A chat that is not allowed gets nothing.
- A chat's row is written right after its messages went out (status `sent` with message ids), so
  a crash later in the run never resends to it. Progress is also stored after every part (status
  `failed`, "interrupted: digest partly sent", with the ids sent so far), so a crash or an error in
  the middle of a chat resumes with the next part on the next run instead of repeating any.
  `force=True` resends. A run lock keeps two runs from sending at once.
- Without a bot token the same digests go to DATA_DIR/outbox/<week>/<chat>.md + .png with
  pseudonyms only (status `outbox`).
- Telegram 429 answers are honoured: wait `retry_after` seconds and retry, a bounded number of times.
- Once a month the team lead's chat (CRMSUM_TELEGRAM_LEAD_CHAT, which must also be allowed) gets the
  ratings summary of the month before (`deliver_feedback_summary`), with the same exactly-once rows
  (week = "YYYY-MM", kind = "feedback-month") and outbox (DATA_DIR/outbox/<YYYY-MM>/feedback_<chat>.html).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crmsum.config import Settings, get_settings
from crmsum.errors import CrmsumError
from crmsum.failpoints import failpoint
from crmsum.digest import DigestData, RenderedDigest, build_digest, check_week, identity, latest_complete_week, render_digest
from crmsum.ru import today as _today

log = logging.getLogger(__name__)

MAX_429_RETRIES = 4
MAX_RETRY_WAIT = 120.0  # seconds; a longer flood wait fails the chat (retried on the next run)
OUTBOX_CHAT = 0  # chat id recorded for the outbox copy when no chat is configured


class DeliveryError(CrmsumError, RuntimeError):
    """Delivery cannot run (bad configuration, another run in progress)."""


# -- Telegram plumbing ----------------------------------------------------------------------------
def configure_telebot(settings: Settings) -> None:
    """Point pyTelegramBotAPI at Settings.telegram_api_url (the official API or an emulator)."""
    from telebot import apihelper

    base = settings.telegram_api_url.rstrip("/")
    apihelper.API_URL = base + "/bot{0}/{1}"
    apihelper.FILE_URL = base + "/file/bot{0}/{1}"


def make_bot(settings: Settings, threaded: bool = False):
    import telebot

    if settings.telegram_token is None:
        raise DeliveryError("CRMSUM_TELEGRAM_TOKEN is not set")
    configure_telebot(settings)
    return telebot.TeleBot(settings.telegram_token.get_secret_value(), threaded=threaded, parse_mode=None)


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds to wait if `exc` is a Bot API 429 (ApiTelegramException), else None."""
    if getattr(exc, "error_code", None) != 429:
        return None
    params = (getattr(exc, "result_json", None) or {}).get("parameters") or {}
    try:
        return float(params.get("retry_after", 1))
    except (TypeError, ValueError):
        return 1.0


def call_api(fn: Callable[..., Any], *args: Any, sleep: Callable[[float], None] = time.sleep,
             retries: int = MAX_429_RETRIES, max_wait: float = MAX_RETRY_WAIT, **kwargs: Any) -> Any:
    """Call a telebot method; on 429 wait retry_after (+ a little) and retry, at most `retries` times."""
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only 429 is retried here
            wait = retry_after_of(exc)
            if wait is None or attempt >= retries or wait > max_wait:
                raise
            log.warning("Telegram flood control: waiting %.0fs (attempt %d)", wait, attempt + 1)
            sleep(wait + 0.1)
    raise AssertionError("unreachable")


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
def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


def _existing(lake, week: str) -> dict[tuple[int, str], dict]:
    df = lake.read("deliveries", "week = ?", [week])
    return {(int(r["chat_id"]), r["kind"]): r for r in df.to_dict("records")}


def _record(lake, target: Target, week: str, status: str, message_ids: list, error: str | None, attempts: int) -> None:
    lake.write("deliveries", pd.DataFrame([{
        "chat_id": target.chat_id, "week": week, "kind": target.kind, "status": status,
        "message_ids": json.dumps(message_ids), "error": error, "attempts": attempts, "updated_at": _now()}]))


def send_rendered(bot, chat_id: int, rendered: RenderedDigest, done: list | None = None,
                  sleep: Callable[[float], None] = time.sleep, on_part: Callable[[list], None] | None = None) -> list:
    """Send the chart (with caption) and the messages; resume after the `done` parts. Returns message ids."""
    ids = list(done or [])
    parts: list[tuple[str, Any]] = []
    if rendered.chart:
        parts.append(("photo", rendered.caption))
    parts += [("text", m) for m in rendered.messages]
    for idx, (kind, body) in enumerate(parts):
        if idx < len(ids):
            continue
        failpoint("delivery.part")
        if kind == "photo":
            msg = call_api(bot.send_photo, chat_id, rendered.chart, caption=body, parse_mode="HTML", sleep=sleep)
        else:
            msg = call_api(bot.send_message, chat_id, body, parse_mode="HTML", disable_web_page_preview=True,
                           sleep=sleep)
        ids.append(msg.message_id)
        if on_part:
            on_part(ids)
    return ids


def _outbox_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
    from crmsum.state import LockedError, run_lock

    s = settings or get_settings()
    lake = lake or open_lake(s)
    t0 = time.perf_counter()
    con = lake.connect()
    if today is None:
        today = _today(s)
    week = check_week(week) if week else latest_complete_week(con, today)
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
        existing = _existing(lake, week)
        cache: dict[str, DigestData] = {}
        vault = Vault(s.vault_dir) if not outbox else None
        if not outbox and bot is None:
            bot = make_bot(s)
        per_chat = {}
        for t in targets:
            per_chat[t.chat_id] = per_chat.get(t.chat_id, 0) + 1
        for t in targets:
            failpoint("delivery.chat")
            prev = existing.get((t.chat_id, t.kind))
            status = prev["status"] if prev else None
            if not force and (status == "sent" or (outbox and status == "outbox")):
                report.skipped += 1
                continue
            try:
                if t.kind not in cache:
                    cache[t.kind] = build_digest(con, week, manager=t.manager)
                data = cache[t.kind]
            except Exception as exc:  # noqa: BLE001 - one bad digest must not stop the others
                report.failed += 1
                report.errors.append(f"{t.chat_id} {t.kind}: {type(exc).__name__}: {exc}")
                log.exception("digest %s for chat %s could not be built", t.kind, t.chat_id)
                continue
            attempts = int(prev["attempts"] or 0) + 1 if prev is not None else 1
            if outbox:
                rendered = render_digest(data, identity)
                stem = str(t.chat_id) if t.kind == "team" or per_chat[t.chat_id] == 1 else \
                    f"{t.chat_id}_{t.kind.replace(':', '_')}"
                base = s.outbox_dir / week / stem
                _outbox_write(base.with_suffix(".md"), rendered.markdown.encode("utf-8"))
                _outbox_write(base.with_suffix(".png"), rendered.chart)
                _record(lake, t, week, "outbox", [], None, attempts)
                report.outbox += 1
                report.files += [str(base.with_suffix(".md")), str(base.with_suffix(".png"))]
                continue
            rendered = render_digest(data, vault.resolve)
            done: list = []
            if not force and prev is not None and status == "failed":
                try:
                    done = json.loads(prev["message_ids"] or "[]")
                except ValueError:
                    done = []
            sent_ids: list = list(done)

            n_parts = int(bool(rendered.chart)) + len(rendered.messages)

            def keep(ids: list, t=t, attempts=attempts, n_parts=n_parts) -> None:
                sent_ids[:] = ids
                if len(ids) < n_parts:  # persist each part as it goes: a killed run resumes, never resends
                    _record(lake, t, week, "failed", ids, "interrupted: digest partly sent", attempts)

            try:
                ids = send_rendered(bot, t.chat_id, rendered, done=done, sleep=sleep, on_part=keep)
            except Exception as exc:  # noqa: BLE001 - recorded and retried on the next run
                code = getattr(exc, "error_code", None)
                # a network error's text holds the request URL: the bot token and the digest (real names)
                err = (f"Telegram {code}: {getattr(exc, 'description', '')}" if code is not None
                       else f"{type(exc).__name__}: Telegram unreachable or the request failed")
                _record(lake, t, week, "failed", sent_ids, err[:500], attempts)
                report.failed += 1
                report.errors.append(f"{t.chat_id} {t.kind}: {err}")
                log.warning("digest %s to chat %s failed: %s", t.kind, t.chat_id, err)
                continue
            _record(lake, t, week, "sent", ids, None, attempts)
            report.sent += 1
            report.messages += len(ids) - len(done)
            if progress:
                progress(f"{t.chat_id} {t.kind}: {len(ids)} messages")
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

    s = settings or get_settings()
    con = con or (lake or open_lake(s)).connect()
    week = latest_complete_week(con, today or _today(s))
    targets, _ = digest_targets(s, _managers(s, con))
    kinds = [t.kind for t in targets if t.chat_id == int(chat_id)] or ["team"]
    vault = Vault(s.vault_dir)
    return week, [render_digest(build_digest(con, week, manager=Target(chat_id, k).manager), vault.resolve)
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


def _resolve_html(html: str, vault) -> str:
    """Pseudonyms -> real values, escaped for Telegram HTML (a name may hold '&' or '<')."""
    from crmsum.cites import PSEUDONYM_RE
    from crmsum.telegram_html import escape

    real = {p: vault.real(p) for p in set(PSEUDONYM_RE.findall(html))}
    return PSEUDONYM_RE.sub(lambda m: escape(real.get(m.group(0)) or m.group(0)), html)


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
    from crmsum import telegram_html as th
    from crmsum.feedback import monthly_feedback_summary
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
        prev = _existing(lake, label).get((target.chat_id, target.kind))
        status = prev["status"] if prev else None
        if not force and (status == "sent" or (outbox and status == "outbox")):
            report.skipped += 1
            return done()
        attempts = int(prev["attempts"] or 0) + 1 if prev is not None else 1
        html = monthly_feedback_summary(lake, label)  # pseudonyms only
        if outbox:
            path = s.outbox_dir / label / f"feedback_{target.chat_id}.html"
            _outbox_write(path, html.encode("utf-8"))
            _record(lake, target, label, "outbox", [], None, attempts)
            report.outbox += 1
            report.files.append(str(path))
            return done()
        shown = _resolve_html(html, Vault(s.vault_dir)) if is_allowed(target.chat_id, s.allowed_chats) else html
        parts = th.split_html(shown, th.MAX_MESSAGE)
        if bot is None:
            bot = make_bot(s)
        ids: list = []
        if not force and status == "failed" and prev is not None:
            try:
                ids = list(json.loads(prev["message_ids"] or "[]"))
            except ValueError:
                ids = []
        already = len(ids)
        try:
            for idx, part in enumerate(parts):
                if idx < len(ids):
                    continue
                failpoint("delivery.part")
                msg = call_api(bot.send_message, target.chat_id, part, parse_mode="HTML",
                               disable_web_page_preview=True, sleep=sleep)
                ids.append(msg.message_id)
                if len(ids) < len(parts):  # persist progress: a killed run resumes, never resends
                    _record(lake, target, label, "failed", ids, "interrupted: summary partly sent", attempts)
        except Exception as exc:  # noqa: BLE001 - recorded and retried on the next run
            code = getattr(exc, "error_code", None)
            err = (f"Telegram {code}: {getattr(exc, 'description', '')}" if code is not None
                   else f"{type(exc).__name__}: Telegram unreachable or the request failed")
            _record(lake, target, label, "failed", ids, err[:500], attempts)
            report.failed += 1
            report.errors.append(f"{target.chat_id} {target.kind}: {err}")
            log.warning("ratings summary to chat %s failed: %s", target.chat_id, err)
            return done()
        _record(lake, target, label, "sent", ids, None, attempts)
        report.sent += 1
        report.messages += len(ids) - already
        return done()
    finally:
        lock.__exit__(None, None, None)
