"""The one pymorphy3 analyser of the process (morphology for privacy, the question parser, text features)."""

from __future__ import annotations

import threading
from functools import lru_cache

_MORPH = None
_LOCK = threading.Lock()


def morph():
    """The shared pymorphy3 analyser (loading it takes ~0.1 s and ~15 MB, so once per process)."""
    global _MORPH
    if _MORPH is None:
        with _LOCK:
            if _MORPH is None:
                import pymorphy3

                _MORPH = pymorphy3.MorphAnalyzer()
    return _MORPH


@lru_cache(maxsize=20_000)
def parses(word: str) -> tuple:
    """pymorphy3's readings of `word`, cached for the recent words: the privacy rules ask about the same
    word from several angles (a name? a verb? only animate?), and a parse is most of the cost of an
    unseen word (20,000 words of readings are ~18 MB; the answers the rules draw from them are cached
    longer, in their own caches)."""
    return tuple(morph().parse(word))


def lexeme_forms(parse, gender: str | None = None, keep_number: bool = False) -> set[str]:
    """Every form (lowercase) of a pymorphy3 parse's lexeme in the singular — or, with
    `keep_number`, in the parse's own number (a plural name such as «Белые Росы» stays plural) —
    and, for 'masc'/'femn', in that gender or none (common-gender «Саша» forms stay)."""
    plural = "plur" in parse.tag.grammemes
    out = set()
    for f in parse.lexeme:
        gr = f.tag.grammemes
        if keep_number and plural:
            if "plur" not in gr:
                continue
        elif "plur" in gr:
            continue
        if gender in ("masc", "femn") and f.tag.gender is not None and str(f.tag.gender) != gender:
            continue
        out.add(f.word)
    return out


@lru_cache(maxsize=50_000)
def attributive(word: str, next_word: str) -> bool:
    """`word` reads first as an adjective (not a surname, not a possessive) that agrees in case,
    number and gender with the adjective after it: «Хмельницкой атомной», «Брукхейвенской
    национальной» begin the name of a thing; «Плисецкая», whose first reading is a surname, never
    qualifies (nor does a noun after it: case forms of nouns coincide too often)."""
    top = parses(word)[0]
    t = top.tag
    if t.POS != "ADJF" or "Poss" in t or "Surn" in t:
        return False
    for p in parses(next_word):
        n = p.tag
        if n.POS == "ADJF" and n.case == t.case and n.number == t.number and (
                t.number == "plur" or n.gender == t.gender or n.gender is None or t.gender is None):
            return True
    return False
