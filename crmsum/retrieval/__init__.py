"""Semantic retrieval over the lake: embeddings, the `record_embeddings` vector store, search, similar deals.

Why: a manager facing «клиент пропал после КП» wants the notes where colleagues met the same
situation and the past deals that looked like this one, and the LLM summarizer answering a question
about a topic needs the records about that topic, not the first N of a period.

Python API (what the answer path, the briefs and the LLM summarizer call):

    from crmsum import retrieval

    retrieval.search(lake, text, *, k=10, manager=None, company_id=None, lead_id=None, kind=None,
                     since=None, until=None, settings=None) -> list[Hit]
        Records (notes, calls, tasks, chat messages) closest to `text`, best first, within the
        filters (pushed down to DuckDB). `manager` is a pseudonym, `kind` one of note/call/task/msg
        (or a list), `since`/`until` inclusive dates. Raises `RetrievalError` (a `CrmsumError`) with
        a one-line message when the query has no meaningful words or the lake has no embeddings.

    retrieval.similar_deals(lake, text_or_lead_id, *, k=5, manager=None, company_id=None,
                            since=None, until=None, closed_only=True, settings=None) -> list[DealHit]
        Past deals closest to a situation (free text) or to a deal (its lead id), each with its
        outcome, amount, loss reason and the deciding records (the deal's records closest to the query).

    retrieval.search_question(lake, question, *, k=10, settings=None, today=None) -> SearchResult
        Hybrid: company and period are pulled out of a free-form question by SQL-grade parsing
        (`crmsum.query.parse_question`), the rest ranks by vector («дорого у Нефтетруба в мае»).

    retrieval.evidence(lake, question, records, *, k=40, settings=None) -> list[dict]
        The period's records (`crmsum.summarize.records` dicts) re-ranked by similarity to a
        question, top k kept in time order: the LLM summarizer's evidence for topic questions.

    retrieval.update_embeddings(lake, settings=None, progress=None) -> EmbedReport
        The nightly step: embed new or changed records only (a rerun embeds nothing).

    retrieval.LakeVectorStore(lake, embeddings)  # a langchain-core VectorStore; .as_retriever() works
    retrieval.get_embeddings(settings) -> Embeddings  # offline navec SIF or OpenAI-compatible

Records: `Hit(id, lead_id, kind, text, created_at, score, manager, company_id)`;
`DealHit(lead_id, name, outcome, amount, loss_reason, manager, company_id, company, created_at,
closed_at, score, records: list[Hit])`. Record ids follow the citation ids of
`crmsum.summarize.records`: `note:<id>`, `task:<id>`, `msg:<chat>:<msg>`.
"""

from __future__ import annotations

from crmsum import lazy
from crmsum.retrieval.types import DealHit, EmbedReport, Hit, RetrievalError, SearchResult

__all__ = ["DealHit", "EmbedReport", "Hit", "RetrievalError", "SearchResult", "LakeVectorStore", "evidence",
           "get_embeddings", "search", "search_question", "similar_deals", "update_embeddings"]


# lazy: `import crmsum.retrieval` stays cheap (navec and numpy load on first use)
__getattr__ = lazy.exports(__name__, {
    "search": "find", "search_question": "find", "similar_deals": "deals", "evidence": "support",
    "update_embeddings": "store", "LakeVectorStore": "vectorstore", "get_embeddings": "embeddings"})
