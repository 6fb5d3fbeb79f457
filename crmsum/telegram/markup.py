"""Telegram HTML: escaping and splitting into messages that Telegram accepts.

Why a splitter of our own: Telegram counts the limit (4,096 per message, 1,024 per caption) on the
text *after* entity parsing, and a message cut inside a tag or an entity is rejected as a whole.
`split_html` cuts at paragraph boundaries first, then lines, then words, and only as a last resort
inside a word; it never cuts a tag or an entity (`&amp;`), and it closes tags still open at a cut
and reopens them in the next part. Lengths are counted in UTF-16 code units (never less than
Telegram's own count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MESSAGE = 4096
MAX_CAPTION = 1024

_TOKEN_RE = re.compile(r"<[^>]*>|&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);|[^<&]+|[<&]", re.S)
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def escape(text: object) -> str:
    """Text -> HTML-safe text for parse_mode=HTML (only &, < and > need escaping outside attributes)."""
    s = "" if text is None else str(text)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: object) -> str:
    """Text for a quoted attribute value (href)."""
    return escape(text).replace('"', "&quot;")


def b(text: object) -> str:
    return f"<b>{escape(text)}</b>"


def i(text: object) -> str:
    return f"<i>{escape(text)}</i>"


def code(text: object) -> str:
    return f"<code>{escape(text)}</code>"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode(entity: str) -> str:
    body = entity[1:-1]
    if body.startswith("#"):
        try:
            return chr(int(body[2:], 16) if body[1:2] in "xX" else int(body[1:]))
        except (ValueError, OverflowError):
            return entity
    return _ENTITIES.get(body, entity)


@dataclass
class _Tok:
    raw: str
    kind: str  # text, open, close
    width: int = 0  # visible UTF-16 units
    name: str = ""


def _is_tag(raw: str) -> bool:
    return raw.startswith("<") and len(raw) > 1 and raw.endswith(">")


def _is_entity(raw: str) -> bool:
    return raw.startswith("&") and raw.endswith(";") and len(raw) > 1


def _tokens(html: str) -> list[_Tok]:
    """Tags, entities and single characters (text is split per character so any cut is possible)."""
    out: list[_Tok] = []
    for m in _TOKEN_RE.finditer(html):
        raw = m.group(0)
        if _is_tag(raw):
            closing = raw.startswith("</")
            words = raw[2 if closing else 1:-1].split()  # «<\t>»: a tag of whitespace has no name
            name = words[0].lower() if words else ""
            out.append(_Tok(raw, "close" if closing else "open", 0, name))
        elif _is_entity(raw):
            out.append(_Tok(raw, "text", utf16_len(_decode(raw))))
        else:
            out.extend(_Tok(ch, "text", utf16_len(ch)) for ch in raw)
    return out


def visible_len(html: str) -> int:
    """Length Telegram counts: text after entity parsing, without surrounding whitespace. Over the regex's
    runs, not `_tokens` (one record per character): every answer is measured before it is sent."""
    runs = (m.group(0) for m in _TOKEN_RE.finditer(html))
    plain = "".join(_decode(raw) if _is_entity(raw) else raw for raw in runs if not _is_tag(raw))
    return utf16_len(plain.strip())


def _break_rank(toks: list[_Tok], k: int) -> int:
    """How good a cut *before* token k is: 3 paragraph, 2 line, 1 word, 0 anywhere."""
    prev = toks[k - 1].raw if k > 0 else ""
    if prev == "\n":
        j = k - 2
        while j >= 0 and toks[j].kind != "text":
            j -= 1
        return 3 if j >= 0 and toks[j].raw == "\n" else 2
    if prev in (" ", "\t"):
        return 1
    return 0


def split_html(html: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` visible characters each.

    Prefers paragraph boundaries (blank lines), then line breaks, then spaces. Every part is valid
    HTML on its own (open tags are closed at the cut and reopened in the next part); empty parts
    are dropped. Text that already fits is returned unchanged as the only part.
    """
    if limit < 16:
        raise ValueError("limit too small")
    size = visible_len(html)
    if size <= limit:
        return [html] if size > 0 else []
    toks = _tokens(html)
    parts: list[str] = []
    stack: list[_Tok] = []  # open tags at the current position
    start = 0
    n = len(toks)
    while start < n:
        # skip leading whitespace tokens (Telegram trims them anyway) unless inside a tag
        prefix = "".join(t.raw for t in stack)
        width = 0
        best: dict[int, int] = {}  # rank -> cut index (latest)
        k = start
        local_stack = list(stack)
        stacks_at: dict[int, list[_Tok]] = {}
        while k < n:
            t = toks[k]
            if t.kind == "text":
                if width + t.width > limit:
                    break
                width += t.width
            elif t.kind == "open":
                local_stack.append(t)
            elif t.kind == "close":
                if local_stack and local_stack[-1].name == t.name:
                    local_stack.pop()
            k += 1
            if k < n:
                r = _break_rank(toks, k)
                best[r] = k
                stacks_at[k] = list(local_stack)
        if k >= n:
            parts.append(prefix + "".join(t.raw for t in toks[start:]))
            break
        # the content up to k fits; choose the best cut within it, in the later half if possible
        cut = next((best[r] for r in (3, 2, 1) if r in best and best[r] > start), k)
        # never cut between an opening tag and its first character: move the cut before open tags
        while cut > start + 1 and toks[cut - 1].kind == "open":
            cut -= 1
        if cut <= start:
            cut = start + 1
        cut_stack = stacks_at.get(cut)
        if cut_stack is None:
            cut_stack = list(stack)
            for t in toks[start:cut]:
                if t.kind == "open":
                    cut_stack.append(t)
                elif t.kind == "close" and cut_stack and cut_stack[-1].name == t.name:
                    cut_stack.pop()
        body = prefix + "".join(t.raw for t in toks[start:cut])
        closing = "".join(f"</{t.name}>" for t in reversed(cut_stack))
        parts.append(body + closing)
        stack = cut_stack
        start = cut
    # drop parts with no visible text; trim blank edges outside tags
    return [p.strip() for p in parts if visible_len(p) > 0]


def resplit(parts: list[str], limit: int = MAX_MESSAGE) -> list[str]:
    """Split every part that is still too long (after names were resolved, for example)."""
    out: list[str] = []
    for p in parts:
        out.extend(split_html(p, limit))
    return out


def join_paragraphs(paragraphs: list[str], limit: int = MAX_MESSAGE) -> list[str]:
    """Pack paragraphs (each valid HTML) into as few messages as fit; long ones are split."""
    out: list[str] = []
    cur = ""
    for para in paragraphs:
        if not para.strip():
            continue
        candidate = f"{cur}\n\n{para}" if cur else para
        if visible_len(candidate) <= limit:
            cur = candidate
            continue
        if cur:
            out.append(cur)
        if visible_len(para) <= limit:
            cur = para
        else:
            pieces = split_html(para, limit)
            out.extend(pieces[:-1])
            cur = pieces[-1] if pieces else ""
    if cur:
        out.append(cur)
    return out


def html_to_markdown(html: str) -> str:
    """A readable Markdown copy of our own HTML (outbox files): b -> **, i -> _, entities decoded."""
    marks = {"b": "**", "strong": "**", "i": "_", "em": "_", "code": "`", "s": "~~"}
    out = []
    for t in _tokens(html):
        if t.kind == "text":
            out.append(_decode(t.raw) if t.raw.startswith("&") else t.raw)
        elif t.name in marks:
            out.append(marks[t.name])
    return "".join(out)
