"""Organisations: legal forms (ООО, АО, ПАО, ИП, …, and their Latin spellings), the words that name
the kind of a company rather than the company, and a company's core — how it is looked for in text."""

from __future__ import annotations

import re

# Lowercase legal forms, Russian and Latin («ООО», «ПАО», «LLC», «GmbH»): never a company's key word.
LEGAL_FORMS = frozenset({
    "ооо", "оао", "зао", "пао", "ао", "нао", "ип", "нко", "ано", "гк", "тд", "нпо", "нпп", "пкф", "мкпао",
    "фгуп", "муп", "гуп", "акб", "кб",
    "llc", "ltd", "inc", "jsc", "pjsc", "ooo", "oao", "zao", "pao", "ao", "ip", "gmbh", "corp", "plc", "co",
})
# Words for the kind of a company («Группа Альфа», «Завод Прогресс»): present in many names, so they
# never identify one company either.
COMPANY_KIND_WORDS = frozenset({"группа", "компания", "холдинг", "завод", "фирма"})
# Kinds of named things («команды Carolina Panthers», «станции Carlos Gardel», «компании Виктория»): the
# name right after one of these names that thing as often as a person, so the context decides.
THING_KIND_WORDS = frozenset(COMPANY_KIND_WORDS | {
    "команда", "клуб", "станция", "улица", "проспект", "площадь", "бренд", "марка", "магазин", "сеть",
    "ресторан", "кафе", "отель", "гостиница", "банк", "фонд", "агентство", "издание", "газета", "журнал",
    "телеканал", "студия", "лейбл", "альбом", "песня", "фильм", "сериал", "корабль", "судно",
    "яхта", "самолёт", "проект", "продукт", "программа", "приложение", "сервис", "платформа", "бизнес-центр",
    "торговый", "тц", "трц", "жк", "посёлок", "город", "штат", "округ", "провинция", "остров", "река",
})
# Kinds of things named by an adjective made of a name in front («Никитинского суда», «Римского
# статута», «Королёвских чтениях», «Хризантемового трона»)
NAMED_BY_ADJECTIVE = frozenset(THING_KIND_WORDS | {
    "суд", "театр", "собор", "храм", "монастырь", "университет", "институт", "училище", "лицей", "статут",
    "трон", "премия", "чтения", "горы", "дворец", "музей", "церковь", "епархия", "фестиваль", "конкурс", "турнир",
    "район", "комбинат", "вокзал", "аэропорт", "мост", "парк", "сквер", "переулок", "бульвар", "шоссе", "кремль",
})
QUOTES = "«»\"'“”„‟‘’`"

_FORMS_ALT = "|".join(sorted(LEGAL_FORMS, key=len, reverse=True))
LEGAL_RE = re.compile(rf"\b(?:{_FORMS_ALT})\b", re.I)
_LEADING_RE = re.compile(rf"^\s*(?:{_FORMS_ALT})\s+(.*)$", re.I | re.S)
_QUOTES_RE = re.compile("[" + re.escape(QUOTES) + "]")


def company_core(name: str) -> str:
    """'ООО «Мир Окон»' -> 'мир окон': lowercase, ё as е, legal forms and quotes dropped.

    A name that is nothing but a legal form keeps itself (normalized), so every company has a core.
    """
    low = (name or "").lower().replace("ё", "е")
    core = " ".join(_QUOTES_RE.sub(" ", LEGAL_RE.sub(" ", low)).split())
    return core or " ".join(_QUOTES_RE.sub(" ", low).split())


def strip_legal_form(name: str) -> str:
    """How a person names a company: the leading legal form goes, the rest stays as written
    (ЗАО «Уралхиммаш» -> «Уралхиммаш», ИП Кузьмин -> Кузьмин)."""
    m = _LEADING_RE.match(name)
    return (m.group(1) if m else name).strip()

# Brand parts that make a capitalised word a company, not a person, in text where the CRM has not
# named the company (a chat-only import): «Ромашка-Агро», «Альфа Групп», «Вектор Трейд», «Уралпромснаб».
BRAND_PARTS = frozenset({
    "агро", "групп", "груп", "group", "трейд", "trade", "строй", "снаб", "торг", "пром", "маш", "сервис",
    "логистик", "логистика", "инвест", "комплект", "холдинг", "плюс", "центр", "индастри", "техно", "тех",
    "систем", "системс", "энерго", "нефть", "газ", "металл", "авто", "мед", "фарм", "экспорт", "импорт",
    "софт", "soft", "telecom", "телеком", "market", "маркет", "лайн", "line", "стиль", "форм", "опт",
    # Latin ones of firms and media («USM Holdings», «Asia Times», «France Football»)
    "holding", "holdings", "systems", "solutions", "services", "service", "consulting", "partners", "capital",
    "logistics", "industries", "international", "global", "media", "news", "times", "post", "journal",
    "daily", "magazine", "records", "studio", "studios", "labs", "motors", "bank", "football", "sport",
    "sports", "club", "tech", "tv", "radio", "online", "пресс",
    # … and of institutions («Christian University», «Sydney Morning Herald», «Crystal Spa»)
    "university", "college", "institute", "school", "academy", "foundation", "society", "association",
    "museum", "hospital", "hotel", "spa", "herald", "tribune", "gazette", "chronicle", "review",
})
# Stems that begin Russian compound names of bodies glued to a common noun: «Росимущество», «Моссовет»,
# «Нацфронт», «Рыбохрана», «Роскомсвобода» (two stems), «Минобороны».
BODY_STEMS = ("рос", "мос", "гос", "нац", "соц", "мин", "глав", "рыб", "проф", "спец", "обл", "пром", "ком")
# … of them, the words that end the name of a paper or an institution, not of a firm named after its
# owner («Sydney Morning Herald», «Christian University»; «John Smith Consulting» keeps its person)
TITLE_PARTS = frozenset({"times", "news", "post", "journal", "daily", "magazine", "herald", "tribune", "gazette",
                         "chronicle", "review", "university", "college", "institute", "school", "academy",
                         "museum", "hospital", "radio", "tv"})
BRAND_SUFFIX_RE = re.compile(r"(?:агро|трейд|строй|снаб|торг|пром|маш|сервис|логистик|инвест|комплект|"
                             r"холдинг|энерго|металл|телеком|маркет|софт|групп)$", re.I)
