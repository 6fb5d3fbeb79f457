"""`record_embeddings`: one vector per record, written incrementally by the nightly step.

A record is embedded when it is new, its text changed, or the configured model changed (a refit of
the offline model, another backend); a record whose text is unchanged but whose metadata moved
(reassigned manager, a company now mentioned) is rewritten with its old vector; a record gone from
the lake gets a tombstone row (`is_deleted`, no vector). Identical texts are embedded once per run.
Rows are written in batches, so a killed run keeps what it finished and a rerun does the rest;
a rerun over an unchanged lake embeds and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from crmsum.retrieval import sif
from crmsum.retrieval.corpus import corpus
from crmsum.retrieval.embeddings import LakeEmbeddings, NavecSifEmbeddings, get_embeddings, load_sif, save_sif
from crmsum.retrieval.text import tokens
from crmsum.retrieval.types import EmbedReport

log = logging.getLogger(__name__)

TABLE = "record_embeddings"
BATCH = 4000  # rows per lake write (and per embedding call)
PARALLEL_ABOVE = 20_000  # distinct texts worth a second process (it pays ~2 s to start and load pymorphy3)
MAX_WORKERS = 2
META = ["kind", "lead_id", "company_id", "manager", "created_at"]


def stored(con) -> pd.DataFrame:
    """What the table holds, without vectors (cheap: the vector column is not read)."""
    df = con.execute(f"SELECT record_id, text_hash, backend, model, is_deleted, {', '.join(META)} FROM {TABLE}").df()
    for c in ("lead_id", "company_id"):
        df[c] = df[c].astype("Int64")
    return df


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a == b).fillna(False) | (a.isna() & b.isna())


def plan(current: pd.DataFrame, have: pd.DataFrame, model: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(to embed, metadata-only updates, removed) given the corpus and what is stored."""
    m = current.merge(have, on="record_id", how="left", suffixes=("", "_old"), indicator=True)
    fresh = (m["_merge"] == "both") & (m["text_hash"] == m["text_hash_old"]) & (m["model"] == model) \
        & ~m["is_deleted"].fillna(False).astype(bool)
    meta_same = pd.concat([_same(m[c], m[f"{c}_old"]) for c in META], axis=1).all(axis=1)
    embed = m.loc[~fresh, current.columns]
    update = m.loc[fresh & ~meta_same, current.columns]
    gone = have[~have["record_id"].isin(current["record_id"]) & ~have["is_deleted"].fillna(False).astype(bool)]
    return embed.reset_index(drop=True), update.reset_index(drop=True), gone.reset_index(drop=True)


def _fit_if_due(settings, texts: pd.Series, cache: dict[str, list[str]]) -> tuple[sif.SifModel, bool]:
    """The frozen offline model, refitted when the corpus grew by `embeddings_refit_growth` since the fit."""
    model = load_sif(settings)
    # an empty first fit (no records yet) is refitted as soon as there are records
    due = model is None or len(texts) >= max(1, model.records) * (1 + settings.embeddings_refit_growth)
    if not due:
        return model, False
    new = sif.fit(_tokenized(texts, cache))
    if model is None or new.version != model.version:
        save_sif(settings, new)  # saved first: a killed run resumes with the same model and re-embeds the rest
        log.info("offline embeddings fitted: %s over %d records", new.name, len(texts))
        return new, True
    return model, False


def _tokenized(texts, cache: dict[str, list[str]]) -> list[list[str]]:
    """Token lists of texts, each distinct text tokenized once per run (on every core when there are many)."""
    missing = [t for t in dict.fromkeys(texts) if t not in cache]
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(missing) >= PARALLEL_ABOVE and workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent holds DuckDB and Prefect threads
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            cache.update(zip(missing, pool.map(tokens, missing, chunksize=1000)))
    return [cache[t] if t in cache else cache.setdefault(t, tokens(t)) for t in texts]


def _rows(df: pd.DataFrame, vectors: np.ndarray | None, backend: str, model: str) -> pa.Table:
    now = dt.datetime.now().replace(microsecond=0)
    n = len(df)
    if vectors is None:
        vec = pa.nulls(n, pa.list_(pa.float32()))
        dim = pa.nulls(n, pa.int64())
    else:
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), type=pa.float32())
        offsets = pa.array(np.arange(0, n + 1, dtype=np.int32) * vectors.shape[1], type=pa.int32())
        vec = pa.ListArray.from_arrays(offsets, flat)
        dim = pa.array([vectors.shape[1]] * n, type=pa.int64())
    t = pa.Table.from_pandas(df[["record_id", *META, "text", "text_hash"]], preserve_index=False)
    return (t.append_column("backend", pa.array([backend] * n, pa.string()))
             .append_column("model", pa.array([model] * n, pa.string()))
             .append_column("dim", dim).append_column("vector", vec)
             .append_column("embedded_at", pa.array([now] * n, pa.timestamp("us")))
             .append_column("is_deleted", pa.array([vectors is None] * n, pa.bool_())))


def _embed_unique(emb: LakeEmbeddings, texts: list[str], cache: dict[str, list[str]]) -> np.ndarray:
    """Vectors of texts, each distinct text embedded once (chat and task texts repeat a lot)."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    if isinstance(emb, NavecSifEmbeddings):
        vecs = emb.embed_tokens(_tokenized(uniq, cache))
    else:
        vecs = emb.embed_matrix(list(uniq))
    return vecs[inverse]


def update_embeddings(lake, settings=None, progress: Callable[..., None] | None = None,
                      embeddings: LakeEmbeddings | None = None) -> EmbedReport:
    """Embed new or changed records into `record_embeddings` (the nightly step after ingestion)."""
    from crmsum.config import get_settings

    s = settings or get_settings()
    t0 = time.perf_counter()
    con = lake.connect()
    current = corpus(con)
    have = stored(con)
    con.close()
    refit = False
    cache: dict[str, list[str]] = {}
    if embeddings is None and (s.embeddings or "offline").lower() == "offline":
        # deals' titles repeat the company's name and say little: the fit learns from the records
        model, refit = _fit_if_due(s, current.loc[current["kind"] != "deal", "text"], cache)
        embeddings = NavecSifEmbeddings(model)
    emb = embeddings or get_embeddings(s)
    report = EmbedReport(backend=emb.backend, model=emb.model, records=len(current), refit=refit)
    todo, update, gone = plan(current, have, emb.model)
    if update.shape[0]:
        vec = _old_vectors(lake, update["record_id"].tolist())
        keep = update[update["record_id"].isin(vec.index)]
        lake.write(TABLE, _rows(keep, np.stack(vec.loc[keep["record_id"]].to_numpy()), emb.backend, emb.model))
        report.updated = len(keep)
    if gone.shape[0]:
        gone = gone.assign(text=None)
        report.removed = lake.write(TABLE, _rows(gone, None, emb.backend, emb.model))
    for start in range(0, len(todo), BATCH):
        batch = todo.iloc[start:start + BATCH]
        vectors = _embed_unique(emb, batch["text"].tolist(), cache)
        lake.write(TABLE, _rows(batch, vectors, emb.backend, emb.model))
        report.embedded += len(batch)
        if progress:
            progress("embeddings", len(batch), total=len(todo))
    if report.records > s.embeddings_approx_above:  # the approximate index is built here, not by the bot
        from crmsum.retrieval.index import load_index

        load_index(lake, emb.model, s.embeddings_approx_above, s.state_dir)
    report.seconds = round(time.perf_counter() - t0, 3)
    log.info("embeddings: %d embedded, %d updated, %d removed of %d records (%s)", report.embedded,
             report.updated, report.removed, report.records, emb.model)
    return report


def _old_vectors(lake, ids: list[str]) -> pd.Series:
    con = lake.connect()
    con.register("wanted", pd.DataFrame({"record_id": ids}))
    df = con.execute(f"SELECT record_id, vector FROM {TABLE} SEMI JOIN wanted USING (record_id) "
                     "WHERE vector IS NOT NULL").df()
    con.close()
    return pd.Series([np.asarray(v, dtype=np.float32) for v in df["vector"]], index=df["record_id"])
