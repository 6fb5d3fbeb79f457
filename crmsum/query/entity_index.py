"""The entity index: every known manager and company name compiled into exact, lemma and fuzzy lookups.

The canonical names come from the lake (CRM users, CRM companies). For each list we build,
once, an index of every inflected form (pymorphy3 lexemes, so «Еве», «Евой», «Петровой»,
«Теххренмашу» are known exactly), their lemmas, their Latin transliterations («Eva»,
«Tekhkhrenmash») and the forms of common diminutives («Женя», «Лёша»). A question token is
looked up exactly first, then by lemma, then — only when the token is not an ordinary
dictionary word — by a small edit distance that scales with its length (typos). A token
that is not in the lists (a client's name, a city, a common word) never matches. How the
tokens of a question are combined into one manager and one company is `entities.py`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from rapidfuzz import process
from rapidfuzz.distance import OSA

from crmsum.ru import DIMINUTIVES, company_core

from .name_forms import company_token_forms, first_name_forms, gender_of, pick_parse, singular_forms, surname_forms
from .tokens import Token, is_common_word, is_known_word, norm_word, skeleton, tokenize, translit, word_parses

__all__ = ["EntityIndex", "get_index"]

_LOCK = threading.Lock()  # guards the index cache
_BUILDING: dict[tuple, threading.Lock] = {}  # key -> lock of the one thread building that index

# Latin words of English questions: never looked up as a transliterated name
_LATIN_STOP = {
    "the", "in", "on", "at", "for", "with", "by", "of", "to", "what", "did", "do", "does", "how",
    "is", "was", "were", "and", "or", "me", "my", "we", "our", "us", "about", "from", "this", "that",
    "last", "past", "week", "month", "year", "day", "days", "today", "show", "tell", "summary",
    "deals", "deal", "manager", "company", "client", "please", "give", "eve", "done", "work",
    "worked", "any", "all", "new", "ago", "since", "between", "and", "doing", "happened",
    "mail", "call", "calls", "meet", "meeting", "sales", "sale", "ivy", "olga's",
}


def _fuzzy_budget(n: int) -> int:
    """How many edits a token of length n may carry: none for short words (false positives)."""
    if n <= 4:
        return 0
    if n <= 8:
        return 1
    return 2


# ----------------------------------------------------------------------------- index

@dataclass
class _Key:
    """What one exact key (form / skeleton) points to."""

    targets: set = field(default_factory=set)  # {(entity idx, part)}
    needs_cap: bool = False


class _Matcher:
    """Exact + lemma + fuzzy lookup of one token against a family of forms."""

    def __init__(self, lemma_requires: frozenset = frozenset()) -> None:
        self.lemma_requires = lemma_requires
        self.base_skels: dict[str, set] = {}
        self._base_keys: list[str] = []
        self.forms: dict[str, _Key] = {}
        self.lemmas: dict[str, set] = {}
        self.skels: dict[str, set] = {}
        self._form_keys: list[str] = []
        self._form_targets: dict[str, set] = {}
        self._skel_keys: list[str] = []

    def add(self, forms: set[str], lemma: str | None, target: tuple, needs_cap_fn: Callable[[str], bool],
            base: tuple = ()) -> None:
        for f in forms:
            if not f:
                continue
            k = self.forms.setdefault(f, _Key())
            k.targets.add(target)
            k.needs_cap = k.needs_cap or needs_cap_fn(f)
            sk = skeleton(translit(f))
            if len(sk) >= 3:
                self.skels.setdefault(sk, set()).add(target)
        if lemma:
            self.lemmas.setdefault(lemma, set()).add(target)
        for b in base:
            sk = skeleton(translit(b))
            if len(sk) >= 3:
                self.base_skels.setdefault(sk, set()).add(target)

    def freeze(self) -> None:
        self._base_keys = list(self.base_skels)
        self._form_keys = list(self.forms)
        self._form_targets = {k: v.targets for k, v in self.forms.items()}
        self._skel_keys = list(self.skels)

    def lookup(self, tok: Token, caps_meaningful: bool) -> dict[tuple, float]:
        """{target: score} for one token; scores 1.0 exact, 0.9 lemma, <=0.8 fuzzy."""
        w = tok.norm
        if tok.latin:
            if w in _LATIN_STOP or len(w) < 3:
                return {}
            sk = skeleton(w)
            if sk in self.skels:
                return {t: 0.95 for t in self.skels[sk]}
            budget = _fuzzy_budget(len(sk) - 1)
            if budget:  # typos in Latin: only against base (nominative) forms
                return self._fuzzy(sk, self._base_keys, self.base_skels, budget)
            return {}
        k = self.forms.get(w)
        if k is not None:
            if k.needs_cap and caps_meaningful and not tok.capitalized:
                return {}
            return {t: 1.0 for t in k.targets}
        if len(w) < 2:
            return {}
        hits: dict[tuple, float] = {}
        known = is_known_word(w)
        # unknown words go straight to fuzzy matching: their forms are already indexed, and
        # the analyser's guessing of unknown words is its slow path
        for nf, gr, _s in (word_parses(w) if known else ()):
            if "plur" in gr or not (self.lemma_requires <= gr):
                continue
            for t in self.lemmas.get(nf, ()):
                hits[t] = 0.9
        if hits:
            if is_common_word(w) and caps_meaningful and not tok.capitalized:
                return {}
            return hits
        if len(w) >= 4 and (not known or not is_common_word(w)):
            sk = skeleton(translit(w))  # «Яндекс» ~ Yandex, «Тэххренмаш» ~ Теххренмаш
            if sk in self.skels:
                return {t: 0.85 for t in self.skels[sk]}
        budget = _fuzzy_budget(len(w))
        if budget and not known:
            return self._fuzzy(w, self._form_keys, self._form_targets, budget)
        return {}

    def _fuzzy(self, w: str, keys: list[str], table: dict, budget: int) -> dict[tuple, float]:
        res = process.extract(w, keys, scorer=OSA.distance, score_cutoff=budget, limit=8)
        if not res:
            return {}
        best = min(r[1] for r in res)
        hits: dict[tuple, float] = {}
        for key, dist, _i in res:
            if dist == best:
                for t in table[key]:
                    hits[t] = 0.8 - 0.05 * dist
        return hits


class EntityIndex:
    """Compiled matchers for one (managers, companies) pair of lists."""

    def __init__(self, managers: tuple[str, ...], companies: tuple[str, ...]) -> None:
        self.managers = managers
        self.companies = companies
        self.mgr = _Matcher(frozenset({"Name"}))
        self.mgr_gender: list[str | None] = []
        self.mgr_nom: dict[int, set[str]] = {}
        for i, full in enumerate(managers):
            parts = [norm_word(x) for x in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)?", full)]
            if not parts:
                self.mgr_gender.append(None)
                continue
            first = parts[0]
            forms, lemma, gender = first_name_forms(first)
            self.mgr_nom.setdefault(i, set()).add(first)
            self.mgr.add(forms, lemma, (i, "first"), is_common_word, base=(first, lemma or first))
            if len(parts) > 1:
                last = parts[-1]
                if gender is None:
                    sp = pick_parse(last.split("-")[-1], {"Surn", "nomn"})
                    gender = gender_of(sp.tag) if sp else None
                # «Римская-Корсакова»: each half declines and is matched on its own
                for piece in last.split("-"):
                    if not piece:
                        continue
                    sforms, _slemma = surname_forms(piece, gender)
                    self.mgr.add(sforms, None, (i, "last"), is_common_word, base=(piece,))
                    self.mgr_nom.setdefault(i, set()).add(piece)
                # lemma matching for surnames is gender-blind, so only via forms + fuzzy
            self.mgr_gender.append(gender)
            if lemma:
                for dim, fulls in DIMINUTIVES.items():
                    if lemma in fulls:
                        dp = pick_parse(dim, {"Name"})
                        dforms = singular_forms(dp) if dp else {dim}
                        self.mgr.add(dforms | {dim}, None, (i, "dim"), is_common_word, base=(dim,))
        self.mgr.freeze()

        self.comp_cores: list[list[str]] = []
        self.comp_common: list[bool] = []
        self.comp_tok = _Matcher()
        for i, name in enumerate(companies):
            core = [t.norm for t in tokenize(company_core(name))]  # ООО «Ромашка» -> [ромашка]
            self.comp_cores.append(core)
            common = len(core) == 1 and (
                is_common_word(core[0])
                or (is_known_word(core[0]) and any(gr & {"Name", "Surn", "Geox"} for _n, gr, _s in word_parses(core[0])))
            ) or (len(core) == 1 and len(core[0]) <= 3)
            self.comp_common.append(common)
            for j, tok in enumerate(core):
                forms, lemma = company_token_forms(tok)
                self.comp_tok.add(forms, lemma, (i, j), lambda f: False, base=(tok,))
            # the whole name glued together («СибТрубПром» vs «Сиб Труб Пром», «МирОкон»)
            if len(core) > 1:
                glued = "".join(core)
                self.comp_tok.add({glued}, None, (i, -1), lambda f: False)
        self.comp_tok.freeze()


_INDEX_CACHE: dict[tuple, EntityIndex] = {}


def get_index(managers: Sequence[str] | None, companies: Sequence[str] | None) -> EntityIndex:
    """The compiled index for these lists; built once per distinct pair of lists, by one thread: the
    bot's first questions arrive together, and each building its own copy (a second of morphology) would
    multiply that second by the number of handler threads."""
    key = (tuple(managers or ()), tuple(companies or ()))
    idx = _INDEX_CACHE.get(key)
    if idx is not None:
        return idx
    with _LOCK:
        gate = _BUILDING.setdefault(key, threading.Lock())
    with gate:
        idx = _INDEX_CACHE.get(key)
        if idx is None:
            idx = EntityIndex(*key)
            with _LOCK:
                if len(_INDEX_CACHE) > 64:
                    _INDEX_CACHE.clear()
                _INDEX_CACHE[key] = idx
                _BUILDING.pop(key, None)
    return idx
