"""A question's words, as every part of the parser reads them.

Tokens (with their offsets and spelling), the pymorphy3 readings of a word (cached: the analyser is
the parser's slow path), whether a word is an ordinary dictionary word, its Latin transliteration and
the skeleton that makes transliteration variants one key, capitalisation cues, and the small
vocabulary around names (company words, prepositions). The entity index, the entity matching, the
intent classifier and the unresolved-word detection all build on these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from crmsum.ru import morph

__all__ = ["COMPANY_WORDS", "RU_PREPS", "STRONG_PREPS", "WEAK_PREPS", "Token", "caps_meaningful", "is_common_word",
           "is_known_word", "norm_word", "sentence_initial", "skeleton", "tokenize", "translit", "word_parses"]


# ----------------------------------------------------------------------------- readings

def norm_word(word: str) -> str:
    """Lowercase, ё as е: the spelling every lookup is keyed by."""
    return word.lower().replace("ё", "е")


@lru_cache(maxsize=100_000)
def word_parses(word: str) -> tuple[tuple[str, frozenset, float], ...]:
    """(normal form, grammemes, score) of every analysis of a lowercase word."""
    out = []
    for p in morph().parse(word)[:6]:
        out.append((norm_word(p.normal_form), frozenset(p.tag.grammemes), p.score))
    return tuple(out)


@lru_cache(maxsize=100_000)
def is_known_word(word: str) -> bool:
    """True when the analyser's dictionary has the word (no guessing)."""
    return morph().word_is_known(word)


_PROPER = {"Name", "Surn", "Patr", "Orgn", "Trad"}
_POS = {"NOUN", "ADJF", "ADJS", "VERB", "INFN", "ADVB", "PRTF", "PRTS", "GRND", "NUMR", "NPRO", "PREP", "CONJ",
        "PRCL", "INTJ", "PRED", "COMP"}


@lru_cache(maxsize=100_000)
def is_common_word(word: str) -> bool:
    """True when a known word has an ordinary (non proper-name) reading: «жене», «альфа»."""
    if not is_known_word(word):
        return False
    for _nf, gr, score in word_parses(word):
        if not (gr & _PROPER) and score >= 0.05 and gr & _POS:
            return True
    return False


# ----------------------------------------------------------------------------- transliteration

_TR = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}
_SKEL_STEPS = [
    ("shch", "s"), ("sch", "s"), ("tch", "c"), ("sh", "s"), ("ch", "c"), ("kh", "h"), ("zh", "z"),
    ("ts", "c"), ("tz", "c"), ("ph", "f"), ("ck", "k"), ("x", "ks"), ("w", "v"), ("q", "k"),
    ("yu", "u"), ("iu", "u"), ("ju", "u"), ("ya", "a"), ("ia", "a"), ("ja", "a"), ("yo", "o"),
    ("ye", "e"), ("ie", "e"), ("y", "i"), ("j", "i"),
]


def translit(word: str) -> str:
    """Latin spelling of a Russian word («Теххренмаш» -> «tekhkhrenmash»)."""
    return "".join(_TR.get(ch, ch) for ch in norm_word(word))


@lru_cache(maxsize=100_000)
def skeleton(latin: str) -> str:
    """Collapse transliteration variants: Tekhkhrenmash / Tehhrenmash / Техххренмаш -> one key."""
    s = re.sub(r"[^a-z0-9]", "", latin.lower())
    for a, b in _SKEL_STEPS:
        s = s.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", s)


# ----------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Token:
    """One word or number of a question."""

    text: str  # original spelling
    norm: str  # lowercase, ё->е
    start: int
    end: int
    latin: bool

    @property
    def capitalized(self) -> bool:
        return self.text[:1].isupper()


_TOKEN_RE = re.compile(r"[^\W\d_]+(?:\d+)?|\d+")


def tokenize(text: str) -> list[Token]:
    """The words and numbers of a text, with their offsets."""
    out = []
    for m in _TOKEN_RE.finditer(text):
        w = m.group(0)
        n = norm_word(w)
        out.append(Token(w, n, m.start(), m.end(), bool(re.match(r"[a-z]", n))))
    return out


def caps_meaningful(tokens: list[Token]) -> bool:
    """Capitalization carries information when some non-initial word is capitalized
    and the question is not typed in capitals."""
    letters = [t for t in tokens if not t.text.isdigit()]
    upper = sum(1 for t in letters if t.text.isupper() and len(t.text) > 1)
    if letters and upper * 2 > len(letters):
        return False
    return any(t.capitalized for t in tokens[1:] if not t.latin)


def sentence_initial(tokens: list[Token], i: int, text: str) -> bool:
    """True when token i starts a sentence (its capital then says nothing)."""
    if i == 0:
        return True
    between = text[tokens[i - 1].end:tokens[i].start]
    return any(ch in between for ch in ".!?\n")


# ----------------------------------------------------------------------------- vocabulary

# words that announce a company («у клиента Ромашка»), and prepositions before a name
COMPANY_WORDS = {
    "компания", "компании", "компанию", "компанией", "компаний", "клиент", "клиента", "клиенту",
    "клиентом", "клиенте", "заказчик", "заказчика", "заказчику", "заказчиком", "заказчике",
    "фирма", "фирмы", "фирме", "фирму", "фирмой", "контрагент", "контрагента", "контрагенту",
    "организация", "организации", "организацию", "организацией", "client", "company", "customer",
    "account", "группа", "группы", "группе", "группой",
}
STRONG_PREPS = {"по", "для", "with", "for", "about", "re", "regarding"}
WEAK_PREPS = {"у", "от", "о", "об", "про", "on", "at", "из"}
RU_PREPS = {"у", "от", "о", "об", "про", "с", "со", "в", "во", "из", "к", "ко", "для", "по", "без", "после",
            "до", "при", "на", "за", "над", "под", "между", "перед", "через", "около", "возле", "насчет"}
