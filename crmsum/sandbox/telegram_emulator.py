"""Telegram Bot API emulator: a real HTTP server on loopback that answers like api.telegram.org.

Why: the digest sender and the Q&A bot use pyTelegramBotAPI unchanged; tests point the library at
this server (`telebot.apihelper.API_URL = emu.url + "/bot{0}/{1}"`) instead of patching it. The
emulator validates what Telegram validates (HTML parse mode, length limits, inline keyboards), keeps
every outgoing message for assertions, queues incoming updates for real long polling, and injects
errors (429 flood waits, 403, 5xx) on demand.

    with TelegramEmulator(token="123:abc") as tg, tg.telebot_configured():
        bot = telebot.TeleBot("123:abc")
        tg.push_command(-100, "start")
        ...
        msg = tg.wait_for_sent(lambda m: m["chat_id"] == -100)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from crmsum.sandbox.httpserver import JsonHandler, Server

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_LONG_POLL = 50  # seconds, like the real server

_HTML_TAGS = {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
              "tg-spoiler", "span", "blockquote", "tg-emoji"}
_TAG_ENTITY = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
               "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
               "tg-spoiler": "spoiler", "span": "spoiler", "code": "code", "pre": "pre",
               "blockquote": "blockquote", "a": "text_link", "tg-emoji": "custom_emoji"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
                 "upload_document", "choose_sticker", "find_location", "record_video_note",
                 "upload_video_note"}
# Types delivered when allowed_updates is empty (the real default excludes these).
_OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class TelegramError(Exception):
    """An API error answered as {"ok": false, ...}."""

    def __init__(self, code: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description = code, description
        self.parameters: dict[str, int] = {}
        if retry_after is not None:
            self.parameters["retry_after"] = int(retry_after)
        if migrate_to_chat_id is not None:
            self.parameters["migrate_to_chat_id"] = int(migrate_to_chat_id)

    def payload(self) -> dict:
        out: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


def _bad(description: str) -> TelegramError:
    return TelegramError(400, "Bad Request: " + description)


# -- text helpers -----------------------------------------------------------------------------
def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: Telegram's unit for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode an HTML entity at text[i] == '&' like tdlib; None means a literal '&'."""
    end = text.find(";", i + 1, i + 12)
    if end < 0:
        return None
    body = text[i + 1:end]
    if body.startswith("#"):
        try:
            code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
            if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                return chr(code), end + 1 - i
        except ValueError:
            return None
        return None
    if body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], end + 1 - i
    return None


def parse_html(text: str) -> tuple[str, list[dict]]:
    """Parse Telegram's HTML parse mode into (plain text, entities) or raise a 400 like tdlib does.

    Supported: b/strong, i/em, u/ins, s/strike/del, a href, code, pre (code class="language-x"),
    tg-spoiler, span class="tg-spoiler", blockquote [expandable], tg-emoji emoji-id. Only &lt; &gt;
    &amp; &quot; and numeric entities are decoded; another '&' stays literal (as on the real server).
    """
    def err(msg: str) -> TelegramError:
        return _bad("can't parse entities: " + msg)

    def boff(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    out: list[str] = []
    pos16 = 0
    nested: list[dict] = []
    entities: list[dict] = []
    n, i = len(text), 0
    while i < n:
        c = text[i]
        if c == "&":
            dec = _decode_entity(text, i)
            if dec:
                out.append(dec[0])
                pos16 += utf16_len(dec[0])
                i += dec[1]
                continue
            out.append("&")
            pos16 += 1
            i += 1
            continue
        if c != "<":
            out.append(c)
            pos16 += utf16_len(c)
            i += 1
            continue
        begin = i
        if i + 1 < n and text[i + 1] == "/":  # end tag
            if not nested:
                raise err(f"Unexpected end tag at byte offset {boff(begin)}")
            j = i + 2
            while j < n and text[j] != ">":
                j += 1
            if j >= n:
                raise err(f"Unclosed end tag at byte offset {boff(begin)}")
            end_name = text[i + 2:j].strip().lower()
            top = nested.pop()
            if end_name and end_name != top["tag"]:
                raise err(f'Unmatched end tag at byte offset {boff(begin)}, expected "</{top["tag"]}>", '
                          f'found "</{end_name}>"')
            i = j + 1
            length = pos16 - top["offset"]
            if length > 0:
                ent = _make_entity(top, length, nested)
                if ent is not None:
                    entities.append(ent)
            continue
        # start tag
        j = i + 1
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= n:
            raise err(f"Unclosed start tag at byte offset {boff(begin)}")
        name = text[i + 1:j].lower()
        if name not in _HTML_TAGS:
            raise err(f'Unsupported start tag "{name}" at byte offset {boff(begin)}')
        attrs: dict[str, str] = {}
        while True:
            while j < n and text[j].isspace():
                j += 1
            if j >= n:
                raise err(f"Unclosed start tag at byte offset {boff(begin)}")
            if text[j] == ">":
                break
            k = j
            while k < n and (text[k].isalnum() or text[k] in "-_") and text[k] != "=":
                k += 1
            attr = text[j:k].lower()
            if not attr:
                raise err(f'Empty attribute name in the tag "{name}" at byte offset {boff(begin)}')
            j = k
            while j < n and text[j].isspace():
                j += 1
            if j >= n:
                raise err(f"Unclosed start tag at byte offset {boff(begin)}")
            if text[j] != "=":
                if name == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                raise err(f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                          f"at byte offset {boff(begin)}")
            j += 1
            while j < n and text[j].isspace():
                j += 1
            if j >= n:
                raise err(f"Unclosed start tag at byte offset {boff(begin)}")
            if text[j] in "\"'":
                q = text[j]
                k = text.find(q, j + 1)
                if k < 0:
                    raise err(f"Unclosed start tag at byte offset {boff(begin)}")
                raw = text[j + 1:k]
                j = k + 1
            else:
                k = j
                while k < n and not text[k].isspace() and text[k] != ">":
                    k += 1
                raw = text[j:k]
                j = k
            attrs[attr] = _unescape(raw)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise err(f'Tag "span" must have class "tg-spoiler" at byte offset {boff(begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise err(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {boff(begin)}')
        nested.append({"tag": name, "attrs": attrs, "offset": pos16})
        i = j + 1
    if nested:
        raise err(f'Can\'t find end tag corresponding to start tag "{nested[-1]["tag"]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _unescape(raw: str) -> str:
    res, i = [], 0
    while i < len(raw):
        if raw[i] == "&":
            dec = _decode_entity(raw, i)
            if dec:
                res.append(dec[0])
                i += dec[1]
                continue
        res.append(raw[i])
        i += 1
    return "".join(res)


def _make_entity(tag: dict, length: int, parents: list[dict]) -> dict | None:
    name, attrs = tag["tag"], tag["attrs"]
    ent: dict[str, Any] = {"offset": tag["offset"], "length": length, "type": _TAG_ENTITY[name]}
    if name == "a":
        href = attrs.get("href", "")
        m = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if m:
            ent.update(type="text_mention", user={"id": int(m.group(1)), "is_bot": False, "first_name": ""})
        elif href:
            ent["url"] = href
        else:
            return None
    elif name == "code":
        lang = attrs.get("class", "")
        if parents and parents[-1]["tag"] == "pre" and lang.startswith("language-"):
            parents[-1]["attrs"]["_language"] = lang[len("language-"):]
            return None
    elif name == "pre":
        if attrs.get("_language"):
            ent["language"] = attrs["_language"]
    elif name == "blockquote" and "expandable" in attrs:
        ent["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        ent["custom_emoji_id"] = attrs["emoji-id"]
    return ent


def format_text(text: Any, parse_mode: str | None, entities: Any, *, what: str = "text") -> tuple[str, list[dict]]:
    """Apply parse_mode/entities, trim like Telegram, and return (text, entities)."""
    text = "" if text is None else str(text)
    mode = (parse_mode or "").strip()
    if mode.lower() == "html":
        plain, ents = parse_html(text)
    elif mode.lower() in ("", "none"):
        plain, ents = text, []
        if entities:
            ents = _json_param(entities, "can't parse entities JSON object") if isinstance(entities, str) else entities
            if not isinstance(ents, list):
                raise _bad("can't parse entities JSON object")
    elif mode.lower() in ("markdown", "markdownv2"):
        plain, ents = text, []  # stored as sent; only HTML is validated by this emulator
    else:
        raise _bad("unsupported parse_mode")
    # Telegram trims surrounding whitespace and shifts entity offsets accordingly.
    lead = len(plain) - len(plain.lstrip())
    stripped = plain.strip()
    if lead:
        shift = utf16_len(plain[:lead])
        ents = [dict(e, offset=e["offset"] - shift) for e in ents]
    total = utf16_len(stripped)
    fixed = []
    for e in ents:
        start, end = max(0, e["offset"]), min(total, e["offset"] + e["length"])
        if end > start:
            fixed.append(dict(e, offset=start, length=end - start))
    return stripped, fixed


def _json_param(value: Any, error: str) -> Any:
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise _bad(error) from None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG/JPEG/GIF/WebP, or None if the bytes are not an image."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return (512, 512)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            seg = struct.unpack(">H", data[i + 2:i + 4])[0]
            i += 2 + seg
        return (800, 600)
    return None


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split multipart/form-data into (fields, files{name: (filename, bytes)})."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise _bad("invalid multipart/form-data: no boundary")
    delim = b"--" + m.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-disposition":
                disp = v
        params = dict((k.lower(), v.strip('"')) for k, v in re.findall(r'([\w*]+)=("[^"]*"|[^;]+)', disp))
        name = params.get("name", "")
        filename = params.get("filename")
        if filename is None and "filename*" in params:
            filename = params["filename*"].split("''", 1)[-1]
        if filename is not None:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("true", "1")


# -- the emulator -----------------------------------------------------------------------------
class TelegramEmulator:
    """In-memory Bot API with test hooks; thread-safe (one lock + condition for long polling).

    Args:
        token: the bot token the server accepts (others get 401 Unauthorized).
        bot_id, bot_username, bot_first_name: what getMe returns and what `from` of sent messages is.
        strict_chats: if True, sending to a chat nobody pushed/added answers 400 "chat not found";
            by default unknown chats are created on first send (a group for negative ids).
        host, port: where to listen (port 0 picks a free one).
    """

    def __init__(self, token: str = "123456789:TEST-emulator-token", *, bot_id: int | None = None,
                 bot_username: str = "crmsum_test_bot", bot_first_name: str = "crmsum",
                 strict_chats: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        head = token.split(":", 1)[0]
        self.bot_user = {"id": bot_id or (int(head) if head.isdigit() else 777000001), "is_bot": True,
                         "first_name": bot_first_name, "username": bot_username}
        self.strict_chats = strict_chats
        self.host, self.port = host, port
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._server: Server | None = None
        self._stopping = False
        self._reset_state()

    def _reset_state(self) -> None:
        self._updates: list[dict] = []
        self._next_update_id = 100000001
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._chats: dict[int, dict] = {}
        self._chat_seq: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._sent: list[dict] = []
        self._files: dict[str, dict] = {}
        self._callbacks: dict[str, dict] = {}
        self._failures: list[dict] = []
        self._blocked: set[int] = set()
        self._commands: dict[str, list[dict]] = {}
        self._webhook_url = ""
        self._cb_seq = 0
        self.chat_actions: list[dict] = []
        self.answered_callbacks: list[dict] = []
        self.api_calls: list[dict] = []
        self.deleted: list[dict] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "TelegramEmulator":
        if self._server is None:
            self._stopping = False
            self._server = Server(_TelegramHandler, self, self.host, self.port).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()  # release long polls so clients get an answer
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "TelegramEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL (like https://api.telegram.org): set CRMSUM_TELEGRAM_API_URL to it."""
        if self._server is None:
            raise RuntimeError("TelegramEmulator is not started")
        return self._server.url

    @property
    def api_url(self) -> str:
        """Template for `telebot.apihelper.API_URL`."""
        return self.url + "/bot{0}/{1}"

    @property
    def file_url(self) -> str:
        """Template for `telebot.apihelper.FILE_URL`."""
        return self.url + "/file/bot{0}/{1}"

    @contextmanager
    def telebot_configured(self) -> Iterator["TelegramEmulator"]:
        """Point pyTelegramBotAPI (process-global API_URL/FILE_URL) here for the block, then restore."""
        from telebot import apihelper

        old = apihelper.API_URL, apihelper.FILE_URL
        apihelper.API_URL, apihelper.FILE_URL = self.api_url, self.file_url
        try:
            yield self
        finally:
            apihelper.API_URL, apihelper.FILE_URL = old

    # -- test hooks: incoming side ----------------------------------------------------------
    def add_chat(self, chat_id: int, chat_type: str | None = None, title: str | None = None,
                 first_name: str | None = None, username: str | None = None) -> dict:
        """Register a chat (what the bot is a member of); returns the Chat object."""
        with self._lock:
            return copy.deepcopy(self._ensure_chat(chat_id, chat_type, title, first_name, username))

    def block_chat(self, chat_id: int) -> None:
        """From now on sending to this chat answers 403 'Forbidden: bot was blocked by the user'."""
        with self._lock:
            self._blocked.add(int(chat_id))

    def push_update(self, update: dict) -> dict:
        """Queue a raw update (update_id is assigned); returns it."""
        with self._cond:
            upd = dict(update)
            upd["update_id"] = self._next_update_id
            self._next_update_id += 1
            self._updates.append(upd)
            self._cond.notify_all()
            return copy.deepcopy(upd)

    def push_message(self, chat_id: int, text: str, *, user_id: int = 1001, first_name: str = "Tester",
                     last_name: str | None = None, username: str | None = None,
                     chat_type: str | None = None, chat_title: str | None = None,
                     date: int | None = None, reply_to_message_id: int | None = None) -> dict:
        """A user writes `text` in `chat_id`; returns the queued update (update["message"] is the Message)."""
        with self._lock:
            if chat_type is None and int(chat_id) > 0:
                chat_type = "private"
            chat = self._ensure_chat(chat_id, chat_type, chat_title,
                                     first_name if (chat_type or "private") == "private" else None, username)
            user: dict[str, Any] = {"id": int(user_id), "is_bot": False, "first_name": first_name,
                                    "language_code": "ru"}
            if last_name:
                user["last_name"] = last_name
            if username:
                user["username"] = username
            msg: dict[str, Any] = {"message_id": self._next_message_id(chat["id"]), "from": user,
                                   "chat": copy.deepcopy(chat), "date": int(date or time.time()), "text": text}
            m = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
            if m:
                msg["entities"] = [{"offset": 0, "length": utf16_len(m.group(0)), "type": "bot_command"}]
            if reply_to_message_id is not None:
                orig = self._messages.get((chat["id"], int(reply_to_message_id)))
                if orig:
                    msg["reply_to_message"] = copy.deepcopy(orig)
            self._messages[(chat["id"], msg["message_id"])] = msg
            return self.push_update({"message": msg})

    def push_command(self, chat_id: int, command: str, args: str = "", *, mention: bool = False,
                     **kwargs: Any) -> dict:
        """A user sends `/command args` (with @botname when mention=True)."""
        text = "/" + command.lstrip("/")
        if mention:
            text += "@" + self.bot_user["username"]
        if args:
            text += " " + args
        return self.push_message(chat_id, text, **kwargs)

    def push_callback(self, chat_id: int, message_id: int, data: str, *, user_id: int = 1001,
                      first_name: str = "Tester", username: str | None = None) -> dict:
        """A user presses an inline button with callback `data` under a message the bot sent."""
        with self._lock:
            chat_id = int(chat_id)
            msg = self._messages.get((chat_id, int(message_id)))
            if msg is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            self._cb_seq += 1
            user: dict[str, Any] = {"id": int(user_id), "is_bot": False, "first_name": first_name,
                                    "language_code": "ru"}
            if username:
                user["username"] = username
            cb_id = str(4_000_000_000_000 + self._cb_seq * 7919)
            cq = {"id": cb_id, "from": user, "message": copy.deepcopy(msg),
                  "chat_instance": str(abs(hash((chat_id, self.token))) % 10**18), "data": data}
            self._callbacks[cb_id] = cq
            return self.push_update({"callback_query": cq})

    # -- test hooks: outgoing side ----------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Outgoing messages/photos/documents/edits in order: dicts with method, chat_id, message_id,
        text, caption, parse_mode, entities, reply_markup, photo (bytes), filename, message (API object),
        monotonic (`time.monotonic()` when the server accepted it)."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._sent if chat_id is None or r["chat_id"] == int(chat_id)]

    def sent_count(self) -> int:
        """How many outgoing records there are (the `since` of a later `wait_for_sent`), without copying
        them: `len(sent())` deep-copies every record under the server's lock, which stalls the API."""
        with self._lock:
            return len(self._sent)

    def wait_for_sent(self, predicate: Callable[[dict], bool] | None = None, timeout: float = 5.0, *,
                      since: int = 0) -> dict:
        """Block until an outgoing record (index >= since) matches; return it or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self._sent[since:]:
                    if predicate is None or predicate(r):
                        return copy.deepcopy(r)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching outgoing message within {timeout}s "
                                       f"({len(self._sent)} sent)")
                self._cond.wait(left)

    def wait_for(self, predicate: Callable[["TelegramEmulator"], bool], timeout: float = 5.0) -> None:
        """Block until predicate(emulator) is true (re-checked on every API call)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cond.wait(min(left, 0.2))

    @property
    def commands(self) -> list[dict]:
        """Commands set with setMyCommands for the default scope and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(None, None), []))

    def commands_for(self, scope: dict | None = None, language_code: str | None = None) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    @property
    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def file_bytes(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id]["data"]

    def fail_next(self, method: str, error_code: int = 429, retry_after: int | None = None, times: int = 1,
                  description: str | None = None) -> None:
        """Make the next `times` calls of `method` ("*" = any except getUpdates) fail like Telegram.

        429 answers "Too Many Requests: retry after N" with parameters.retry_after = N (default 1).
        """
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = {
                400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
                404: "Not Found", 409: "Conflict", 429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error", 502: "Bad Gateway",
            }.get(error_code, "Error")
        with self._lock:
            self._failures.append({"method": method.lower(), "code": error_code, "retry_after": retry_after,
                                   "description": description, "times": times})

    def reset(self) -> None:
        """Forget all updates, chats, messages and injected failures."""
        with self._cond:
            self._reset_state()
            self._cond.notify_all()

    # -- internals ------------------------------------------------------------------------
    def _ensure_chat(self, chat_id: Any, chat_type: str | None = None, title: str | None = None,
                     first_name: str | None = None, username: str | None = None) -> dict:
        cid = int(chat_id)
        chat = self._chats.get(cid)
        if chat is None:
            if chat_type is None:
                chat_type = "private" if cid > 0 else ("supergroup" if str(cid).startswith("-100") else "group")
            chat = {"id": cid, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = first_name or "User"
                if username:
                    chat["username"] = username
            else:
                chat["title"] = title or f"Chat {cid}"
            self._chats[cid] = chat
        elif title and chat.get("type") != "private":
            chat["title"] = title
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        self._chat_seq[chat_id] = self._chat_seq.get(chat_id, 0) + 1
        return self._chat_seq[chat_id]

    @staticmethod
    def _scope_key(scope: Any, language_code: Any) -> str:
        if isinstance(scope, str):
            try:
                scope = json.loads(scope)
            except ValueError:
                scope = None
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + (language_code or "")

    def _take_failure(self, method: str) -> TelegramError | None:
        for f in self._failures:
            if f["method"] == method.lower() or (f["method"] == "*" and method.lower() != "getupdates"):
                f["times"] -= 1
                if f["times"] <= 0:
                    self._failures.remove(f)
                return TelegramError(f["code"], f["description"], retry_after=f["retry_after"]
                                     if f["code"] == 429 else None)
        return None

    def _target_chat(self, params: dict) -> dict:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        try:
            cid = int(raw)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None
        if cid in self._blocked:
            raise TelegramError(403, "Forbidden: bot was blocked by the user")
        if cid not in self._chats and self.strict_chats:
            raise _bad("chat not found")
        return self._ensure_chat(cid)

    def _reply_markup(self, params: dict) -> dict | None:
        raw = params.get("reply_markup")
        if raw in (None, ""):
            return None
        markup = _json_param(raw, "can't parse reply keyboard markup JSON object")
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            for row in rows:
                for b in row:
                    if not isinstance(b, dict) or not str(b.get("text", "")).strip():
                        raise _bad("BUTTON_TEXT_INVALID" if isinstance(b, dict) else
                                   "can't parse inline keyboard button: InlineKeyboardButton must be an Object")
                    kinds = set(b) & {"url", "callback_data", "switch_inline_query", "web_app", "login_url",
                                      "switch_inline_query_current_chat", "copy_text", "pay", "callback_game",
                                      "switch_inline_query_chosen_chat"}
                    if not kinds:
                        raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the "
                                   "inline keyboard")
                    if "callback_data" in b and not 1 <= len(str(b["callback_data"]).encode()) <= MAX_CALLBACK_DATA:
                        raise _bad("BUTTON_DATA_INVALID")
                    if "url" in b and not re.match(r"^(https?|tg)://\S+$", str(b["url"])):
                        raise _bad("BUTTON_URL_INVALID")
        return markup

    def _record(self, method: str, chat: dict, msg: dict, params: dict, **extra: Any) -> None:
        rec = {"method": method, "chat_id": chat["id"], "message_id": msg["message_id"],
               "text": msg.get("text"), "caption": msg.get("caption"), "parse_mode": params.get("parse_mode"),
               "entities": msg.get("entities") or msg.get("caption_entities") or [],
               "reply_markup": msg.get("reply_markup"), "photo": None, "filename": None,
               "raw_text": params.get("text", params.get("caption")), "date": msg.get("edit_date", msg["date"]),
               "monotonic": time.monotonic(), "message": copy.deepcopy(msg)}
        rec.update(extra)
        self._sent.append(rec)

    def _new_bot_message(self, chat: dict, params: dict) -> dict:
        msg: dict[str, Any] = {"message_id": self._next_message_id(chat["id"]), "from": dict(self.bot_user),
                               "chat": copy.deepcopy(chat), "date": int(time.time())}
        rtm = params.get("reply_to_message_id")
        rp = params.get("reply_parameters")
        if rp:
            rp = _json_param(rp, "can't parse reply parameters JSON object")
            rtm = rp.get("message_id") if isinstance(rp, dict) else None
        if rtm not in (None, ""):
            orig = self._messages.get((chat["id"], int(rtm)))
            if orig is None:
                raise _bad("message to be replied not found")
            msg["reply_to_message"] = copy.deepcopy(orig)
        return msg

    def _store_file(self, filename: str, data: bytes, kind: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        file_unique_id = "AQAD" + digest[:12]
        file_id = f"{kind[:2].upper()}ACAgIAAxkBAA{digest[:24]}{len(self._files):04d}"
        ext = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        info = {"file_id": file_id, "file_unique_id": file_unique_id, "file_size": len(data),
                "file_path": f"{kind}/file_{len(self._files)}.{ext}", "data": data, "filename": filename}
        self._files[file_id] = info
        return info

    # -- API methods ------------------------------------------------------------------------
    def call(self, method: str, params: dict, files: dict[str, tuple[str, bytes]]) -> dict:
        """Run one API method; returns the JSON payload (raises TelegramError for ok=false)."""
        key = method.lower()
        handler = _METHODS.get(key)
        if handler is None:
            raise TelegramError(404, "Not Found")
        with self._cond:
            self.api_calls.append({"method": method, "params": {k: v for k, v in params.items()},
                                   "files": {k: v[0] for k, v in files.items()}})
            failure = self._take_failure(method)
            self._cond.notify_all()
            if failure:
                raise failure
            if key == "getupdates":
                return {"ok": True, "result": self._get_updates(params)}
            result = handler(self, params, files)
            self._cond.notify_all()
            return {"ok": True, "result": result}

    def _get_updates(self, params: dict) -> list[dict]:
        if self._webhook_url:
            raise TelegramError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                     "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, min(float(params.get("timeout") or 0), MAX_LONG_POLL))
        allowed = params.get("allowed_updates")
        if allowed not in (None, ""):
            allowed = _json_param(allowed, "can't parse allowed_updates JSON array")
            self._allowed_updates = list(allowed) if isinstance(allowed, list) else []
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()
        # confirm: offset drops every earlier update; a negative offset keeps only the last -offset
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = time.monotonic() + timeout
        while True:
            self._drop_unwanted()
            if self._updates or self._stopping:
                return copy.deepcopy(self._updates[:limit])
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._cond.wait(left)
            if self._poll_generation != generation:
                raise TelegramError(409, "Conflict: terminated by other getUpdates request; "
                                         "make sure that only one bot instance is running")

    def _drop_unwanted(self) -> None:
        allowed = set(self._allowed_updates)

        def wanted(u: dict) -> bool:
            kind = next((k for k in u if k != "update_id"), "")
            return kind in allowed if allowed else kind not in _OPT_IN_UPDATES

        self._updates = [u for u in self._updates if wanted(u)]

    def _get_me(self, params: dict, files: dict) -> dict:
        return dict(self.bot_user, can_join_groups=True, can_read_all_group_messages=False,
                    supports_inline_queries=False, can_connect_to_business=False, has_main_web_app=False)

    def _send_message(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params)
        raw = params.get("text")
        if raw is None or str(raw) == "":
            raise _bad("message text is empty")
        text, ents = format_text(raw, params.get("parse_mode"), params.get("entities"))
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = self._reply_markup(params)
        msg = self._new_bot_message(chat, params)
        msg["text"] = text
        if ents:
            msg["entities"] = ents
        if markup and "inline_keyboard" in markup:
            msg["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        self._messages[(chat["id"], msg["message_id"])] = msg
        self._record("sendMessage", chat, msg, params, request_reply_markup=markup)
        return copy.deepcopy(msg)

    def _caption(self, params: dict) -> tuple[str, list[dict]]:
        caption, ents = format_text(params.get("caption"), params.get("parse_mode"),
                                    params.get("caption_entities"), what="caption")
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        return caption, ents

    def _upload(self, params: dict, files: dict, field: str) -> tuple[dict, bytes | None, str | None]:
        if field in files:
            filename, data = files[field]
            if not data:
                raise _bad("file must be non-empty")
            return self._store_file(filename or field, data, field + "s"), data, filename
        ref = params.get(field)
        if isinstance(ref, str) and ref.startswith("attach://"):
            name = ref[len("attach://"):]
            if name in files:
                filename, data = files[name]
                return self._store_file(filename or name, data, field + "s"), data, filename
        if isinstance(ref, str) and ref in self._files:
            info = self._files[ref]
            return info, info["data"], info["filename"]
        if ref in (None, ""):
            raise _bad(f"there is no {field} in the request")
        raise _bad("wrong file identifier/HTTP URL specified")

    def _send_photo(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params)
        caption, ents = self._caption(params)
        info, data, filename = self._upload(params, files, "photo")
        size = _image_size(data or b"")
        if size is None or min(size) <= 0:
            raise _bad("IMAGE_PROCESS_FAILED")
        markup = self._reply_markup(params)
        msg = self._new_bot_message(chat, params)
        w, h = size
        sizes = []
        for side in (90, 320, 800, 1280):
            scale = side / max(w, h)
            if scale < 1:
                sizes.append((side, max(1, round(w * scale)), max(1, round(h * scale))))
        sizes.append((0, w, h))
        msg["photo"] = [{"file_id": info["file_id"] + (f"_{s}" if s else ""),
                         "file_unique_id": info["file_unique_id"] + (f"{s}" if s else ""),
                         "file_size": len(data or b"") if not s else max(1, len(data or b"") * s // max(w, h)),
                         "width": sw, "height": sh} for s, sw, sh in sizes]
        if caption:
            msg["caption"] = caption
            if ents:
                msg["caption_entities"] = ents
        if markup and "inline_keyboard" in markup:
            msg["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        self._messages[(chat["id"], msg["message_id"])] = msg
        self._record("sendPhoto", chat, msg, params, photo=data, filename=filename, request_reply_markup=markup)
        return copy.deepcopy(msg)

    def _send_document(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params)
        caption, ents = self._caption(params)
        info, data, filename = self._upload(params, files, "document")
        markup = self._reply_markup(params)
        msg = self._new_bot_message(chat, params)
        msg["document"] = {"file_name": filename or "file", "mime_type": "application/octet-stream",
                           "file_id": info["file_id"], "file_unique_id": info["file_unique_id"],
                           "file_size": len(data or b"")}
        if caption:
            msg["caption"] = caption
            if ents:
                msg["caption_entities"] = ents
        if markup and "inline_keyboard" in markup:
            msg["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        self._messages[(chat["id"], msg["message_id"])] = msg
        self._record("sendDocument", chat, msg, params, document=data, filename=filename)
        return copy.deepcopy(msg)

    def _message_to_edit(self, params: dict) -> tuple[dict, dict]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._target_chat(params)
        try:
            mid = int(params.get("message_id"))
        except (TypeError, ValueError):
            raise _bad("message identifier is not specified") from None
        msg = self._messages.get((chat["id"], mid))
        if msg is None:
            raise _bad("message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad("message can't be edited")
        return chat, msg

    _NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly "
                     "the same as a current content and reply markup of the message")

    def _edit_message_text(self, params: dict, files: dict) -> dict:
        chat, msg = self._message_to_edit(params)
        if "text" not in msg:
            raise _bad("there is no text in the message to edit")
        raw = params.get("text")
        if raw is None or str(raw) == "":
            raise _bad("message text is empty")
        text, ents = format_text(raw, params.get("parse_mode"), params.get("entities"))
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = self._reply_markup(params)
        new_markup = {"inline_keyboard": markup["inline_keyboard"]} if markup and "inline_keyboard" in markup else None
        if text == msg.get("text") and ents == msg.get("entities", []) and new_markup == msg.get("reply_markup"):
            raise _bad(self._NOT_MODIFIED)
        msg["text"] = text
        msg.pop("entities", None)
        if ents:
            msg["entities"] = ents
        msg.pop("reply_markup", None)
        if new_markup:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        self._record("editMessageText", chat, msg, params)
        return copy.deepcopy(msg)

    def _edit_message_caption(self, params: dict, files: dict) -> dict:
        chat, msg = self._message_to_edit(params)
        if "text" in msg:
            raise _bad("there is no caption in the message to edit")
        caption, ents = self._caption(params)
        markup = self._reply_markup(params)
        new_markup = {"inline_keyboard": markup["inline_keyboard"]} if markup and "inline_keyboard" in markup else None
        if caption == msg.get("caption", "") and ents == msg.get("caption_entities", []) \
                and new_markup == msg.get("reply_markup"):
            raise _bad(self._NOT_MODIFIED)
        for k in ("caption", "caption_entities", "reply_markup"):
            msg.pop(k, None)
        if caption:
            msg["caption"] = caption
        if ents:
            msg["caption_entities"] = ents
        if new_markup:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        self._record("editMessageCaption", chat, msg, params)
        return copy.deepcopy(msg)

    def _edit_message_reply_markup(self, params: dict, files: dict) -> dict:
        chat, msg = self._message_to_edit(params)
        markup = self._reply_markup(params)
        new_markup = {"inline_keyboard": markup["inline_keyboard"]} if markup and "inline_keyboard" in markup else None
        if new_markup == msg.get("reply_markup"):
            raise _bad(self._NOT_MODIFIED)
        msg.pop("reply_markup", None)
        if new_markup:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        self._record("editMessageReplyMarkup", chat, msg, params)
        return copy.deepcopy(msg)

    def _delete_message(self, params: dict, files: dict) -> bool:
        chat = self._target_chat(params)
        try:
            mid = int(params.get("message_id"))
        except (TypeError, ValueError):
            raise _bad("message identifier is not specified") from None
        if self._messages.pop((chat["id"], mid), None) is None:
            raise _bad("message to delete not found")
        self.deleted.append({"chat_id": chat["id"], "message_id": mid})
        return True

    def _send_chat_action(self, params: dict, files: dict) -> bool:
        chat = self._target_chat(params)
        action = params.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self.chat_actions.append({"chat_id": chat["id"], "action": action, "time": time.time()})
        return True

    def _answer_callback_query(self, params: dict, files: dict) -> bool:
        cb_id = str(params.get("callback_query_id") or "")
        if cb_id not in self._callbacks:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        cq = self._callbacks.pop(cb_id)
        self.answered_callbacks.append({"callback_query_id": cb_id, "text": text,
                                        "show_alert": _truthy(params.get("show_alert")),
                                        "url": params.get("url"), "cache_time": params.get("cache_time"),
                                        "data": cq.get("data"), "user_id": cq["from"]["id"]})
        return True

    def _set_my_commands(self, params: dict, files: dict) -> bool:
        cmds = _json_param(params.get("commands", "[]"), "can't parse commands JSON object")
        if not isinstance(cmds, list) or len(cmds) > 100:
            raise _bad("can't parse commands JSON object")
        clean = []
        for c in cmds:
            if not isinstance(c, dict) or not _COMMAND_RE.match(str(c.get("command", "")).lstrip("/")):
                raise _bad("BOT_COMMAND_INVALID")
            desc = str(c.get("description", ""))
            if not 1 <= len(desc) <= 256:
                raise _bad("command description is empty" if not desc else "BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": str(c["command"]).lstrip("/"), "description": desc})
        self._commands[self._scope_key(params.get("scope"), params.get("language_code"))] = clean
        return True

    def _get_my_commands(self, params: dict, files: dict) -> list:
        return copy.deepcopy(self._commands.get(self._scope_key(params.get("scope"), params.get("language_code")), []))

    def _delete_my_commands(self, params: dict, files: dict) -> bool:
        self._commands.pop(self._scope_key(params.get("scope"), params.get("language_code")), None)
        return True

    def _set_webhook(self, params: dict, files: dict) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook_url = url
        return True

    def _delete_webhook(self, params: dict, files: dict) -> bool:
        self._webhook_url = ""
        if _truthy(params.get("drop_pending_updates")):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict, files: dict) -> dict:
        return {"url": self._webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    def _get_chat(self, params: dict, files: dict) -> dict:
        raw = params.get("chat_id")
        try:
            chat = self._chats[int(raw)]
        except (TypeError, ValueError, KeyError):
            raise _bad("chat not found") from None
        return dict(chat, accent_color_id=0, max_reaction_count=11, accepted_gift_types={
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
            "premium_subscription": False, "gifts_from_channels": False})

    def _get_file(self, params: dict, files: dict) -> dict:
        fid = str(params.get("file_id") or "")
        base = fid.rsplit("_", 1)[0] if fid not in self._files else fid
        info = self._files.get(base)
        if info is None:
            raise _bad("invalid file_id")
        return {k: info[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _log_out(self, params: dict, files: dict) -> bool:
        return True


_METHODS: dict[str, Callable[[TelegramEmulator, dict, dict], Any]] = {
    "getme": TelegramEmulator._get_me,
    "getupdates": lambda self, p, f: None,  # handled in call() (needs the condition)
    "sendmessage": TelegramEmulator._send_message,
    "sendphoto": TelegramEmulator._send_photo,
    "senddocument": TelegramEmulator._send_document,
    "editmessagetext": TelegramEmulator._edit_message_text,
    "editmessagecaption": TelegramEmulator._edit_message_caption,
    "editmessagereplymarkup": TelegramEmulator._edit_message_reply_markup,
    "deletemessage": TelegramEmulator._delete_message,
    "sendchataction": TelegramEmulator._send_chat_action,
    "answercallbackquery": TelegramEmulator._answer_callback_query,
    "setmycommands": TelegramEmulator._set_my_commands,
    "getmycommands": TelegramEmulator._get_my_commands,
    "deletemycommands": TelegramEmulator._delete_my_commands,
    "setwebhook": TelegramEmulator._set_webhook,
    "deletewebhook": TelegramEmulator._delete_webhook,
    "getwebhookinfo": TelegramEmulator._get_webhook_info,
    "getchat": TelegramEmulator._get_chat,
    "getfile": TelegramEmulator._get_file,
    "logout": TelegramEmulator._log_out,
    "close": TelegramEmulator._log_out,
}


class _TelegramHandler(JsonHandler):
    server_version = "nginx/1.18.0"

    def route(self, method: str) -> None:
        app: TelegramEmulator = self.app
        path = self.path_only
        try:
            fm = re.fullmatch(r"/file/bot([^/]+)/(.+)", path)
            if fm:
                self._serve_file(app, fm.group(1), fm.group(2))
                return
            m = re.fullmatch(r"/bot([^/]+)/([A-Za-z_]*)/?", path)
            if not m or not m.group(2):
                raise TelegramError(404, "Not Found")
            if m.group(1) != app.token:
                raise TelegramError(401, "Unauthorized")
            params, files = self._params()
            payload = app.call(m.group(2), params, files)
            self.send_json(200, payload)
        except TelegramError as e:
            headers = {"Retry-After": str(e.parameters["retry_after"])} if "retry_after" in e.parameters else None
            self.send_json(e.code, e.payload(), headers=headers)
        except Exception as exc:  # an emulator bug: answer like Telegram's 500, keep the server alive
            log.exception("telegram emulator failed on %s", path)
            self.send_json(500, {"ok": False, "error_code": 500,
                                 "description": f"Internal Server Error: {type(exc).__name__}"})

    def _params(self) -> tuple[dict, dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(self.query)
        files: dict[str, tuple[str, bytes]] = {}
        body = self.body_bytes()
        ctype = (self.headers.get("Content-Type") or "").lower()
        if body:
            if ctype.startswith("application/json"):
                try:
                    data = json.loads(body)
                except ValueError:
                    raise _bad("can't parse JSON object") from None
                if not isinstance(data, dict):
                    raise _bad("can't parse JSON object")
                params.update(data)
            elif ctype.startswith("multipart/form-data"):
                fields, files = parse_multipart(body, self.headers.get("Content-Type") or "")
                params.update(fields)
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params, files

    def _serve_file(self, app: TelegramEmulator, token: str, file_path: str) -> None:
        if token != app.token:
            raise TelegramError(401, "Unauthorized")
        with app._lock:
            info = next((f for f in app._files.values() if f["file_path"] == file_path), None)
        if info is None:
            raise TelegramError(404, "Not Found")
        data = info["data"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    """`python -m crmsum.sandbox.telegram_emulator --port 8081 --token T`: run until Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="123456789:TEST-emulator-token")
    args = ap.parse_args(argv)
    emu = TelegramEmulator(token=args.token, host=args.host, port=args.port).start()
    print(f"Telegram Bot API emulator on {emu.url} (CRMSUM_TELEGRAM_API_URL)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
