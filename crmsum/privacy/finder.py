"""Which capitalised tokens of a text are people: classification, grouping into whole names, NER widening.

A mixin of `Anonymizer` (it needs the gazetteer, the company words and the vault): classes of a token are
K known person, P person, W weak (a name reading at sentence start), Q patronymic, LF/L Latin first name /
other Latin word, G guessed name reading of an unknown word, I/U unknown word at / not at sentence start,
X/XM/XG ordinary word at / not at sentence start, place name — these join a name only right after a first
name («Василий Шумов»), and a lone XM or G asks NER.
"""

from __future__ import annotations

import re
from functools import lru_cache

from crmsum.ru import (MONTHS_NOM, NAMED_BY_ADJECTIVE, THING_KIND_WORDS, TITLE_PARTS, TITLES, WEEKDAYS_NOM, attributive,
                       parses)

from .names import (ENGLISH_WORDS, PARTICLE_SEP_RE, UPPER_RE, WORD_BEFORE_RE, called, is_business_word,
                    is_diminutive, is_latin_first, upper_token_class)
from .people import CAP_RE, display_form, normalize_name, only_animate, tok_info

SEP_RE = re.compile(r"^[ \u00a0]{1,2}$")
LATIN_INITIAL_SEP_RE = re.compile(r"^[ \u00a0][A-Z]\.[ \u00a0]$")   # «Christopher A. Celiz»
_PART = r"(?:(?:ле|ла|де|ди|да|дю|дель|ван|фон|дер|бен|бин|ибн|van|von|de|der|di|da|le|la|del)[ \u00a0])?"
NEXT_CAP_RE = re.compile(r"[ \u00a0]" + _PART + "(" + CAP_RE.pattern + ")")
PREV_CAP_RE = re.compile("(" + CAP_RE.pattern + ")[ \u00a0]" + _PART + "$")
# «Хоровитц А. С.», and in a hurry without the dots: «Шестов И В» (two letters, so «Шестов и» stays)
INITIALS_AFTER_RE = re.compile(r"[ \u00a0]?[А-ЯЁ]\.(?:[ \u00a0]?[А-ЯЁ]\.)?|[ \u00a0][А-ЯЁ][ \u00a0][А-ЯЁ](?!\w)")
# initials after a word make it a surname («Хоровитц А. С.») unless they begin the next name («подписал В.В.Путин»)
TWO_INITIALS_AFTER_RE = re.compile(r"[ \u00a0][А-ЯЁ]\.[ \u00a0]?[А-ЯЁ]\.(?![ \u00a0]?[А-ЯЁ][а-яё])")
INITIALS_BEFORE_RE = re.compile(r"(?:(?<=[\s(«\"])|^)(?:Дж|[А-ЯЁ])\.(?:[ \u00a0]?[А-ЯЁ]\.)?[ \u00a0]?$")
REGNAL_RE = re.compile(r"[ \u00a0][IVX]{1,5}(?![\w])")
LATIN_RE = re.compile(r"^[A-Za-z]")
UPPER_GATE_RE = re.compile(r"[А-ЯЁ]{3}")
STRONG_SURNAME_RE = re.compile(r"(?:ский|цкий|ская|цкая|ович|евич|енко|швили|дзе|ян)$")
# what names a place right before a name: a preposition of place, a kind of settlement
# («в Шарлотте», «города Шарлотт», «штат Вирджиния», «в Козлове»)
PLACE_BEFORE_RE = re.compile(r"(?:(?<![\w])(?:в|во)|город[аеу]?|городом|штат[аеу]?|сел[оаеу]|деревн[яиюе]|"
                             r"пос[её]л[ок]\w*|станци[яиюей]|провинци[яиюей]|округ[аеу]?)[ \u00a0]$", re.I)
SURNAME_LIKE_RE = re.compile(r"(?:ов|ев|ёв|ин|ын|ова|ева|ина|ына|ский|цкий|ская|цкая|ук|юк|енко|ян|швили|дзе|ич|ус|ис)$")

# First names that are also everyday words: a known person's name at sentence start is checked by NER.
AMBIGUOUS_NAMES = {"вера", "надежда", "любовь", "роман", "лев", "слава", "роза", "лилия", "мир", "злата",
                   "ангелина", "виолетта", "майя", "лада", "заря", "дина", "клим", "марат"}

_K, _P, _W, _Q = "K", "P", "W", "Q"   # known person, person, weak (sentence start), patronymic
def _is_initial(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\u00a0«\"'(-—–•*>":
        i -= 1
    return i < 0 or text[i] in ".!?…\n\r:;"


def _group(s: str, toks: list) -> list[list]:
    """Adjacent name tokens (one space or a name particle apart) as groups; an ordinary word («X»)
    joins only right after a first name («Василий Шумов»), never starts a group, and a Cyrillic word
    does not join the Latin words before it."""
    groups: list[list] = []
    for t in toks:
        prev = groups[-1][-1] if groups else None
        near = prev is not None and len(groups[-1]) < 5 and (
            SEP_RE.match(s[prev[1]:t[0]]) or PARTICLE_SEP_RE.match(s[prev[1]:t[0]])
            or (prev[3] in ("L", "LF") and t[3] in ("L", "LF") and LATIN_INITIAL_SEP_RE.match(s[prev[1]:t[0]])))
        if t[3] in ("X", "XM", "XG"):
            if near and prev[3] in (_K, _P, _W, "LF") and tok_info(prev[2]).name:
                groups[-1].append(t)
            elif t[3] == "XM":   # a capitalised word mid-sentence: NER decides
                groups.append([t])
            continue
        if near and groups[-1][0][3] != "XM" and not (prev[3] == "L" and not LATIN_RE.match(t[2])):
            groups[-1].append(t)   # a Latin word before a Cyrillic name is a band's, a firm's or a prize's
            # name («Talk Talk Марк Холлис», «USM Holdings Алишера Усманова»); after one it is a surname
            # written as its owner does («Олег Fischer»)
        else:
            groups.append([t])
    return groups



NEXT_WORD_RE = re.compile(r"[ \u00a0]+([а-яё]+)")
NAMED_AFTER_RE = re.compile(r"(?<![\w])(?:имени|им\.)[ \u00a0]?(?:[А-ЯЁ][\w\-]+[ \u00a0]и[ \u00a0])?$")
CALENDAR = frozenset(MONTHS_NOM + WEEKDAYS_NOM)
NUMBERED_RE = re.compile(r"-?\d")   # right after a word: «Формулы-1», «Союз-2», «Олимпиаде-2016»


def _verb_follows(s: str, b: int, singular: bool = False) -> bool:
    """The next word is a verb (the capitalised word before it is likely its subject); with
    `singular`, one that agrees with one person as its subject («Каллен считает», not «Митап
    перенесли»: a plural verb has the word for its object)."""
    m = NEXT_WORD_RE.match(s, b)
    return bool(m) and _is_verb(m.group(1)) and not (singular and _is_plural_verb(m.group(1)))


@lru_cache(maxsize=20_000)
def _is_verb(word: str) -> bool:
    p = parses(word)[0]
    return p.tag.POS in ("VERB", "PRTS") and p.score >= 0.3


@lru_cache(maxsize=20_000)
def _is_plural_verb(word: str) -> bool:
    return parses(word)[0].tag.number == "plur"


def _first_names_only(g: list) -> bool:
    """Every word reads as a first name and none as a surname («Коста Рика», «Аль Аин»): a place or a
    firm as often as a person, so NER may veto it (see `Anonymizer._resolve`)."""
    for t in g:
        info = tok_info(t[2])
        if t[3] == _K or not info.known or not info.name or info.surn or info.patr:
            return False
    return True


@lru_cache(maxsize=20_000)
def _surname_weight(word: str) -> float:
    """How much of pymorphy3's weight its surname readings carry («Кана» 0.67, «Кирове» 0.33,
    «Ростове» 0.14): a place name that is this often a surname is for the context to decide."""
    return sum(p.score for p in parses(word) if "Surn" in p.tag)


@lru_cache(maxsize=20_000)
def _plural_only(word: str) -> bool:
    """Every reading is plural («Адвокаты», «Юристы»): a common noun that names no one person."""
    return all(p.tag.number == "plur" for p in parses(word))


def widen_name(s: str, a: int, b: int, free) -> tuple[int, int]:
    """The person span `a:b` with the initials written beside it («А. С. Хоровитц», «Хоровитц А. С.»)
    and the regnal number after a first name («Бенедикт XVI», «Николай II»): what is left visible
    beside a masked name is part of the name left out."""
    mb = INITIALS_BEFORE_RE.search(s, max(0, a - 6), a)
    if mb and free(mb.start(), a):
        a = mb.start()
    ma = INITIALS_AFTER_RE.match(s, b)
    if ma and ma.end() > b and free(b, ma.end()):
        b = ma.end()
    else:
        mr = REGNAL_RE.match(s, b)
        if mr and free(b, mr.end()):
            last = CAP_RE.findall(s, max(a, b - 40), b)
            if last and tok_info(last[-1]).name:
                b = mr.end()
    return a, b


def names_a_place_or_thing(s: str, a: int) -> bool:
    """The name at `a` follows a preposition of place or a kind of place («в Шарлотте», «города Шарлотт»,
    «станции Carlos Gardel»), or is the name of a kind of thing in apposition («Газета Кларин»): NER may
    veto it as a place or a firm. A name in the genitive after a kind of thing is its owner («фонда Билла
    Гейтса», «компании Ивана Петрова»), and a Latin one cannot show its case, so those stay people."""
    if PLACE_BEFORE_RE.search(s, max(0, a - 12), a):
        return True
    m = WORD_BEFORE_RE.search(s, max(0, a - 30), a)
    if not m or _lemma(m.group(1).lower()) not in THING_KIND_WORDS:
        return False
    w = CAP_RE.match(s, a)
    return bool(w) and not LATIN_RE.match(w.group(0)) and not _genitive_name(w.group(0))


LOWER_WORD_RE = re.compile(r"[ \u00a0]+([а-яё]+(?:-[а-яё]+)?)(?![\w-])")
ADJECTIVE_SHAPE_RE = re.compile(r"(?:ск|цк|ов|ев)(?:ий|ой|ого|ому|им|ом|ая|ую|ое|ие|их|ими|ым|ых)$")


def named_by_adjective(s: str, b: int, word: str) -> bool:
    """An adjective-shaped word right before a lower-case kind of thing it agrees with names that
    thing («Никитинского суда», «Римского статута», «Королёвских чтениях»), not a person («от
    Петровского письма»: a letter is no kind of named thing)."""
    if not ADJECTIVE_SHAPE_RE.search(word.lower()):
        return False
    for _ in range(3):   # past the adjectives between («Муромским историко-художественным музеем»)
        m = LOWER_WORD_RE.match(s, b)
        if m is None:
            return False
        if _lemma(m.group(1)) in NAMED_BY_ADJECTIVE:
            return _agrees(word.lower(), m.group(1))
        if parses(m.group(1))[0].tag.POS != "ADJF":
            return False
        b = m.end()
    return False


@lru_cache(maxsize=20_000)
def _agrees(adjective: str, noun: str) -> bool:
    """Some adjective (or surname) reading and some noun reading share case and number."""
    def forms(word: str, kinds: tuple[str, ...]) -> set:
        return {(p.tag.case, p.tag.number) for p in parses(word) if p.tag.POS in kinds or "Surn" in p.tag}
    return bool(forms(adjective, ("ADJF",)) & forms(noun, ("NOUN",)))


@lru_cache(maxsize=20_000)
def _genitive_name(word: str) -> bool:
    """Some likely reading is one person's name in the genitive («Билла», «Ивана»; not «Кларин»)."""
    return any(p.score >= 0.1 and p.tag.case == "gent" and p.tag.number == "sing"
               and any(g in p.tag for g in ("Name", "Surn", "Patr")) for p in parses(word))


@lru_cache(maxsize=20_000)
def _lemma(word: str) -> str:
    return parses(word)[0].normal_form


def rank_before_name(word: str, after: str, then: str | None) -> bool:
    """A rank or a trade («Патриарх», «Епископ»: every reading an animate noun, none a name) right
    before a dictionary word that reads first as a name («Кирилл»): the title, not part of the name.
    Before an unknown word it may be the name itself («Пан Ги Мун», «Фрица Хендерсона», «Шериф
    Шекатт») — unless it is one of the `TITLES`, never a name («Император Акихито»). A trade outside
    them needs a surname after the first name (`then`): «Альпинист Денис Урубко», but «Мельник
    Николай» is a surname first."""
    info, nxt = tok_info(word), tok_info(after)
    if info.known and not info.strong and _lemma(word) in TITLES:
        return True
    return (nxt.strong and nxt.known and info.known and not (info.name or info.surn or info.patr or info.place)
            and "-" not in word and only_animate(word.lower()) and _surname_after(then))


def _surname_after(then: str | None) -> bool:
    return then is not None and not tok_info(then).patr


def _surname_for_sure(info: TokInfo) -> bool:
    """A word read first as a surname with a Russian surname's ending and never as a place, known or
    guessed («с Хабибуллиным», «с Кожемякиным»): NER, which calls it a place beside a town («В Реутове
    с Кожемякиным»), does not unmask it (on the devset unknown words of this shape were people in 46 of
    48 cases; a leaked surname costs more than a masked word)."""
    return info.strong and not info.geo and not info.place and bool(info.surn and SURNAME_LIKE_RE.search(info.surn))


PERSON_PREP_RE = re.compile(r"(?<![\w])(?:от|у|с|со|к|ко|для|про|при|без)[ \u00a0]+$", re.I)


def _person_after_preposition(s: str, a: int, b: int, word: str, info: TokInfo) -> bool:
    """«Ждём от Петровского письма», «у Савицкой»: a surname-shaped word after a preposition that takes
    people is a person even where the dictionary also knows a place by it (NER, reading the place,
    does not unmask it) — unless it names a thing with the noun after it («от Петровского района»)."""
    return bool(info.surn and SURNAME_LIKE_RE.search(info.surn) and PERSON_PREP_RE.search(s, max(0, a - 5), a)
                and not named_by_adjective(s, b, word))


def _plain_asks(s: str, toks: list) -> list[tuple[int, int]]:
    """Capitalised words mid-sentence that no rule reads as a name but a name may be, so NER decides:
    two side by side («Стэнли Хо», «Мин Си»: as often a name the dictionary lacks as a place's or a
    firm's), and a short ordinary word («Том», «Хо», «Ли»: a capital on «том» means a name)."""
    out = [(t[0], t[1]) for t in toks if t[3] == "X" and t[1] - t[0] <= 4 and not _is_initial(s, t[0])]
    for p, t in zip(toks, toks[1:]):
        if p[3] in ("X", "XG") and t[3] in ("X", "XG") and SEP_RE.match(s[p[1]:t[0]]) and not _is_initial(s, p[0]):
            out.append((p[0], t[1]))
    return out


LIST_SEP_RE = re.compile(r",[ \u00a0]+(?:и[ \u00a0]+)?|[ \u00a0]+и[ \u00a0]+")


def _brand_follows(s: str, b: int) -> bool:
    """A word that ends a paper's or an institution's name right after `b` («… Morning Herald»)."""
    m = NEXT_CAP_RE.match(s, b)
    return m is not None and m.group(1).lower() in TITLE_PARTS


def _listed_with_people(s: str, toks: list, taken) -> list[tuple[int, int]]:
    """Capitalised words mid-sentence listed between two people the rules found («Дженнифер Лопес,
    Стинг и Энрике Иглесиас»): in a list of people a word no rule reads as a name is as often a name
    the dictionary lacks, so NER decides. A person on one side is not enough: a signature names the
    firm after its person («Ольга Смирнова, Автоарматура, тел. …»)."""
    people = [(a, b) for a, b, rep in taken.items if rep.startswith("PER-")]
    out = []
    for a, b, _w, cls in toks:
        if cls in (_K, _P, _Q) or _is_initial(s, a) or not taken.free(a, b):
            continue
        if (any(pb <= a and LIST_SEP_RE.fullmatch(s, pb, a) for _pa, pb in people)
                and any(b <= pa and LIST_SEP_RE.fullmatch(s, b, pa) for pa, _pb in people)):
            out.append((a, b))
    return out


class PersonFinder:
    """Person spans from capitalised tokens (mixed into `Anonymizer`)."""

    def _cap_tokens(self, s: str, free) -> list[tuple[int, int, str, str]]:
        """Capitalised and ALL-CAPS tokens with their class (see `_people_from_tokens`)."""
        toks = [t for m in CAP_RE.finditer(s) if free(*m.span())
                for t in [self._classify(s, m.start(), m.end(), m.group(0))] if t is not None]
        if UPPER_GATE_RE.search(s, 1):   # UPPER_RE needs three capitals in a row
            upper = []
            for m in UPPER_RE.finditer(s):
                cls = upper_token_class(m.group(0)) if free(*m.span()) else None
                if cls is not None and not self._is_company(m.group(0).lower()):
                    w = m.group(0)
                    upper.append((m.start(), m.end(), w[:1] + w[1:].lower(), cls))
            if len(upper) == 1 and len(upper[0][2]) < 5:
                upper = []   # one short ALL-CAPS word is an acronym («ЗАЗ», «ООО»)
            if upper:
                toks = sorted(toks + upper)
        return toks

    def _classify(self, s: str, a: int, b: int, w: str) -> tuple[int, int, str, str] | None:
        gaz = self.gaz
        low = w.lower()
        if low in gaz.first_forms or low in gaz.surn_forms:
            if (low not in gaz.surn_forms and tok_info(w).name in AMBIGUOUS_NAMES and not tok_info(w).top_name
                    and _is_initial(s, a)
                    and s[b:b + 1] != ","):   # «Вера, глянь счёт» is a vocative
                return (a, b, w, _W)   # «Надежда есть.», «Роман прочитал.»: NER decides
            return (a, b, w, _K)
        if self._is_company(low) or is_business_word(w):
            return None
        if called(s, a):   # «клиента зовут Горба»: how someone is called is a name
            return (a, b, w, _P)
        if NUMBERED_RE.match(s, b) or named_by_adjective(s, b, w):   # «Формулы-1», «Римского статута»
            return None
        if LATIN_RE.match(w):
            return (a, b, w, "LF" if is_latin_first(w) else "L")
        if not w[:1].isupper():   # particle prefix: «аль-Барадеи»
            return (a, b, w, _P)
        info = tok_info(w)
        initial = _is_initial(s, a)
        if info.stop:
            if not initial and _lemma(w) in CALENDAR:
                return (a, b, w, "X")   # months and weekdays are lower-case: «Виктор Понедельник» is a name
            return None
        if (INITIALS_BEFORE_RE.search(s, max(0, a - 6), a) or TWO_INITIALS_AFTER_RE.match(s, b)) and not (
                info.known and info.place):
            return (a, b, w, _K)   # «Н. Кан», «А. С. Хоровитц», «Хоровитц А. С.»: initials make a surname
        if NAMED_AFTER_RE.search(s, max(0, a - 40), a):
            return (a, b, w, _K)   # «театр имени Станиславского»: the person it is named after, for sure
        if info.patr and not info.name and not info.surn:
            return (a, b, w, _Q)
        nxt = NEXT_WORD_RE.match(s, b)
        if nxt and attributive(w, nxt.group(1)):
            return (a, b, w, "X")   # «Хмельницкой атомной станции»: an adjective in the name of a thing
        if initial and not info.known and _verb_follows(s, b, singular=True):
            # an unknown word at sentence start before a verb is its subject, a foreign surname whatever
            # its guessed readings («Каллен считает», «Паулс считает», «Клинсман принял»)
            return (a, b, w, _P)
        if info.name or info.surn:
            if info.place and not info.strong:
                if not info.known:
                    return (a, b, w, "U")   # a guessed place reading of an unknown word: NER decides
                if not initial and _surname_weight(w) >= 0.2:
                    return (a, b, w, "XM")   # a town that is as much a surname («Кана», «Кирове»): NER decides
                return (a, b, w, "XG")   # a place name: part of a name only right after a first name
            if not info.known and not (STRONG_SURNAME_RE.search(low) or is_diminutive(w) or _surname_for_sure(info)):
                return (a, b, w, "G")   # a guessed reading («Тусоне», «Гагаузии»): NER decides
            if not initial or info.strong or (info.name and s[b:b + 1] == ","):
                return (a, b, w, _P)
            return (a, b, w, _W)
        if not info.known and is_diminutive(w):
            return (a, b, w, _P if not initial else _W)
        if not info.place and (not info.known or info.anim) and not (info.known and _plural_only(w)):
            # unknown word or animate noun («Мельник»), not a plural one («Адвокаты»): a person only
            # next to a name, else NER decides
            after = NEXT_CAP_RE.match(s, b)
            then = after and NEXT_CAP_RE.match(s, after.end(1))
            if info.known and ((initial and not after)
                               or (after and rank_before_name(w, after.group(1), then and then.group(1)))):
                # «Альпинист Денис Урубко», «и Патриарх Кирилл»: a common noun or a rank before the name
                return (a, b, w, "X")
            return (a, b, w, "I" if initial else "U")
        if info.place:
            if _verb_follows(s, b) or not info.known:
                return (a, b, w, "XM")   # «Паулс считает», «сказал Хоровитц», a guessed place: NER decides
            return (a, b, w, "XG")
        # an ordinary word: part of a name right after a first name; mid-sentence NER decides
        if initial or not (SURNAME_LIKE_RE.search(low) or _verb_follows(s, b)):
            return (a, b, w, "X")
        return (a, b, w, "XM")

    def _people_from_tokens(self, s: str, toks: list, taken: "_Spans") -> list[tuple[int, int]]:
        """Person spans from adjacent name tokens; returns where NER must decide what is left."""
        asks: list[tuple[int, int]] = []
        free = taken.free
        # where a capitalised word that is no name ends mid-sentence («Сан», «Острове», «Буэнос»)
        plain_ends = {t[1] for t in toks if t[3] in ("X", "XM", "XG", "L") and not _is_initial(s, t[0])}
        asks.extend(_plain_asks(s, toks))
        for g in _group(s, toks):
            classes = {t[3] for t in g}
            if classes <= {"LF", "L"} and (any(t[2].lower() in ENGLISH_WORDS for t in g)
                                           or _brand_follows(s, g[-1][1])):
                continue   # «You Want It Darker», «Sydney Morning Herald»: a title
            guessed = False   # a name made of words that are no names alone: NER may veto it
            if g[0][3] == "LF" and len(g) >= 2 and classes <= {"LF", "L"}:
                g = [(t[0], t[1], t[2], _P) for t in g]   # «John Smith», «Hans Müller»
                classes = {_P}
            if len(g) >= 2 and classes <= {_W, "G", "I", "U"} and (
                    g[0][3] in (_W, "G") or (g[0][3] == "I" and not any(tok_info(t[2]).known for t in g))):
                g = [(t[0], t[1], t[2], _P) for t in g]   # «Хорхе Ларрионда», «Шамсул Майдин», «Коффи Коджа»
                classes = {_P}
                guessed = True
            patronymic = classes == {_Q} and all(tok_info(t[2]).strong for t in g)
            if patronymic:   # a lone patronymic is how people are called («Петровне», «Саввичу»)
                g = [(t[0], t[1], t[2], _P) for t in g]
                classes = {_P}
            classes = {("L" if c == "LF" else "U" if c in ("G", "XM") else c) for c in classes}
            if classes <= {"I"}:
                w0 = g[0][2]
                if not STRONG_SURNAME_RE.search(w0) or tok_info(w0).known:
                    if SURNAME_LIKE_RE.search(w0):
                        asks.append((g[0][0], g[-1][1]))
                    continue
                # unknown word shaped like a surname at sentence start («Кшиштофский отправил»)
                g = [(t[0], t[1], t[2], _P) for t in g]
                classes = {_P}
            if "I" in classes and not classes & {_K, _P}:
                g = [t for t in g if t[3] != "I"]
                classes = {t[3] for t in g}
            if classes <= {"L"}:
                if len(g) >= 2 or g[0][3] == "LF":   # a lone Latin first name too («Victoria»)
                    asks.append((g[0][0], g[-1][1]))
                continue
            if classes <= {_W, "U", "L", _Q}:
                asks.append((g[0][0], g[-1][1]))
                continue
            lone = tok_info(g[0][2]) if len(g) == 1 and classes == {_P} else None
            glued = lone is not None and any(SEP_RE.match(s[e:g[0][0]]) for e in plain_ends if g[0][0] - 3 <= e < g[0][0])
            # a lone surname, or a lone first name the dictionary also knows as a place or a firm
            # («Ливан», «Марс», «Сальвадор»): NER may veto it by the context
            # … or a lone name glued to a capitalised word that is no name (the end of a place's or a
            # firm's name: «в Сан Луисе», «на Острове Уайт», «в Буэнос Айресе»), or one where a place is
            # named («в Шарлотте», «города Шарлотт»)
            placed = names_a_place_or_thing(s, g[0][0]) and (lone is not None or _K not in classes)
            sure = lone is not None and not (glued or placed) and (
                _surname_for_sure(lone) or _person_after_preposition(s, g[0][0], g[0][1], g[0][2], lone))
            soft = guessed or placed or (lone is not None and ((not lone.name and not patronymic) or lone.geo or glued)
                                         and not sure) or (len(g) >= 2 and _first_names_only(g))
            norm = self._group_norm([t for t in g if t[3] not in ("L", "LF")] or g)
            a, b = widen_name(s, g[0][0], g[-1][1], free)
            if free(a, b):
                real = self.gaz.people.get(norm, (None,))[0] or display_form(norm)
                taken.append((a, b, self.vault.register("person", norm, real)))
                if soft:
                    self._soft.add((a, b))
                if soft or sure:  # NER reads the sentence (more names around it), but cannot unmask a sure one
                    asks.append((a, b))
        if len(toks) >= 2:
            asks.extend(_listed_with_people(s, toks, taken))
        return asks

    def _extend_ner(self, s: str, a: int, b: int, taken: list) -> tuple[int, int]:
        """Widen a NER person span to the whole capitalised name around it («Марин Ле Пен»):
        a masked first name never stands beside a visible surname."""
        for _ in range(3):
            last = None
            for last in CAP_RE.finditer(s, max(a, b - 40), b):
                pass
            if last is None or last.end() != b or not tok_info(last.group(0)).name:
                break
            m = NEXT_CAP_RE.match(s, b)
            if not m or not self._may_extend(m.group(1), taken, m.start(1), m.end(1)):
                break
            b = m.end(1)
        for _ in range(2):
            m = PREV_CAP_RE.search(s, max(0, a - 40), a)
            if not m or _is_initial(s, m.start(1)) or not self._may_extend(m.group(1), taken, m.start(1), m.end(1)):
                break
            info = tok_info(m.group(1))
            if (info.known and not (info.name or info.surn)) or (
                    LATIN_RE.match(m.group(1)) and not LATIN_RE.match(s[a:b])):
                break   # nor a Latin word before a Cyrillic name (see `_group`)
            a = m.start(1)
        return a, b

    def _may_extend(self, w: str, taken: list, a: int, b: int) -> bool:
        low = w.lower()
        return not (self._is_company(low) or is_business_word(w) or tok_info(w).stop or tok_info(w).place
                    or any(t[0] < b and a < t[1] for t in taken))

    def _group_norm(self, g: list) -> str:
        gaz = self.gaz
        core = [t for t in g if t[3] != _Q] or g
        if len(core) == 1:
            w = core[0][2]
            low = w.lower()
            u = gaz.unique(gaz.first_forms.get(low)) or gaz.unique(gaz.surn_forms.get(low))
            if u:
                return u
            norm = normalize_name(w)
            return gaz.unique(gaz.by_first.get(norm)) or gaz.unique(gaz.by_surn.get(norm)) or norm
        # a known first-name form and a known surname form of the same person
        firsts: set[str] = set()
        surns: set[str] = set()
        for t in core:
            low = t[2].lower()
            firsts |= gaz.first_forms.get(low, set())
            surns |= gaz.surn_forms.get(low, set())
        both = firsts & surns
        if len(both) == 1:
            return next(iter(both))
        norm = normalize_name(" ".join(t[2] for t in core))
        if " " not in norm:   # first name + patronymic only: a lone name
            return gaz.unique(gaz.by_first.get(norm)) or gaz.unique(gaz.by_surn.get(norm)) or norm
        return norm

