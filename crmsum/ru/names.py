"""Person names and their cases: the six case forms of a name, every form a name can take in
text, a surname back in the nominative, a first name's gender, common diminutives, the stem a
name keeps in every case."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from crmsum.ru.morph import lexeme_forms, morph

CASES = ("nomn", "gent", "datv", "accs", "ablt", "loct")
NAME_KINDS = ("Name", "Surn", "Patr")  # pymorphy3 grammemes: first name, surname, patronymic

# Diminutive (lowercase, ё as е) -> the full first names it stands for («Женя» is Евгений or Евгения).
DIMINUTIVES: dict[str, tuple[str, ...]] = {
    "женя": ("евгений", "евгения"), "саша": ("александр", "александра"), "шура": ("александр", "александра"),
    "санек": ("александр",), "катя": ("екатерина",), "маша": ("мария",), "дима": ("дмитрий",),
    "леша": ("алексей",), "алеша": ("алексей",), "ваня": ("иван",), "петя": ("петр",),
    "оля": ("ольга",), "таня": ("татьяна",), "наташа": ("наталья", "наталия"), "сережа": ("сергей",),
    "аня": ("анна",), "лена": ("елена",), "света": ("светлана",), "ира": ("ирина",),
    "миша": ("михаил",), "коля": ("николай",), "андрюша": ("андрей",), "вова": ("владимир",),
    "володя": ("владимир",), "юля": ("юлия",), "настя": ("анастасия",), "паша": ("павел",),
    "костя": ("константин",), "рома": ("роман",), "витя": ("виктор",), "галя": ("галина",),
    "люда": ("людмила",), "надя": ("надежда",), "вика": ("виктория",), "лиза": ("елизавета",),
    "даша": ("дарья",), "гоша": ("георгий",), "толя": ("анатолий",), "гриша": ("григорий",),
    "слава": ("вячеслав", "ярослав", "владислав", "станислав"), "влад": ("владислав",),
    "стас": ("станислав",), "макс": ("максим",), "денис": (), "тёма": ("артем",), "тема": ("артем",),
    "ксюша": ("ксения",), "поля": ("полина",), "соня": ("софия", "софья"), "лера": ("валерия",),
    "валя": ("валентина", "валентин"), "зина": ("зинаида",), "люба": ("любовь",), "вера": (),
    "федя": ("федор",), "егорка": ("егор",), "нина": (), "марина": (),
}
# Ranks and titles said before a name and never a name themselves («Император Акихито», «Полковник
# Квачков»): not «майор», «граф», «хан», «султан», «пан», «шериф» (surnames or names too), nor «доктор»,
# «мать», «брат», «святой», which begin nicknames and saints' names («Доктор Лиза», «Мать Тереза»).
TITLES = frozenset({
    "император", "императрица", "король", "королева", "принц", "принцесса", "царь", "царица", "президент",
    "вице-президент", "премьер", "премьер-министр", "министр", "канцлер", "губернатор", "мэр", "сенатор",
    "депутат", "посол", "генсек", "генерал", "полковник", "подполковник", "адмирал", "лейтенант", "сержант",
    "капитан", "патриарх", "папа", "митрополит", "архиепископ", "епископ", "кардинал", "академик", "профессор",
    "директор", "гендиректор", "прокурор", "адвокат", "судья",
})
_NOT_FEMALE = ("Никита", "Илья", "Кузьма", "Фома", "Лука")


def _cap(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))


@lru_cache(maxsize=None)
def case_forms(word: str, kind: str, gender: str) -> tuple[str, ...]:
    """The six case forms (`CASES` order, capitalized) of a first name ('Name'), surname ('Surn')
    or patronymic ('Patr') in the person's gender; ValueError when pymorphy3 does not know it."""
    parses = [p for p in morph().parse(word) if kind in p.tag]
    # «Евгения» is also the genitive of «Евгений»: prefer the nominative of the wanted gender
    parses.sort(key=lambda p: (gender not in p.tag, "nomn" not in p.tag))
    if not parses:
        raise ValueError(f"pymorphy3 does not know {word!r} as {kind}")
    p = parses[0]
    out = []
    for case in CASES:
        form = p.inflect({case, gender, "sing"}) or p.inflect({case, "sing"})
        out.append(_cap(form.word if form else word.lower()))
    return tuple(out)


def name_forms(word: str, kind: str, gender: str | None) -> set[str]:
    """Every singular form (lowercase) of a first name / surname in the person's gender: what a
    text may write for «Ольга Смирнова» («Ольге», «Смирновой», …)."""
    out = {word.lower()}
    for p in morph().parse(word):
        if kind in p.tag:
            out |= lexeme_forms(p, gender)
            break
    return out


@lru_cache(maxsize=100_000)
def surname_nominative(word: str, gender: str | None) -> str:
    """Nominative surname in the given gender: «Смирновой» -> «смирнова», «Федосеевым» -> «федосеев»."""
    cands = [p for p in morph().parse(word) if "Surn" in p.tag]
    if not cands:
        return word.lower()
    if gender:
        same = [p for p in cands if str(p.tag.gender) in (gender, "ms-f")]
        if same:
            cands = same
    p = cands[0]
    g = gender or (str(p.tag.gender) if p.tag.gender else None)
    if g not in ("masc", "femn"):
        g = "masc"
    inf = p.inflect({"sing", "nomn", g})
    return (inf.word if inf else p.normal_form).lower()


@lru_cache(maxsize=10_000)
def is_female(first: str) -> bool:
    """Whether a first name is a woman's (for «делала» / «делал»): morphology first, then the
    ending, with the usual male names in -а/-я as exceptions."""
    for p in morph().parse(first):
        if "Name" in p.tag:
            return p.tag.gender == "femn"
    return first.endswith(("а", "я")) and first not in _NOT_FEMALE


# Case endings of Russian nouns and adjectives, longest first: what `name_stem` cuts off.
_CASE_ENDINGS = ("ыми", "ими", "ого", "его", "ому", "ему", "ых", "их", "ой", "ей", "ий", "ый", "ая", "яя", "ую",
                 "юю", "ом", "ем", "ым", "им", "ах", "ях", "ам", "ям", "а", "я", "у", "ю", "е", "ы", "и", "о", "ь", "й")


@lru_cache(maxsize=100_000)
def name_stem(word: str) -> str:
    """The part of a name its case forms share, lower-case, ё as е: «Клинсман», «Клинсмана»,
    «Клинсманом» -> «клинсман»; «Свиридов», «Свиридове» -> «свиридов»; each part of a hyphenated name.

    Why not the dictionary: the names that need it most are foreign ones pymorphy3 does not know
    («Хоровитц», «Паулса»), and one cut ending is enough to tell two mentions of one name apart
    from different words (a stem keeps at least three letters)."""
    parts = []
    for part in word.lower().replace("ё", "е").split("-"):
        for end in _CASE_ENDINGS:
            if part.endswith(end) and len(part) - len(end) >= 3:
                part = part[:-len(end)]
                break
        parts.append(part)
    return "-".join(parts)


@lru_cache(maxsize=1)
def listed_first_names() -> frozenset[str]:
    """First names (lower-case nominatives) from natasha's name dictionary that pymorphy3 does not
    know at all: Central Asian and Caucasian names («Есбол», «Гульчехра»), foreign ones
    («Михаэль»), nicknames («Димыч», «Светланочка») — the names a Russian sales team meets that
    the morphological dictionary lacks. natasha's own «maybe» list (first names that are also
    ordinary words: «Вера», «Роза») is left out, and so is every word pymorphy3 knows, since its
    readings already say whether the word is a name. Empty when natasha is not installed."""
    try:
        import natasha
    except ImportError:
        return frozenset()
    folder = Path(natasha.__file__).with_name("data") / "dict"
    try:
        first = _dict_words(folder / "first.txt")
        maybe = _dict_words(folder / "maybe_first.txt")
    except OSError:
        return frozenset()
    known = morph().word_is_known
    return frozenset(w for w in first - maybe if len(w) >= 3 and not known(w))


def _dict_words(path: Path) -> set[str]:
    """The words of one of natasha's dictionary files (one a line, «# comment» after it)."""
    with path.open(encoding="utf-8") as f:
        return {w for line in f for w in [line.split("#", 1)[0].strip().lower().replace("ё", "е")] if w}
