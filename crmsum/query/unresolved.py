"""What a question named that nothing matched, and input that cannot be answered as asked.

Nothing is dropped silently: a word that looks like a person («Ева»), a company («по Еврокабелю»,
«Ромашка» in quotes) or a date («31 февраля») but matches no known manager, company or valid period
is reported, so that the answer can say «Не нашёл менеджера «Ева» — вот кого знаю: …» instead of
answering about the whole team.
"""

from __future__ import annotations

import re
from datetime import date

from crmsum.ru import LEGAL_FORMS

from .dates import MONTH, month_number
from .entity_index import EntityIndex
from .tokens import COMPANY_WORDS, STRONG_PREPS, Token, is_common_word, sentence_initial, word_parses

_QUOTES = "«\"“„"
_PERSON = {"Name", "Surn", "Patr"}
# capitalized words that are question vocabulary, not names
_NOT_NAMES = {"итоги", "итог", "сравни", "сравнение", "покажи", "какие", "какой", "какая", "кто", "что", "почему",
              "сколько", "топ", "рейтинг", "сделки", "команда", "команды", "менеджер", "менеджеры", "отдел",
              "дайджест", "вопрос", "привет", "здравствуйте", "спасибо", "пожалуйста", "скажи", "расскажи",
              "дай", "где", "когда", "как", "зачем", "q1", "q2", "q3", "q4", "h1", "h2", "crm", "amocrm", "kpi"}
_EN_WORDS = {"what", "who", "why", "how", "which", "show", "list", "compare", "top", "deals", "deal", "team",
             "week", "month", "year", "quarter", "summary", "did", "does", "eve", "may", "march", "june", "july",
             "april", "august", "september", "october", "november", "december", "january", "february", "the",
             "stalled", "similar", "average", "win", "rate", "lost", "won", "open", "best", "worst", "rank",
             "ranking", "give", "tell", "find", "i", "we", "our", "last", "this", "next", "and", "or", "vs"}
_DAY_MONTH = re.compile(rf"(?<![\d.])(\d{{1,2}})\s+({MONTH})")
_DAYS_IN = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 may exist: the period rules decide
_MIXED = re.compile(r"\b(?=\w*[a-zA-Z])(?=\w*[а-яА-ЯёЁ])[a-zA-Zа-яА-ЯёЁ]{3,}\b")
_HOMO = str.maketrans("aceopxyACEHKMOPTXB", "асеорхуАСЕНКМОРТХВ")
_WEEK_NO = re.compile(r"w\d{1,2}")  # «2024-W10» / «W10 2024»: the week of an ISO label (the period rules read it)


def fix_mixed(text: str) -> tuple[str, list[str]]:
    """Words mixing Latin and Cyrillic letters: lookalike Latin letters become Cyrillic («Тexхренмаш»);
    the words that stay mixed are returned (they cannot be read)."""
    bad: list[str] = []

    def fix(m: re.Match) -> str:
        w = m.group(0)
        cyr = sum(1 for ch in w if "а" <= ch.lower() <= "я" or ch in "ёЁ")
        fixed = w.translate(_HOMO) if cyr >= len(w) / 2 else w
        if re.search(r"[a-zA-Z]", fixed) and re.search(r"[а-яА-ЯёЁ]", fixed):
            bad.append(w)
        return fixed

    return _MIXED.sub(fix, text), bad


def bad_date(text: str) -> str | None:
    """A calendar date that does not exist («31 февраля», «32 марта»), as written; None when there is none."""
    for m in _DAY_MONTH.finditer(text.lower().replace("ё", "е")):
        mon = month_number(m.group(2))
        if mon and not 1 <= int(m.group(1)) <= _DAYS_IN[mon - 1]:
            return text[m.start():m.end()]
    return None


def _person_like(tok: Token) -> bool:
    return any(gr & _PERSON and score >= 0.2 for _nf, gr, score in word_parses(tok.norm))


def _quoted(tokens: list[Token], i: int, text: str) -> bool:
    before = text[max(0, tokens[i].start - 2):tokens[i].start]
    return any(q in before for q in _QUOTES)


def find_unresolved(idx: EntityIndex, tokens: list[Token], text: str, caps: bool) -> list[tuple[str, str]]:
    """[(word as written, 'manager' | 'company')] for name-like words that match no known name."""
    out: list[tuple[str, str]] = []
    for i, tok in enumerate(tokens):
        w = tok.norm
        if len(w) < 3 or w.isdigit() or w in _NOT_NAMES or month_number(w) or _WEEK_NO.fullmatch(w):
            continue
        if tok.latin:
            if not tok.capitalized or w in _EN_WORDS or i == 0:
                continue
        if idx.mgr.lookup(tok, caps) or idx.comp_tok.lookup(tok, False):
            continue
        prev = tokens[i - 1].norm if i else ""
        quoted = _quoted(tokens, i, text)
        cue = quoted or ((prev in LEGAL_FORMS or prev in COMPANY_WORDS) and not is_common_word(w))
        initial = sentence_initial(tokens, i, text)
        person = not tok.latin and _person_like(tok) and not is_common_word(w)
        capital = tok.capitalized and (caps or not initial) and not is_common_word(w)
        if not (cue or person or (capital and not initial)):
            continue
        if person and not tok.capitalized and caps:
            continue  # «ева» typed lowercase while the question capitalizes names: an ordinary word
        kind = "manager" if person and not cue else "company"
        if not cue and not person and prev not in STRONG_PREPS and not tok.latin and not capital:
            continue
        if out and out[-1][1] == kind and tokens[i - 1].end + 1 >= tok.start and out[-1][0] == tokens[i - 1].text:
            out[-1] = (out[-1][0] + " " + tok.text, kind)  # «Ева Сидорова»: one mention
            continue
        out.append((tok.text, kind))
    return out


def future_period(start: date | None, today: date) -> bool:
    return start is not None and start > today
