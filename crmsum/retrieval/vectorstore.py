"""`LakeVectorStore`: the lake's `record_embeddings` behind langchain-core's `VectorStore`.

    store = LakeVectorStore(lake, get_embeddings(settings), settings)
    store.similarity_search_with_score("клиент пропал после КП", k=5, filter={"manager": "PER-…"})
    retriever = store.as_retriever(search_kwargs={"k": 8, "filter": {"company_id": 42}})
    chain = retriever | (lambda docs: "\\n".join(d.page_content for d in docs))

`filter` keys: manager, company_id, lead_id, kind (str or list), since, until (dates) — the same
SQL filters as `crmsum.retrieval.search`. Documents carry the record id as `Document.id` and the
record's metadata. The store is read-only: records enter the lake through ingestion and get their
vectors in the nightly step, so `add_texts` refuses with a message saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from crmsum.retrieval.find import _index, check_query, filters_sql, hits_at
from crmsum.retrieval.types import Hit, RetrievalError

FILTER_KEYS = {"manager", "company_id", "lead_id", "kind", "since", "until"}
READ_ONLY = ("LakeVectorStore is read-only: records enter the lake through ingestion and are embedded by "
             "the nightly step (crmsum.retrieval.update_embeddings)")


def to_document(hit: Hit) -> Document:
    meta = {"id": hit.id, "lead_id": hit.lead_id, "kind": hit.kind, "manager": hit.manager,
            "company_id": hit.company_id, "created_at": hit.created_at.isoformat() if hit.created_at else None,
            "score": hit.score}
    return Document(page_content=hit.text, metadata=meta, id=hit.id)


class LakeVectorStore(VectorStore):
    """Search over the lake's record vectors with SQL filters; see the module docstring."""

    def __init__(self, lake, embedding: Embeddings, settings=None) -> None:
        from crmsum.config import get_settings

        self.lake = lake
        self._embedding = embedding
        self.settings = settings or get_settings()

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, **kwargs: Any) -> list[str]:
        raise RetrievalError(READ_ONLY)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None,
                   **kwargs: Any) -> "LakeVectorStore":
        raise RetrievalError(READ_ONLY)

    def _hits(self, vector: np.ndarray, k: int, filter: dict | None) -> list[Hit]:  # noqa: A002 - LangChain's name
        unknown = set(filter or {}) - FILTER_KEYS
        if unknown:
            raise RetrievalError(f"unknown filter keys {sorted(unknown)}; use {sorted(FILTER_KEYS)}")
        index = _index(self.lake, self._embedding, self.settings)
        where, params = filters_sql(**(filter or {}))
        pos, scores = index.search(np.asarray(vector, dtype=np.float32), int(k), index.positions(where, params))
        return hits_at(index, pos, scores)

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,  # noqa: A002
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        vector = self._embedding.embed_query(check_query(query))
        return [(to_document(h), h.score) for h in self._hits(vector, k, filter)]

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,  # noqa: A002
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict | None = None,  # noqa: A002
                                    **kwargs: Any) -> list[Document]:
        return [to_document(h) for h in self._hits(np.asarray(embedding), k, filter)]

    def _select_relevance_score_fn(self):
        return lambda score: (score + 1.0) / 2.0  # cosine in [-1, 1] -> relevance in [0, 1]

    def get_by_ids(self, ids) -> list[Document]:
        index = _index(self.lake, self._embedding, self.settings)
        pos = index.positions(f"record_id IN ({', '.join('?' * len(ids))})", list(ids)) if ids else np.empty(0, int)
        return [to_document(h) for h in hits_at(index, pos, np.ones(len(pos), np.float32))]
