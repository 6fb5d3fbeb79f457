"""Similar deals: past deals closest to a situation (free text) or to another deal.

A deal's vector is the normalized mean of its records' vectors (notes, calls, tasks and its title),
so a deal is found by what happened in it, not only by its name. A text query scores a deal by
`TEXT_MAX_WEIGHT * best record + (1 - TEXT_MAX_WEIGHT) * deal vector`: «клиент пропал после КП»
is one note in a deal, «поставка теплообменников» its whole story. A deal query (a lead id) scores
by deal vector against deal vector. Outcome, amount, loss reason, manager and company come from
SQL over `crm_leads`; the deciding records are the deal's records closest to the query.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from crmsum.facts_sql import LOST, WON
from crmsum.retrieval.find import _index, check_query, hits_at
from crmsum.retrieval.index import cosines
from crmsum.retrieval.types import DealHit, RetrievalError

TEXT_MAX_WEIGHT = 0.6
DECIDING = 3  # records shown per deal


def _deal_vectors(index) -> tuple[np.ndarray, np.ndarray]:
    """(lead ids, unit mean vectors) of every lead with vectors, cached on the index."""
    cached = getattr(index, "_deal_vectors", None)
    if cached is not None:
        return cached
    lead = index.meta["lead_id"]
    has = lead.notna().to_numpy()
    pos = np.flatnonzero(has)
    ids, inverse = np.unique(lead[has].astype("int64").to_numpy(), return_inverse=True)
    sums = np.zeros((len(ids), index.matrix.shape[1]), dtype=np.float32)
    np.add.at(sums, inverse, index.matrix[pos])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    vecs = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)
    index._deal_vectors = (ids, vecs)
    return ids, vecs


def deals_frame(con, closed_only: bool, manager: str | None, company_id: int | None,
                since: dt.date | None, until: dt.date | None) -> pd.DataFrame:
    """Deals that may be answered, with outcome, amount and names (SQL filters)."""
    where, params = ["NOT coalesce(l.is_deleted, false)"], []
    if closed_only:
        where.append(f"l.status_id IN ({WON}, {LOST})")
    if manager is not None:
        where.append("u.name = ?")
        params.append(manager)
    if company_id is not None:
        where.append("l.company_id = ?")
        params.append(int(company_id))
    day = "coalesce(l.closed_at, l.created_at)"
    if since is not None:
        where.append(f"{day} >= ?")
        params.append(dt.datetime.combine(since, dt.time()))
    if until is not None:
        where.append(f"{day} < ?")
        params.append(dt.datetime.combine(until + dt.timedelta(days=1), dt.time()))
    return con.execute(f"""
        SELECT l.lead_id, l.name, l.price AS amount, l.loss_reason, u.name AS manager, l.company_id,
               c.name AS company, l.created_at, l.closed_at,
               CASE WHEN l.status_id = {WON} THEN 'won' WHEN l.status_id = {LOST} THEN 'lost' ELSE 'open' END AS outcome
        FROM crm_leads l
        LEFT JOIN (SELECT user_id, any_value(name) AS name FROM crm_users GROUP BY ALL) u ON u.user_id = l.responsible_user_id
        LEFT JOIN (SELECT company_id, any_value(name) AS name FROM crm_companies GROUP BY ALL) c USING (company_id)
        WHERE {' AND '.join(where)}""", params).df()


def similar_deals(lake, text_or_lead_id: str | int, *, k: int = 5, manager: str | None = None,
                  company_id: int | None = None, since: dt.date | None = None, until: dt.date | None = None,
                  closed_only: bool = True, settings=None, embeddings=None) -> list[DealHit]:
    """Past deals closest to a situation or to a deal, best first (see the module docstring)."""
    from crmsum.config import get_settings
    from crmsum.retrieval.embeddings import get_embeddings

    s = settings or get_settings()
    emb = embeddings or get_embeddings(s)
    index = _index(lake, emb, s)
    ids, vecs = _deal_vectors(index)
    source = None
    if isinstance(text_or_lead_id, (int, np.integer)) or str(text_or_lead_id).strip().isdigit():
        source = int(text_or_lead_id)
        where = np.flatnonzero(ids == source)
        if not len(where):
            raise RetrievalError(f"deal {source} has no records with vectors (unknown lead, or not embedded yet)")
        q = vecs[where[0]]
    else:
        text = check_query(str(text_or_lead_id))
        if not emb.meaningful(text):
            raise RetrievalError(f"nothing to search for in «{text[:60]}»: describe the situation in a few words")
        q = np.asarray(emb.embed_matrix([text])[0], dtype=np.float32)
    con = lake.connect()
    deals = deals_frame(con, closed_only, manager, company_id, since, until)
    con.close()
    deals = deals[deals["lead_id"] != source] if source is not None else deals
    rec_scores = cosines(index.matrix, q)
    deal_score = pd.Series(cosines(vecs, q), index=ids)
    if source is None:
        best = pd.Series(rec_scores).groupby(index.meta["lead_id"]).max()
        deal_score = TEXT_MAX_WEIGHT * best.reindex(ids).fillna(0).to_numpy() + (1 - TEXT_MAX_WEIGHT) * deal_score
    deals = deals.assign(score=deals["lead_id"].map(deal_score)).dropna(subset=["score"])
    top = deals.sort_values(["score", "lead_id"], ascending=[False, True]).head(max(0, int(k)))
    return [_deal_hit(r, index, rec_scores) for _, r in top.iterrows()]


def _deal_hit(r: pd.Series, index, rec_scores: np.ndarray) -> DealHit:
    meta = index.meta
    pos = np.flatnonzero(((meta["lead_id"] == r["lead_id"]) & (meta["kind"] != "deal")).fillna(False).to_numpy())
    pos = pos[np.argsort(-rec_scores[pos], kind="stable")][:DECIDING]

    def ts(v):
        return None if pd.isna(v) else pd.Timestamp(v).to_pydatetime()

    return DealHit(lead_id=int(r["lead_id"]), name=r["name"] or "", outcome=r["outcome"],
                   amount=None if pd.isna(r["amount"]) else int(r["amount"]),
                   loss_reason=r["loss_reason"] if isinstance(r["loss_reason"], str) else None,
                   manager=r["manager"] if isinstance(r["manager"], str) else None,
                   company_id=None if pd.isna(r["company_id"]) else int(r["company_id"]),
                   company=r["company"] if isinstance(r["company"], str) else None,
                   created_at=ts(r["created_at"]), closed_at=ts(r["closed_at"]), score=float(r["score"]),
                   records=hits_at(index, pos, rec_scores[pos]))
