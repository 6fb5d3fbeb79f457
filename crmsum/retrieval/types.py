"""The records retrieval hands out: typed, rendered once at the edge (CLI JSON, bot, briefs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from crmsum.errors import CrmsumError

KINDS = ("note", "call", "task", "msg")  # what `search` returns; "deal" rows (titles) serve similar_deals


class RetrievalError(CrmsumError):
    """An expected retrieval failure: an empty or meaningless query, a lake without embeddings."""


@dataclass(frozen=True)
class Hit:
    """One record close to a query. `score` is the cosine similarity (higher is closer, at most 1)."""

    id: str
    lead_id: int | None
    kind: str
    text: str
    created_at: dt.datetime | None
    score: float
    manager: str | None = None
    company_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The `crmsum search --json` shape: {id, lead_id, kind, text, created_at, score}."""
        return {"id": self.id, "lead_id": self.lead_id, "kind": self.kind, "text": self.text,
                "created_at": self.created_at.isoformat(timespec="minutes") if self.created_at else None,
                "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class DealHit:
    """A past deal close to a situation: how it ended and the records that show what was done."""

    lead_id: int
    name: str
    outcome: str  # won, lost or open
    amount: int | None
    loss_reason: str | None
    manager: str | None
    company_id: int | None
    company: str | None
    created_at: dt.datetime | None
    closed_at: dt.datetime | None
    score: float
    records: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "closed_at"):
            d[k] = d[k].isoformat(timespec="minutes") if d[k] else None
        d["score"] = round(float(self.score), 4)
        d["records"] = [h.to_json() for h in self.records]
        return d


@dataclass
class SearchResult:
    """Hits of a free-form question plus what the hybrid parser took out of it for SQL filters."""

    hits: list[Hit]
    query: str  # the words that were ranked by vector
    manager: str | None = None
    company: str | None = None
    company_id: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None


@dataclass
class EmbedReport:
    """What one embedding run did (the nightly step's report)."""

    backend: str
    model: str
    records: int = 0  # records in the lake that can be embedded
    embedded: int = 0  # vectors computed this run
    updated: int = 0  # rows rewritten without re-embedding (metadata changed)
    removed: int = 0  # records gone from the lake (tombstoned)
    refit: bool = False  # the offline model was (re)fitted this run
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
