"""Words of a record as the offline embeddings see them: razdel tokens, lemmas from the shared
pymorphy3 analyser, function words dropped, pseudonyms (PER-1a2b3c4d, TEL-…) kept whole.

Why lemmas: the account's corpus is small, so «клиенту», «клиента», «клиентом» must count as one
word for the SIF frequencies, and navec knows every lemma it knows a form of.
"""

from __future__ import annotations

import re
from functools import lru_cache

from crmsum.cites import PSEUDONYM_RE

MAX_CHARS = 4000  # a record or query is cut here: bounded work on hostile input (10,000 characters)
# parts of speech that carry no topic: prepositions, conjunctions, particles, interjections, pronouns
FUNCTION_POS = {"PREP", "CONJ", "PRCL", "INTJ", "NPRO"}
_WORD_RE = re.compile(r"[^\W\d_](?:[\w-]*\w)?", re.UNICODE)


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str | None:
    """Normal form of one lowercase word, or None for a function word."""
    from crmsum.ru import morph

    if not re.search(r"[а-яё]", word):
        return word  # Latin words, abbreviations: kept as they are
    p = morph().parse(word)[0]
    if p.tag.POS in FUNCTION_POS:
        return None
    return p.normal_form.replace("ё", "е")


def tokens(text: str | None) -> list[str]:
    """Content tokens of a text: lemmas of words, plus pseudonyms as they are.

    Digits, punctuation and one-letter words are dropped (amounts and dates go through SQL filters).
    """
    from razdel import tokenize

    if not text:
        return []
    text = text[:MAX_CHARS]
    out: list[str] = []
    pos = 0
    for m in PSEUDONYM_RE.finditer(text):
        out += _words(text[pos:m.start()], tokenize)
        out.append(m.group(0))
        pos = m.end()
    out += _words(text[pos:], tokenize)
    return out


def _words(chunk: str, tokenize) -> list[str]:
    out = []
    for t in tokenize(chunk):
        w = t.text.lower()
        if len(w) < 2 or not _WORD_RE.fullmatch(w):
            continue
        lem = lemma(w)
        if lem:
            out.append(lem)
    return out
