"""Summaries of a scope (manager / company / team / manager+company) and period.

One interface, two backends: `offline` (facts in Russian + extractive key points; the default
without an API key) and `llm` (LangChain ChatOpenAI, map-reduce, cache), both filling the same
records (`crmsum.summarize.model`: sections of points). Every point goes through the grounding
check. An LLM that fails after bounded retries never breaks the caller: the offline summary is
returned with a note saying so.

- `summarize(facts, records, settings=None, llm=None) -> Summary`: the core, used by precompute;
- `summarize_scope(con_or_lake, manager=None, company=None, start=None, end=None, settings=None)`:
  live summaries for the bot (same facts layer, configured backend).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from crmsum.cites import cited_ids, strip_citations
from crmsum.facts import facts_json, facts_query, to_jsonable
from crmsum.ru import today as today_in
from crmsum.summarize import grounding as _grounding
from crmsum.summarize.model import KEYPOINT, LLM, SUMMARY_SECTIONS, Point, Section, sections_to_json, summary_sections
from crmsum.summarize.offline import period_title, summarize_offline
from crmsum.summarize.render import summary_text

OFFLINE_VERSION = "offline-v1"
SHAPE_VERSION = "sections-v1"  # the stored row shape: a change recomputes summaries (LLM answers stay cached)
NOTE_LLM_DOWN = "LLM недоступна: offline-резюме"


@dataclass
class Summary:
    """A summary and everything needed to store, show or audit it.

    `sections` are the records every edge renders; `text` is their plain rendering, kept for SQL
    users and the answers log."""

    scope: str
    key: str
    label: str
    period_kind: str  # week, month or range
    period: str  # 2024-W12, 2024-03 or 2024-03-01..2024-03-31
    start: dt.date
    end: dt.date
    text: str
    sections: list[Section] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    citations: list[dict] = field(default_factory=list)  # [{id, section, quote, ts}]
    backend: str = "offline"
    model: str | None = None
    input_hash: str = ""
    grounding: float = 1.0
    note: str | None = None
    removed: list[str] = field(default_factory=list)  # sentences dropped by the grounding check

    @property
    def summary_id(self) -> str:
        return f"{self.scope}:{self.key}:{self.period}"

    def to_row(self) -> dict[str, Any]:
        """A row of the lake's `summaries` table."""
        return {
            "summary_id": self.summary_id, "scope": self.scope, "key": self.key, "label": self.label,
            "period_kind": self.period_kind, "period": self.period, "start": self.start, "end": self.end,
            "text": self.text, "sections": sections_to_json(self.sections), "facts": facts_json(self.facts),
            "citations": json.dumps(self.citations, ensure_ascii=False), "backend": self.backend,
            "model": self.model, "input_hash": self.input_hash, "grounding": float(self.grounding),
            "note": self.note, "created_at": dt.datetime.now().replace(microsecond=0),
        }

    def as_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def backend_of(settings) -> tuple[str, str | None]:
    """('llm', model) when the LLM backend is configured, else ('offline', None)."""
    if settings is not None and settings.use_llm:
        return "llm", settings.llm_model
    return "offline", None


def input_hash(facts: dict, records: list[dict], backend: str, model: str | None) -> str:
    """Content hash of everything a summary depends on (facts, records, backend, model, prompt version)."""
    from crmsum.summarize.llm import PROMPT_VERSION

    h = hashlib.sha256()
    version = PROMPT_VERSION if backend == "llm" else OFFLINE_VERSION
    h.update(f"{backend}|{model or ''}|{version}|{SHAPE_VERSION}\n".encode())
    h.update(facts_json(facts).encode())
    for r in records:
        h.update(f"\n{r['id']}|{r.get('ts') or ''}|{r.get('author') or ''}|{r.get('text') or ''}".encode())
    return h.hexdigest()


def _base(facts: dict) -> dict:
    return {
        "scope": facts.get("scope", "team"), "key": str(facts.get("key", "team")),
        "label": str(facts.get("label") or facts.get("key") or ""), "period_kind": facts.get("period_kind", "range"),
        "period": str(facts.get("period") or ""),
        "start": dt.date.fromisoformat(str(facts["start"])[:10]), "end": dt.date.fromisoformat(str(facts["end"])[:10]),
    }


def title_of(facts: dict) -> str:
    """The summary's own title line: «label: period»."""
    return f"{facts.get('label') or facts.get('key')}: {period_title(facts)}"


def citations_of(sections: list[Section], records: list[dict]) -> list[dict]:
    """The records the (grounded) sections cite, once each: {id, section, quote, ts}."""
    by_id = {r["id"]: r for r in records}
    out, seen = [], set()
    for sec in sections:
        for p in sec.points:
            for c in p.cites:
                if c in by_id and c not in seen:
                    seen.add(c)
                    quote = p.text if p.kind == KEYPOINT else (by_id[c].get("text") or "")[:300]
                    out.append({"id": c, "section": sec.key, "quote": quote, "ts": by_id[c].get("ts")})
    return out


def _grounded(facts: dict, records: list[dict], sections: list[Section], **kw: Any) -> Summary:
    """A Summary of `sections` after the grounding check, with its text and citations."""
    g = _grounding.check(sections, facts, records)
    return Summary(**_base(facts), text=summary_text(g.sections, title_of(facts)), sections=g.sections, facts=facts,
                   citations=citations_of(g.sections, records), grounding=g.score, removed=g.removed, **kw)


def summarize_offline_summary(facts: dict, records: list[dict], note: str | None = None) -> Summary:
    """The deterministic offline summary, grounding-checked."""
    return _offline_summary(facts, records, note)


def _offline_summary(facts: dict, records: list[dict], note: str | None = None, ihash: str | None = None) -> Summary:
    """`summarize_offline_summary` with an already known input hash (precompute hashed the item)."""
    return _grounded(facts, records, summarize_offline(facts, records), backend="offline", model=None,
                     input_hash=ihash or input_hash(facts, records, "offline", None), note=note)


def llm_sections(result) -> list[Section]:
    """The LLM's structured answer (`llm.SummaryModel`) as summary sections: one `llm` point per item,
    citations written inline moved to `cites`, repeats across sections and map chunks dropped."""
    from rapidfuzz import fuzz

    points: dict[str, list[Point]] = {}
    seen_texts: list[str] = []
    for sec in SUMMARY_SECTIONS:
        points[sec] = []
        for p in getattr(result, sec):
            inline = cited_ids(p.text)
            text = " ".join(strip_citations(p.text).split())
            if not text or any(fuzz.token_sort_ratio(text, t) >= 90 for t in seen_texts):
                continue  # models repeat themselves across sections and map chunks
            seen_texts.append(text)
            points[sec].append(Point(LLM, text, cites=tuple(dict.fromkeys([*p.citations, *inline]))))
    return summary_sections(points)


def summarize(facts: dict, records: list[dict], settings=None, llm=None) -> Summary:
    """Summarize one scope and period with the configured backend (offline fallback on LLM failure)."""
    from crmsum.config import get_settings

    settings = settings or get_settings()
    backend, model = backend_of(settings)
    facts = to_jsonable(facts)
    if backend == "offline":
        return summarize_offline_summary(facts, records)
    from crmsum.summarize.llm import LLMClient, LLMUnavailable

    client = llm or LLMClient(settings)
    try:
        result = client.summarize(facts, records)
    except LLMUnavailable as exc:
        return summarize_offline_summary(facts, records, note=f"{NOTE_LLM_DOWN} ({exc})")
    return _grounded(facts, records, llm_sections(result), backend="llm", model=model,
                     input_hash=input_hash(facts, records, "llm", model), note=None)


def _data_span(con) -> tuple[dt.date, dt.date]:
    row = con.execute("""
        SELECT min(ts), max(ts) FROM (
            SELECT created_at AS ts FROM crm_leads UNION ALL SELECT created_at FROM crm_notes
            UNION ALL SELECT created_at FROM crm_events UNION ALL SELECT date FROM chat_messages)
    """).fetchone()
    today = today_in()
    lo = row[0].date() if row and row[0] is not None else today
    hi = row[1].date() if row and row[1] is not None else today
    return lo, hi


def summarize_scope(con_or_lake=None, manager: str | int | None = None, company: str | int | None = None,
                    start: dt.date | None = None, end: dt.date | None = None, settings=None,
                    as_of: dt.datetime | None = None, question: str | None = None, lake=None,
                    llm=None) -> Summary:
    """A live summary for any combination of manager / company / period (the bot's fallback).

    With a `question` and the LLM backend, the records summarized are the ones about the question
    (`crmsum.summarize.llm.evidence_records`); the grounding check covers every claim against them.

    `con_or_lake`: a DuckDB connection with the lake views, a `Lake`, or None (the settings' lake).
    Missing `start` / `end` default to the first / last day with data. LLM calls are recorded in
    `llm_calls` when a lake is known. A long-lived caller (the bot) passes a connection *and* its `lake`,
    and its own `llm` client: a new connection with every view and a new client (HTTP pool, TLS context)
    per answer cost a few hundred milliseconds of CPU that the other chats' answers wait for.
    """
    from crmsum.config import get_settings
    from crmsum.lake import Lake, open_lake
    from crmsum.summarize.records import records_for

    settings = settings or get_settings()
    if con_or_lake is None:
        lake = open_lake(settings)
        con = lake.connect()
    elif isinstance(con_or_lake, Lake):
        lake, con = con_or_lake, con_or_lake.connect()
    else:
        con = con_or_lake
    if start is None or end is None:
        lo, hi = _data_span(con)
        start, end = start or lo, end or hi
    facts = facts_query(con, start, end, manager=manager, company=company, as_of=as_of)
    records = records_for(con, start, end, manager=manager, company=company)
    if backend_of(settings)[0] == "llm":
        from crmsum.summarize.llm import LLMClient, evidence_records

        llm = llm or LLMClient(settings)
        records = evidence_records(lake, question, records, settings)
    else:
        llm = None
    try:
        return summarize(facts, records, settings=settings, llm=llm)
    finally:
        if llm is not None and lake is not None:
            llm.flush(lake)
