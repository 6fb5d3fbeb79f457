"""Person names: normalization to a nominative lemma, a gazetteer of known people, NER.

Normalized key = lowercase nominative «first surname» (patronymic dropped, surname in the
person's gender): «Ольге Смирновой» -> «ольга смирнова», «Федосеев Юрий» -> «юрий федосеев».
Morphology is cached per token, so the hot path is regex + dict lookups.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from crmsum.ru import MONTHS_NOM, WEEKDAYS_NOM, listed_first_names, morph, name_forms, parses, surname_nominative

_NER = None
_LOCK = threading.Lock()

WORD_RE = re.compile(r"[A-Za-zА-Яа-яЁё]+(?:-[A-Za-zА-Яа-яЁё]+)*")
# a capitalised word, Cyrillic or Latin with diacritics («Müller»), with a hyphenated part
# («Римский-Корсаков», «Жан-Мари») or a particle prefix («аль-Барадеи», «д'Артаньян», «О’Рейли»); right after
# an initial too, as people write it in a hurry («Н.Кузнецов», «В.В.Путин», «Дж.Коми»)
CAP_RE = re.compile(r"(?:(?<![\w@./\-])|(?<=(?<!\w)[А-ЯЁ]\.)|(?<=(?<!\w)Дж\.))(?:(?:аль|эль|ибн|бен|де|ди|дю|ван|фон|ле|ла|al|el|de|di|van|von|d|o)['’-]|[ОДOD]['’])?"
                    r"(?:Mc|Mac|Di|De|Le|La|Fitz|Du)?[А-ЯЁA-ZÀ-ÖØ-Þ][а-яёa-zß-öø-ÿ]+(?:-[А-ЯЁA-ZÀ-ÖØ-Þ][а-яёa-zß-öø-ÿ]+)?(?![\w@])")

# Capitalized words that are never people even though pymorphy has a Name/Surn reading.
STOP = {*MONTHS_NOM, *WEEKDAYS_NOM,
    "клиент", "менеджер", "директор", "спасибо", "привет", "добрый", "коллеги",
    "итого", "договор", "счет", "счёт", "оплата", "тендер", "сделка", "задача", "звонок", "встреча",
    "россия", "москва", "господь", "бог", "слава", "мир",
    "олимпиада",   # the games, whatever the name-day calendar says («на Олимпиаде в Рио»)
    "вы", "ваш", "ты", "твой",   # capitalised out of politeness («Вы будете»)
    "бухгалтер", "юрист", "инженер", "главный", "генеральный", "коммерческий", "закупщик", "логист",
    "снабженец", "снабжение", "руководитель", "начальник", "заместитель", "зам", "гендир", "владелец",
    "собственник", "главбух", "гендиректор", "финдир", "техдир", "замдир", "партнер", "партнёр", "поставщик", "заказчик", "покупатель", "коллега", "секретарь",
    "технолог", "механик", "водитель", "специалист", "сотрудник", "господин", "госпожа", "уважаемый",
    "президент", "вице-президент", "председатель", "министр", "премьер", "губернатор", "мэр", "депутат",
    "сенатор", "посол", "советник", "пресс-секретарь",
    "цена", "маркет", "сбер", "альфа", "тинькофф", "яндекс", "озон", "битрикс", "телеграм",
}
ANY_NAME = ("Name", "Surn", "Patr")




_BLAS_LOCAL = None


def blas_one_thread() -> None:
    """Pin OpenBLAS to one thread *for the calling thread only* (NER matrices are tiny: threads
    only add overhead, ~2x slower, and fight the second worker for the other core)."""
    global _BLAS_LOCAL
    if _BLAS_LOCAL is None:
        _BLAS_LOCAL = False
        try:
            import ctypes
            with open("/proc/self/maps") as f:
                libs = {line.split()[-1] for line in f if "openblas" in line and line.rstrip().endswith(".so")
                        or ("openblas" in line and ".so" in line.split()[-1])}
            for lib in libs:
                fn = getattr(ctypes.CDLL(lib), "openblas_set_num_threads_local", None)
                if fn is not None:
                    _BLAS_LOCAL = fn
                    break
        except Exception:  # not Linux / other BLAS: just slower
            _BLAS_LOCAL = False
    if _BLAS_LOCAL:
        try:
            _BLAS_LOCAL(1)
        except Exception:
            pass


def ner_tagger():
    """natasha NewsNERTagger, loaded once per process (~1.5 s, shared after fork)."""
    global _NER
    if _NER is None:
        with _LOCK:
            if _NER is None:
                from natasha import NewsEmbedding, NewsNERTagger
                tagger = NewsNERTagger(NewsEmbedding())
                tagger.infer.encoder.batch_size = NER_BATCH   # what `ner_map` hands it; `map` still cuts 8
                _NER = tagger
    blas_one_thread()
    return _NER


NER_BATCH = 32


def ner_map(texts: Sequence[str]) -> list:
    """natasha's markups of `texts` (slovnet's: `.spans` of start, stop, type), in order, read in
    batches of similar length. Why: a batch is padded to its longest text, and on news-length text
    the padding was a third of the model's work; sorted batches of 32 give the same spans ~35% faster
    than natasha's `map` (batches of 8 in the given order; figures in the README)."""
    tagger = ner_tagger()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list = [None] * len(texts)
    for k in range(0, len(order), NER_BATCH):
        idx = order[k:k + NER_BATCH]
        for i, markup in zip(idx, tagger.infer([texts[i] for i in idx])):
            out[i] = markup
    return out


@lru_cache(maxsize=1)
def _ner_noise_re() -> re.Pattern:
    from slovnet.shape import PUNCTS   # the punctuation natasha's NER was trained to see

    return re.compile(r"[^\w\s" + re.escape(PUNCTS) + "]")


def ner_text(s: str) -> str:
    """`s` as natasha's NER should read it: every symbol outside the news punctuation it was trained
    on (bullets «•», arrows, emoji, «©») becomes a space, offsets unchanged. Why: such a symbol is an
    unseen token shape to the model and blinds it to the name right after it («• Хорхе Ларрионда»,
    «👉 Иван Петров» go untagged), and chats and lists are full of them."""
    return _ner_noise_re().sub(" ", s)


@dataclass(frozen=True, slots=True)
class TokInfo:
    """What morphology says about one capitalized token."""
    name: str | None        # first-name lemma if some reading is Name
    surn: str | None        # surname lemma (masculine) if some reading is Surn
    patr: bool              # some reading is a patronymic
    strong: bool            # the top reading is Name/Surn/Patr
    top_name: bool          # the top reading is a first name
    anim: bool              # the top reading is an animate noun («Мельник», «Кузнец»)
    gender: str | None      # 'masc'/'femn' of the best person reading
    known: bool             # in the dictionary (not a guess)
    place: bool             # top reading is a place or organisation
    stop: bool              # common word that must never be a person
    verbal: bool = False    # a dictionary word of a part of speech no name is (a verb, an adverb, …)
    geo: bool = False       # a dictionary word with some reading a place or organisation («Ливан», «Марс»)


def _prefix_guess(parse) -> bool:
    """A reading pymorphy guessed by splitting off a prefix (unknown word = prefix + known word)."""
    return any("PrefixAnalyzer" in type(step[0]).__name__ for step in parse.methods_stack)


@lru_cache(maxsize=200_000)
def tok_info(word: str) -> TokInfo:
    m = morph()
    readings = parses(word)
    low = word.lower()
    name = surn = None
    patr = False
    gender = None
    best = 0.0
    for p in readings:
        t = p.tag
        if _prefix_guess(p):  # «Кофе»+«машина»: a compound guess, never a person's name
            continue
        if "Name" in t and name is None and p.score >= 0.02:
            name = p.normal_form
            if p.score > best:
                best, gender = p.score, (str(t.gender) if t.gender else None)
        elif "Surn" in t and surn is None and p.score >= 0.02:
            surn = p.normal_form
            if p.score > best:
                best, gender = p.score, (str(t.gender) if t.gender else None)
        elif "Patr" in t and p.score >= 0.02:
            patr = True
    top = readings[0].tag if readings else None
    strong = bool(top is not None and not _prefix_guess(readings[0]) and any(g in top for g in ANY_NAME))
    place = bool(top is not None and ("Geox" in top or "Orgn" in top))
    lemma = readings[0].normal_form if readings else low
    stop = low in STOP or lemma in STOP
    top_name = bool(top is not None and "Name" in top)
    anim = bool(top is not None and top.POS == "NOUN" and "anim" in top)
    known = m.word_is_known(low)
    if not known and not stop:
        listed = _listed_first(low, readings)
        if listed is not None:   # a first name of natasha's dictionary: a name reading, not a place one
            # (still a guess for the morphology: `strong` and `known` stay, so NER still decides alone)
            return TokInfo(listed, surn, patr, strong, True, True, gender if name else None, False, False, False)
    verbal = bool(known and top is not None and top.POS in NOT_NAME_POS and not (name or surn or patr))
    geo = known and any(("Geox" in p.tag or "Orgn" in p.tag) for p in readings)
    return TokInfo(name, surn, patr, strong, top_name, anim, gender, known, place, stop, verbal, geo)


@lru_cache(maxsize=20_000)
def only_animate(word: str) -> bool:
    """Every reading is an animate noun: a rank or a trade («патриарх», «полковник»; not «франк», also
    the currency)."""
    return all(p.tag.POS == "NOUN" and "anim" in p.tag for p in parses(word))


# Parts of speech a name never is: a word the dictionary knows only as one of these («Передай»,
# «Созвонились», «Также») is no part of a person's name, whatever NER says about it.
NOT_NAME_POS = frozenset({"VERB", "INFN", "GRND", "PRTS", "ADVB", "CONJ", "PREP", "PRCL", "INTJ", "NPRO",
                          "PRED", "COMP", "NUMR"})


def _listed_first(low: str, parses) -> str | None:
    """The first name of `listed_first_names` an unknown word is a form of («Есбол», «Есбола»)."""
    names = listed_first_names()
    low = low.replace("ё", "е")
    if low in names:
        return low
    for p in parses:
        if p.tag.POS == "NOUN" and p.normal_form.replace("ё", "е") in names:
            return p.normal_form
    return None


def _first_nominative(word: str) -> str:
    info = tok_info(word)
    return (info.name or word).lower()


def _is_first(info: TokInfo) -> bool:
    return bool(info.name) and (info.strong or not info.surn)


def split_name(name: str) -> tuple[str | None, str | None, str | None]:
    """(first-name token, surname token, gender) of a full-name string in any order/case."""
    toks = [t[:1].upper() + t[1:].lower() for t in WORD_RE.findall(name)]
    if not toks:
        return None, None, None
    infos = [tok_info(t) for t in toks]
    keep = [(t, i) for t, i in zip(toks, infos) if not (i.patr and not i.name and not i.surn)] or list(zip(toks, infos))
    first = None
    if len(keep) == 1:
        t, i = keep[0]
        first = t if (i.name and (i.top_name or not i.surn)) else None
    else:
        for pred in (lambda i: i.name and not i.surn and i.strong, lambda i: i.name and not i.surn,
                     lambda i: i.name and i.strong, lambda i: i.name):
            first = next((t for t, i in keep if pred(i)), None)
            if first is not None:
                break
    if first is not None and len(keep) > 1:
        # a token with a patronymic reading right after the first name is the patronymic
        # («Борис Александрович», «Петров Иван Александрович»), not a surname
        idx = next(k for k, (t, _) in enumerate(keep) if t is first)
        if idx + 1 < len(keep) and keep[idx + 1][1].patr:
            keep = keep[:idx + 1] + keep[idx + 2:]
    surn = None
    for t, i in keep:
        if t is not first:
            surn = t
            break
    gender = tok_info(first).gender if first else None
    if gender is None and surn is not None:
        gender = tok_info(surn).gender
    return first, surn, gender


def normalize_name(name: str) -> str:
    """Normalized person key: «ольга смирнова»; «юрий федосеев»; a lone name → its lemma."""
    first, surn, gender = split_name(name)
    parts = []
    if first:
        parts.append(_first_nominative(first))
    if surn:
        parts.append(surname_nominative(surn, gender) if tok_info(surn).surn else surn.lower())
    if not parts:
        return " ".join(name.lower().split())
    return " ".join(parts)


def display_form(norm: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in norm.split())


class Gazetteer:
    """Known people (from CRM structured fields) in every grammatical form."""

    def __init__(self) -> None:
        self.people: dict[str, tuple[str, str | None]] = {}   # norm -> (real, role)
        self.first_forms: dict[str, set[str]] = {}            # lowercase form -> {norm}
        self.surn_forms: dict[str, set[str]] = {}
        self.by_first: dict[str, set[str]] = {}               # first lemma -> {norm}
        self.by_surn: dict[str, set[str]] = {}

    def add(self, real: str, role: str | None) -> str:
        norm = normalize_name(real)
        self.people[norm] = (real, role)
        parts = norm.split()
        first, surn, gender = split_name(real)
        if first:
            self.by_first.setdefault(parts[0], set()).add(norm)
            for f in name_forms(first, "Name", gender):
                self.first_forms.setdefault(f, set()).add(norm)
        if surn:
            slem = parts[-1]
            self.by_surn.setdefault(slem, set()).add(norm)
            for f in name_forms(surn, "Surn", gender):
                self.surn_forms.setdefault(f, set()).add(norm)
        return norm

    def unique(self, forms: set[str] | None) -> str | None:
        if forms and len(forms) == 1:
            return next(iter(forms))
        return None


def learn_many(g: Gazetteer, people: Iterable[tuple[str, str | None]]) -> list[str]:
    return [g.add(real, role) for real, role in people if real and real.strip()]
