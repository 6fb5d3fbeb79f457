"""Citations and pseudonyms: the two kinds of token that travel inside crmsum's texts.

- A record id cites the lake row a sentence is based on: `note:<note_id>`, `task:<task_id>`,
  `event:<event_id>`, `msg:<chat_id>:<message_id>`, written in brackets: «… [note:1, msg:-100:5]».
- A pseudonym stands for a person's personal data: `PER-` (name), `TEL-`, `EML-`, `TG-` (handle),
  `URL-`, `DOC-` + 8 hex digits of a keyed hash (`crmsum.privacy.vault`).

Every module that writes, finds or strips either of them imports it from here.
"""

from __future__ import annotations

import re

PSEUDONYM_RE = re.compile(r"\b(?:PER|TEL|EML|TG|URL|DOC)-[0-9a-f]{8}\b")
PSEUDONYM_ANY_CASE_RE = re.compile(PSEUDONYM_RE.pattern, re.I)  # in text folded to lower case (lemmas)
ID_RE = re.compile(r"(?:note|task|event):[\w-]+|msg:-?\d+:\d+")
MSG_ID_RE = re.compile(r"msg:(-?\d+):(\d+)")
CITE_RE = re.compile(r"\[([^\[\]]{3,200})\]")  # one bracketed group that may hold record ids


def cited_ids(text: str) -> list[str]:
    """Record ids cited as [note:1] / [msg:-100:5, task:7] in a text, in order, each once."""
    ids: list[str] = []
    for m in CITE_RE.finditer(text or ""):
        for i in ID_RE.findall(m.group(1)):
            if i not in ids:
                ids.append(i)
    return ids


def strip_citations(text: str, repl: str = " ") -> str:
    """The text without its bracketed citations (brackets without a record id stay)."""
    return CITE_RE.sub(lambda m: repl if ID_RE.search(m.group(1)) else m.group(0), text or "")

