"""Russian-language knowledge, one home for each kind: morphology, numbers (more modules join: names,
organisations, calendar). Everything that reads or writes Russian imports from here."""

from crmsum.ru.morph import morph
from crmsum.ru.numbers import count, money, number, percent, plural

__all__ = ["count", "money", "morph", "number", "percent", "plural"]
