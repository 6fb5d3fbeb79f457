"""Numbers in Russian text: plural agreement, counts, money."""

from __future__ import annotations


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


def percent(share: float | None) -> str:
    """0.43 -> «43%»; a missing share is «—», never 0%."""
    if share is None or share != share:  # NaN
        return "—"
    return f"{round(100 * float(share))}%"
