"""Question understanding: who (manager), about whom (company) and when (period)."""

from .parse import ParsedQuestion, parse_question
from .periods import Period, parse_period

__all__ = ["parse_question", "ParsedQuestion", "parse_period", "Period"]
