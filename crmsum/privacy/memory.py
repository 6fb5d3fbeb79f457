"""Document memory: a name masked in one text of a document (the notes of one deal, the messages
of one chat) is masked in every other text of it, in any case form («Юрген Клинсман …» makes
«решение Клинсмана» a person too).

Why: the same person is named in full once and by surname alone afterwards, often where nothing
else marks the word as a name (a foreign surname at sentence start, after a quote). Two passes, so
the result does not depend on the order of the texts: the anonymizer first finds the people of every
text on its own; `remember` then collects the words of all person spans of a document, and `recall`
masks the capitalised words still visible that share a stem with one of them. A recalled word takes
the pseudonym of the person it was remembered from («Хоровитц» -> the pseudonym of «Скотт Хоровитц»),
or its own when the document has several people of that stem.

What spreads is kept to firm evidence, since one wrong mask would be copied across the document: a
lone word only when it reads as a surname or is unknown to the dictionary, an ordinary word only right
after a first name, no span NER called a place or an organisation, no dictionary place where a place
is named («в Вашингтоне»).
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

from crmsum.ru import name_stem

from .finder import _is_initial, names_a_place_or_thing
from .people import CAP_RE, tok_info

Span = tuple[int, int, str]
Memory = dict[str, dict[str, bool]]   # name stem -> {pseudonym it was found in: found in a full name}


def remember(texts: Sequence[str], spans: Sequence[list[Span]], contested: Sequence[list[Span]]) -> Memory:
    """Stems of the capitalised words inside the person spans of `texts` (one document).

    `contested` holds, per text, what NER called a place or an organisation: a person span the
    rules kept against NER's word stays in its text but does not spread («Коста Рика»)."""
    memory: Memory = {}
    for s, items, other in zip(texts, spans, contested):
        for a, b, rep in items:
            if not rep.startswith("PER-") or any(x < b and a < y for x, y, _ in other):
                continue
            words = list(CAP_RE.finditer(s, a, b))
            if len(words) == 1 and not _lone_name(words[0].group(0)):
                continue
            for k, m in enumerate(words):
                w = m.group(0)
                if not _name_reading(w) and (_is_initial(s, m.start()) or k == 0
                                             or not tok_info(words[k - 1].group(0)).name):
                    continue   # an ordinary word is a surname right after a first name («Василий Шумов»),
                    # not glued to a name at sentence start («Все», «Помощник») or in a firm's name
                stem = name_stem(w)
                if len(stem) >= 3 and not dictionary_place(w):
                    people = memory.setdefault(stem, {})
                    people[rep] = people.get(rep, False) or len(words) > 1
    return memory


def dictionary_place(word: str) -> bool:
    """A place the dictionary knows («Насер», «Вашингтон»): never remembered, and recalled only where
    no place is named («в Вашингтоне» beside «Джордж Вашингтон» stays; «Насер начал» beside «Мохамеду
    Насеру» is masked)."""
    info = tok_info(word)
    return info.known and info.place


def _name_reading(word: str) -> bool:
    info = tok_info(word)
    return not info.known or bool(info.name or info.surn or info.patr)


def _lone_name(word: str) -> bool:
    """A word masked on its own is remembered only when it reads as nothing but a name: a surname
    or a word the dictionary does not know («Нисипяну»). A lone first-name reading of an ordinary
    word («Марс», «Ливан») is too weak to spread over the document (a first name is masked anyway)."""
    info = tok_info(word)
    return not info.place and not info.top_name and (not info.known or info.strong)


def recall(s: str, taken: list[Span], memory: Memory, may_be_person: Callable[[str], bool],
           own: Callable[[str], str]) -> list[Span]:
    """Person spans for the free capitalised words of `s` whose stem the document remembers.

    `taken` holds every span already decided (people and protected spans: streets, companies)
    and what NER called an organisation in this text (a product or a firm named after a person);
    `may_be_person` vetoes a word (a learned company, a brand-shaped or stop word); `own` gives a
    word its own pseudonym when its stem stands for more than one person."""
    if not memory:
        return []
    busy = bytearray(len(s))
    for a, b, _ in taken:
        busy[a:b] = b"\x01" * (b - a)
    out: list[Span] = []
    for m in CAP_RE.finditer(s):
        a, b = m.span()
        if busy.find(1, a, b) >= 0:
            continue
        people = memory.get(name_stem(m.group(0)))
        if not people or not may_be_person(m.group(0)) or (dictionary_place(m.group(0))
                                                            and names_a_place_or_thing(s, a)):
            continue
        out.append((a, b, _pseudonym(people) or own(m.group(0))))
    return out


def relink(s: str, spans: list[Span], memory: Memory) -> list[Span]:
    """`spans` with each lone-word person span given the pseudonym of the one person the document
    names in full with that stem («Клинсмана» found alone -> «Юрген Клинсман»): one man, one name."""
    out = []
    for a, b, rep in spans:
        if rep.startswith("PER-"):
            words = CAP_RE.findall(s, a, b)
            people = memory.get(name_stem(words[0])) if len(words) == 1 else None
            full = [r for r, whole in people.items() if whole] if people else []
            if len(full) == 1:
                rep = full[0]
        out.append((a, b, rep))
    return out


def _pseudonym(people: dict[str, bool]) -> str | None:
    """The one person a stem stands for: the only one, or the only one named in full («Клинсман»
    alone and «Юрген Клинсман» in one document are one man)."""
    if len(people) == 1:
        return next(iter(people))
    full = [rep for rep, whole in people.items() if whole]
    return full[0] if len(full) == 1 else None


def documents(docs: Sequence[Hashable | None]) -> dict[Hashable, list[int]]:
    """Item indices by document key (items with key None belong to no document)."""
    out: dict[Hashable, list[int]] = {}
    for i, d in enumerate(docs):
        if d is not None:
            out.setdefault(d, []).append(i)
    return out
