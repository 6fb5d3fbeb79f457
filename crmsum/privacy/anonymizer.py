"""Scrub personal data from structured fields and free text before anything is written.

Pipeline for one text (all offsets on the original string, then one splice):
1. regex detectors: e-mails, profile links, document numbers, phones, @handles;
2. capitalized tokens: learned companies are protected; known people are found in every
   grammatical form through the gazetteer (dict lookups over pymorphy-generated forms);
   other tokens with a Name/Surn/Patr reading (cached pymorphy) become people; adjacent
   name tokens (and initials) form one person;
3. natasha NER only when capitalized tokens remain that nothing above could decide
   (unknown words mid-sentence, weak name readings at sentence start, Latin name pairs).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import re
from functools import lru_cache
from typing import Any, Iterable, Sequence

from crmsum.cites import PSEUDONYM_RE
from crmsum.failpoints import failpoint
from crmsum.ru import COMPANY_KIND_WORDS, LEGAL_FORMS

from . import detectors as D
from .people import CAP_RE, Gazetteer, display_form, morph, ner_tagger, normalize_name, tok_info
from .vault import Vault

log = logging.getLogger(__name__)

NOT_COMPANY_WORDS = LEGAL_FORMS | COMPANY_KIND_WORDS | {"компаний", "и", "в", "на", "the"}
SEP_RE = re.compile(r"^[ \u00a0]{1,2}$")
INITIALS_AFTER_RE = re.compile(r"[ \u00a0]?[А-ЯЁ]\.(?:[ \u00a0]?[А-ЯЁ]\.)?")
INITIALS_BEFORE_RE = re.compile(r"(?:(?<=[\s(«\"])|^)[А-ЯЁ]\.(?:[ \u00a0]?[А-ЯЁ]\.)?[ \u00a0]?$")
LATIN_RE = re.compile(r"^[A-Za-z]")
LOWER_TOKEN_RE = re.compile(r"(?<![\w@.\-])[а-яё]{4,}(?![\w@])")
LOWER_WORD_BEFORE_RE = re.compile(r"(?<![\w@.\-])([а-яё]+)[ \u00a0]$")
LOWER_WORD_AFTER_RE = re.compile(r"[ \u00a0]([а-яё]+)(?![\w@])")
STRONG_SURNAME_RE = re.compile(r"(?:ский|цкий|ская|цкая|ович|евич|енко|швили|дзе|ян)$")
SURNAME_LIKE_RE = re.compile(r"(?:ов|ев|ёв|ин|ын|ова|ева|ина|ына|ский|цкий|ская|цкая|ук|юк|енко|ян|швили|дзе|ич|ус|ис)$")

# First names that are also everyday words: a known person's name at sentence start is checked by NER.
AMBIGUOUS_NAMES = {"вера", "надежда", "любовь", "роман", "лев", "слава", "роза", "лилия", "мир", "злата",
                   "ангелина", "виолетта", "майя", "лада", "заря", "дина", "клим", "марат"}

_K, _P, _W, _Q = "K", "P", "W", "Q"   # known person, person, weak (sentence start), patronymic

_worker: "Anonymizer | None" = None


@lru_cache(maxsize=50_000)
def _is_common_word(low: str) -> bool:
    """The lower-case word also reads as an ordinary word (not only as a name)."""
    return any(p.score >= 0.05 and not any(g in p.tag for g in ("Surn", "Name", "Patr"))
               for p in morph().parse(low))


def _is_initial(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\u00a0«\"'(-—–•*>":
        i -= 1
    return i < 0 or text[i] in ".!?…\n\r:;"


class _Spans:
    """Replacement spans of one text with an occupancy mask (O(span) overlap checks)."""

    __slots__ = ("items", "mask")

    def __init__(self, n: int):
        self.items: list[tuple[int, int, str]] = []
        self.mask = bytearray(n)

    def free(self, a: int, b: int) -> bool:
        return self.mask.find(1, a, b) < 0

    def append(self, span: tuple[int, int, str]) -> None:
        a, b = span[0], span[1]
        self.items.append(span)
        self.mask[a:b] = b"\x01" * (b - a)


class Anonymizer:
    """Turns people, phones, e-mails, handles and document numbers into vault pseudonyms."""

    def __init__(self, vault: Vault, *, use_ner: bool = True, workers: int | None = None,
                 pool_threshold: int = 3000):
        self.vault = vault
        self.use_ner = use_ner
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.pool_threshold = pool_threshold
        self.gaz = Gazetteer()
        self.company_words: set[str] = set()
        self._pool = None
        self._pool_version = -1
        self._version = 0
        self.stats = {"texts": 0, "ner": 0}
        known = vault.known_people()
        if known:
            self._learn_people(known, persist=False)
        companies = vault.companies()
        if companies:
            self._learn_companies(companies, persist=False)

    def __repr__(self) -> str:
        return f"Anonymizer(vault={self.vault!r}, people={len(self.gaz.people)}, companies={len(self.company_words)})"

    def __getstate__(self):
        raise TypeError("Anonymizer is not picklable; workers rebuild it from the vault path")

    # -- learning ----------------------------------------------------------------------
    def learn_people(self, people: Iterable[tuple[str, str]]) -> None:
        """Known people (full real name, role) from CRM structured fields; persisted in the vault."""
        self._learn_people(list(people), persist=True)

    def _learn_people(self, people: list[tuple[str, str | None]], persist: bool) -> None:
        for real, role in people:
            if not real or not str(real).strip():
                continue
            real = " ".join(str(real).split())
            norm = self.gaz.add(real, role)
            if persist:
                self.vault.upsert_person(self.vault.pseudonym("person", norm), real, role)
        self._version += 1

    def learn_companies(self, names: Iterable[str]) -> None:
        """Company names stay readable in text, even where NER calls them persons."""
        self._learn_companies([n for n in names if n], persist=True)

    def _learn_companies(self, names: list[str], persist: bool) -> None:
        if persist:
            self.vault.add_companies(names)
        for n in names:
            for w in re.findall(r"[A-Za-zА-Яа-яЁё0-9]+(?:-[A-Za-zА-Яа-яЁё0-9]+)*", str(n)):
                lw = w.lower()
                if len(lw) < 3 or lw in NOT_COMPANY_WORDS:
                    continue
                info = tok_info(w[:1].upper() + w[1:].lower())
                if lw in self.gaz.first_forms or lw in self.gaz.surn_forms:
                    continue   # a person's name inside a company name («ИП Смирнов») stays private
                if (info.name or info.surn) and info.strong and not info.place:
                    continue
                self.company_words.add(lw)
        self._version += 1

    def _is_company(self, low: str) -> bool:
        cw = self.company_words
        if low in cw:
            return True
        for k in (1, 2, 3):
            if len(low) - k >= 4 and low[:-k] in cw:
                return True
        return False

    # -- structured fields ---------------------------------------------------------------
    def _person_norm(self, name: str) -> str:
        toks = CAP_RE.findall(name) or name.split()
        if len(toks) == 1:
            low = toks[0].lower()
            u = self.gaz.unique(self.gaz.first_forms.get(low)) or self.gaz.unique(self.gaz.surn_forms.get(low))
            if u:
                return u
            norm = normalize_name(name)
            u = self.gaz.unique(self.gaz.by_first.get(norm)) or self.gaz.unique(self.gaz.by_surn.get(norm))
            return u or norm
        return normalize_name(name)

    def person(self, name: str) -> str:
        """PER-xxxxxxxx for a structured name field (contact, user, chat author)."""
        if name is None or not str(name).strip():
            return name
        name = " ".join(str(name).split())
        norm = self._person_norm(name)
        real = self.gaz.people.get(norm, (None,))[0] or name
        return self.vault.register("person", norm, real)

    def phone(self, raw: str) -> str:
        """TEL-xxxxxxxx keyed on E.164 digits, so every spelling of one number agrees."""
        if raw is None or not str(raw).strip():
            return raw
        norm = D.normalize_phone(str(raw)) or "".join(c for c in str(raw) if c.isdigit()) or str(raw).strip().lower()
        return self.vault.register("phone", norm, str(raw).strip())

    def email(self, raw: str) -> str:
        if raw is None or not str(raw).strip():
            return raw
        return self.vault.register("email", str(raw).strip().lower(), str(raw).strip())

    def handle(self, raw: str) -> str:
        """TG-xxxxxxxx for a messenger username (with or without '@'), e.g. a chat author's handle."""
        if raw is None or not str(raw).strip():
            return raw
        return self.vault.register("handle", str(raw).strip().lstrip("@").lower(), str(raw).strip())

    def url(self, raw: str) -> str:
        """URL-xxxxxxxx for a personal profile link."""
        if raw is None or not str(raw).strip():
            return raw
        norm = re.sub(r"^(?:https?://)?(?:www\.|m\.)?", "", str(raw).strip().lower()).rstrip("/")
        return self.vault.register("url", norm, str(raw).strip())

    # -- free text ---------------------------------------------------------------------
    def text(self, s: str | None) -> str | None:
        """Scrubbed copy of a free-text field (None and '' pass through)."""
        if not s or not isinstance(s, str):
            return s
        spans, need = self._analyze(s)
        ner = None
        if need and self.use_ner:
            self.stats["ner"] += 1
            ner = [(sp.start, sp.stop) for sp in ner_tagger()(s).spans if sp.type == "PER"]
        return self._finish(s, spans, ner)

    def texts(self, items: Sequence[str | None]) -> list[str | None]:
        """Batch scrub; same output as ``[text(x) for x in items]``; both cores for big batches."""
        items = list(items)
        failpoint("anonymize.batch")
        if len(items) >= self.pool_threshold and self.workers > 1:
            try:
                return self._texts_pool(items)
            except Exception as e:  # pool unavailable (sandbox, no fork): degrade, never leak
                log.warning("parallel anonymization unavailable (%s); running in one process", type(e).__name__)
        return self._texts_local(items)

    def _texts_local(self, items: list[str | None]) -> list[str | None]:
        out: list[str | None] = list(items)
        pending = []
        for i, s in enumerate(items):
            if not s or not isinstance(s, str):
                continue
            spans, need = self._analyze(s)
            if need and self.use_ner:
                self.stats["ner"] += 1
                pending.append((i, spans))
            else:
                out[i] = self._finish(s, spans, None)
        if pending:
            tagger = ner_tagger()
            marks = tagger.map([items[i] for i, _ in pending])
            for (i, spans), mk in zip(pending, marks):
                ner = [(sp.start, sp.stop) for sp in mk.spans if sp.type == "PER"]
                out[i] = self._finish(items[i], spans, ner)
        return out

    def _texts_pool(self, items: list[str | None]) -> list[str | None]:
        if self._pool is None or self._pool_version != self._version:
            self.close_pool()
            self.vault.flush()
            if self.use_ner:
                ner_tagger()   # load before fork so workers share the model pages
            try:
                ctx = mp.get_context("fork")
            except ValueError:
                ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker,
                                  initargs=(str(self.vault.path), self.use_ner))
            self._pool_version = self._version
            atexit.register(self.close_pool)
        n = max(200, len(items) // (self.workers * 8))
        chunks = [items[i:i + n] for i in range(0, len(items), n)]
        out: list[str | None] = []
        for part in self._pool.imap(_work_chunk, chunks):
            out.extend(part)
        return out

    def close_pool(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def close(self) -> None:
        self.close_pool()
        self.vault.flush()

    def scrub_json(self, obj: Any) -> Any:
        """Copy of a JSON-like value with every string leaf scrubbed (keys untouched)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.scrub_json(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_json(v) for v in obj]
        return obj

    # -- internals -----------------------------------------------------------------------
    def _analyze(self, s: str) -> tuple[list, bool]:
        """Spans (start, end, replacement-or-None-for-protected) and whether NER is needed."""
        self.stats["texts"] += 1
        taken = _Spans(len(s))
        free = taken.free

        for m in PSEUDONYM_RE.finditer(s):
            taken.append((m.start(), m.end(), m.group(0)))
        has_digit = any(c.isdigit() for c in s)
        finders = [D.find_emails, D.find_profiles, D.find_handles]
        if has_digit:
            finders = [D.find_emails, D.find_profiles, D.find_docs, D.find_phones, D.find_handles]
        for f in finders:
            if f is not D.find_emails and f is not D.find_profiles and f is not D.find_handles and not has_digit:
                continue
            if f in (D.find_emails, D.find_handles) and "@" not in s:
                continue
            if f is D.find_profiles and "/" not in s and ":" not in s:
                continue
            for a, b, kind, norm, real in f(s):
                if free(a, b):
                    taken.append((a, b, self.vault.register(kind, norm, real)))

        # capitalized tokens
        toks = []   # (start, end, word, cls)
        need_ner = False
        gaz = self.gaz
        for m in CAP_RE.finditer(s):
            a, b = m.span()
            if not free(a, b):
                continue
            w = m.group(0)
            low = w.lower()
            if low in gaz.first_forms or low in gaz.surn_forms:
                if (low not in gaz.surn_forms and tok_info(w).name in AMBIGUOUS_NAMES and not tok_info(w).top_name
                        and _is_initial(s, a)
                        and s[b:b + 1] != ","):   # «Вера, глянь счёт» is a vocative
                    toks.append((a, b, w, _W))   # «Надежда есть.», «Роман прочитал.»: NER decides
                else:
                    toks.append((a, b, w, _K))
                continue
            if self._is_company(low):
                continue
            if LATIN_RE.match(w):
                toks.append((a, b, w, "L"))
                continue
            info = tok_info(w)
            if info.stop:
                continue
            initial = _is_initial(s, a)
            if info.patr and not info.name and not info.surn:
                toks.append((a, b, w, _Q))
            elif info.name or info.surn:
                if info.place and not info.strong:
                    continue
                if not initial or info.strong or (info.name and s[b:b + 1] == ","):
                    toks.append((a, b, w, _P))
                else:
                    toks.append((a, b, w, _W))
            elif not info.place and (not info.known or info.anim):
                # unknown word or animate noun («Мельник»): a person only next to a name, else NER decides
                toks.append((a, b, w, "I" if initial else "U"))
        # group adjacent name tokens
        groups: list[list] = []
        for t in toks:
            if groups and len(groups[-1]) < 4 and SEP_RE.match(s[groups[-1][-1][1]:t[0]]):
                groups[-1].append(t)
            else:
                groups.append([t])
        for g in groups:
            classes = {t[3] for t in g}
            if classes <= {"I"}:
                w0 = g[0][2]
                if not STRONG_SURNAME_RE.search(w0) or tok_info(w0).known:
                    if SURNAME_LIKE_RE.search(w0):
                        need_ner = True
                    continue
                # unknown word shaped like a surname at sentence start («Кшиштофский отправил»)
                g = [(t[0], t[1], t[2], _P) for t in g]
                classes = {_P}
            if "I" in classes and not classes & {_K, _P}:
                g = [t for t in g if t[3] != "I"]
                classes = {t[3] for t in g}
            if classes <= {"L"}:
                if len(g) >= 2:
                    need_ner = True
                continue
            if classes <= {"U"}:
                need_ner = True
                continue
            if classes <= {_W, "U", "L", _Q}:
                need_ner = True
                continue
            g = [t for t in g if t[3] != "L"]
            norm = self._group_norm(g)
            a, b = g[0][0], g[-1][1]
            mb = INITIALS_BEFORE_RE.search(s, max(0, a - 6), a)
            if mb and free(mb.start(), a):
                a = mb.start()
            ma = INITIALS_AFTER_RE.match(s, b)
            if ma and ma.end() > b and free(b, ma.end()):
                b = ma.end()
            real = gaz.people.get(norm, (None,))[0] or display_form(norm)
            taken.append((a, b, self.vault.register("person", norm, real)))

        # known surnames written in lower case («созвонился с смирновой»)
        if gaz.surn_forms:
            for m in LOWER_TOKEN_RE.finditer(s):
                a, b = m.span()
                forms = gaz.surn_forms.get(m.group(0))
                if forms and free(a, b):
                    u = gaz.unique(forms)
                    if u:
                        off = max(0, a - 40)
                        mb = LOWER_WORD_BEFORE_RE.search(s[off:a])
                        ma = LOWER_WORD_AFTER_RE.match(s, b)
                        with_first = bool(mb and u in gaz.first_forms.get(mb.group(1), ())) or bool(
                            ma and u in gaz.first_forms.get(ma.group(1), ()))
                        if _is_common_word(m.group(0)) and not with_first:
                            continue   # «до морозов», «стая волков»: not Морозов / Волков
                        # absorb the first name written next to it («роман лебедев», «лебедев роман»)
                        if mb and u in gaz.first_forms.get(mb.group(1), ()) and free(off + mb.start(1), a):
                            a = off + mb.start(1)
                        if ma and u in gaz.first_forms.get(ma.group(1), ()) and free(b, ma.end(1)):
                            b = ma.end(1)
                        taken.append((a, b, self.vault.register("person", u, gaz.people[u][0])))
        return taken.items, need_ner

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

    def _finish(self, s: str, taken: list, ner: list[tuple[int, int]] | None) -> str:
        if ner:
            for a, b in ner:
                words = [m for m in CAP_RE.finditer(s, a, b)]
                words = [m for m in words if not self._is_company(m.group(0).lower())
                         and not tok_info(m.group(0)).stop]
                if not words:
                    continue
                a2, b2 = words[0].start(), words[-1].end()
                inside = [t for t in taken if a2 <= t[0] and t[1] <= b2 and t[2].startswith("PER-")]
                clash = [t for t in taken if t[0] < b2 and a2 < t[1] and t not in inside]
                if clash:
                    continue
                if inside and len(words) == 1:
                    continue
                for t in inside:
                    taken.remove(t)
                norm = normalize_name(" ".join(m.group(0) for m in words))
                if len(words) == 1:
                    norm = self._group_norm([(a2, b2, words[0].group(0), _P)])
                real = self.gaz.people.get(norm, (None,))[0] or display_form(norm)
                taken.append((a2, b2, self.vault.register("person", norm, real)))
        if not taken:
            return s
        taken.sort()
        out = []
        pos = 0
        for a, b, rep in taken:
            if a < pos:
                continue
            out.append(s[pos:a])
            out.append(rep)
            pos = b
        out.append(s[pos:])
        return "".join(out)


def _init_worker(vault_dir: str, use_ner: bool) -> None:
    global _worker
    _worker = Anonymizer(Vault(vault_dir), use_ner=use_ner, workers=1)


def _work_chunk(chunk: list[str | None]) -> list[str | None]:
    assert _worker is not None
    out = _worker._texts_local(chunk)
    _worker.vault.flush()
    return out
