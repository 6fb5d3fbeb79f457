"""Summary records rendered as text: the one place that turns `Section`s into lines.

- `summary_text(sections, title)`: the plain text stored in `summaries.text` (titles, bullets,
  citations in brackets) — for SQL users and the `answers` log;
- `section_lines(sections)`: (is_title, line) pairs without the title line;
- `answer_layout(heading, sections, lines)`: an answer as (style, line) pairs, which `crmsum ask`
  joins as plain text (`layout_text`) and the bot turns into Telegram HTML.
Edges show pseudonyms resolved by their own display function; nothing here resolves names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crmsum.summarize.model import Point, Section


def point_line(p: Point, cites: bool = True) -> str:
    """«• text [note:1] [event:2]»."""
    refs = "".join(f" [{c}]" for c in p.cites) if cites else ""
    return f"• {p.text}{refs}"


def section_lines(sections: Iterable[Section], cites: bool = True) -> list[tuple[bool, str]]:
    """(is_title, line) per line: a blank line and «Title:» before each section's bullets."""
    out: list[tuple[bool, str]] = []
    for s in sections:
        if not s.points:
            continue
        if out:
            out.append((False, ""))
        out.append((True, f"{s.title}:"))
        out += [(False, point_line(p, cites)) for p in s.points]
    return out


def summary_text(sections: Iterable[Section], title: str | None = None, cites: bool = True) -> str:
    """Plain text of a summary: an optional title line, then each section with its bullets."""
    lines = [line for _, line in section_lines(sections, cites)]
    if title:
        lines = [title, ""] + lines if lines else [title]
    return "\n".join(lines)


# an answer's lines and what each one is, so that every edge styles the same layout its own way
HEAD, SOURCE, TITLE, TEXT = "head", "source", "title", "text"


def answer_layout(heading: Sequence[str], sections: Iterable[Section] = (),
                  lines: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(style, line) of an answer: the heading (what and when, then where it came from), a blank
    line, free lines (a comparison's verdict and sides), then the summary sections."""
    out = [(HEAD if n == 0 else SOURCE, h) for n, h in enumerate(heading)]
    body = [(TEXT, line) for line in lines] + [(TITLE if is_title else TEXT, line)
                                               for is_title, line in section_lines(sections)]
    if body:
        out += [(TEXT, "")] + body
    return out


def layout_text(layout: Iterable[tuple[str, str]]) -> str:
    """The plain text of a layout (what `crmsum ask` prints and `answers.text` stores)."""
    return "\n".join(line for _, line in layout)
