"""How natasha's NER is read: the windows of a text it must read to decide the asked spans, and which
words of one of its person spans belong to the name (NER takes in a verb capitalised at sentence start,
or the organisation a person works for), and where one of its spans is two names (a bracket between). The anonymizer merges what is left with the rules' spans."""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

from crmsum.ru import morph, parses

from .finder import NUMBERED_RE, _is_initial, named_by_adjective
from .people import tok_info


def not_in_a_name(s: str, m: re.Match) -> bool:
    """A word of a NER person span that is no part of the name: a stop word, a verb capitalised at
    sentence start, a word with a number («Формулы-1», «Союз-2»), an adjective naming a thing
    («Королёвских чтениях»)."""
    info = tok_info(m.group(0))
    return (info.stop or (info.verbal and _is_initial(s, m.start())) or NUMBERED_RE.match(s, m.end()) is not None
            or named_by_adjective(s, m.end(), m.group(0)))


@lru_cache(maxsize=20_000)
def adjective_only(word: str) -> bool:
    """A dictionary word that reads only as an adjective («Почётный», «Великий»): alone it names no one
    (a surname of that shape has its surname reading: «Толстой», «Горький»)."""
    return morph().word_is_known(word.lower()) and all(p.tag.POS in ("ADJF", "ADJS", "COMP")
                                                      for p in parses(word))


def name_words(s: str, words: list[re.Match]) -> list[re.Match]:
    """`words` less a dictionary place or organisation with no name reading at either end, when a
    whole name is left without it («оператор Аль-Джазиры Сами аль-Хадж», «лидера Аль-Кайды Усамы бин
    Ладена»: the employer, not the name); alone such a word is no person («болида Феррари»). One
    other word beside it may be the name it is part of («Гата Камский»), so NER keeps it then."""
    def org(m: re.Match) -> bool:
        info = tok_info(m.group(0))
        return info.known and info.place and not (info.name or info.surn or info.patr)

    while words and org(words[0]) and (len(words) == 1 or len(words) >= 3 or tok_info(words[1].group(0)).name):
        words = words[1:]
    while len(words) >= 3 and org(words[-1]):
        words = words[:-1]
    return words


WORD_GAP_RE = re.compile(r"\S+\s*")
NER_CONTEXT_WORDS = 8   # slovnet's NER sees a few words each side: this many keep its tags unchanged


def ner_windows(s: str, asks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `s` NER must read to decide the asked spans: each with NER_CONTEXT_WORDS words
    of context either side, overlapping parts merged (NER cost grows with the words it reads)."""
    starts = [m.start() for m in WORD_GAP_RE.finditer(s)]
    if len(starts) <= 2 * NER_CONTEXT_WORDS + 2:
        return [(0, len(s))]
    wins: list[tuple[int, int]] = []
    for a, b in sorted(asks):
        i = max(0, bisect.bisect_right(starts, a) - 1 - NER_CONTEXT_WORDS)
        j = bisect.bisect_left(starts, b) + NER_CONTEXT_WORDS
        wa, wb = starts[i], (starts[j] if j < len(starts) else len(s))
        if wins and wa <= wins[-1][1]:
            wins[-1] = (wins[-1][0], max(wins[-1][1], wb))
        else:
            wins.append((wa, wb))
    return wins


def bracket_parts(s: str, a: int, b: int) -> list[tuple[int, int]]:
    """A NER person span cut at its brackets, each part trimmed: NER reads «Джеймс Макгирт (James
    McGirt)» as one span, but each side is a whole name (one span would run across the bracket)."""
    parts = []
    for m in re.finditer(r"[^()]+", s[a:b]):
        x, y = a + m.start(), a + m.end()
        while x < y and not s[x].isalnum():
            x += 1
        while y > x and not s[y - 1].isalnum():
            y -= 1
        if x < y:
            parts.append((x, y))
    return parts
