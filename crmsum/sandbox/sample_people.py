"""People for the sample account: Russian names inflected with pymorphy3, phones in the formats
people really type, e-mails and document numbers — every surface string is recorded as planted PII."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crmsum.ru import CASES
from crmsum.ru import case_forms as inflect

MALE_FIRST = [
    "Юрий", "Алексей", "Дмитрий", "Сергей", "Андрей", "Михаил", "Иван", "Николай", "Павел", "Артём",
    "Максим", "Владимир", "Олег", "Игорь", "Константин", "Роман", "Евгений", "Виктор", "Антон",
    "Григорий", "Василий", "Борис", "Степан", "Тимур", "Денис", "Кирилл", "Вадим", "Геннадий",
]
FEMALE_FIRST = [
    "Ольга", "Анна", "Елена", "Мария", "Татьяна", "Наталья", "Ирина", "Светлана", "Екатерина",
    "Юлия", "Марина", "Ксения", "Дарья", "Алина", "Виктория", "Полина", "Евгения", "Людмила",
    "Галина", "Оксана", "Анастасия", "Валентина", "Кристина", "Софья",
]
# -ов/-ев/-ин and -ский surnames: pymorphy3 knows their full paradigm in both genders; none of them
# is an ordinary word or a part of a company name used below.
SURNAMES = [
    "Федосеев", "Смирнов", "Петров", "Кузнецов", "Соколов", "Попов", "Лебедев", "Новиков", "Морозов",
    "Волков", "Алексеев", "Зайцев", "Павлов", "Семёнов", "Голубев", "Виноградов", "Богданов",
    "Воробьёв", "Фёдоров", "Михайлов", "Беляев", "Тарасов", "Белов", "Комаров", "Орлов", "Киселёв",
    "Макаров", "Андреев", "Ковалёв", "Ильин", "Гусев", "Титов", "Кудрявцев", "Баранов", "Куликов",
    "Степанов", "Яковлев", "Сорокин", "Сергеев", "Романов", "Захаров", "Борисов",
    "Королёв", "Герасимов", "Пономарёв", "Григорьев", "Лазарев", "Медведев", "Ершов", "Никитин",
    "Соболев", "Рябов", "Поляков", "Цветков", "Данилов", "Жуков", "Фролов", "Журавлёв", "Николаев",
    "Крылов", "Максимов", "Сидоров", "Осипов", "Белоусов", "Федотов", "Дорофеев", "Егоров",
    "Матвеев", "Бобров", "Дмитриев", "Калинин", "Анисимов", "Петухов", "Антонов", "Тимофеев",
    "Никифоров", "Веселов", "Филиппов", "Марков", "Большаков", "Суханов", "Миронов", "Ширяев",
    "Александров", "Коновалов", "Шестаков", "Казаков", "Ефимов", "Денисов", "Громов", "Фомин",
    "Давыдов", "Мельников", "Щербаков", "Блинов", "Колесников", "Карпов", "Афанасьев", "Власов",
    "Маслов", "Исаков", "Тихонов", "Аксёнов", "Гаврилов", "Родионов", "Котов", "Горбунов",
    "Кудряшов", "Быков", "Зуев", "Третьяков", "Савельев", "Панов", "Рыбаков", "Суворов",
    "Абрамов", "Воронов", "Мухин", "Архипов", "Трофимов", "Мартынов", "Емельянов", "Горшков",
    "Чернов", "Овчинников", "Селезнёв", "Панфилов", "Копылов", "Михеев", "Галкин", "Назаров",
    "Лобанов", "Лукин", "Беляков", "Потапов", "Некрасов", "Хохлов", "Жданов", "Наумов",
    "Шилов", "Воронцов", "Ермаков", "Дроздов", "Игнатьев", "Савин", "Логинов", "Сафонов",
    "Капустин", "Моисеев", "Елисеев", "Кошелев", "Костин", "Горбачёв", "Ефремов",
    "Исаев", "Евдокимов", "Калашников", "Кабанов", "Носков", "Юдин", "Кулагин",
    "Прохоров", "Нестеров", "Харитонов", "Агафонов", "Муравьёв", "Ларионов", "Федосов",
    "Пахомов", "Шубин", "Игнатов", "Филатов", "Крюков", "Рогов", "Терентьев", "Молчанов",
    "Владимиров", "Артемьев", "Гурьев", "Зиновьев", "Гришин", "Кононов", "Дементьев",
    "Симонов", "Мишин", "Фадеев", "Комиссаров", "Носов", "Гуляев", "Шаров", "Устинов",
    "Вишняков", "Евсеев", "Лаврентьев", "Брагин", "Константинов", "Корнилов", "Авдеев",
    "Бирюков", "Шарапов", "Никонов", "Щукин", "Дьячков", "Одинцов", "Сазонов", "Якушев",
    "Красильников", "Гордеев", "Самойлов", "Князев", "Беспалов", "Уваров", "Шашков", "Бобылёв",
    "Доронин", "Белозёров", "Рожков", "Самсонов", "Лихачёв", "Буров", "Сысоев",
    "Фомичёв", "Гущин", "Тетерин", "Колобов", "Субботин", "Фокин", "Блохин",
    "Селиверстов", "Кондратьев", "Силин", "Меркушев", "Лыткин", "Туров", "Козловский",
    "Вишневский", "Покровский", "Островский", "Завадский", "Яблонский", "Соловьёв",
]
MALE_PATR = ["Петрович", "Иванович", "Сергеевич", "Александрович", "Николаевич", "Викторович",
             "Андреевич", "Владимирович", "Михайлович", "Юрьевич", "Олегович", "Игоревич"]
FEMALE_PATR = ["Петровна", "Ивановна", "Сергеевна", "Александровна", "Николаевна", "Викторовна",
               "Андреевна", "Владимировна", "Михайловна", "Юрьевна", "Олеговна", "Игоревна"]

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch",
    "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}


def translit(text: str) -> str:
    """Latin spelling for logins and e-mail local parts (ё -> e, й -> y)."""
    return "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())


def _surname_forms(surname: str, gender: str) -> tuple[str, ...]:
    # pymorphy3 drops ё in surnames (Семёнов -> семенов); restore it from the given stem.
    forms = inflect(surname.replace("ё", "е"), "Surn", gender)
    if "ё" in surname:
        plain = surname.replace("ё", "е")
        forms = tuple(surname + f[len(plain):] if f.startswith(plain) else f for f in forms)
    return forms


@dataclass
class Person:
    first: str
    last: str
    patr: str
    gender: str  # "masc" | "femn"
    phone: str   # 10 digits without the country code
    email: str
    first_forms: tuple[str, ...] = field(default=())
    last_forms: tuple[str, ...] = field(default=())
    patr_forms: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.first_forms = inflect(self.first, "Name", self.gender)
        self.last_forms = _surname_forms(self.last, self.gender)
        self.patr_forms = inflect(self.patr, "Patr", self.gender)

    @property
    def full(self) -> str:
        return f"{self.first} {self.last_forms[0]}"

    def full_case(self, case: str) -> str:
        i = CASES.index(case)
        return f"{self.first_forms[i]} {self.last_forms[i]}"

    def surname(self, case: str = "nomn") -> str:
        return self.last_forms[CASES.index(case)]

    def io(self, case: str = "nomn") -> str:
        i = CASES.index(case)
        return f"{self.first_forms[i]} {self.patr_forms[i]}"

    @property
    def crm_name(self) -> str:
        return f"{self.last_forms[0]} {self.first} {self.patr_forms[0]}"

    @property
    def reversed(self) -> str:
        return f"{self.last_forms[0]} {self.first}"


MOBILE_CODES = ["912", "916", "903", "905", "909", "915", "917", "921", "925", "926", "929", "952",
                "960", "963", "965", "977", "985", "987", "999", "901", "913", "919", "922", "937"]


def new_phone(rng: random.Random) -> str:
    return rng.choice(MOBILE_CODES) + f"{rng.randrange(10_000_000):07d}"


def landline(rng: random.Random) -> str:
    return rng.choice(["495", "499", "812", "343", "383", "846", "843", "861"]) + f"{rng.randrange(10_000_000):07d}"


def fmt_phone(digits: str, style: int) -> str:
    """A 10-digit number the way people type it (styles 0..6)."""
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return [
        f"+7 ({a}) {b}-{c}-{d}",
        f"8-{a}-{b}-{c}-{d}",
        f"8{digits}",
        f"+7{digits}",
        f"{a} {b} {c} {d}",
        f"8 ({a}) {b}-{c}-{d}",
        f"+7 {a} {b} {c} {d}",
    ][style]


PHONE_STYLES = 7
MAIL_DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "rambler.ru"]


def new_person(rng: random.Random, used: set[tuple[str, str]], company_domain: str | None = None) -> Person:
    """A client contact with a unique (first, last) pair so every full name points to one person."""
    while True:
        gender = "masc" if rng.random() < 0.58 else "femn"
        first = rng.choice(MALE_FIRST if gender == "masc" else FEMALE_FIRST)
        last = rng.choice(SURNAMES)
        if (first, last) not in used:
            used.add((first, last))
            break
    patr = rng.choice(MALE_PATR if gender == "masc" else FEMALE_PATR)
    p = Person(first, last, patr, gender, new_phone(rng), "")
    lat_first, lat_last = translit(first), translit(p.last_forms[0])
    if company_domain and rng.random() < 0.6:
        local = rng.choice([f"{lat_first[0]}.{lat_last}", f"{lat_last}", f"{lat_first}.{lat_last}",
                            f"{lat_last}.{lat_first[0]}"])
        p.email = f"{local}@{company_domain}"
    else:
        local = rng.choice([f"{lat_first}.{lat_last}", f"{lat_last}{rng.randrange(70, 99)}",
                            f"{lat_first[0]}{lat_last}", f"{lat_last}_{lat_first}"])
        p.email = f"{local}@{rng.choice(MAIL_DOMAINS)}"
    return p


def passport(rng: random.Random) -> str:
    return f"{rng.randrange(1000, 9999)} {rng.randrange(100000, 999999)}"


def inn_personal(rng: random.Random) -> str:
    return f"{rng.choice(['77', '50', '78', '66', '54'])}{rng.randrange(10**9, 10**10)}"


def snils(rng: random.Random) -> str:
    return f"{rng.randrange(100, 999)}-{rng.randrange(100, 999)}-{rng.randrange(100, 999)} {rng.randrange(10, 99)}"


def card(rng: random.Random) -> str:
    return f"{rng.choice(['4276', '5469', '2202', '4279'])} {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"
