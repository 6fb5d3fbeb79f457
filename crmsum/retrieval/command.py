"""`crmsum search`: names and dates from the command line resolved the way questions are, then search.

Managers are given by real name (resolved through the vault, like in questions) or by pseudonym;
companies by name (the question parser's fuzzy match) or id. The query itself goes through the
hybrid path (`search_question`), so «дорого у Нефтетруба в мае» filters by company and month too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from crmsum.cites import PSEUDONYM_RE
from crmsum.retrieval.find import NO_EMBEDDINGS, _names, search, search_question
from crmsum.retrieval.types import RetrievalError, SearchResult
from crmsum.ru import today as today_in


def resolve_manager(name: str, managers: list[tuple[str, str]], today: dt.date) -> str:
    """Pseudonym of a manager given by real name (any form the question parser understands) or pseudonym."""
    from crmsum.query import parse_question

    name = name.strip()
    if PSEUDONYM_RE.fullmatch(name) and any(p == name for p, _ in managers):
        return name
    parsed = parse_question(name, [n for _, n in managers], [], today)
    found = next((p for p, n in managers if n == parsed.manager), None)
    if found is None:
        known = ", ".join(sorted(n for _, n in managers)[:12]) or "none in the vault yet"
        raise RetrievalError(f"unknown manager «{name}»; known: {known}")
    return found


def resolve_company(name: str, companies: dict[str, int], today: dt.date) -> tuple[str, int]:
    from crmsum.query import parse_question

    name = name.strip()
    if name.isdigit() and int(name) in companies.values():
        return next(n for n, i in companies.items() if i == int(name)), int(name)
    exact = {n.lower(): n for n in companies}
    found = exact.get(name.lower()) or parse_question(name, [], list(companies), today).company
    if found is None:
        raise RetrievalError(f"unknown company «{name}»")
    return found, companies[found]


def parse_since(since: str | None) -> dt.date | None:
    if not since:
        return None
    try:
        return dt.date.fromisoformat(since.strip())
    except ValueError:
        raise RetrievalError(f"--since must be YYYY-MM-DD, got {since!r}") from None


def run_search(lake, text: str, *, k: int = 10, manager: str | None = None, company: str | None = None,
               since: str | None = None, build: bool = False, settings=None,
               progress: Callable[..., None] | None = None) -> SearchResult:
    """What `crmsum search` does; raises RetrievalError with a one-line message on bad input."""
    from crmsum.config import get_settings

    s = settings or get_settings()
    if not 1 <= k <= 1000:
        raise RetrievalError(f"--k must be between 1 and 1000, got {k}")
    start = parse_since(since)
    today = today_in(s)
    try:
        return _run(lake, text, k, manager, company, start, s, today)
    except RetrievalError as exc:
        if not build or str(exc) != NO_EMBEDDINGS and "run the nightly flow" not in str(exc):
            raise
    from crmsum.retrieval.store import update_embeddings

    update_embeddings(lake, s, progress=progress)
    return _run(lake, text, k, manager, company, start, s, today)


def _run(lake, text, k, manager, company, start, s, today) -> SearchResult:
    if manager is None and company is None and start is None:
        return search_question(lake, text, k=k, settings=s, today=today)
    managers, companies = _names(s, lake)
    m = resolve_manager(manager, managers, today) if manager else None
    c_name, c_id = resolve_company(company, companies, today) if company else (None, None)
    hits = search(lake, text, k=k, manager=m, company_id=c_id, since=start, settings=s)
    return SearchResult(hits=hits, query=text, manager=m, company=c_name, company_id=c_id, since=start)
