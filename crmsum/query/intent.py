"""What a question asks for: its intent, outcome / loss-reason / stage / amount filters, and the metric.

Rules, not a model, for the same reason as the period rules: a sales lead's questions fall into a
few kinds with clear cue words («почему», «сравни», «кто лучше», «какие сделки», «висят», «средний
чек», «похожие»), and the rules must work offline and explain themselves. Cues are matched on the
normalized text, on a Cyrillic reading of transliterated words («pochemu proigrali») and on
typo-corrected words (rapidfuzz against the cue vocabulary, only for words pymorphy does not know).

Loss reasons and stages are the account's own (passed in from the lake): a question word matches a
reason when its lemma is one of the reason's words or a known synonym of it («по цене» → «Дорого»).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from rapidfuzz import fuzz, process

from .tokens import is_known_word, word_parses

INTENTS = ("activity", "compare", "ranking", "what_wins", "why", "deals", "stalled", "metric", "similar",
           "clarify")
METRICS = ("won", "won_amount", "win_rate", "avg_deal", "cycle", "count", "lost", "lost_amount", "activity")


@dataclass
class Intent:
    """The intent of a question and what it filters on."""

    intent: str = "activity"
    metric: str | None = None  # one of METRICS
    outcome: str | None = None  # won | lost | open
    loss_reason: str | None = None  # the account's reason text («Дорого»)
    stage: str | None = None  # the account's stage name
    amount_min: int | None = None
    amount_max: int | None = None
    by: str = "manager"  # ranking: manager | company
    order: str = "desc"  # ranking: desc (best first) | asc (worst first)
    cues: list[str] = field(default_factory=list)  # what decided the intent (explanations, debugging)


# -- text forms ---------------------------------------------------------------------------------
_LAT2CYR = [("shch", "щ"), ("sch", "щ"), ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"),
            ("yu", "ю"), ("ya", "я"), ("yo", "е"), ("ye", "е"), ("iy", "ий"), ("yy", "ый")]
_LAT1 = str.maketrans("abvgdezijklmnoprstufhcyw", "абвгдезийклмнопрстуфхцыв")
_WORD = re.compile(r"[^\W\d_]+")


def _cyr(word: str) -> str:
    for a, b in _LAT2CYR:
        word = word.replace(a, b)
    return word.translate(_LAT1)


# the words whose misspellings are worth correcting (typos in cue words decide the intent)
_VOCAB = ("сделки", "сделок", "сделка", "проиграли", "выиграли", "проиграл", "выиграл", "проигрываем",
          "выигрываем", "сравни", "сравнить", "сравнение", "конверсия", "конверсию", "средний", "чек", "похожие",
          "похожая", "висят", "зависли", "почему", "сколько", "лучший", "лучше", "худший", "рейтинг",
          "менеджер", "менеджеров", "потеряли", "застряли", "движения", "открытые", "выигранные", "проигранные",
          "причины", "помогает", "цикл", "длительность", "выручка", "выручку", "продаёт", "продает")


@lru_cache(maxsize=20_000)
def _fix(word: str) -> str:
    """A misspelled cue word corrected («сделак» → «сделок»); other words unchanged."""
    if len(word) < 5 or is_known_word(word):
        return word
    hit = process.extractOne(word, _VOCAB, scorer=fuzz.ratio, score_cutoff=80)
    return hit[0] if hit else word


def cue_text(text: str) -> str:
    """Lowercase, ё→е, transliterated words read in Cyrillic, misspelled cue words corrected."""
    t = (text or "").lower().replace("ё", "е")
    words = []
    for m in _WORD.finditer(t):
        w = m.group(0)
        words.append(_cyr(w) if re.fullmatch(r"[a-z]+", w) else _fix(w))
    return " " + t + " | " + " ".join(words) + " "


@lru_cache(maxsize=50_000)
def lemma(word: str) -> str:
    ps = word_parses(word.lower().replace("ё", "е"))
    return ps[0][0] if ps else word


# -- cues ---------------------------------------------------------------------------------------
def _rx(*parts: str) -> re.Pattern:
    return re.compile("|".join(parts))


_SIMILAR = _rx(r"похож", r"где ещ[её]", r"\bpohozh", r"подобн", r"аналогичн", r"такие же", r"такая же", r"такой же", r"напомина",
               r"\bsimilar\b", r"\blike (?:this|that|the)\b", r"\bпохоже на\b",
               # a situation rather than a period: how colleagues handled it before
               r"как (?:мы |вы |коллеги |ребята )?(?:отрабатыва|отработ|справля|справил|выкручива|действова|поступа|обходи)",
               r"что (?:мы |вы |коллеги )?(?:делали|делать|предпринимали),? (?:когда|если|в случае)",
               r"(?:были|бывали) ли (?:такие |похожие )?случа", r"кто (?:уже )?сталкивал", r"\bhow did we (?:handle|deal)")
_STALLED = _rx(r"\bвис[яи]т\b", r"\bвисел", r"\bвисящ", r"\bзавис(?:ла|ли|ло|ла|шие|ших|шая|шую|шим|ает|ают)?\b", r"без движени", r"застрял", r"застоял", r"буксу",
               r"заглох", r"протух", r"в зоне риска", r"под угрозой", r"\bриск", r"\bstall", r"\bstuck\b", r"at risk",
               r"давно не (?:двиг|трог|звон|было)", r"не двига", r"no (?:movement|activity)", r"\bзастой",
               r"без активност", r"\bstale\b", r"горят")
_WHY = _rx(r"\bпочему\b", r"\bwhy\b", r"из-за чего", r"по какой причине", r"\bпочем\b", r"\bотчего\b",
           r"в чем причина", r"что пошло не так", r"как так вышло", r"как получилось")
_WHAT_WINS = _rx(r"что помогает", r"что мешает", r"что влияет", r"что работает", r"что срабатывает",
                 r"фактор", r"драйвер", r"what (?:wins|helps|works|drives|makes)", r"how (?:do|can) we win",
                 r"как (?:нам )?(?:выигрывать|побеждать|чаще выигрывать|закрывать)", r"что выигрывает",
                 r"секрет", r"за счет чего (?:выигр|побежд)", r"что приводит к (?:побед|выигр|проигр)",
                 r"от чего зависит", r"закономерност", r"\bwin drivers\b", r"почему (?:мы )?(?:чаще )?(?:проигрываем|выигрываем|теряем)",
                 r"why do we (?:lose|win)", r"what makes (?:us|deals)", r"прогора", r"что отлича\w* (?:выигранн|проигранн|успешн)",
                 r"чем отлича\w* (?:выигранн|проигранн|успешн)")
_COMPARE = _rx(r"сравн", r"\bvs\.?\b", r"\bversus\b", r"\bcompare", r"против\b", r"в сравнении",
               r"чем отлича", r"разниц")
_RANKING = _rx(r"\bкто\b.{0,40}?(?:лучш|хуж|больш|меньш|сам|чаще|реже|быстр|медлен|эффективн|первы|лидер|отста)",
               r"\bтоп\b", r"\btop\b", r"рейтинг", r"\brank", r"\bлидер", r"\bwho\b.{0,30}?(?:best|worst|most|least|top|fastest|slowest|more|less)",
               r"самы[йем] (?:лучш|успешн|результативн|продуктивн)", r"\bлучший\b", r"\bхудший\b",
               r"у кого (?:больше|меньше|лучше|хуже|выше|ниже|самый)", r"по убыванию", r"по возрастанию",
               r"отсортируй", r"упорядоч", r"\bleaderboard\b", r"\bwhich (?:manager|rep|salesperson|client|company)\b.{0,30}?(?:highest|lowest|best|worst|most|least)", r"какой менеджер (?:лучше|больше)",
               r"какая компания (?:больше|принесла)", r"какие (?:клиенты|компании) (?:принесли|дали) больше")
_DEALS = _rx(r"какие (?:\w+ ){0,2}сделк", r"список (?:\w+ ){0,2}сделок", r"покажи (?:\w+ ){0,3}сделк", r"перечисли",
             r"\bwhich deals\b", r"\blist (?:the |all |of )?(?:\w+ )?deals\b", r"\bshow (?:me )?(?:the |all )?(?:\w+ )?deals\b",
             r"какие (?:\w+ ){0,2}(?:проиграли|выиграли|потеряли|закрыли|слили)", r"\bсделки\b.{0,30}?(?:проигран|выигран|открыт|потерян)",
             r"(?:проигранн|выигранн|открыт|потерянн)\w* сделк", r"покажи (?:все )?(?:проигранн|выигранн|открыт|потерянн)\w*", r"все сделки", r"\bdeals (?:lost|won|that)\b",
             r"(?:lost|won|open) deals", r"кому передали", r"какие были сделки", r"что (?:проиграли|выиграли|потеряли)")
_METRIC = _rx(r"\bсколько\b", r"\bскольк", r"\bhow (?:many|much|long)\b", r"средн\w* чек", r"средн\w* (?:сумм|сделк|размер)",
              r"конверси", r"\bwin ?rate\b", r"винрейт", r"процент (?:побед|выигр|закрыт)", r"доля (?:побед|выигр)",
              r"цикл", r"длительност", r"\baverage\b", r"\bavg\b", r"какой (?:у \w+ )?(?:средний|процент)",
              r"какая (?:у \w+ )?(?:конверсия|доля|выручка)", r"\bчисло\b", r"\bколичеств", r"\bвыручк",
              r"\brevenue\b", r"\bcycle\b", r"conversion")
_METRIC_WORDS = [  # (metric, pattern) — first match wins
    ("avg_deal", r"средн\w* (?:чек|сумм|сделк|размер|стоимост)|\baverage (?:deal|check|size|amount)|\bavg (?:deal|check)|средний чек"),
    ("win_rate", r"конверси|\bwin ?rate|винрейт|вин рейт|процент (?:побед|выигр|закрыт|успе)|дол[яеию] (?:побед|выигр|успе)|conversion|эффективн"),
    ("cycle", r"цикл|длительност|длится|как долго|сколько дней|how long|быстрее (?:всех )?закрыва|скорост\w* закрыт|\bcycle\b|медленн"),
    ("lost_amount", r"(?:сумм|денег|деньг)\w* .{0,20}(?:проигр|потер|слил)|(?:проигр|потер|слил)\w* .{0,20}(?:сумм|денег|деньг|рубл)"),
    ("won_amount", r"выручк|\brevenue\b|сумм|денег|деньг|оборот|заработ|принес|рубл|₽|\bmoney\b|\bamount\b"),
    ("lost", r"проигр|потерял|слил|упустил|\blost\b|\blose\b|\bloses\b"),
    ("activity", r"активн|занят|звонк|заметк|\bactive\b|activity|работал\w* больше|трудолюб"),
    ("won", r"выигр|побед|закрыл\w* больше|продал|продаж|продает|продает|\bwon\b|\bwins?\b|\bsold\b|\bsells?\b"),
    ("count", r"сколько|\bhow many\b|количеств|\bчисло\b"),
]
_METRIC_RX = [(m, re.compile(p)) for m, p in _METRIC_WORDS]

_OUTCOME = [
    ("lost", re.compile(r"проигр|потерян|потеряли|потерял|слил|упустил|\blost\b|\blose\b|провал|отказал|не реализ|сорвал|сорвалась")),
    ("won", re.compile(r"выигр|успешн|\bwon\b|победн|закрыли успешно|реализован|подписал|оплатил")),
    ("open", re.compile(r"открыт|в работе|незакрыт|не закрыт|текущ|\bopen\b|активные сделки|в процессе|в воронке|висят|зависл")),
]
_WORST = re.compile(r"хуж|меньш|реже|медлен|отста|\bworst\b|\bleast\b|\bslowest\b|аутсайдер|последн")
_BY_COMPANY = re.compile(r"компани|клиент|заказчик|\bcompan|\bclient|\bcustomer|кто из клиентов|какие компании|"
                         r"какая компания|какой клиент")
_BY_MANAGER = re.compile(r"\bкто\b|менеджер|\bwho\b|manager|продавц|сотрудник")

# question words → the lemma of the account's loss-reason word they mean
_REASON_SYNONYMS = {
    "цена": "дорого", "дорогой": "дорого", "дорого": "дорого", "дороговато": "дорого", "стоимость": "дорого",
    "price": "дорого", "expensive": "дорого", "pricing": "дорого", "цене": "дорого",
    "конкурент": "конкурент", "competitor": "конкурент", "competition": "конкурент",
    "бюджет": "бюджет", "budget": "бюджет", "деньги": "бюджет",
    "лпр": "лпр", "decision": "лпр",
    "срок": "срок", "сроки": "срок", "deadline": "срок", "timing": "срок", "время": "срок",
    "пропасть": "пропасть", "пропавший": "пропасть", "исчезнуть": "пропасть", "ghost": "пропасть",
    "молчать": "пропасть", "отвечать": "пропасть",
}
_REASON_STOP = {"не", "нет", "на", "и", "в", "по", "выбрать", "клиент", "устроить", "выйти"}


def _reason_words(reason: str) -> set[str]:
    return {lemma(w) for w in _WORD.findall(reason.lower()) if lemma(w) not in _REASON_STOP and len(w) > 2}


def match_reason(text: str, reasons: Sequence[str]) -> str | None:
    """The account's loss reason a question names («по цене» → «Дорого»), or None."""
    if not reasons:
        return None
    words = {lemma(w) for w in _WORD.findall((text or "").lower().replace("ё", "е"))}
    words |= {_REASON_SYNONYMS[w] for w in list(words) if w in _REASON_SYNONYMS}
    words |= {_REASON_SYNONYMS[w] for w in _WORD.findall((text or "").lower()) if w in _REASON_SYNONYMS}
    best, best_n = None, 0
    for r in reasons:
        rw = _reason_words(r)
        if any(_REASON_SYNONYMS.get(x) in words for x in rw):
            n = 2
        else:
            n = len(rw & words)
        if n > best_n:
            best, best_n = r, n
    return best


_STAGE_STOP = {"и", "на", "в", "по", "этап", "стадия", "сделка"}


def match_stage(text: str, stages: Sequence[str]) -> str | None:
    """The pipeline stage a question names («на этапе переговоров» → «Переговоры»), or None."""
    if not stages:
        return None
    words = {lemma(w) for w in _WORD.findall((text or "").lower().replace("ё", "е"))}
    best, best_n = None, 0
    for s in stages:
        sw = {lemma(w) for w in _WORD.findall(s.lower().replace("ё", "е")) if len(w) > 1} - _STAGE_STOP
        if not sw or s.lower().startswith(("успешно", "закрыто")):
            continue  # won / lost are outcomes, not stages
        n = len(sw & words)
        if n == len(sw) or (n and n >= len(sw) - 1 and len(sw) > 2):
            if n > best_n:
                best, best_n = s, n
    return best


# «дороже 1 млн», «больше 500 тыс», «от 100 000 до 500 000 ₽», «over 1m», «меньше 200к»
_NUM = r"(\d[\d\s]*(?:[.,]\d+)?)\s*(млн\w*|миллион\w*|mln|m\b|тыс\w*|thousand|k\b|к\b|т\.?р|₽|руб\w*|р\.)?"
_MIN_RX = re.compile(r"(?:дороже|больше|свыше|более|выше|над|от|over|above|more than|>|≥)\s*" + _NUM)
_MAX_RX = re.compile(r"(?:дешевле|меньше|менее|ниже|до|under|below|less than|<|≤)\s*" + _NUM)


def _amount(num: str, unit: str | None) -> int | None:
    try:
        x = float(num.replace(" ", "").replace(",", "."))
    except ValueError:
        return None
    u = (unit or "").lower()
    if u.startswith(("млн", "миллион", "mln", "m")):
        x *= 1_000_000
    elif u.startswith(("тыс", "thousand", "k", "к", "т")):
        x *= 1_000
    elif not u and x < 1000:
        return None  # «до 15» is a date, «больше 3» a count: amounts need a unit or size
    return int(x)


def amount_bounds(text: str) -> tuple[int | None, int | None]:
    t = (text or "").lower().replace("ё", "е").replace("\u00a0", " ")
    lo = hi = None
    for m in _MIN_RX.finditer(t):
        lo = _amount(m.group(1).strip(), m.group(2)) or lo
    for m in _MAX_RX.finditer(t):
        v = _amount(m.group(1).strip(), m.group(2))
        if v is not None and (lo is None or v > lo):
            hi = v
    return lo, hi


def _metric(t: str) -> str | None:
    hits = [m for m, rx in _METRIC_RX if rx.search(t)]
    if not hits:
        return None
    if "lost_amount" in hits:
        return "lost_amount"
    return hits[0]


def classify(text: str, *, n_managers: int = 0, n_companies: int = 0, has_period: bool = False,
             loss_reasons: Sequence[str] = (), stages: Sequence[str] = ()) -> Intent:
    """The intent and filters of a question; `n_managers` / `n_companies` are how many were recognised."""
    t = cue_text(text)
    res = Intent()
    res.metric = _metric(t)
    res.outcome = next((o for o, rx in _OUTCOME if rx.search(t)), None)
    low = (text or "").lower().replace("ё", "е")
    plain = _MAX_RX.sub(" ", _MIN_RX.sub(" ", low))  # «дороже 1 млн» is an amount, not the reason «Дорого»
    res.loss_reason = match_reason(cue_text(plain), loss_reasons)
    if res.loss_reason and res.outcome is None:
        res.outcome = "lost"
    res.stage = match_stage(text, stages)
    res.amount_min, res.amount_max = amount_bounds(text)
    res.order = "asc" if _WORST.search(t) else "desc"
    res.by = "company" if _BY_COMPANY.search(t) and not (_BY_MANAGER.search(t) and "клиент" not in t) else "manager"
    specific = n_managers + n_companies > 0
    many = n_managers >= 2 or n_companies >= 2

    def pick(name: str, cue: str) -> Intent:
        res.intent = name
        res.cues.append(cue)
        return res

    if _SIMILAR.search(t):
        return pick("similar", "similar")
    if _STALLED.search(t) and not _WHY.search(t):
        res.outcome = "open"
        return pick("stalled", "stalled")
    sales = re.search(r"сделк|проигр|выигр|теря|потер|продаж|продает|клиент|тендер|побед|конверс|чек|выручк|денег|"
                      r"\bdeal|\blos|\bwin|\bwon\b|revenue|sales|sold", t)
    if _WHAT_WINS.search(t) or (_WHY.search(t) and not specific and sales):
        return pick("what_wins", "what_wins")
    if _WHY.search(t) and specific:
        return pick("why", "why")
    if many and (_COMPARE.search(t) or " или " in t or " and " in t or " or " in t or " и " in t or _RANKING.search(t)):
        return pick("compare", "compare")
    if _COMPARE.search(t) and has_period and not specific:
        return pick("compare", "compare-periods")
    if _RANKING.search(t):
        if res.metric is None:
            res.metric = "won"
        return pick("ranking", "ranking")
    if _DEALS.search(t) or (res.loss_reason and "сделк" in t) or (res.stage and "сделк" in t):
        return pick("deals", "deals")
    if _METRIC.search(t) and res.metric and (sales or specific):
        if res.metric in ("won", "lost") and re.search(r"скольк|how many|количеств|число", t):
            res.metric, res.outcome = "count", res.outcome or res.metric
        return pick("metric", "metric")
    if _METRIC.search(t) and (sales or specific):
        res.metric = "count"
        return pick("metric", "metric-count")
    if (res.outcome or res.loss_reason or res.stage or res.amount_min or res.amount_max) and re.search(r"сделк|deal|sdelk", t):
        return pick("deals", "deals-filter")
    if specific or has_period:
        return pick("activity", "activity")
    return pick("clarify", "nothing")
