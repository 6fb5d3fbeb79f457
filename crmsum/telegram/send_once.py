"""Send once: a message of several parts reaches a chat exactly once per key, across crashes.

    send_once(lake, Telegram(bot), chat_id, Key("2024-W10", "team"), parts)  -> Sent

The ledger is the lake's `deliveries` table, one row per (chat, period, kind):

- a row with status `sent` (or, for a dry run, `outbox`) means done: later calls skip it
  (`force=True` sends again);
- progress is stored after every part but the last (status `failed`, «interrupted: partly sent»,
  the message ids so far), so a run killed between two parts resumes with the next part and never
  repeats one; an error is stored the same way, with its Bot API code (never the request URL);
- the final row (status `sent`, all message ids) is written right after the last part went out.

The only window left is a kill between Telegram accepting a part and the row recording it.
Channels: `Telegram` sends `Text` and `Photo` parts; `Outbox` (no bot token: the dry run) writes
`File` parts atomically. Callers hold the delivery run lock; this module does not lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, Union

import pandas as pd

from crmsum.failpoints import failpoint
from crmsum.telegram.client import call_api, error_text, no_preview

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: partly sent"
MAX_ERROR = 500


class Key(NamedTuple):
    """What was delivered: the period (`deliveries.week`: YYYY-Www or YYYY-MM) and the kind."""

    period: str
    kind: str  # team, manager:<pseudonym>, feedback-month, ...


@dataclass(frozen=True)
class Text:
    html: str  # Telegram HTML, under 4,096 visible characters


@dataclass(frozen=True)
class Photo:
    png: bytes
    caption: str = ""  # Telegram HTML, under 1,024 visible characters


@dataclass(frozen=True)
class File:
    path: Path  # the dry run's copy (pseudonyms only)
    data: bytes


Part = Union[Text, Photo, File]


class Channel(Protocol):
    status: str  # the ledger status of a finished delivery

    def put(self, chat_id: int, part: Part) -> int | None:
        """Deliver one part; the Telegram message id, or None when there is none."""


class Telegram:
    """Parts sent with a TeleBot (429 answers waited out by `call_api`)."""

    status = "sent"

    def __init__(self, bot, sleep: Callable[[float], None] = time.sleep) -> None:
        self.bot, self.sleep = bot, sleep

    def put(self, chat_id: int, part: Part) -> int:
        if isinstance(part, Photo):
            msg = call_api(self.bot.send_photo, chat_id, part.png, caption=part.caption, parse_mode="HTML",
                           sleep=self.sleep)
        elif isinstance(part, Text):
            msg = call_api(self.bot.send_message, chat_id, part.html, parse_mode="HTML",
                           link_preview_options=no_preview(), sleep=self.sleep)
        else:
            raise TypeError(f"Telegram cannot send a {type(part).__name__}")
        return msg.message_id

    def send_all(self, chat_id: int, parts: Sequence[Part]) -> list[int]:
        """Send parts without the ledger (answers on demand, e.g. the bot's /digest)."""
        return [self.put(chat_id, p) for p in parts]


class Outbox:
    """The dry run: `File` parts written atomically (a rerun overwrites them with the same bytes)."""

    status = "outbox"

    def put(self, chat_id: int, part: Part) -> None:
        if not isinstance(part, File):
            raise TypeError(f"the outbox writes files, not a {type(part).__name__}")
        part.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = part.path.with_name(f".{part.path.name}.tmp")
        tmp.write_bytes(part.data)
        os.replace(tmp, part.path)
        return None


@dataclass
class Sent:
    """What one `send_once` call did."""

    status: str  # sent | outbox | skipped | failed
    message_ids: list = field(default_factory=list)
    new: int = 0  # parts delivered by this call
    error: str | None = None


def _ledger(lake, chat_id: int, key: Key) -> dict | None:
    df = lake.read("deliveries", "chat_id = ? AND week = ? AND kind = ?", [int(chat_id), key.period, key.kind])
    return df.to_dict("records")[0] if len(df) else None


def _write(lake, chat_id: int, key: Key, status: str, ids: list, error: str | None, attempts: int) -> None:
    lake.write("deliveries", pd.DataFrame([{
        "chat_id": int(chat_id), "week": key.period, "kind": key.kind, "status": status,
        "message_ids": json.dumps(ids), "error": error, "attempts": attempts,
        "updated_at": dt.datetime.now().replace(microsecond=0)}]))


def ledger_row(lake, chat_id: int, key: Key) -> dict | None:
    """The ledger's row for (chat, key), or None: what was delivered or decided before."""
    return _ledger(lake, chat_id, key)


def mark(lake, chat_id: int, key: Key, status: str, note: str | None = None) -> None:
    """Record a decision about (chat, key) without sending (e.g. `no_chat`: nobody to send it to)."""
    _write(lake, chat_id, key, status, [], note, 1)


def _done_ids(prev: dict) -> list:
    try:
        return list(json.loads(prev.get("message_ids") or "[]"))
    except ValueError:
        return []


def send_once(lake, channel: Channel, chat_id: int, key: Key,
              parts: Sequence[Part] | Callable[[], Sequence[Part]], force: bool = False) -> Sent:
    """Deliver `parts` to `chat_id` exactly once for `key` (see the module docstring).

    `parts` may be a function, called only when something is to be sent (a skipped chat costs no
    rendering). Errors of the channel are recorded and returned as status `failed`; an interrupt
    (KeyboardInterrupt, SIGKILL) leaves the progress row for the next run.
    """
    prev = _ledger(lake, chat_id, key)
    status = prev["status"] if prev else None
    if not force and status in ("sent", channel.status):
        return Sent("skipped", _done_ids(prev))
    attempts = int(prev["attempts"] or 0) + 1 if prev else 1
    todo = list(parts() if callable(parts) else parts)
    ids = _done_ids(prev) if prev and status == "failed" and not force else []
    already = len(ids)
    try:
        for idx, part in enumerate(todo):
            if idx < already:
                continue
            failpoint("delivery.part")
            mid = channel.put(chat_id, part)
            if mid is None:
                continue
            ids.append(mid)
            if len(ids) < len(todo):  # persist each part as it goes: a killed run resumes, never resends
                _write(lake, chat_id, key, "failed", ids, INTERRUPTED, attempts)
    except Exception as exc:  # noqa: BLE001 - recorded and retried on the next run
        err = error_text(exc)[:MAX_ERROR]
        _write(lake, chat_id, key, "failed", ids, err, attempts)
        log.warning("delivery %s/%s to chat %s failed: %s", key.period, key.kind, chat_id, err)
        return Sent("failed", ids, len(ids) - already, err)
    _write(lake, chat_id, key, channel.status, ids, None, attempts)
    return Sent(channel.status, ids, len(ids) - already)
