"""Pseudonyms resolved for an allowed reader, each real name in the case its sentence needs.

Record texts were anonymized in whatever case the writer used («Встречались с Кириллом Фроловым»
became «Встречались с PER-…»), so a plain replacement would read «с Кирилл Фролов». The preposition
before a pseudonym tells the case (с → творительный, у/от/для/без/до/из → родительный, к/по →
дательный, о/об/при → предложный); anywhere else — after a colon, in a list — the nominative stays.
"""

from __future__ import annotations

import re

from crmsum.privacy import PSEUDONYM_RE
from crmsum.ru import CASES, case_forms, is_female

_CASE_AFTER = {"с": "ablt", "со": "ablt", "у": "gent", "от": "gent", "для": "gent", "без": "gent", "до": "gent",
               "из": "gent", "около": "gent", "к": "datv", "ко": "datv", "по": "datv", "о": "loct", "об": "loct",
               "обо": "loct", "при": "loct"}
_PREV_WORD = re.compile(r"(\w+)\s+$")


def inflect_name(full: str, case: str) -> str:
    """«Кирилл Фролов» in `case` («Кириллом Фроловым»); unchanged when a part is unknown to pymorphy3."""
    parts = full.split()
    if case == "nomn" or not parts or len(parts) > 3:
        return full
    gender = "femn" if is_female(parts[0]) else "masc"
    kinds = ["Name", "Patr", "Surn"][:len(parts)] if len(parts) == 3 else ["Name", "Surn"][:len(parts)]
    out = []
    for word, kind in zip(parts, kinds):
        try:
            out.append(case_forms(word, kind, gender)[CASES.index(case)])
        except ValueError:
            return full
    return " ".join(out)


def resolve_in_case(vault, text: str) -> str:
    """`vault.resolve(text)` with each person's name inflected after a preposition."""
    if not text or vault is None or not PSEUDONYM_RE.search(text):
        return text
    out, last = [], 0
    for m in PSEUDONYM_RE.finditer(text):
        real = vault.resolve(m.group(0))
        if real != m.group(0) and m.group(0).startswith("PER-"):
            prev = _PREV_WORD.search(text[max(0, m.start() - 12):m.start()])
            case = _CASE_AFTER.get(prev.group(1).lower()) if prev else None
            if case:
                real = inflect_name(real, case)
        out += [text[last:m.start()], real]
        last = m.end()
    return "".join(out) + text[last:]
