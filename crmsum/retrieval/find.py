"""Search: records closest to a text within SQL filters, and the hybrid form for free-form questions.

`search` embeds the query with the configured embeddings, lets DuckDB pick the rows that pass the
filters and ranks them by cosine similarity (`crmsum.retrieval.index`). `search_question` first takes
the manager, company and period out of the question with `crmsum.query.parse_question` (exact
names, ids and dates are SQL's job), then ranks by the words that are left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from crmsum.retrieval.index import load_index, models_in
from crmsum.ru import today as today_in
from crmsum.retrieval.text import MAX_CHARS, tokens
from crmsum.retrieval.types import KINDS, Hit, RetrievalError, SearchResult

MIN_SCORE = {"offline": 0.1, "openai": 0.0}  # below this a hit shares nothing with the query
NO_EMBEDDINGS = ("no embeddings yet: run the nightly flow (`python flows/nightly.py`) "
                 "or `crmsum search --build TEXT`")


def filters_sql(manager: str | None = None, company_id: int | None = None, lead_id: int | None = None,
                kind: str | Sequence[str] | None = None, since: dt.date | None = None,
                until: dt.date | None = None) -> tuple[str, list]:
    """WHERE clause and parameters over the index metadata (kind defaults to the record kinds)."""
    kinds = [kind] if isinstance(kind, str) else list(kind or KINDS)
    where = [f"kind IN ({', '.join('?' * len(kinds))})"]
    params: list = list(kinds)
    for col, val in (("manager", manager), ("company_id", company_id), ("lead_id", lead_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(int(val) if col != "manager" else str(val))
    if since is not None:
        where.append("created_at >= ?")
        params.append(dt.datetime.combine(since, dt.time()))
    if until is not None:
        where.append("created_at < ?")
        params.append(dt.datetime.combine(until + dt.timedelta(days=1), dt.time()))
    return " AND ".join(where), params


def check_query(text: str | None) -> str:
    """The query as it will be embedded, or a RetrievalError saying what is wrong with it."""
    text = " ".join(str(text or "").split())[:MAX_CHARS]
    if not text:
        raise RetrievalError("empty query: say what to look for, e.g. «клиент пропал после КП»")
    return text


def _index(lake, emb, settings):
    index = load_index(lake, emb.model, settings.embeddings_approx_above, settings.state_dir)
    if len(index):
        return index
    others = models_in(lake)
    if others:
        raise RetrievalError(f"record_embeddings holds vectors of {others[0][0]}, not of the configured "
                             f"{emb.model}: run the nightly flow to embed the records again")
    raise RetrievalError(NO_EMBEDDINGS)


def hits_at(index, positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
    """Hits of index rows (positions) with their scores, in the given order."""
    rows = index.meta.iloc[positions].to_dict("records")
    return [Hit(id=r["record_id"], lead_id=_int(r["lead_id"]), kind=r["kind"], text=r["text"] or "",
                created_at=None if pd.isna(r["created_at"]) else pd.Timestamp(r["created_at"]).to_pydatetime(),
                score=float(score), manager=r["manager"] if isinstance(r["manager"], str) else None,
                company_id=_int(r["company_id"]))
            for r, score in zip(rows, scores)]


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def search(lake, text: str, *, k: int = 10, manager: str | None = None, company_id: int | None = None,
           lead_id: int | None = None, kind: str | Sequence[str] | None = None, since: dt.date | None = None,
           until: dt.date | None = None, settings=None, min_score: float | None = None,
           embeddings=None) -> list[Hit]:
    """Records closest to `text` within the filters, best first (see the package docstring)."""
    from crmsum.config import get_settings
    from crmsum.retrieval.embeddings import get_embeddings

    s = settings or get_settings()
    text = check_query(text)
    if k <= 0:
        raise RetrievalError(f"k must be positive, got {k}")
    emb = embeddings or get_embeddings(s)
    if not emb.meaningful(text):
        raise RetrievalError(f"nothing to search for in «{text[:60]}»: no known words (only stop words, digits, "
                             "symbols or another language); describe the situation in a few Russian words")
    index = _index(lake, emb, s)
    where, params = filters_sql(manager, company_id, lead_id, kind, since, until)
    q = np.asarray(emb.embed_matrix([text])[0], dtype=np.float32)
    pos, scores = index.search(q, min(int(k), 10_000), index.positions(where, params))
    floor = MIN_SCORE.get(emb.backend, 0.0) if min_score is None else min_score
    keep = scores >= floor
    return hits_at(index, pos[keep], scores[keep])


def _names(settings, lake):
    """Managers (pseudonym, real name) and companies (name -> id) as the answer path knows them."""
    from crmsum.answer import get_context

    ctx = get_context(settings, lake)
    return ctx.managers, ctx.companies


def strip_entities(question: str, names: Sequence[str], today: dt.date) -> str:
    """The question without the words that went to SQL filters (names and period words)."""
    from crmsum.query.periods import parse_period

    stems = {t[: max(4, len(t) - 2)] for n in names for t in tokens(n)}
    kept = []
    for word in question.split():
        lem = tokens(word)
        if lem and all(any(w.startswith(st) or st.startswith(w[: max(4, len(w) - 2)]) for st in stems) for w in lem):
            continue
        if lem and parse_period(word, today) is not None:
            continue
        kept.append(word)
    return " ".join(kept)


def search_question(lake, question: str, *, k: int = 10, settings=None, today: dt.date | None = None,
                    kind: str | Sequence[str] | None = None) -> SearchResult:
    """Hybrid search: manager, company and period by SQL (from the question), the rest by vector."""
    from crmsum.config import get_settings
    from crmsum.query import parse_question

    s = settings or get_settings()
    question = check_query(question)
    today = today or today_in(s)
    managers, companies = _names(s, lake)
    parsed = parse_question(question, [n for _, n in managers], list(companies), today)
    manager = next((p for p, n in managers if n == parsed.manager), None) if parsed.manager else None
    rest = strip_entities(question, parsed.managers_mentioned + parsed.companies_mentioned, today) \
        if (parsed.manager or parsed.company or parsed.start) else question
    company_id = companies.get(parsed.company) if parsed.company else None
    hits = search(lake, rest or question, k=k, manager=manager, company_id=company_id, since=parsed.start,
                  until=parsed.end, kind=kind, settings=s)
    return SearchResult(hits=hits, query=rest or question, manager=manager, company=parsed.company,
                        company_id=company_id, since=parsed.start, until=parsed.end)
