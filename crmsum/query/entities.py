"""Find which manager and which company a question is about.

The canonical names come from the lake (CRM users, CRM companies). For each list we build,
once, an index of every inflected form (pymorphy3 lexemes, so «Еве», «Евой», «Петровой»,
«Теххренмашу» are known exactly), their lemmas, their Latin transliterations («Eva»,
«Tekhkhrenmash») and the forms of common diminutives («Женя», «Лёша»). A question token is
matched exactly first, then by lemma, then — only when the token is not an ordinary
dictionary word — by a small edit distance that scales with its length (typos). A token
that is not in the lists (a client's name, a city, a common word) never matches.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from crmsum.ru import DIMINUTIVES, LEGAL_FORMS, company_core, lexeme_forms, morph
from crmsum.ru import QUOTES as _QUOTES

_LOCK = threading.Lock()  # guards the matcher cache
_BUILDING: dict[tuple, threading.Lock] = {}  # key -> lock of the one thread building that index

__all__ = ["EntityIndex", "get_index", "Token", "tokenize", "translit", "skeleton", "morph"]



def _norm(word: str) -> str:
    return word.lower().replace("ё", "е")


@lru_cache(maxsize=100_000)
def _parses(word: str) -> tuple[tuple[str, frozenset, float], ...]:
    """(normal form, grammemes, score) of every analysis of a lowercase word."""
    out = []
    for p in morph().parse(word)[:6]:
        out.append((_norm(p.normal_form), frozenset(p.tag.grammemes), p.score))
    return tuple(out)


@lru_cache(maxsize=100_000)
def _is_known(word: str) -> bool:
    return morph().word_is_known(word)


_PROPER = {"Name", "Surn", "Patr", "Orgn", "Trad"}
_POS = {"NOUN", "ADJF", "ADJS", "VERB", "INFN", "ADVB", "PRTF", "PRTS", "GRND", "NUMR", "NPRO", "PREP", "CONJ",
        "PRCL", "INTJ", "PRED", "COMP"}


@lru_cache(maxsize=100_000)
def _is_common_word(word: str) -> bool:
    """True when a known word has an ordinary (non proper-name) reading: «жене», «альфа»."""
    if not _is_known(word):
        return False
    for _nf, gr, score in _parses(word):
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
    return "".join(_TR.get(ch, ch) for ch in _norm(word))


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
    out = []
    for m in _TOKEN_RE.finditer(text):
        w = m.group(0)
        n = _norm(w)
        out.append(Token(w, n, m.start(), m.end(), bool(re.match(r"[a-z]", n))))
    return out


# ----------------------------------------------------------------------------- vocabulary

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

    def add(self, forms: set[str], lemma: str | None, target: tuple, needs_cap_fn, base: tuple = ()) -> None:
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
        known = _is_known(w)
        # unknown words go straight to fuzzy matching: their forms are already indexed, and
        # the analyser's guessing of unknown words is its slow path
        for nf, gr, _s in (_parses(w) if known else ()):
            if "plur" in gr or not (self.lemma_requires <= gr):
                continue
            for t in self.lemmas.get(nf, ()):
                hits[t] = 0.9
        if hits:
            if _is_common_word(w) and caps_meaningful and not tok.capitalized:
                return {}
            return hits
        if len(w) >= 4 and (not known or not _is_common_word(w)):
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


def _gender(tag) -> str | None:
    gr = tag.grammemes
    for g in ("ms-f", "masc", "femn", "neut"):
        if g in gr:
            return g
    return None


def _pick_parse(word: str, want: set[str], gender: str | None = None):
    parses = morph().parse(word)
    for p in parses:
        if want <= set(p.tag.grammemes) and (gender is None or _gender(p.tag) in (gender, "ms-f") or gender == "ms-f"):
            return p
    for p in parses:
        if want <= set(p.tag.grammemes):
            return p
    return None


def _singular_forms(p, gender: str | None = None, keep_number: bool = False) -> set[str]:
    return {_norm(f) for f in lexeme_forms(p, gender, keep_number)}


def _name_forms(word: str) -> tuple[set[str], str | None, str | None]:
    """Forms, lemma and gender of a first name."""
    p = _pick_parse(word, {"Name", "sing", "nomn"}) or _pick_parse(word, {"Name"})
    if p is None:
        return {word}, word, None
    g = _gender(p.tag)
    return _singular_forms(p) | {word}, _norm(p.normal_form), g


def _surname_forms(word: str, gender: str | None) -> tuple[set[str], str]:
    p = _pick_parse(word, {"Surn", "nomn"}, gender) or _pick_parse(word, {"Surn"}, gender)
    if p is None:
        adj = _pick_parse(word, {"ADJF", "nomn"}, gender)  # «Римская», «Толстой»
        if adj is not None:
            return _singular_forms(adj, gender) | {word}, _norm(adj.normal_form)
        if _is_known(word):
            return {word}, word
        q = morph().parse(word)[0]
        return _singular_forms(q) | {word}, _norm(q.normal_form)
    return _singular_forms(p, gender or _gender(p.tag)) | {word}, _norm(p.normal_form)


def _company_token_forms(word: str) -> tuple[set[str], str | None]:
    if len(word) <= 2 or word.isdigit() or re.search(r"[a-z0-9]", word):
        return {word}, None
    parses = morph().parse(word)
    def ok(x, need_self: bool) -> bool:
        gr = x.tag.grammemes
        return ("nomn" in gr and "Fixd" not in gr and ("NOUN" in gr or "ADJF" in gr)
                and (not need_self or (_norm(x.normal_form) == word and "sing" in gr)))

    p = next((x for x in parses if ok(x, True)), None)
    if p is None and _is_known(word):
        p = next((x for x in parses if ok(x, False)), None)
    if p is None:
        # unknown word with no usable reading: let the analyser guess its paradigm from an
        # oblique form it can read unambiguously («технолайном» -> технолайн, masc noun)
        for probe in (word + "ом", word + "ем", word[:-1] + "ой", word[:-1] + "ью"):
            p = next((x for x in morph().parse(probe) if _norm(x.normal_form) == word
                      and "NOUN" in x.tag.grammemes and "sing" in x.tag.grammemes), None)
            if p is not None:
                break
    if p is None:
        return {word}, word
    if "Fixd" in p.tag.grammemes or "Abbr" in p.tag.grammemes:
        return {word}, None
    gender = _gender(p.tag) if "ADJF" in p.tag.grammemes else None
    forms = _singular_forms(p, gender, keep_number=True) | {word}
    return forms, _norm(p.normal_form)


class EntityIndex:
    """Compiled matchers for one (managers, companies) pair of lists."""

    def __init__(self, managers: tuple[str, ...], companies: tuple[str, ...]) -> None:
        self.managers = managers
        self.companies = companies
        self.mgr = _Matcher(frozenset({"Name"}))
        self.mgr_gender: list[str | None] = []
        self.mgr_nom: dict[int, set[str]] = {}
        for i, full in enumerate(managers):
            parts = [_norm(x) for x in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)?", full)]
            if not parts:
                self.mgr_gender.append(None)
                continue
            first = parts[0]
            forms, lemma, gender = _name_forms(first)
            self.mgr_nom.setdefault(i, set()).add(first)
            self.mgr.add(forms, lemma, (i, "first"), _is_common_word, base=(first, lemma or first))
            if len(parts) > 1:
                last = parts[-1]
                if gender is None:
                    sp = _pick_parse(last.split("-")[-1], {"Surn", "nomn"})
                    gender = _gender(sp.tag) if sp else None
                # «Римская-Корсакова»: each half declines and is matched on its own
                for piece in last.split("-"):
                    if not piece:
                        continue
                    sforms, _slemma = _surname_forms(piece, gender)
                    self.mgr.add(sforms, None, (i, "last"), _is_common_word, base=(piece,))
                    self.mgr_nom.setdefault(i, set()).add(piece)
                # lemma matching for surnames is gender-blind, so only via forms + fuzzy
            self.mgr_gender.append(gender)
            if lemma:
                for dim, fulls in DIMINUTIVES.items():
                    if lemma in fulls:
                        dp = _pick_parse(dim, {"Name"})
                        dforms = _singular_forms(dp) if dp else {dim}
                        self.mgr.add(dforms | {dim}, None, (i, "dim"), _is_common_word, base=(dim,))
        self.mgr.freeze()

        self.comp_cores: list[list[str]] = []
        self.comp_common: list[bool] = []
        self.comp_tok = _Matcher()
        for i, name in enumerate(companies):
            core = [t.norm for t in tokenize(company_core(name))]  # ООО «Ромашка» -> [ромашка]
            self.comp_cores.append(core)
            common = len(core) == 1 and (
                _is_common_word(core[0])
                or (_is_known(core[0]) and any(gr & {"Name", "Surn", "Geox"} for _n, gr, _s in _parses(core[0])))
            ) or (len(core) == 1 and len(core[0]) <= 3)
            self.comp_common.append(common)
            for j, tok in enumerate(core):
                forms, lemma = _company_token_forms(tok)
                self.comp_tok.add(forms, lemma, (i, j), lambda f: False, base=(tok,))
            # the whole name glued together («СибТрубПром» vs «Сиб Труб Пром», «МирОкон»)
            if len(core) > 1:
                glued = "".join(core)
                self.comp_tok.add({glued}, None, (i, -1), lambda f: False)
        self.comp_tok.freeze()


_INDEX_CACHE: dict[tuple, EntityIndex] = {}


def get_index(managers, companies) -> EntityIndex:
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


# ----------------------------------------------------------------------------- matching

@dataclass
class Match:
    value: str | None
    candidates: list[str]  # all equally good candidates (len > 1 means ambiguous)
    mentioned: list[str]   # every resolved mention, in order
    score: float
    span: tuple[int, int] | None = None


def _caps_meaningful(tokens: list[Token]) -> bool:
    """Capitalization carries information when some non-initial word is capitalized
    and the question is not typed in capitals."""
    letters = [t for t in tokens if not t.text.isdigit()]
    upper = sum(1 for t in letters if t.text.isupper() and len(t.text) > 1)
    if letters and upper * 2 > len(letters):
        return False
    return any(t.capitalized for t in tokens[1:] if not t.latin)


def _sentence_initial(tokens: list[Token], i: int, text: str) -> bool:
    if i == 0:
        return True
    between = text[tokens[i - 1].end:tokens[i].start]
    return any(ch in between for ch in ".!?\n")


def _has_cue(tokens: list[Token], i: int, text: str, caps: bool) -> bool:
    tok = tokens[i]
    if tok.capitalized and (caps or not any(t.text.isupper() and len(t.text) > 1 for t in tokens)):
        if not _sentence_initial(tokens, i, text):
            return True
        # «Ромашка: что нового?» / «Ромашке» alone, but not «Вектор развития»
        after = text[tok.end:tok.end + 2]
        if i == len(tokens) - 1 or any(ch in after for ch in ":,-—?!"):
            return True
    before = text[max(0, tok.start - 2):tok.start]
    if any(q in before for q in _QUOTES):
        return True
    if i > 0:
        prev = tokens[i - 1].norm
        if prev in LEGAL_FORMS or prev in COMPANY_WORDS or prev in STRONG_PREPS:
            return True
        if not caps and (prev in WEAK_PREPS or prev in ("с", "со")):
            return True
    return False


def match_companies(idx: EntityIndex, tokens: list[Token], text: str, caps: bool) -> Match:
    if not idx.companies or not tokens:
        return Match(None, [], [], 0.0)
    per_tok = [idx.comp_tok.lookup(t, False) for t in tokens]
    found: list[tuple[int, int, int, float]] = []  # (start, end, company, score)
    for i in range(len(tokens)):
        if not per_tok[i]:
            continue
        for (ci, j), s in per_tok[i].items():
            core = idx.comp_cores[ci]
            if j == -1:
                found.append((i, i + 1, ci, s))
                continue
            if j != 0:
                continue
            total = s
            ok = True
            for k in range(1, len(core)):
                if i + k >= len(tokens):
                    ok = False
                    break
                sk = per_tok[i + k].get((ci, k))
                if sk is None:
                    ok = False
                    break
                total += sk
            if not ok:
                continue
            if idx.comp_common[ci] and not _has_cue(tokens, i, text, caps):
                continue
            found.append((i, i + len(core), ci, total / len(core)))
    if not found:
        return Match(None, [], [], 0.0)
    # drop matches inside a longer one («Альфа» inside «Альфа-Строй»)
    def covered(a):
        return any(b[0] <= a[0] and a[1] <= b[1] and (b[1] - b[0]) > (a[1] - a[0]) for b in found)

    found = [f for f in found if not covered(f)]
    best = max(f[3] for f in found)
    good = [f for f in found if f[3] >= best - 0.15]
    good.sort(key=lambda f: (f[0], -f[3]))
    first_span = (good[0][0], good[0][1])
    same = [f for f in good if (f[0], f[1]) == first_span]
    top = max(f[3] for f in same)
    cands = sorted({idx.companies[f[2]] for f in same if f[3] >= top - 1e-9})
    mentioned = []
    for f in sorted(found, key=lambda f: f[0]):
        name = idx.companies[f[2]]
        if name not in mentioned:
            mentioned.append(name)
    value = cands[0] if len(cands) == 1 else None
    span = (tokens[first_span[0]].start, tokens[first_span[1] - 1].end)
    return Match(value, cands, mentioned, top, span)


def _looks_like(tok: Token, grammeme: str) -> bool:
    """A capitalized token that pymorphy reads as a first name / surname."""
    if tok.latin or not tok.capitalized:
        return False
    return any(grammeme in gr for _nf, gr, _s in _parses(tok.norm))


def _verb_gender(tokens: list[Token]) -> str | None:
    """Gender of past-tense verbs («делала» -> femn): tells «Петрова» (she) from «Петрова» (his)."""
    seen = set()
    for t in tokens:
        if t.latin or len(t.norm) < 4 or not t.norm.endswith(("л", "ла", "лась", "лся")) or not _is_known(t.norm):
            continue
        for _nf, gr, _s in _parses(t.norm)[:1]:
            if "VERB" in gr and "past" in gr and "sing" in gr:
                seen |= gr & {"masc", "femn"}
    return next(iter(seen)) if len(seen) == 1 else None


def match_managers(idx: EntityIndex, tokens: list[Token], caps: bool, exclude: tuple[int, int] | None = None) -> Match:
    if not idx.managers or not tokens:
        return Match(None, [], [], 0.0)
    hits: list[dict[int, tuple[str, float]]] = []
    for t in tokens:
        if exclude and exclude[0] <= t.start < exclude[1]:
            hits.append({})
            continue
        h: dict[int, tuple[str, float]] = {}
        for (mi, part), s in idx.mgr.lookup(t, caps).items():
            if mi not in h or h[mi][1] < s:
                h[mi] = (part, s)
        if h:
            top = max(s for _p, s in h.values())
            h = {m: v for m, v in h.items() if v[1] >= top - 1e-9}
        hits.append(h)
    mentions: list[tuple[int, set[int], float]] = []  # (token pos, candidates, weight)
    i = 0
    n = len(tokens)
    while i < n:
        h = hits[i]
        if not h:
            i += 1
            continue
        if i + 1 < n and hits[i + 1]:
            h2 = hits[i + 1]
            both = {m for m in h if m in h2 and {h[m][0], h2[m][0]} in ({"first", "last"}, {"dim", "last"})}
            if both:
                mentions.append((i, both, 2.0 + min(h[m][1] + h2[m][1] for m in both)))
                i += 2
                continue
        mentions.append((i, set(h), max(s for _p, s in h.values())))
        i += 1
    # «Анна Иванова» (a client) is not our Анна Петрова; «Ника Петрова» is not our Петрова
    kept = []
    doubt: set[int] = set()
    for pos, cands, w in mentions:
        if w < 2.0:
            parts = {hits[pos][m][0] for m in cands}
            nb = None
            if parts <= {"first", "dim"} and pos + 1 < n:
                nb = pos + 1
                if _looks_like(tokens[nb], "Patr") and not (set(hits[nb]) & cands):
                    doubt.update(cands)  # «Ольга Сергеевна»: maybe ours, maybe a client
                    continue
                if not _looks_like(tokens[nb], "Surn"):
                    nb = None
            elif parts == {"last"} and pos > 0:
                nb = pos - 1
                if not _looks_like(tokens[nb], "Name"):
                    nb = None
            if nb is not None and not (set(hits[nb]) & cands):
                continue
        kept.append((pos, cands, w))
    mentions = kept
    if not mentions:
        return Match(None, sorted(idx.managers[m] for m in doubt), [], 0.0)
    vg = _verb_gender(tokens)
    narrowed = []
    for pos, cands, w in mentions:
        if len(cands) > 1 and vg:
            by_g = {m for m in cands if idx.mgr_gender[m] in (vg, "ms-f")}
            if by_g:
                cands = by_g
        if len(cands) > 1:
            tok = tokens[pos]
            prev = tokens[pos - 1].norm if pos > 0 else ""
            key = tok.norm
            if prev in RU_PREPS and not tok.latin:
                oblique = {m for m in cands if key not in idx.mgr_nom.get(m, ())}
                if len(oblique) == 1:
                    cands = oblique
            else:
                nom = {m for m in cands if key in idx.mgr_nom.get(m, ())
                       or (tok.latin and any(skeleton(key) == skeleton(translit(x)) for x in idx.mgr_nom.get(m, ())))}
                if len(nom) == 1:
                    cands = nom
        narrowed.append((pos, cands, w))
    mentions = narrowed
    score: dict[int, float] = {}
    for _pos, cands, w in mentions:
        for m in cands:
            score[m] = score.get(m, 0.0) + w / len(cands)
    best = max(score.values())
    top = [m for m, s in score.items() if s >= best - 1e-9]
    mentioned: list[str] = []
    for _pos, cands, _w in mentions:
        if len(cands) == 1:
            name = idx.managers[next(iter(cands))]
            if name not in mentioned:
                mentioned.append(name)
    if len(top) == 1:
        return Match(idx.managers[top[0]], [idx.managers[top[0]]], mentioned, best)
    # several equally supported: an unambiguous mention decides (the first one wins)
    for _pos, cands, _w in mentions:
        if len(cands) == 1 and next(iter(cands)) in top:
            m = next(iter(cands))
            return Match(idx.managers[m], [idx.managers[m]], mentioned, best)
    return Match(None, sorted(idx.managers[m] for m in top), mentioned, best)
