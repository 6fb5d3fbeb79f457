"""Which manager and which company a question is about.

The question's tokens are looked up in the `EntityIndex` of the known names (`entity_index.py`);
here the hits are combined: a company's words must follow one another and a common-word company
(«Вектор») needs a cue (capital, quotes, «компания», «по»); a first name and a surname side by side
are one mention, a first name next to a stranger's surname or patronymic is not ours, and ties are
broken by the verbs' gender and by the case after a preposition.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmsum.ru import LEGAL_FORMS
from crmsum.ru import QUOTES as _QUOTES

from .entity_index import EntityIndex
from .tokens import (COMPANY_WORDS, RU_PREPS, STRONG_PREPS, WEAK_PREPS, Token, is_known_word, sentence_initial,
                     skeleton, translit, word_parses)

__all__ = ["Match", "match_companies", "match_managers"]


@dataclass
class Match:
    """The manager or company a question names: one value, or the tied candidates."""

    value: str | None
    candidates: list[str]  # all equally good candidates (len > 1 means ambiguous)
    mentioned: list[str]   # every resolved mention, in order
    score: float
    span: tuple[int, int] | None = None


def _has_cue(tokens: list[Token], i: int, text: str, caps: bool) -> bool:
    tok = tokens[i]
    if tok.capitalized and (caps or not any(t.text.isupper() and len(t.text) > 1 for t in tokens)):
        if not sentence_initial(tokens, i, text):
            return True
        # «Ромашка: что нового?» / «Ромашке» alone, but not «Вектор развития»
        after = text[tok.end:tok.end + 2]
        if i == len(tokens) - 1 or any(ch in after for ch in ":,-—?!"):
            return True
    before = text[max(0, tok.start - 2):tok.start]
    if any(q in before for q in _QUOTES):
        return True
    if i > 0:
        prev = tokens[i - 1].norm
        if prev in LEGAL_FORMS or prev in COMPANY_WORDS or prev in STRONG_PREPS:
            return True
        if not caps and (prev in WEAK_PREPS or prev in ("с", "со")):
            return True
    return False


def match_companies(idx: EntityIndex, tokens: list[Token], text: str, caps: bool) -> Match:
    """The company a question names (all the words of its name in a row): the first of the best-scoring
    mentions decides; a name inside a longer one («Альфа» in «Альфа-Строй») yields to it."""
    if not idx.companies or not tokens:
        return Match(None, [], [], 0.0)
    per_tok = [idx.comp_tok.lookup(t, False) for t in tokens]
    found: list[tuple[int, int, int, float]] = []  # (start, end, company, score)
    for i in range(len(tokens)):
        if not per_tok[i]:
            continue
        for (ci, j), s in per_tok[i].items():
            core = idx.comp_cores[ci]
            if j == -1:
                found.append((i, i + 1, ci, s))
                continue
            if j != 0:
                continue
            total = s
            ok = True
            for k in range(1, len(core)):
                if i + k >= len(tokens):
                    ok = False
                    break
                sk = per_tok[i + k].get((ci, k))
                if sk is None:
                    ok = False
                    break
                total += sk
            if not ok:
                continue
            if idx.comp_common[ci] and not _has_cue(tokens, i, text, caps):
                continue
            found.append((i, i + len(core), ci, total / len(core)))
    if not found:
        return Match(None, [], [], 0.0)
    # drop matches inside a longer one («Альфа» inside «Альфа-Строй»)
    def covered(a):
        return any(b[0] <= a[0] and a[1] <= b[1] and (b[1] - b[0]) > (a[1] - a[0]) for b in found)

    found = [f for f in found if not covered(f)]
    best = max(f[3] for f in found)
    good = [f for f in found if f[3] >= best - 0.15]
    good.sort(key=lambda f: (f[0], -f[3]))
    first_span = (good[0][0], good[0][1])
    same = [f for f in good if (f[0], f[1]) == first_span]
    top = max(f[3] for f in same)
    cands = sorted({idx.companies[f[2]] for f in same if f[3] >= top - 1e-9})
    mentioned = []
    for f in sorted(found, key=lambda f: f[0]):
        name = idx.companies[f[2]]
        if name not in mentioned:
            mentioned.append(name)
    value = cands[0] if len(cands) == 1 else None
    span = (tokens[first_span[0]].start, tokens[first_span[1] - 1].end)
    return Match(value, cands, mentioned, top, span)


def _looks_like(tok: Token, grammeme: str) -> bool:
    """A capitalized token that pymorphy reads as a first name / surname."""
    if tok.latin or not tok.capitalized:
        return False
    return any(grammeme in gr for _nf, gr, _s in word_parses(tok.norm))


def _verb_gender(tokens: list[Token]) -> str | None:
    """Gender of past-tense verbs («делала» -> femn): tells «Петрова» (she) from «Петрова» (his)."""
    seen = set()
    for t in tokens:
        if t.latin or len(t.norm) < 4 or not t.norm.endswith(("л", "ла", "лась", "лся")) or not is_known_word(t.norm):
            continue
        for _nf, gr, _s in word_parses(t.norm)[:1]:
            if "VERB" in gr and "past" in gr and "sing" in gr:
                seen |= gr & {"masc", "femn"}
    return next(iter(seen)) if len(seen) == 1 else None


def match_managers(idx: EntityIndex, tokens: list[Token], caps: bool, exclude: tuple[int, int] | None = None) -> Match:
    """The manager a question names (tokens inside `exclude`, a company's span, are skipped)."""
    if not idx.managers or not tokens:
        return Match(None, [], [], 0.0)
    hits: list[dict[int, tuple[str, float]]] = []
    for t in tokens:
        if exclude and exclude[0] <= t.start < exclude[1]:
            hits.append({})
            continue
        h: dict[int, tuple[str, float]] = {}
        for (mi, part), s in idx.mgr.lookup(t, caps).items():
            if mi not in h or h[mi][1] < s:
                h[mi] = (part, s)
        if h:
            top = max(s for _p, s in h.values())
            h = {m: v for m, v in h.items() if v[1] >= top - 1e-9}
        hits.append(h)
    mentions: list[tuple[int, set[int], float]] = []  # (token pos, candidates, weight)
    i = 0
    n = len(tokens)
    while i < n:
        h = hits[i]
        if not h:
            i += 1
            continue
        if i + 1 < n and hits[i + 1]:
            h2 = hits[i + 1]
            both = {m for m in h if m in h2 and {h[m][0], h2[m][0]} in ({"first", "last"}, {"dim", "last"})}
            if both:
                mentions.append((i, both, 2.0 + min(h[m][1] + h2[m][1] for m in both)))
                i += 2
                continue
        mentions.append((i, set(h), max(s for _p, s in h.values())))
        i += 1
    # «Анна Иванова» (a client) is not our Анна Петрова; «Ника Петрова» is not our Петрова
    kept = []
    doubt: set[int] = set()
    for pos, cands, w in mentions:
        if w < 2.0:
            parts = {hits[pos][m][0] for m in cands}
            nb = None
            if parts <= {"first", "dim"} and pos + 1 < n:
                nb = pos + 1
                if _looks_like(tokens[nb], "Patr") and not (set(hits[nb]) & cands):
                    doubt.update(cands)  # «Ольга Сергеевна»: maybe ours, maybe a client
                    continue
                if not _looks_like(tokens[nb], "Surn"):
                    nb = None
            elif parts == {"last"} and pos > 0:
                nb = pos - 1
                if not _looks_like(tokens[nb], "Name"):
                    nb = None
            if nb is not None and not (set(hits[nb]) & cands):
                continue
        kept.append((pos, cands, w))
    mentions = kept
    if not mentions:
        return Match(None, sorted(idx.managers[m] for m in doubt), [], 0.0)
    vg = _verb_gender(tokens)
    narrowed = []
    for pos, cands, w in mentions:
        if len(cands) > 1 and vg:
            by_g = {m for m in cands if idx.mgr_gender[m] in (vg, "ms-f")}
            if by_g:
                cands = by_g
        if len(cands) > 1:
            tok = tokens[pos]
            prev = tokens[pos - 1].norm if pos > 0 else ""
            key = tok.norm
            if prev in RU_PREPS and not tok.latin:
                oblique = {m for m in cands if key not in idx.mgr_nom.get(m, ())}
                if len(oblique) == 1:
                    cands = oblique
            else:
                nom = {m for m in cands if key in idx.mgr_nom.get(m, ())
                       or (tok.latin and any(skeleton(key) == skeleton(translit(x)) for x in idx.mgr_nom.get(m, ())))}
                if len(nom) == 1:
                    cands = nom
        narrowed.append((pos, cands, w))
    mentions = narrowed
    score: dict[int, float] = {}
    for _pos, cands, w in mentions:
        for m in cands:
            score[m] = score.get(m, 0.0) + w / len(cands)
    best = max(score.values())
    top = [m for m, s in score.items() if s >= best - 1e-9]
    mentioned: list[str] = []
    for _pos, cands, _w in mentions:
        if len(cands) == 1:
            name = idx.managers[next(iter(cands))]
            if name not in mentioned:
                mentioned.append(name)
    if len(top) == 1:
        return Match(idx.managers[top[0]], [idx.managers[top[0]]], mentioned, best)
    # several equally supported: an unambiguous mention decides (the first one wins)
    for _pos, cands, _w in mentions:
        if len(cands) == 1 and next(iter(cands)) in top:
            m = next(iter(cands))
            return Match(idx.managers[m], [idx.managers[m]], mentioned, best)
    return Match(None, sorted(idx.managers[m] for m in top), mentioned, best)
