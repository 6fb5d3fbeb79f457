"""Scrub personal data from structured fields and free text before anything is written.

Pipeline for one text (all offsets on the original string, then one splice):
1. fixed-token detectors: addresses (`[адрес]`), IP addresses (`[IP-адрес]`); regex detectors:
   e-mails, profile links, document numbers, phones, @handles; the name after «ИП»; spans that are
   companies by their form (after a legal form, in quotes) and street names are protected;
2. capitalised and ALL-CAPS tokens (`finder.PersonFinder`): learned companies and brand-shaped
   words are protected; known people are found in every grammatical form through the gazetteer;
   other tokens with a Name/Surn/Patr reading, Latin first names, diminutives, unknown words before a
   verb become people; adjacent name tokens, particles and initials form one whole person span;
3. birth dates next to a person or a birthday word (`[дата рождения]`); lower-case names (`lower`);
4. natasha NER only when tokens remain that nothing above could decide (unknown words, weak readings
   at sentence start, Latin pairs, a lone surname NER may veto as a place); its person spans are
   widened to the whole capitalised name;
5. with document keys (`texts(items, docs)`: the notes of a deal, the messages of a chat), a second
   pass masks every other mention of a person found in the document, in any case form (`memory`).
"""
from __future__ import annotations

import atexit
import datetime as dt
import logging
import multiprocessing as mp
import os
import re
from typing import Any, Hashable, Iterable, Sequence

from crmsum.cites import PSEUDONYM_RE
from crmsum.failpoints import failpoint
from crmsum.ru import COMPANY_KIND_WORDS, LEGAL_FORMS

from . import detectors as D
from . import memory
from .finder import PersonFinder, _P, rank_before_name, widen_name
from .lower import lower_case_people
from .ner_spans import adjective_only, bracket_parts, name_words, ner_windows, not_in_a_name
from .names import FOLK_RE, LONE_INITIALS_RE, SOLE_TRADER_RE, business_spans, is_business_word
from .people import CAP_RE, Gazetteer, display_form, ner_map, ner_tagger, ner_text, normalize_name, tok_info
from .vault import Vault

log = logging.getLogger(__name__)

DIGIT_RE = re.compile(r"\d")   # the gate of the detectors that need a digit (faster than a scan in Python)
NOT_COMPANY_WORDS = LEGAL_FORMS | COMPANY_KIND_WORDS | {"компаний", "и", "в", "на", "the"}

_worker: "Anonymizer | None" = None



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


class Anonymizer(PersonFinder):
    """Turns people, phones, e-mails, handles and document numbers into vault pseudonyms."""

    def __init__(self, vault: Vault, *, use_ner: bool = True, workers: int | None = None,
                 pool_threshold: int = 3000):
        self.vault = vault
        self.use_ner = use_ner
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.pool_threshold = pool_threshold
        self.gaz = Gazetteer()
        self.company_words: set[str] = set()
        self._company_stems: set[str] = set()   # company words less one or two final letters
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
            sole = SOLE_TRADER_RE.search(str(n))
            if sole:   # «ИП Сковородникова Агриппина Саввична»: a person, in every form, never a company word
                self._learn_people([(sole.group(1), "contact")], persist=persist)
                n = str(n)[:sole.start(1)] + str(n)[sole.end(1):]
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
                if len(lw) >= 5:
                    self._company_stems.update((lw[:-1], lw[:-2]))
        self._version += 1

    def _is_company(self, low: str) -> bool:
        """A learned company word in any case form («Ромашка», «Ромашки», «Ромашкой»)."""
        cw = self.company_words
        if low in cw:
            return True
        for k in (1, 2, 3):
            if len(low) - k >= 4 and low[:-k] in cw:
                return True
        stems = self._company_stems
        return len(low) >= 5 and (low[:-1] in stems or low[:-2] in stems)

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

    def company(self, name: str) -> str:
        """A company name as the lake keeps it: readable, except a sole trader's personal name
        («ИП Сковородникова Агриппина Саввична» -> «ИП PER-…»)."""
        if name is None or not str(name).strip():
            return name
        name = " ".join(str(name).split())
        m = SOLE_TRADER_RE.search(name)
        if not m:
            return name
        return name[:m.start(1)] + self._person_pseudonym(m.group(1)) + name[m.end(1):]

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
        return _splice(s, self.spans(s))

    def spans(self, s: str) -> list[tuple[int, int, str]]:
        """Sorted, non-overlapping ``(start, end, replacement)`` of one text: what `text` changes
        (the factRuEval bench scores these offsets)."""
        if not s:
            return []
        return self.spans_many([s])[0]

    def texts(self, items: Sequence[str | None], docs: Sequence[Hashable | None] | None = None) -> list[str | None]:
        """Batch scrub; same output as ``[text(x) for x in items]`` when `docs` is None; both cores
        for big batches. `docs` gives each item a document key (a deal, a chat): a name masked in
        one item of a document is masked in all of them (see `memory`)."""
        items = list(items)
        docs = list(docs) if docs is not None else None
        failpoint("anonymize.batch")
        if len(items) >= self.pool_threshold and self.workers > 1:
            try:
                return self._texts_pool(items, docs)
            except Exception as e:  # pool unavailable (sandbox, no fork): degrade, never leak
                log.warning("parallel anonymization unavailable (%s); running in one process", type(e).__name__)
        return self._texts_local(items, docs)

    def _texts_local(self, items: list[str | None], docs: list | None = None) -> list[str | None]:
        spans = self.spans_many(items, docs)
        return [_splice(s, sp) if s and isinstance(s, str) else s for s, sp in zip(items, spans)]

    def spans_many(self, items: Sequence[str | None],
                   docs: Sequence[Hashable | None] | None = None) -> list[list[tuple[int, int, str]]]:
        """`spans` of each item, with one batched NER pass for the texts that need it; with `docs`,
        a second pass masks the words of each document that a person found in it is named by."""
        decided, others = self._decide_many(items)
        return self._settle(items, decided, others, docs)

    def _settle(self, items: Sequence[str | None], decided: list[list[tuple[int, int, str]]],
                others: list[list[tuple[int, int, str]]], docs: Sequence[Hashable | None] | None):
        """The replacements of each item once every item is decided: the document memory runs here,
        over the whole batch (so a pool's chunks change nothing)."""
        if docs is not None:
            self._recall(items, decided, others, docs)
        return [_visible(s, t) for s, t in zip(items, decided)]

    def _decide_many(self, items: Sequence[str | None]) -> tuple[list[list[tuple[int, int, str]]], list[list]]:
        """Every decided span of each item, protected ones (replacement = the original) included,
        and the places and organisations NER found in it (where it ran)."""
        out: list[list[tuple[int, int, str]]] = [[] for _ in items]
        others: list[list[tuple[int, int, str]]] = [[] for _ in items]
        pending = []
        for i, s in enumerate(items):
            if not s or not isinstance(s, str):
                continue
            spans, asks, soft = self._analyze(s)
            if asks and self.use_ner:
                self.stats["ner"] += 1
                pending.append((i, spans, soft, ner_windows(s, asks)))
            else:
                out[i] = self._resolve(s, spans, None)
        if pending:
            pieces = [(k, a) for k, (i, _, _, wins) in enumerate(pending) for a, _ in wins]
            texts = [ner_text(items[pending[k][0]][a:b]) for k, (i, _, _, wins) in enumerate(pending) for a, b in wins]
            found: list[list[tuple[int, int, str]]] = [[] for _ in pending]
            for (k, off), mk in zip(pieces, ner_map(texts)):
                found[k].extend((off + sp.start, off + sp.stop, sp.type) for sp in mk.spans)
            for (i, spans, soft, _), ner in zip(pending, found):
                out[i] = self._resolve(items[i], spans, ner, soft)
                others[i] = [t for t in ner if t[2] != "PER"]
        return out, others

    def _recall(self, items: Sequence[str | None], decided: list[list[tuple[int, int, str]]],
                others: list[list[tuple[int, int, str]]], docs: Sequence[Hashable | None]) -> None:
        """Second pass: each document's remembered names, masked in all its items (in place)."""
        for idx in memory.documents(docs).values():
            idx = [i for i in idx if items[i] and isinstance(items[i], str)]
            mem = memory.remember([items[i] for i in idx], [decided[i] for i in idx], [others[i] for i in idx])
            if not mem:
                continue
            for i in idx:
                orgs = [t for t in others[i] if t[2] == "ORG"]
                found = memory.recall(items[i], decided[i] + orgs, mem, self._may_recall, self._person_pseudonym)
                decided[i] = memory.relink(items[i], sorted(decided[i] + found), mem)

    def _may_recall(self, word: str) -> bool:
        """A remembered stem makes this word a person unless it is a company or a stop word."""
        return not (self._is_company(word.lower()) or is_business_word(word) or tok_info(word).stop)

    def _texts_pool(self, items: list[str | None], docs: list | None = None) -> list[str | None]:
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
        decided: list[list[tuple[int, int, str]]] = []
        others: list[list[tuple[int, int, str]]] = []
        for part, ner in self._pool.imap(_work_chunk, chunks):
            decided.extend(part)
            others.extend(ner)
        spans = self._settle(items, decided, others, docs)
        return [_splice(s, sp) if s and isinstance(s, str) else s for s, sp in zip(items, spans)]

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
    def _analyze(self, s: str) -> tuple[list, list[tuple[int, int]], set]:
        """Spans (start, end, replacement; the original text for protected spans) and whether NER is needed."""
        self.stats["texts"] += 1
        taken = _Spans(len(s))
        self._soft: set[tuple[int, int]] = set()   # lone surnames by rule: NER may veto (see _resolve)
        for m in PSEUDONYM_RE.finditer(s):
            taken.append((m.start(), m.end(), m.group(0)))
        self._fixed_detectors(s, taken)
        toks = self._cap_tokens(s, taken.free)
        asks = self._people_from_tokens(s, toks, taken)
        if DIGIT_RE.search(s):
            people = [(a, b) for a, b, rep in taken.items if rep.startswith("PER-")]
            for a, b in D.find_birthdates(s, people, dt.date.today().year):
                if taken.free(a, b):
                    taken.append((a, b, D.BIRTHDATE_TOKEN))
        lower_case_people(s, self.gaz, taken, self.vault)
        if "." in s:
            for m in LONE_INITIALS_RE.finditer(s):
                if taken.free(*m.span()):
                    norm = m.group(0).replace(" ", "").replace("\u00a0", "").lower()
                    taken.append((m.start(), m.end(), self.vault.register("person", norm, m.group(0))))
        return taken.items, asks, self._soft

    def _fixed_detectors(self, s: str, taken: "_Spans") -> None:
        """Addresses, IPs, contacts and document numbers; the sole trader's name; company-shaped spans."""
        free = taken.free
        has_digit = DIGIT_RE.search(s) is not None
        if has_digit:
            for a, b in D.find_addresses(s):
                if free(a, b):
                    taken.append((a, b, D.ADDRESS_TOKEN))
            for a, b in D.find_ips(s):
                if free(a, b):
                    taken.append((a, b, D.IP_TOKEN))
        finders = [D.find_emails, D.find_profiles, D.find_handles]
        if has_digit:
            finders = [D.find_emails, D.find_profiles, D.find_docs, D.find_phones, D.find_handles]
        for f in finders:
            if f in (D.find_emails, D.find_handles) and "@" not in s:
                continue
            if f is D.find_profiles and "/" not in s and ":" not in s:
                continue
            for a, b, kind, norm, real in f(s):
                if free(a, b):
                    taken.append((a, b, self.vault.register(kind, norm, real)))
        if "ИП" in s or "редпринимател" in s:
            for m in SOLE_TRADER_RE.finditer(s):
                a, b = m.span(1)
                if free(a, b):
                    taken.append((a, b, self._person_pseudonym(m.group(1))))
        # «ул. Ленина» without a house: the street is no person; «Деда Мороза»: a character, no person
        for a, b in [*D.street_spans(s), *(m.span() for m in FOLK_RE.finditer(s))]:
            if free(a, b):
                taken.append((a, b, s[a:b]))
        gaz = self.gaz
        for a, b in business_spans(s, lambda low: low in gaz.surn_forms or low in gaz.first_forms):
            if free(a, b):
                taken.append((a, b, s[a:b]))

    def _person_pseudonym(self, name: str) -> str:
        norm = self._person_norm(" ".join(name.split()))
        real = self.gaz.people.get(norm, (None,))[0] or name
        return self.vault.register("person", norm, real)

    def _resolve(self, s: str, taken: list, ner: list[tuple[int, int, str]] | None,
                 soft: set[tuple[int, int]] = frozenset()) -> list[tuple[int, int, str]]:
        """Rule spans plus NER's persons, sorted, protected spans kept; a lone rule-made name that
        NER calls a place or an organisation («Ливан», «Рейтер») is dropped."""
        if ner:
            other = [(a, b) for a, b, kind in ner if kind != "PER"]
            if other:
                taken[:] = [t for t in taken if (t[0], t[1]) not in soft
                            or not any(a <= t[0] and t[1] <= b for a, b in other)]
            for a, b, kind in ner:
                if kind == "PER" and not any(t[0] < b and a < t[1] and t[2] == s[t[0]:t[1]] for t in taken):
                    for a1, b1 in bracket_parts(s, a, b):   # a protected span vetoes all of it
                        self._ner_person(s, list(CAP_RE.finditer(s, a1, b1)), b1, taken)
        taken.sort()
        return taken

    def _ner_person(self, s: str, words: list[re.Match], end: int, taken: list) -> None:
        """One NER person (its capitalised words; its span ends at `end`) into `taken`, less what is
        no part of the name."""
        # NER reads the verb or adverb capitalised at sentence start as part of a name
        # («Передай Смирновой», «Созвонились»; mid-sentence a capital means a name: «Пак Кын Хе»),
        # and the organisation a person works for («оператор Аль-Джазиры Сами аль-Хадж»)
        words_in = words
        words = name_words(s, [m for m in words if not self._is_company(m.group(0).lower())
                               and not is_business_word(m.group(0)) and not not_in_a_name(s, m)])
        if len(words) >= 2 and rank_before_name(words[0].group(0), words[1].group(0),
                                                words[2].group(0) if len(words) > 2 else None):
            words = words[1:]   # «Вокалист Кит Флинт»: the title, not the name
        if not words or (len(words) == 1 and adjective_only(words[0].group(0))):
            return
        last = end if words[-1] is words_in[-1] else words[-1].end()   # «Гидеон Ю»: a one-letter part
        a2, b2 = self._extend_ner(s, words[0].start(), last, taken)
        a2, b2 = widen_name(s, a2, b2, lambda x, y: not any(t[0] < y and x < t[1] for t in taken))
        inside = [t for t in taken if a2 <= t[0] and t[1] <= b2 and t[2].startswith("PER-")]
        clash = [t for t in taken if t[0] < b2 and a2 < t[1] and t not in inside]
        if clash or (inside and len(words) == 1):
            return
        for t in inside:
            taken.remove(t)
        words = list(CAP_RE.finditer(s, a2, b2)) or words
        norm = normalize_name(" ".join(m.group(0) for m in words))
        if len(words) == 1:
            norm = self._group_norm([(a2, b2, words[0].group(0), _P)])
        real = self.gaz.people.get(norm, (None,))[0] or display_form(norm)
        taken.append((a2, b2, self.vault.register("person", norm, real)))


def _visible(s: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The replacements of sorted decided spans: protected spans (kept as they are) and overlaps dropped."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    for a, b, rep in taken:
        if a < pos or rep == s[a:b]:
            continue
        out.append((a, b, rep))
        pos = b
    return out


def _splice(s: str, spans: list[tuple[int, int, str]]) -> str:
    """The text with each span replaced (spans sorted and disjoint)."""
    if not spans:
        return s
    out = []
    pos = 0
    for a, b, rep in spans:
        out.append(s[pos:a])
        out.append(rep)
        pos = b
    out.append(s[pos:])
    return "".join(out)


def _init_worker(vault_dir: str, use_ner: bool) -> None:
    global _worker
    _worker = Anonymizer(Vault(vault_dir), use_ner=use_ner, workers=1)


def _work_chunk(chunk: list[str | None]) -> tuple[list, list]:
    """A worker's share: the decided spans of its items (the parent settles them, see `_settle`)."""
    assert _worker is not None
    out = _worker._decide_many(chunk)
    _worker.vault.flush()
    return out
