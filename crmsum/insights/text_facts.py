"""Facts that sales people write down in words: a meeting held, a proposal (КП) sent, a discount given.

Why rules over lemmas (from the shared `crmsum.ru.morph` analyser) rather than substrings: the same
word means opposite things by its neighbours — «встреча проведена» vs «встреча отменена» / «перенесена»,
«дали скидку 10%» vs «скидку не дали» / «просит скидку 7%» / «у конкурента дешевле на 8%», «КП
отправлено» vs «ждут КП». A fact counts only when its clause reports it as done by us: not negated,
not cancelled or postponed, not planned (future tense, «назначить», «завтра», a question, «нужно»),
not a request by the client, not someone else's (a competitor's). Each text is read once (cached).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from crmsum.ru import morph

_TOKEN = re.compile(r"[-−–]?\d+(?:[.,]\d+)?\s?%|[A-Za-zА-Яа-яЁё]+(?:-[A-Za-zА-Яа-яЁё]+)*|\d+(?:[.,]\d+)?|\?|«|»")
_CLAUSE = re.compile(r"[.!;\n]+(?!\d)|[,:](?=\s)|\?|\s(?:но|однако|зато|а)\s", re.I)

MEETING = frozenset({"встреча", "встретиться", "встречаться", "презентация", "выезд", "демонстрация"})
PROPOSAL = frozenset({"кп"})
DISCOUNT = frozenset({"скидка", "дисконт"})
SEND = frozenset({"отправить", "выслать", "направить", "переслать", "отослать", "скинуть", "продублировать",
                  "отправлять", "высылать"})
OFFER = frozenset({"дать", "давать", "предложить", "согласовать", "одобрить", "сделать", "предоставить",
                   "снизить", "уступить", "согласоваться"})
CANCEL = frozenset({"отменить", "отменять", "перенести", "переносить", "сорваться", "отложить", "отмена",
                    "перенос", "отказаться", "отказать", "сорвать"})
PLAN = frozenset({"назначить", "запланировать", "планировать", "подтвердить", "напомнить", "напоминать",
                  "договориться", "завтра", "послезавтра", "будущий", "следующий", "предстоящий"})
MODAL = frozenset({"нужно", "надо", "необходимо", "следует", "хотеть", "мочь", "можно", "стоит"})
REQUEST = frozenset({"просить", "попросить", "запросить", "запрашивать", "требовать", "ждать", "ожидать",
                     "интересоваться", "торговаться"})
OTHER_PARTY = frozenset({"конкурент"})
PAYMENT = frozenset({"предоплата", "оплата", "аванс", "платёж", "платеж", "постоплата", "отсрочка"})
NEGATORS = frozenset({"не", "ни", "нет", "без"})
VERBAL = frozenset({"VERB", "INFN", "PRTF", "PRTS", "GRND"})


@dataclass(frozen=True)
class Token:
    text: str
    lemma: str
    pos: str | None
    tense: str | None  # past, pres, futr
    pct: float | None = None  # a percentage token: its value


@dataclass(frozen=True)
class TextFacts:
    meeting: bool = False
    proposal: bool = False
    discount: bool = False
    discount_pct: float | None = None
    denied: bool = False  # a clause cancels, postpones or negates something (task results)

    def __or__(self, other: TextFacts) -> TextFacts:
        pcts = [p for p in (self.discount_pct, other.discount_pct) if p is not None]
        return TextFacts(self.meeting or other.meeting, self.proposal or other.proposal,
                         self.discount or other.discount, max(pcts) if pcts else None,
                         self.denied or other.denied)


NONE = TextFacts()


@lru_cache(maxsize=1 << 16)
def _word(word: str) -> Token:
    p = morph().parse(word.lower())[0]
    tag = p.tag
    return Token(word, p.normal_form.replace("ё", "е") if p.normal_form != "платёж" else "платеж",
                 tag.POS, tag.tense)


def tokens(text: str) -> list[Token]:
    """Words (with lemma, part of speech, tense), percentages, quotes and question marks."""
    out = []
    for m in _TOKEN.finditer(text or ""):
        t = m.group(0)
        if t.endswith("%"):
            num = t.rstrip("%").strip().replace(",", ".").lstrip("-−–")
            out.append(Token(t, "%", "PCT", None, pct=float(num)))
        elif t[0].isdigit():
            out.append(Token(t, t, "NUMB", None))
        elif t in "?«»":
            out.append(Token(t, t, "PNCT", None))
        else:
            out.append(_word(t))
    return out


def clauses(text: str) -> list[tuple[list[Token], bool]]:
    """(tokens, is_question) per clause."""
    out = []
    pos = 0
    text = text or ""
    for m in _CLAUSE.finditer(text + "\n"):
        part = text[pos:m.start()]
        pos = m.end()
        toks = tokens(part)
        if toks:
            out.append((toks, m.group(0) == "?"))
    return out


def _lemmas(toks: list[Token]) -> set[str]:
    out = set()
    for t in toks:
        out.add(t.lemma)
        if "-" in t.lemma:  # «онлайн-презентация»: its parts count too
            out.update(_word(part).lemma for part in t.text.split("-") if part)
    return out


def _negated(toks: list[Token], triggers: frozenset[str]) -> bool:
    """«не»/«ни» right before a verb form or a trigger word; «нет»/«без» before a trigger."""
    for i, t in enumerate(toks[:-1]):
        if t.lemma not in NEGATORS:
            continue
        for nxt in toks[i + 1:i + 3]:
            if nxt.lemma in triggers or (t.lemma in ("не", "ни") and nxt.pos in VERBAL):
                return True
            if nxt.lemma not in ("так", "и", "еще", "уже", "был", "быть"):
                break
    return False


def _planned(toks: list[Token], lem: set[str], question: bool) -> bool:
    if question or lem & PLAN or lem & MODAL:
        return True
    return any(t.pos in VERBAL and t.tense == "futr" for t in toks)


def _other_party(toks: list[Token], lem: set[str]) -> bool:
    """Someone else's fact: a competitor is named, or a singular past verb has a «quoted» organisation
    as its subject («тендер выиграл «Русские насосы»», «клиент выбрал «Промтехснаб»»)."""
    if lem & OTHER_PARTY:
        return True
    return "«" in lem and any(t.pos == "VERB" and t.tense == "past" and t.lemma in ("выиграть", "выбрать", "победить",
                                                                                  "получить", "забрать")
                              for t in toks)


def _discount_pct(toks: list[Token]) -> float | None:
    """The discount's size: the percentage nearest after «скидка» (else before it, else after an offer
    verb), skipping percentages of payment terms («при 100% предоплате», «предоплата 50%»)."""
    def payment(i: int) -> bool:
        near = toks[max(0, i - 1):i] + toks[i + 1:i + 2]
        return any(t.lemma in PAYMENT for t in near)

    pcts = [i for i, t in enumerate(toks) if t.pct is not None and not payment(i) and 0 < t.pct < 100]
    if not pcts:
        return None
    anchors = [i for i, t in enumerate(toks) if t.lemma in DISCOUNT] or \
              [i for i, t in enumerate(toks) if t.lemma in OFFER]
    if not anchors:
        return None
    a = anchors[0]
    after = [i for i in pcts if i > a]
    best = after[0] if after else max(pcts)
    return toks[best].pct


def clause_facts(toks: list[Token], question: bool, done: bool = False) -> TextFacts:
    """Facts of one clause. `done`: the clause is a completed task's text (an infinitive reports the deed)."""
    lem = _lemmas(toks)
    cancel = bool(lem & CANCEL)
    negated_any = _negated(toks, MEETING | PROPOSAL | DISCOUNT | SEND | OFFER)
    denied = cancel or negated_any
    if _other_party(toks, lem):
        return TextFacts(denied=denied)
    planned = False if done else _planned(toks, lem, question)
    has_proposal = bool(lem & PROPOSAL) or ("коммерческий" in lem and "предложение" in lem)
    meeting = bool(lem & MEETING) and not (lem & SEND) and not (has_proposal and lem & SEND)
    meeting = meeting and not planned and not cancel and not _negated(toks, MEETING | VERBAL_TRIGGERS)
    proposal = has_proposal and bool(lem & SEND) and not planned and not cancel \
        and not _negated(toks, PROPOSAL | SEND) and not (lem & REQUEST and not _sent_form(toks))
    discount = False
    pct = None
    offered_verb = bool(lem & OFFER)
    if lem & DISCOUNT or offered_verb:
        pct = _discount_pct(toks)
        explicit = bool(lem & DISCOUNT) and (offered_verb or pct is not None or done)
        implicit = offered_verb and pct is not None and not (lem & DISCOUNT)
        discount = (explicit or implicit) and not planned and not cancel \
            and not _negated(toks, DISCOUNT | OFFER) and not (lem & REQUEST and not offered_verb)
    return TextFacts(meeting, proposal, discount, pct if discount else None, denied)


VERBAL_TRIGGERS = frozenset({"состояться", "провести", "пройти", "приехать", "прийти", "получиться"})


def _sent_form(toks: list[Token]) -> bool:
    """A send verb in the past (we sent it), not only a request to send."""
    return any(t.lemma in SEND and t.tense == "past" for t in toks)


@lru_cache(maxsize=1 << 17)
def text_facts(text: str, done: bool = False) -> TextFacts:
    """Facts of a whole text: a fact holds when some clause reports it."""
    out = NONE
    for toks, question in clauses(text):
        out = out | clause_facts(toks, question, done)
    return out


def task_facts(text: str | None, result: str | None, task_type_id: int | None, completed: bool) -> TextFacts:
    """A task reports a deed only when completed and its result does not cancel or negate it."""
    if not completed:
        return NONE
    res = text_facts(result or "")
    if res.denied:
        return TextFacts(proposal=res.proposal, discount=res.discount, discount_pct=res.discount_pct, denied=True)
    deed = text_facts(text or "", done=True)
    if task_type_id == 2:
        deed = deed | TextFacts(meeting=True)
    return deed | res


def not_ours(sentence: str) -> bool:
    """A sentence reporting someone else's success or a cancelled / negated deed (never «what worked»)."""
    for toks, _q in clauses(sentence):
        lem = _lemmas(toks)
        if _other_party(toks, lem) or lem & CANCEL or _negated(toks, MEETING | PROPOSAL | DISCOUNT | SEND | OFFER):
            return True
    return False
