"""Name evidence the dictionary alone misses: Latin first names, ALL-CAPS and lower-case names,
diminutives, name particles, the sole trader's name after «ИП», and the business forms that make a
capitalised word a company rather than a person.

Why separate from people.py: people.py normalizes a name that is already known to be one; this module
decides *whether* a token or a span is a name in free text, cheaply (regex + cached lookups), so
natasha's NER only runs where these rules cannot decide.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from crmsum.ru import morph, parses
from crmsum.ru.orgs import BODY_STEMS, BRAND_PARTS, BRAND_SUFFIX_RE, LEGAL_FORMS

from .people import tok_info

_UP = "А-ЯЁA-ZÀ-ÖØ-Þ"
_LO = "а-яёa-zß-öø-ÿ"
# lower-case particles inside a name: «Марин Ле Пен», «Люк Ван Велли», «Ханс фон Хаген», «аль-Барадеи»
PARTICLES = frozenset({"ле", "ла", "де", "ди", "да", "дю", "дель", "ван", "фон", "дер", "ден", "бен", "бин",
                       "ибн", "аль", "эль", "ал", "ель", "van", "von", "de", "der", "den", "di", "da", "le",
                       "la", "del", "al", "el", "bin", "ben", "ibn", "mac", "o"})
# English words no name is made of: a Latin run with one is a title («You Want It Darker», «All You Need»)
ENGLISH_WORDS = frozenset({"you", "it", "me", "my", "we", "our", "your", "they", "is", "are", "was", "were",
                           "be", "been", "do", "does", "want", "love", "can", "will", "this", "that", "what",
                           "when", "all", "not", "need", "get", "let", "have", "has", "how", "why", "who"})
PARTICLE_SEP_RE = re.compile(r"^[ \u00a0](?:" + "|".join(sorted(PARTICLES, key=len, reverse=True))
                             + r")[ \u00a0]$", re.I)
CASE_ENDING_RE = re.compile(r"(?:ами|ом|ам|ах|а|у|е|ы)$")   # a noun's case ending (not «-ов»: surnames)
VOWEL_RE = re.compile(r"[АЕЁИОУЫЭЮЯAEIOUY]", re.I)
UPPER_RE = re.compile(r"(?<![\w@./\-])[А-ЯЁ]{3,}(?:-[А-ЯЁ]{3,})?(?![\w@])")
SOLE_TRADER_RE = re.compile(
    rf"(?:(?<![\w])ИП|(?<![\w])[Ии]ндивидуальн\w+ предпринимател\w+)[ \u00a0]+"
    rf"((?:[{_UP}][{_LO}]+|[{_UP}]{{2,}})(?:-[{_UP}][{_LO}]+)?"
    rf"(?:[ \u00a0]+(?:[{_UP}][{_LO}]+|[{_UP}]{{2,}})(?:-[{_UP}][{_LO}]+)?){{0,2}}"
    rf"(?:[ \u00a0]?[{_UP}]\.(?:[ \u00a0]?[{_UP}]\.)?)?)")
_LEGAL_ALT = "|".join(sorted((f for f in LEGAL_FORMS if f != "ип"), key=len, reverse=True))
# «ООО Ромашка», «АО "Вектор"», «ООО «Мир Окон»»: the company that follows a legal form
LEGAL_COMPANY_RE = re.compile(
    rf"(?<![\w])(?i:{_LEGAL_ALT})[ \u00a0]+(?:[«\"“„'][^«»\"“”„'\n]{{1,60}}[»\"”'“]|[{_UP}][\w\-]*(?:[ \u00a0][{_UP}][\w\-]*)?)")
# «Ромашка ООО», «ПЕРЕСВЕТ АО», «Acme Ltd»: the company before a legal form written as one
_LEGAL_AFTER_ALT = "|".join(sorted({v for f in LEGAL_FORMS if f != "ип" for v in (f.upper(), f.capitalize(), "GmbH")},
                                   key=len, reverse=True))
COMPANY_BEFORE_LEGAL_RE = re.compile(
    rf"(?:[«\"“„'][^«»\"“”„'\n]{{1,60}}[»\"”'“]|(?<![\w])[{_UP}][\w\-]*)(?=[ \u00a0]+(?:{_LEGAL_AFTER_ALT})(?![\w]))")
CAP_BEFORE_RE = re.compile(rf"[{_UP}][{_LO}]*\.?[ \u00a0]$")
# festive characters named like people («Деда Мороза», «Снегурочка», «Санта Клаус»): nobody's data, and
# in a December sales chat they are everywhere («заказали Деда Мороза на корпоратив»)
FOLK_RE = re.compile(r"(?<![\w])(?:Дед(?:а|у|ом|е)?[ \u00a0]+Мороз(?:а|у|ом|е)?|Снегурочк(?:а|и|е|у|ой)|"
                     r"Санта[ \u00a0]+Клаус(?:а|у|ом|е)?|Баб(?:а|ы|е|у|ой)[ \u00a0]+Яг(?:а|и|е|у|ой))(?![\w])")
# two initials standing alone: a signature or an author's mark («– В.Л.»); three are «Ф.И.О.»-like
LONE_INITIALS_RE = re.compile(r"(?<![\w.])[А-ЯЁ]\.[ \u00a0]?[А-ЯЁ]\.(?![ \u00a0]?[А-ЯЁA-Z])")
QUOTED_RE = re.compile(r"[«\"“„][^«»\"“”„\n]{1,60}[»\"”“]")
DIMINUTIVE_RE = re.compile(r"(?:аня|яня|уня|юня|уля|юля|уся|юся|юша|уша|ёк|ечка|очка|енька|онька|юшка|ушка|ёха|уха|"
                           r"ёня|ёша|юха)$")
# a lower-case word shaped like a Russian surname in some case (the gate before parsing one)
LOWER_SURNAME_RE = re.compile(r"(?:(?:ов|ев|ёв|ин|ын)(?:а|у|ым|ой|е|ых)?|(?:ск|цк)(?:ий|ая|ого|ому|ой|им|ую)|енко|"
                              r"ук|юк|ян|яна|яну|швили|дзе)$")
SURNAME_SHAPE_RE = re.compile(r"(?:ов|ев|ёв|ин|ын|ова|ева|ёва|ина|ына|ову|еву|ину|ыну|овой|евой|иной|овым|евым|"
                              r"иным|ых|их|ский|цкий|ская|цкая|ского|цкого|скому|цкому|ской|цкой|енко|ук|юк|чук|"
                              r"щук|ян|яна|яну|швили|дзе|ович|евич|ич|ай)$")


@lru_cache(maxsize=1)
def latin_first_names() -> frozenset[str]:
    """Lower-case Latin-script first names (gender-guesser's 40,000-name list of European usage)."""
    import gender_guesser

    path = Path(gender_guesser.__file__).with_name("data") / "nam_dict.txt"
    out: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line[:1] in "#=" or len(line) < 4:
                continue
            parts = line.split()
            if len(parts) >= 2 and parts[1].isalpha() and len(parts[1]) >= 3:
                out.add(parts[1].lower())
    return frozenset(out - _LATIN_WORDS)


# English/Latin words that are also in the first-name list: alone they are not a person
_LATIN_WORDS = frozenset({
    "will", "may", "mark", "bill", "grant", "price", "rose", "art", "job", "sun", "star", "major", "young",
    "page", "ray", "chase", "hope", "joy", "summer", "june", "august", "april", "china", "guy", "faith",
    "sky", "king", "love", "rich", "gay", "dean", "lane", "case", "max", "pro", "office", "word", "excel",
    "team", "sales", "group", "trade", "line", "soft", "city", "mega", "maxi", "nova", "alfa", "alpha",
    "delta", "omega", "vega", "apple", "amazon", "oracle", "honor", "ultra", "prime", "smart", "best",
    "plus", "home", "gold", "silver", "golden", "sunny", "happy", "lucky", "bright", "north", "south",
    "west", "east", "win", "don", "ford", "mercedes", "lada", "skoda", "kia", "audi", "the", "and", "new",
    "york", "red", "bull", "times", "street", "press", "right", "move", "five", "wall", "land", "park",
    "river", "hill", "field", "green", "brown", "black", "white", "long", "little", "big", "great",
})


def is_latin_first(word: str) -> bool:
    return word.lower() in latin_first_names()


@lru_cache(maxsize=50_000)
def is_diminutive(word: str) -> bool:
    """An unknown word read as a first name by analogy («Мишаня», «Санёк»): a nickname, so a person."""
    if len(word) < 4:
        return False
    low = word.lower()
    if morph().word_is_known(low):
        return False
    p = parses(word)[0]
    return bool(DIMINUTIVE_RE.search(low)) and ("Name" in p.tag or ("anim" in p.tag and p.tag.POS == "NOUN"))


@lru_cache(maxsize=50_000)
def upper_token_class(word: str) -> str | None:
    """Class of an ALL-CAPS word as a name token: 'P' (name reading), 'I' (surname shape) or None; a word
    without a vowel is an abbreviation («БПТС», «ФСБ»), whatever the guesser reads in it."""
    if not VOWEL_RE.search(word):
        return None
    t = word[:1] + word[1:].lower()
    info = tok_info(t)
    if info.stop or info.place:
        return None
    if info.strong or (info.name and info.top_name):
        return "P"
    if (info.surn or SURNAME_SHAPE_RE.search(t.lower())) and len(t) >= 5:
        return "I"
    return None


@lru_cache(maxsize=50_000)
def lower_name_reading(word: str) -> str | None:
    """'Surn' / 'Name' when a lower-case word reads as a person's name and not as a common word."""
    if len(word) < 4:
        return None
    m = morph()
    known = m.word_is_known(word)
    p = m.parse(word)[0]
    if "Surn" in p.tag and not known and SURNAME_SHAPE_RE.search(word):
        return "Surn"
    if "Name" in p.tag and p.score >= 0.3 and not _has_common_reading(word):
        return "Name"
    if "Surn" in p.tag and p.score >= 0.5 and not _has_common_reading(word):
        return "Surn"
    return None


@lru_cache(maxsize=50_000)
def has_surname_reading(word: str) -> bool:
    """Some reading of the word is a surname («смоляков» beside «тихон»)."""
    return any("Surn" in p.tag for p in parses(word))


def _has_common_reading(low: str) -> bool:
    return any(p.score >= 0.05 and not any(g in p.tag for g in ("Surn", "Name", "Patr"))
               for p in parses(low))


def is_business_word(word: str) -> bool:
    """«Ромашка-Агро», «Уралпромснаб», «Групп»: a brand part or a brand-shaped word, never a person."""
    low = word.lower()
    if low in BRAND_PARTS:
        return True
    if "-" in low and any(part in BRAND_PARTS for part in low.split("-")[1:]):
        return True
    if len(low) >= 7 and (BRAND_SUFFIX_RE.search(low) or BRAND_SUFFIX_RE.search(CASE_ENDING_RE.sub("", low))) \
            and not tok_info(word).strong:
        return True   # … in any case: «с Мираторгом», «Уралпромснабу»
    return is_compound_body(word)


@lru_cache(maxsize=50_000)
def is_compound_body(word: str) -> bool:
    """«Росимущества», «Моссовета», «Роскомсвободы»: a body's stem glued to a common noun the dictionary
    knows, never a person. A word with a surname reading or shape stays a name («Мосолова», «Мингазов»
    = «Мин» + «газов»), and the noun must have five letters («Рослов»)."""
    low = word.lower()
    if len(low) < 8 or not low.startswith(BODY_STEMS) or SURNAME_SHAPE_RE.search(low):
        return False
    info = tok_info(word)
    if info.strong or info.surn or info.name:
        return False
    for _ in range(2):
        stem = next((p for p in BODY_STEMS if low.startswith(p)), None)
        if stem is None:
            return False
        low = low[len(stem):]
        if len(low) >= 5 and _common_noun(low):
            return True
    return False


def _common_noun(low: str) -> bool:
    top = parses(low)[0]
    return (top.tag.POS == "NOUN" and morph().word_is_known(low)
            and not any(g in p.tag for p in parses(low) for g in ("Name", "Surn", "Patr", "Geox")))


def business_spans(s: str, known_person: Callable[[str], bool] = lambda low: False) -> list[tuple[int, int]]:
    """Spans that name a company by their form: after or before a legal form, in quotes — unless the
    quotes hold a person: a known person's form, a Latin first name, two name readings («Richard Gere»,
    «Ивана Петрова»), a surname, or a first-name reading that is a person's by its context (see
    `_quoted_person`; a surname stays private even as the name of a thing, «бизнес-центр «Демидов»»)."""
    out = [_company_after_legal_form(m) for m in LEGAL_COMPANY_RE.finditer(s)]
    # … unless the word ends a longer capitalised run: «Иван Петров ООО» keeps the name whole
    out += [m.span() for m in COMPANY_BEFORE_LEGAL_RE.finditer(s)
            if not CAP_BEFORE_RE.search(s, max(0, m.start() - 40), m.start())]
    for m in QUOTED_RE.finditer(s):
        words = re.findall(r"\w+", m.group(0))
        if not (words and len(words) <= 3 and words[0][:1].isupper()) or any(known_person(w.lower()) for w in words):
            continue
        caps = [w for w in words if w[:1].isupper()]
        if any(is_latin_first(w) for w in caps) or called(s, m.start()):
            continue
        infos = [tok_info(w[:1] + w[1:].lower()) for w in caps]
        names = sum(i.strong for i in infos)
        if names >= 2 or any(i.strong and i.surn for i in infos) or (names == 1 and _quoted_person(s, m.start(), words)):
            continue
        out.append(m.span())
    return out


def _company_after_legal_form(m: re.Match) -> tuple[int, int]:
    """The company of a «legal form + name» match: an unquoted second word that reads first as a
    first name is the person next to a one-word company («ООО Вектор Анна прислала акт»)."""
    words = list(re.finditer(r"\S+", m.group(0)))
    if len(words) == 3 and words[1].group(0)[:1] not in "«\"“„'" and tok_info(words[2].group(0)).top_name:
        return m.start(), m.start() + words[1].end()
    return m.span()


WORD_BEFORE_RE = re.compile(r"([А-ЯЁа-яё][а-яё]*(?:-[а-яё]+)?)[ \u00a0]*$")


def _quoted_person(s: str, i: int, words: list[str]) -> bool:
    """Quotes at `i` holding one first-name reading hold a person: alone, when a person or naming noun
    announces it (`_announces_person`); beside other words, unless the quotes follow an inanimate common
    noun (the thing in «корабль «Орион»», «автомобили «Шкода Октавия»»)."""
    return _announces_person(s, i) if len(words) == 1 else not _names_a_thing(s, i)


# nouns that announce a person's name in quotes («под прозвищем «Руби»»)
NAMING_NOUNS = frozenset({"прозвище", "псевдоним", "кличка", "имя", "ник", "никнейм"})
# what says the next word is how someone is called: «клиента зовут Горба», «по прозвищу «Эль-Чапо»»,
# «под псевдонимом Кузя», «известный как Стинг»
CALLED_RE = re.compile(r"(?<![\w])(?i:зовут|звали|по[ \u00a0]+(?:имени|прозвищу|кличке|фамилии|отчеству)|"
                       r"под[ \u00a0]+(?:псевдонимом|именем|ником)|известн(?:ый|ая|ого|ой|ую|ые|ых|ым)[ \u00a0]+как)"
                       r"[ \u00a0]+[«\"“„']?$")


def called(s: str, i: int) -> bool:
    """The word at `i` is how someone is called (see `CALLED_RE`): a person's name, whatever the
    dictionary reads in it."""
    return CALLED_RE.search(s, max(0, i - 30), i) is not None


def _announces_person(s: str, i: int) -> bool:
    """The quotes at `i` hold one first name of a person, not a firm's («менеджера «ТИХОН»», «под
    прозвищем «Руби»»): an animate or a naming noun comes right before them. With nothing before them,
    one quoted first name is a firm's or a thing's («Вчера «Пересвет» не сумел…», «за «Рому»»)."""
    m = WORD_BEFORE_RE.search(s, max(0, i - 40), i)
    if not m:
        return False
    low = m.group(1).lower()
    return _animate_noun(low) or parses(low)[0].normal_form in NAMING_NOUNS


@lru_cache(maxsize=20_000)
def _animate_noun(word: str) -> bool:
    p = parses(word)[0]
    return p.tag.POS == "NOUN" and "anim" in p.tag


def _names_a_thing(s: str, i: int) -> bool:
    """The quotes at `i` follow an inanimate common noun («корабль», «бизнес-центра», «автомобили»):
    they hold the name of that thing, whatever names it is made of."""
    m = WORD_BEFORE_RE.search(s, max(0, i - 40), i)
    return bool(m) and _inanimate_noun(m.group(1).lower())


@lru_cache(maxsize=20_000)
def _inanimate_noun(word: str) -> bool:
    p = parses(word)[0]
    return p.tag.POS == "NOUN" and "inan" in p.tag and morph().word_is_known(word)
