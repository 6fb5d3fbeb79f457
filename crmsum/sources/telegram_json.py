"""Bounded JSON reading for Telegram exports: the byte stream ijson parses and the objects it builds.

Why a module of its own: these are the parts that keep a hostile export bounded, whatever it holds.
- `CountingReader` hands ijson valid UTF-8 (invalid sequences become U+FFFD and are counted) while
  counting and hashing the raw bytes for progress and the export digest;
- `prefixed` turns ijson's basic events into (prefix, event, value) like `ijson.parse`, but builds
  prefix strings only for the shallow levels that name messages and headers: ijson's own prefixes
  are as long as the depth and kept per level, so depth d cost d² memory and time;
- `build` makes one message object keeping at most MAX_DEPTH levels, MAX_VALUES values and
  MAX_FIELD_CHARS characters per string (MAX_MESSAGE_CHARS per message); what it cuts is noted in
  `Caps` so the reader can warn naming the message.
"""

from __future__ import annotations

import codecs
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ijson

MAX_DEPTH = 32  # nesting levels kept inside one message (real exports use 3)
MAX_VALUES = 100_000  # JSON values kept per message
MAX_FIELD_CHARS = 65_536  # characters kept per string (Telegram's own limit is 4,096)
MAX_MESSAGE_CHARS = 1_000_000  # characters kept per message, all strings together
PREFIX_DEPTH = 8  # prefixes deeper than this are never needed to find messages and headers


_UTF8_ERRORS = "crmsum-count-replace"
_bad_utf8 = threading.local()


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _bad_utf8.n = getattr(_bad_utf8, "n", 0) + 1
    return "\ufffd", exc.end


codecs.register_error(_UTF8_ERRORS, _count_replace)


class CountingReader:
    """File wrapper that counts and hashes the raw bytes ijson pulls through it, and hands ijson
    valid UTF-8: invalid sequences become U+FFFD and are counted (`bad_utf8`)."""

    def __init__(self, fh, on_read: Callable[[int], None] | None) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.count = 0
        self.bad_utf8 = 0
        self.on_read = on_read
        self._decoder = codecs.getincrementaldecoder("utf-8")(_UTF8_ERRORS)

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        if data:
            self.sha.update(data)
            self.count += len(data)
            if self.on_read is not None:
                self.on_read(self.count)
        before = getattr(_bad_utf8, "n", 0)
        text = self._decoder.decode(data, final=not data)
        self.bad_utf8 += getattr(_bad_utf8, "n", 0) - before
        if not data or text:
            return text.encode("utf-8")
        return self.read(n)  # only the start of a multi-byte sequence was read: read on

    def drain(self) -> None:
        """Read the rest (after the document) so the digest covers the whole file."""
        while data := self.fh.read(1 << 20):
            self.sha.update(data)
            self.count += len(data)


def prefixed(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str | None, str, Any]]:
    """ijson basic events -> (prefix, event, value) like `ijson.parse`, with the prefix string built
    only for the shallow levels that name messages and headers (None deeper): ijson's own prefixes
    are strings as long as the depth, kept per level, so depth d cost d² memory and time."""
    path: list[str | None] = []
    for event, value in events:
        if event == "map_key":
            depth = len(path) - 1
            prefix = ".".join(path[:-1]) if depth <= PREFIX_DEPTH else None  # type: ignore[arg-type]
            path[-1] = value
        elif event == "start_map" or event == "start_array":
            prefix = ".".join(path) if len(path) <= PREFIX_DEPTH else None  # type: ignore[arg-type]
            path.append(None if event == "start_map" else "item")
        elif event == "end_map" or event == "end_array":
            path.pop()
            prefix = ".".join(path) if len(path) <= PREFIX_DEPTH else None  # type: ignore[arg-type]
        else:
            prefix = ".".join(path) if len(path) <= PREFIX_DEPTH else None  # type: ignore[arg-type]
        yield prefix, event, value


CAP_REASONS = {"depth": f"is nested deeper than {MAX_DEPTH} levels",
               "values": f"has more than {MAX_VALUES:,} values",
               "chars": f"has a string longer than {MAX_FIELD_CHARS:,} characters",
               "total": f"has more than {MAX_MESSAGE_CHARS:,} characters of text"}


class Caps:
    """What `_build` cut from one message (reasons from CAP_REASONS) and the budget left."""

    __slots__ = ("cut", "values", "chars")

    def __init__(self) -> None:
        self.cut: set[str] = set()
        self.values = 0
        self.chars = 0


def build(events: Iterator[tuple[str | None, str, Any]], start: str = "start_map",
           caps: Caps | None = None) -> Any:
    """Build one object from the events after its start event (a fast ijson ObjectBuilder).

    Bounded: containers deeper than MAX_DEPTH, values past MAX_VALUES and characters past the string
    limits are consumed but not kept (noted in `caps`), so one hostile message costs bounded memory."""
    caps = caps if caps is not None else Caps()
    root: dict | list = {} if start == "start_map" else []
    stack: list = [root]
    key = None
    skip = 0  # depth inside a dropped container
    for _prefix, event, value in events:
        if skip:
            if event == "start_map" or event == "start_array":
                skip += 1
            elif event == "end_map" or event == "end_array":
                skip -= 1
            continue
        if event == "map_key":
            key = value
            continue
        top = stack[-1]
        if event == "end_map" or event == "end_array":
            stack.pop()
            if not stack:
                return root
            continue
        opening = event == "start_map" or event == "start_array"
        caps.values += 1
        if caps.values > MAX_VALUES or (opening and len(stack) >= MAX_DEPTH):
            caps.cut.add("values" if caps.values > MAX_VALUES else "depth")
            skip = 1 if opening else 0
            continue
        if event == "start_map":
            value = {}
        elif event == "start_array":
            value = []
        elif event == "string":
            value = _capped_string(value, caps)
        if type(top) is list:
            top.append(value)
        else:
            top[key] = value
        if opening:
            stack.append(value)
    raise ijson.IncompleteJSONError("premature end")


def _capped_string(value: str, caps: Caps) -> str:
    if len(value) > MAX_FIELD_CHARS:
        caps.cut.add("chars")
        value = value[:MAX_FIELD_CHARS]
    room = MAX_MESSAGE_CHARS - caps.chars
    if len(value) > room:
        caps.cut.add("total")
        value = value[:max(0, room)]
    caps.chars += len(value)
    return value
