"""Russian-language helpers shared by every module that reads or writes Russian text."""

from __future__ import annotations

import threading

_MORPH = None
_LOCK = threading.Lock()


def morph():
    """The shared pymorphy3 analyser (loading it takes ~0.1 s and ~15 MB, so once per process)."""
    global _MORPH
    if _MORPH is None:
        with _LOCK:
            if _MORPH is None:
                import pymorphy3

                _MORPH = pymorphy3.MorphAnalyzer()
    return _MORPH


def plural(n: int | float, one: str, few: str, many: str) -> str:
    """Russian plural form: 1 сделка, 2 сделки, 5 сделок (fractions take the 'few' form)."""
    if isinstance(n, float) and not n.is_integer():
        return few
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def count(n: int, one: str, few: str, many: str) -> str:
    return f"{n} {plural(n, one, few, many)}"


def money(n: int | float) -> str:
    """«1 250 000 ₽» (spaces between thousands)."""
    return f"{int(round(n)):,}".replace(",", " ") + " ₽"


def number(x: float) -> str:
    """6 -> '6', 4.1 -> '4,1'."""
    x = round(float(x), 1)
    return str(int(x)) if x.is_integer() else str(x).replace(".", ",")
