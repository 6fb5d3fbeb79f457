"""People written in lower case: «созвонился с смирновой», «позвонить чубарикову», «тихон смоляков».

Known people (the gazetteer) are found in any case unless the word is also an ordinary word and no
first name stands beside it («до морозов» is not Морозов). Unknown people in lower case: a
surname-shaped word the dictionary does not know and pymorphy reads as a surname («чубарикову»), or
a word with a surname reading beside a lower-case first name («тихон смоляков»).
"""

from __future__ import annotations

import re

from .names import LOWER_SURNAME_RE, _has_common_reading, has_surname_reading, lower_name_reading
from .people import Gazetteer, display_form, normalize_name

LOWER_TOKEN_RE = re.compile(r"(?<![\w@.\-])[а-яё]{4,}(?![\w@])")
# the same tokens, only those shaped like a surname: what is looked at when no surname is known
LOWER_SURNAME_TOKEN_RE = re.compile(r"(?<![\w@.\-])(?=[а-яё]{4})[а-яё]*?(?:" + LOWER_SURNAME_RE.pattern[:-1]
                                    + r")(?![\w@])")
LOWER_WORD_BEFORE_RE = re.compile(r"(?<![\w@.\-])([а-яё]+)[ \u00a0]$")
LOWER_WORD_AFTER_RE = re.compile(r"[ \u00a0]([а-яё]+)(?![\w@])")


def lower_case_people(s: str, gaz: Gazetteer, taken, vault) -> None:
    """Append person spans for lower-case names in `s` to `taken` (an anonymizer `_Spans`)."""
    if not any("а" <= c <= "я" for c in s):
        return
    free = taken.free
    for m in (LOWER_TOKEN_RE if gaz.surn_forms else LOWER_SURNAME_TOKEN_RE).finditer(s):
        a, b = m.span()
        if not free(a, b):
            continue
        w = m.group(0)
        u = gaz.unique(gaz.surn_forms.get(w)) if gaz.surn_forms else None
        if not u and not LOWER_SURNAME_RE.search(w):
            continue   # cheap gate: only known surnames and surname-shaped words are looked at
        off = max(0, a - 40)
        mb = LOWER_WORD_BEFORE_RE.search(s[off:a])
        ma = LOWER_WORD_AFTER_RE.match(s, b)
        if u:
            with_first = bool(mb and u in gaz.first_forms.get(mb.group(1), ())) or bool(
                ma and u in gaz.first_forms.get(ma.group(1), ()))
            if _has_common_reading(w) and not with_first:
                continue   # «до морозов», «стая волков»: not Морозов / Волков
            # absorb the first name written next to it («роман лебедев», «лебедев роман»)
            if mb and u in gaz.first_forms.get(mb.group(1), ()) and free(off + mb.start(1), a):
                a = off + mb.start(1)
            if ma and u in gaz.first_forms.get(ma.group(1), ()) and free(b, ma.end(1)):
                b = ma.end(1)
            taken.append((a, b, vault.register("person", u, gaz.people[u][0])))
            continue
        reading = lower_name_reading(w)
        first_before = mb is not None and lower_name_reading(mb.group(1)) == "Name"
        first_after = ma is not None and lower_name_reading(ma.group(1)) == "Name"
        if reading != "Surn" and not ((first_before or first_after) and has_surname_reading(w)):
            continue
        if first_before and free(off + mb.start(1), a):
            a = off + mb.start(1)
        if first_after and free(b, ma.end(1)):
            b = ma.end(1)
        norm = normalize_name(s[a:b])
        taken.append((a, b, vault.register("person", norm, display_form(norm))))
