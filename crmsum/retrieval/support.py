"""Evidence for the LLM: the records of a scope and period that are about the question.

The summarizer's records are already within the question's filters (manager, company, period);
when they are more than fit a prompt's worth, the ones kept are the `k` most similar to the
question instead of the first by time. Won/lost events (`event:` ids: few, and what the facts
are about) are always kept; records without a vector yet (written after the last nightly run)
are ranked after the scored ones, newest first. Order in the prompt stays chronological. Without
embeddings, or for a question with no meaningful words, the records are returned as they are:
the summarizer must never fail because retrieval could not help.
"""

from __future__ import annotations

import logging

import numpy as np

from crmsum.retrieval.index import cosines
from crmsum.retrieval.types import RetrievalError

log = logging.getLogger(__name__)


def _positions(index) -> dict[str, int]:
    cached = getattr(index, "_by_id", None)
    if cached is None:
        cached = {rid: i for i, rid in enumerate(index.meta["record_id"])}
        index._by_id = cached
    return cached


def evidence(lake, question: str, records: list[dict], *, k: int = 40, settings=None) -> list[dict]:
    """Up to `k` records (plus every won/lost event) most similar to `question`, in their original order.

    `question` must be anonymized (pseudonyms only): with the openai backend it leaves the machine."""
    from crmsum.config import get_settings
    from crmsum.retrieval.embeddings import get_embeddings
    from crmsum.retrieval.find import _index

    if len(records) <= k or not (question or "").strip():
        return records
    s = settings or get_settings()
    try:
        emb = get_embeddings(s)
        if not emb.meaningful(question):
            return records
        index = _index(lake, emb, s)
    except RetrievalError as exc:
        log.info("evidence by recency: %s", exc)
        return records
    q = np.asarray(emb.embed_matrix([question])[0], dtype=np.float32)
    by_id = _positions(index)
    score = np.full(len(records), -2.0, dtype=np.float32)
    known = [(i, by_id[r["id"]]) for i, r in enumerate(records) if r.get("id") in by_id]
    if known:
        rows, pos = map(np.asarray, zip(*known))
        score[rows] = cosines(index.matrix[pos], q)
    events = {i for i, r in enumerate(records) if str(r.get("id", "")).startswith("event:")}
    # unscored records: after every scored one, the newest first (their order index breaks ties)
    order = sorted((i for i in range(len(records)) if i not in events), key=lambda i: (-score[i], -i))
    keep = events | set(order[:k])
    return [r for i, r in enumerate(records) if i in keep]
