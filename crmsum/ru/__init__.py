"""Russian-language knowledge, one home for each kind: morphology (the one shared analyser),
person names and their cases, organisations (legal forms, company cores), the calendar (months,
weekdays, today in the account's zone), numbers (plural agreement, money). Everything that reads or
writes Russian imports from here."""

from crmsum.ru.calendar import (MONTH_PATTERNS, MONTH_STEMS, MONTHS_GEN, MONTHS_LOC, MONTHS_NOM, WEEKDAYS_NOM, month_name, now,
                                today)
from crmsum.ru.morph import attributive, lexeme_forms, morph, parses
from crmsum.ru.names import (CASES, DIMINUTIVES, TITLES, case_forms, is_female, listed_first_names, name_forms, name_stem,
                             surname_nominative)
from crmsum.ru.numbers import count, money, number, percent, plural
from crmsum.ru.orgs import (COMPANY_KIND_WORDS, LEGAL_FORMS, LEGAL_RE, NAMED_BY_ADJECTIVE, QUOTES, THING_KIND_WORDS,
                             TITLE_PARTS, company_core, strip_legal_form)

__all__ = ["CASES", "attributive", "COMPANY_KIND_WORDS", "DIMINUTIVES", "LEGAL_FORMS", "LEGAL_RE", "NAMED_BY_ADJECTIVE", "THING_KIND_WORDS", "MONTHS_GEN", "MONTHS_LOC",
           "MONTHS_NOM", "MONTH_PATTERNS", "MONTH_STEMS", "QUOTES", "TITLES", "TITLE_PARTS", "WEEKDAYS_NOM", "case_forms", "company_core", "count",
           "is_female", "lexeme_forms", "listed_first_names", "money", "month_name", "morph", "name_forms", "parses", "name_stem", "now", "number", "percent",
           "plural", "strip_legal_form", "surname_nominative", "today"]
