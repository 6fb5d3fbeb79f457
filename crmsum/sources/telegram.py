"""Streaming reader of Telegram Desktop JSON exports: export file -> normalized message records.

Why streaming: a whole-account export can be gigabytes, so the file is read once with ijson's
event parser and each message is built and handed over on its own; memory stays flat whatever
the file size. The reader knows nothing about privacy: records still carry raw names and text,
and `crmsum.ingest.telegram` anonymizes them before anything is written anywhere.

Two layouts are understood:
- a single chat: ``{"name", "type", "id", "messages": [...]}``
- a whole account: ``{"about", "personal_information", "contacts", "chats": {"list": [chat, ...]},
  "left_chats": {"list": [...]}, ...}`` where each chat is ``{"name", "type", "id", "messages"}``.
Personal sections of a whole-account export (personal_information, contacts, ...) are never read
into records.

Errors never quote the file's content (it is personal data): messages say what is wrong and
what to do.

Hostile files stay bounded (`crmsum.sources.telegram_json`): shallow prefixes only (ijson's own
grew with the nesting depth squared), a message keeps at most `MAX_DEPTH` levels, `MAX_VALUES`
values and `MAX_FIELD_CHARS` characters per string (the rest is dropped with a warning naming the
message id), and invalid UTF-8 is replaced by U+FFFD and counted instead of refusing the export.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ijson

from crmsum.errors import CrmsumError
from crmsum.sources.telegram_json import CAP_REASONS, Caps, CountingReader, build, prefixed

log = logging.getLogger(__name__)

#: chat types imported from a whole-account export by default (team chats, not private dialogs)
GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})
#: every chat type Telegram Desktop writes
ALL_TYPES = frozenset(GROUP_TYPES | {"personal_chat", "bot_chat", "saved_messages",
                                     "private_channel", "public_channel"})
MESSAGE_TYPES = ("message", "service")
MAX_ID = 2**63 - 1
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_MSG_PREFIXES = ("messages.item", "chats.list.item.messages.item", "left_chats.list.item.messages.item")
_CHAT_PREFIXES = {"chats.list.item": "chats", "left_chats.list.item": "left_chats"}
_HEADER_KEYS = ("name", "type", "id")


class ExportError(CrmsumError):
    """The file is not a readable Telegram Desktop JSON export; the message says what to do."""


class SkipMessage(Exception):
    """One message can't be used; the reason is a short fixed phrase, never the content."""


@dataclass
class ChatInfo:
    """A chat of the export, in file order (``seq``); fields fill in as the header is read."""

    seq: int
    id: int | None = None
    name: str | None = None
    type: str | None = None
    section: str = "single"  # single, chats or left_chats
    messages: int = 0


@dataclass
class Message:
    """One normalized message, still with raw personal data (names, text, contact cards)."""

    chat_seq: int
    message_id: int
    date: dt.datetime
    kind: str  # message or service
    edited: dt.datetime | None = None
    author: str | None = None  # display name of the sender / actor (raw)
    author_ref: str | None = None  # "user123" (raw Telegram id: never store it)
    parts: list[tuple[str, str]] = field(default_factory=list)  # (entity type, text)
    reply_to: int | None = None
    forwarded_from: str | None = None
    forwarded_is_person: bool = True
    action: str | None = None
    members: list[str] = field(default_factory=list)  # service: people invited/removed (raw)
    service_text: str | None = None  # service: group title, discard reason, ... (raw)
    media_type: str | None = None
    contact: tuple[str, str] | None = None  # shared contact card: (full name, phone) raw
    extra_text: list[str] = field(default_factory=list)  # poll question/answers, sticker emoji
    reactions: int | None = None


@dataclass
class ReadStats:
    messages_read: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    total_bytes: int = 0
    bytes_read: int = 0
    digest: str | None = None
    bad_utf8: int = 0  # invalid UTF-8 sequences replaced by U+FFFD
    capped_messages: int = 0  # messages cut to the size limits
    capped: Counter = field(default_factory=Counter)  # what was cut (depth, values, chars) -> messages
    capped_ids: list[int | None] = field(default_factory=list)  # first ids of capped messages


def find_result_json(path: Path) -> Path:
    """PATH may be the result.json file or the export folder holding it."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "result.json"
        if candidate.is_file():
            return candidate
        if (path / "messages.html").exists() or (path / "export_results.html").exists():
            raise ExportError(f"{path} is an HTML export; export again from Telegram Desktop "
                              "with 'Format: Machine-readable JSON'")
        raise ExportError(f"no result.json in {path}; pass the Telegram Desktop export folder "
                          "or its result.json")
    if not path.is_file():
        raise ExportError(f"{path} does not exist; pass a Telegram Desktop export folder or result.json")
    return path


class ExportReader:
    """Iterate a Telegram Desktop export's messages in one streaming pass.

    ``chats`` fills in as the file is read and is complete once iteration ends; ``stats.digest``
    (a short SHA-256 of the file's bytes) is set only when the whole file has been read.
    """

    def __init__(self, path: Path, timezone: str = "Europe/Moscow",
                 on_read: Callable[[int, int], None] | None = None, chunk_size: int = 1 << 16) -> None:
        self.path = find_result_json(path)
        self.tz = ZoneInfo(timezone)
        self.on_read = on_read
        self.chunk_size = chunk_size
        self.chats: list[ChatInfo] = []
        self.layout: str | None = None  # single or account
        self.stats = ReadStats(total_bytes=self.path.stat().st_size)

    def __iter__(self) -> Iterator[Message]:
        total = self.stats.total_bytes
        cb = (lambda n: self.on_read(n, total)) if self.on_read else None
        with open(self.path, "rb") as fh:
            reader = CountingReader(fh, cb)
            try:
                yield from self._walk(prefixed(ijson.basic_parse(reader, buf_size=self.chunk_size)))
            except (ijson.JSONError, UnicodeDecodeError, ValueError, OverflowError) as exc:
                # the parser's own message quotes the file (personal data): never pass it on
                truncated = "premature EOF" in str(exc)
                what = ("ends before the JSON is complete (truncated)" if truncated
                        else "is not valid JSON (corrupted or truncated)")
                raise ExportError(self._bad_json(reader, what)) from None
            reader.drain()
            self.stats.bad_utf8 = reader.bad_utf8
            self.stats.bytes_read = reader.count
            self.stats.digest = reader.sha.hexdigest()[:16]

    def _bad_json(self, reader: CountingReader, what: str) -> str:
        return (f"{self.path.name} {what} near byte {reader.count:,} of {self.stats.total_bytes:,}; "
                "export again from Telegram Desktop (Format: JSON) and let it finish")

    def _note_capped(self, obj: Any, caps: Caps) -> None:
        self.stats.capped_messages += 1
        for what in caps.cut:
            self.stats.capped[what] += 1
        mid = obj.get("id") if isinstance(obj, dict) else None
        mid = mid if type(mid) is int else None
        if len(self.stats.capped_ids) < 20:
            self.stats.capped_ids.append(mid)
        log.warning("telegram export: message %s %s; the excess was dropped", mid if mid is not None else "?",
                    ", ".join(CAP_REASONS[w] for w in sorted(caps.cut)))

    def _walk(self, events: Iterator[tuple[str, str, Any]]) -> Iterator[Message]:
        first = True
        chat: ChatInfo | None = None
        for prefix, event, value in events:
            if first:
                first = False
                if event != "start_map":
                    raise ExportError(f"{self.path.name} is JSON but not a Telegram Desktop export "
                                      "(expected an object with 'messages' or 'chats'); "
                                      "export with Telegram Desktop > Export chat history > JSON")
                chat = ChatInfo(seq=0)  # the single-chat header lives at the top level
                continue
            if prefix in _MSG_PREFIXES and event not in ("end_array", "map_key"):
                caps = Caps()
                obj = build(events, event, caps) if event in ("start_map", "start_array") else value
                if caps.cut:
                    self._note_capped(obj, caps)
                owner = chat if prefix == "messages.item" else self.chats[-1]
                owner.messages += 1
                self.stats.messages_read += 1
                try:
                    yield normalize(obj, owner.seq, self.tz)
                except SkipMessage as exc:
                    self.stats.skipped[str(exc)] += 1
                continue
            if prefix in _CHAT_PREFIXES and event == "start_map":
                self.chats.append(ChatInfo(seq=len(self.chats) + 1, section=_CHAT_PREFIXES[prefix]))
                continue
            head, _, key = prefix.rpartition(".")
            if key in _HEADER_KEYS and event not in ("start_map", "start_array", "map_key"):
                target = chat if head == "" else (self.chats[-1] if head in _CHAT_PREFIXES else None)
                if target is not None:
                    _set_header(target, key, value)
                continue
            if event == "start_array" and prefix == "messages":
                self.layout = self.layout or "single"
                if chat not in self.chats:
                    self.chats.insert(0, chat)
            elif event == "start_array" and prefix == "chats.list":
                self.layout = "account"
            elif prefix in ("messages", "chats.list", "chats") and event not in (
                    "start_map", "start_array", "end_map", "end_array", "map_key"):
                raise ExportError(f"{self.path.name}: '{prefix}' is not a list; this is not a "
                                  "Telegram Desktop JSON export")
        if self.layout is None:
            raise ExportError(f"{self.path.name} is JSON but not a Telegram Desktop export (no "
                              "'messages' or 'chats' list); export with Telegram Desktop > "
                              "Export chat history (or Export Telegram data) > JSON")


def _set_header(chat: ChatInfo, key: str, value: Any) -> None:
    if key == "id":
        if type(value) is int and -MAX_ID <= value <= MAX_ID:
            chat.id = value
    elif isinstance(value, str):
        setattr(chat, key, _clean(value))


# -- normalizing one message -------------------------------------------------------------------

def _clean(s: str) -> str:
    """Strings that Arrow can store (lone surrogates from JSON escapes become U+FFFD)."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _opt_str(m: dict, key: str) -> str | None:
    v = m.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise SkipMessage(f"'{key}' is not a string")
    return _clean(v)


def _opt_int(m: dict, key: str) -> int | None:
    v = m.get(key)
    if v is None:
        return None
    if type(v) is not int or not 0 <= v <= MAX_ID:
        raise SkipMessage(f"'{key}' is not an integer")
    return v


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _when(m: dict, unix_key: str, local_key: str, tz: ZoneInfo) -> dt.datetime | None:
    """unix seconds -> naive local time in the account's zone; else the export's local string."""
    raw = m.get(unix_key)
    if raw is not None:
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 11:
            secs = int(raw)
        elif type(raw) is int and 0 <= raw < 10**11:
            secs = raw
        else:
            raise SkipMessage(f"'{unix_key}' is not unix seconds")
        try:
            return (_EPOCH + dt.timedelta(seconds=secs)).astimezone(tz).replace(tzinfo=None)
        except (OverflowError, ValueError):
            raise SkipMessage(f"'{unix_key}' is out of range") from None
    raw = m.get(local_key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SkipMessage(f"'{local_key}' is not a date string")
    try:
        return dt.datetime.fromisoformat(raw).replace(tzinfo=None)
    except ValueError:
        raise SkipMessage(f"'{local_key}' is not an ISO date") from None


def _text_parts(value: Any, key: str) -> list[tuple[str, str]]:
    """`text` / `text_entities`: a plain string, or a list of strings and {"type", "text"} objects."""
    if value is None:
        return []
    if isinstance(value, str):
        return [("plain", _clean(value))] if value else []
    if not isinstance(value, list):
        raise SkipMessage(f"'{key}' is neither a string nor a list")
    parts = []
    for item in _flat(value):
        if isinstance(item, str):
            parts.append(("plain", _clean(item)))
        elif isinstance(item, dict):
            text = item.get("text", "")
            kind = item.get("type", "plain")
            if not isinstance(text, str) or not isinstance(kind, str):
                raise SkipMessage(f"'{key}' has an entity with a non-string text or type")
            parts.append((kind if _SAFE_WORD.match(kind) else "plain", _clean(text)))
        else:
            raise SkipMessage(f"'{key}' has an item that is neither a string nor an entity")
    return parts


def _flat(items: list) -> Iterator[Any]:
    """The items of a list, nested lists flattened in order (no recursion: depth is capped anyway)."""
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _reactions(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise SkipMessage("'reactions' is not a list")
    total = 0
    for r in value:
        n = r.get("count", 0) if isinstance(r, dict) else None
        if type(n) is not int or n < 0:
            raise SkipMessage("'reactions' has a count that is not an integer")
        total += n
    return min(total, MAX_ID)


def _media(m: dict, msg: Message) -> None:
    if m.get("photo") is not None:
        msg.media_type = "photo"
    media_type = m.get("media_type")
    if media_type is not None:
        if not isinstance(media_type, str):
            raise SkipMessage("'media_type' is not a string")
        msg.media_type = media_type if _SAFE_WORD.match(media_type) else "file"
    elif m.get("file") is not None and msg.media_type is None:
        msg.media_type = "file"
    emoji = m.get("sticker_emoji")
    if isinstance(emoji, str) and emoji:
        msg.extra_text.append(_clean(emoji))
    poll = m.get("poll")
    if poll is not None:
        if not isinstance(poll, dict):
            raise SkipMessage("'poll' is not an object")
        msg.media_type = "poll"
        q = poll.get("question")
        if isinstance(q, str) and q:
            msg.extra_text.append(_clean(q))
        answers = poll.get("answers")
        if isinstance(answers, list):
            msg.extra_text.extend(_clean(a["text"]) for a in answers
                                  if isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"])
    contact = m.get("contact_information")
    if contact is not None:
        if not isinstance(contact, dict):
            raise SkipMessage("'contact_information' is not an object")
        msg.media_type = "contact"
        first = contact.get("first_name") if isinstance(contact.get("first_name"), str) else ""
        last = contact.get("last_name") if isinstance(contact.get("last_name"), str) else ""
        phone = contact.get("phone_number") if isinstance(contact.get("phone_number"), str) else ""
        msg.contact = (_clean(f"{first} {last}".strip()), _clean(phone))
    if m.get("location_information") is not None:
        msg.media_type = "venue" if m.get("place_name") is not None else "location"
    elif m.get("game_title") is not None:
        msg.media_type = "game"
    elif m.get("invoice_information") is not None:
        msg.media_type = "invoice"


def normalize(m: Any, chat_seq: int, tz: ZoneInfo) -> Message:
    """One export message -> Message, or SkipMessage(reason) when it is unusable."""
    if not isinstance(m, dict):
        raise SkipMessage("message is not an object")
    kind = m.get("type", "message")
    if kind not in MESSAGE_TYPES:
        name = kind if isinstance(kind, str) and _SAFE_WORD.match(kind) else "?"
        raise SkipMessage(f"unknown message type {name!r}")
    mid = m.get("id")
    if type(mid) is not int or not 0 <= mid <= MAX_ID:
        raise SkipMessage("'id' is not an integer")
    date = _when(m, "date_unixtime", "date", tz)
    if date is None:
        raise SkipMessage("no date")
    msg = Message(chat_seq=chat_seq, message_id=mid, date=date, kind=kind,
                  edited=_when(m, "edited_unixtime", "edited", tz))
    if "text_entities" in m and isinstance(m["text_entities"], list):
        msg.parts = _text_parts(m["text_entities"], "text_entities")
    else:
        msg.parts = _text_parts(m.get("text"), "text")
    msg.reply_to = _opt_int(m, "reply_to_message_id")
    msg.reactions = _reactions(m.get("reactions"))
    if kind == "service":
        msg.author = _opt_str(m, "actor")
        msg.author_ref = _opt_str(m, "actor_id")
        action = m.get("action")
        if action is not None and not isinstance(action, str):
            raise SkipMessage("'action' is not a string")
        msg.action = action if action is None or _SAFE_WORD.match(action) else "other"
        members = m.get("members")
        if members is not None:
            if not isinstance(members, list):
                raise SkipMessage("'members' is not a list")
            msg.members = [_clean(p) for p in members if isinstance(p, str) and p]
        if msg.action == "pin_message" and msg.reply_to is None:
            msg.reply_to = _opt_int(m, "message_id")  # the pinned message
        bits = []
        for key in ("title", "discard_reason", "inviter"):
            v = m.get(key)
            if isinstance(v, str) and v:
                bits.append(_clean(v))
        if type(m.get("duration_seconds")) is int:
            bits.append(f"{m['duration_seconds']} s")
        msg.service_text = " · ".join(bits) or None
    else:
        msg.author = _opt_str(m, "from")
        msg.author_ref = _opt_str(m, "from_id")
        msg.forwarded_from = _opt_str(m, "forwarded_from")
        fwd_id = m.get("forwarded_from_id")
        if isinstance(fwd_id, str) and fwd_id.startswith("channel"):
            msg.forwarded_is_person = False
        _media(m, msg)
    return msg
