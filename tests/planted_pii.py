"""Personal data the sample generator never plants, one entry per category a sales team writes down.

Each `Planted` has the phrase it is written in and the strings that must never be found after
anonymization (`secrets`). The proof test (tests/test_planted_pii.py) plants them in CRM notes, task
results, call params, company and contact fields, chat messages, polls, contact cards and questions;
`bench/bench_ner.py --planted` prints the per-category masked/planted table from `planted_table`.
None of these names comes from the factRuEval test split.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Planted:
    category: str
    phrase: str                    # how a manager writes it
    secrets: tuple[str, ...]       # none of these may survive anywhere


PLANTED: tuple[Planted, ...] = (
    Planted("latin name", "Созвонился с John Smith, ждёт КП до пятницы.", ("John Smith", "Smith")),
    Planted("latin name", "Hans Müller просит скидку на сервис.", ("Hans Müller", "Müller")),
    Planted("latin name", "Передал вопрос Emily Watson из закупок.", ("Emily Watson", "Watson")),
    Planted("mixed script", "Олег Fischer подписал акт.", ("Fischer",)),
    Planted("ALL-CAPS name", "СМОЛЯКОВ ТИХОН просил перезвонить после обеда.", ("СМОЛЯКОВ", "ТИХОН")),
    Planted("lower-case name", "Надо позвонить чубарикову насчёт оплаты.", ("чубарикову", "Чубарикову")),
    Planted("lower-case name", "тихон смоляков перезвонит завтра.", ("смоляков",)),
    Planted("diminutive", "Мишаня обещал оплату до пятницы.", ("Мишаня",)),
    Planted("called name", "Нового закупщика зовут Горба, звонить после обеда.", ("Горба",)),
    Planted("whole name span", "Встреча с Петром Кваснюк во вторник.", ("Кваснюк",)),
    Planted("address", "Доставка: ул. Ленина, д. 5, кв. 12, после 18:00.", ("д. 5, кв. 12", "Ленина, д. 5")),
    Planted("address", "Привезти образцы на пр-т Мира 15к2 кв 7.", ("Мира 15к2", "15к2 кв 7")),
    Planted("birth date", "У Захара Одинцова д.р. 14.02.1987, поздравить.", ("14.02.1987", "Одинцов")),
    Planted("birth date", "Главбух Вероника Ступина, 21.09.1979, любит звонки утром.", ("21.09.1979", "Ступин")),
    Planted("IP address", "Заходил в личный кабинет с IP 10.23.45.67, просит доступ.", ("10.23.45.67",)),
    Planted("IP address", "Адрес сервера клиента 2001:db8:85a3::8a2e:370:7334.", ("2001:db8:85a3::8a2e:370:7334",)),
    Planted("sole trader", "Счёт выставлен на ИП Сковородникова Агриппина Саввична.", ("Сковородников", "Агриппин")),
    Planted("phone", "Новый мобильный 8 (912) 404-77-19 (2 раза не дозвонился).", ("404-77-19", "9124047719")),
    Planted("e-mail", "Почта для КП: t.smolyakov@mail-box.ru", ("t.smolyakov@mail-box.ru",)),
    Planted("document", "Для пропуска паспорт 4509 123456.", ("4509 123456",)),
)

# where a planted phrase goes: the same phrase in three kinds of text the anonymizer sees
CONTEXTS = ("CRM note: {p}", "{p}", "Что было с этим? {p}")

# business words right beside the planted ones that must survive (precision)
KEPT = ("Созвонился", "ждёт КП", "звонить после обеда", "просит скидку", "подписал акт", "позвонить", "перезвонит", "обещал оплату",
        "Встреча", "Доставка", "поздравить", "Счёт выставлен на ИП", "паспорт")


def outside_pseudonyms(text: str) -> str:
    """The text a leak check may scan: a pseudonym's hex is keyed by the vault's random key, so any
    short run of digits («912») turns up inside one by chance in about one vault in a hundred."""
    from crmsum.privacy import PSEUDONYM_RE

    return PSEUDONYM_RE.sub(" ", text)


def secrets() -> list[str]:
    """Every string that must not survive, longest first."""
    return sorted({s for p in PLANTED for s in p.secrets}, key=len, reverse=True)


def survivors(text: str, planted: Planted) -> list[str]:
    low = text.lower()
    return [s for s in planted.secrets if s.lower() in low]


def planted_table(anon=None) -> dict[str, tuple[int, int]]:
    """category -> (masked, planted) over every phrase in every context (a fresh vault by default)."""
    if anon is None:
        from crmsum.privacy import Anonymizer, Vault

        anon = Anonymizer(Vault(Path(tempfile.mkdtemp()) / "vault"), workers=1)
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in PLANTED:
        for ctx in CONTEXTS:
            out = anon.text(ctx.format(p=p.phrase)) or ""
            table[p.category][1] += 1
            table[p.category][0] += not survivors(out, p)
    return {k: (v[0], v[1]) for k, v in table.items()}
