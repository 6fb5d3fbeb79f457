"""The forms a known name is indexed under: every case of a manager's first name, surname and its
diminutives, and of each word of a company's name, generated from pymorphy3 lexemes.

Generating forms once per name (instead of analysing every question word against every name) is
what lets a question token be looked up exactly; gender is kept because a surname declines by it
(«Петрова» is hers, «Петрову» is his or hers).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from crmsum.ru import lexeme_forms, morph

from .tokens import is_known_word, norm_word

if TYPE_CHECKING:  # pymorphy3 loads with the analyser (`crmsum.ru.morph`), not with this module
    from pymorphy3.analyzer import Parse
    from pymorphy3.tagset import OpencorporaTag

__all__ = ["company_token_forms", "first_name_forms", "gender_of", "pick_parse", "singular_forms", "surname_forms"]


def gender_of(tag: OpencorporaTag) -> str | None:
    """The gender grammeme of a reading ('ms-f' for common gender), None when it has none."""
    gr = tag.grammemes
    for g in ("ms-f", "masc", "femn", "neut"):
        if g in gr:
            return g
    return None


def pick_parse(word: str, want: set[str], gender: str | None = None) -> Parse | None:
    """The first reading of a word with all the `want` grammemes, of that gender when there is one."""
    parses = morph().parse(word)
    for p in parses:
        if want <= set(p.tag.grammemes) and (gender is None or gender_of(p.tag) in (gender, "ms-f") or gender == "ms-f"):
            return p
    for p in parses:
        if want <= set(p.tag.grammemes):
            return p
    return None


def singular_forms(p: Parse, gender: str | None = None, keep_number: bool = False) -> set[str]:
    """Every case form of a reading's lexeme (singular, of that gender), lowercase, ё as е."""
    return {norm_word(f) for f in lexeme_forms(p, gender, keep_number)}


def first_name_forms(word: str) -> tuple[set[str], str | None, str | None]:
    """Forms, lemma and gender of a first name."""
    p = pick_parse(word, {"Name", "sing", "nomn"}) or pick_parse(word, {"Name"})
    if p is None:
        return {word}, word, None
    g = gender_of(p.tag)
    return singular_forms(p) | {word}, norm_word(p.normal_form), g


def surname_forms(word: str, gender: str | None) -> tuple[set[str], str]:
    """Forms and lemma of a surname (or one half of a double one) of a person of that gender."""
    p = pick_parse(word, {"Surn", "nomn"}, gender) or pick_parse(word, {"Surn"}, gender)
    if p is None:
        adj = pick_parse(word, {"ADJF", "nomn"}, gender)  # «Римская», «Толстой»
        if adj is not None:
            return singular_forms(adj, gender) | {word}, norm_word(adj.normal_form)
        if is_known_word(word):
            return {word}, word
        q = morph().parse(word)[0]
        return singular_forms(q) | {word}, norm_word(q.normal_form)
    return singular_forms(p, gender or gender_of(p.tag)) | {word}, norm_word(p.normal_form)


def company_token_forms(word: str) -> tuple[set[str], str | None]:
    """Forms and lemma of one word of a company's name; a fixed or Latin word is only itself."""
    if len(word) <= 2 or word.isdigit() or re.search(r"[a-z0-9]", word):
        return {word}, None
    parses = morph().parse(word)
    def ok(x, need_self: bool) -> bool:
        gr = x.tag.grammemes
        return ("nomn" in gr and "Fixd" not in gr and ("NOUN" in gr or "ADJF" in gr)
                and (not need_self or (norm_word(x.normal_form) == word and "sing" in gr)))

    p = next((x for x in parses if ok(x, True)), None)
    if p is None and is_known_word(word):
        p = next((x for x in parses if ok(x, False)), None)
    if p is None:
        # unknown word with no usable reading: let the analyser guess its paradigm from an
        # oblique form it can read unambiguously («технолайном» -> технолайн, masc noun)
        for probe in (word + "ом", word + "ем", word[:-1] + "ой", word[:-1] + "ью"):
            p = next((x for x in morph().parse(probe) if norm_word(x.normal_form) == word
                      and "NOUN" in x.tag.grammemes and "sing" in x.tag.grammemes), None)
            if p is not None:
                break
    if p is None:
        return {word}, word
    if "Fixd" in p.tag.grammemes or "Abbr" in p.tag.grammemes:
        return {word}, None
    gender = gender_of(p.tag) if "ADJF" in p.tag.grammemes else None
    forms = singular_forms(p, gender, keep_number=True) | {word}
    return forms, norm_word(p.normal_form)
