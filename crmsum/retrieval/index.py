"""Vectors of one model in memory, their metadata in DuckDB, and top-k search over them.

- Filters (manager, company, lead, kind, period) are SQL over the metadata (`VectorIndex.positions`),
  so they stay DuckDB's job; numpy only scores the rows that pass.
- Exact top-k (one matrix-vector product + argpartition) up to `Settings.embeddings_approx_above`
  vectors (default 1,000,000: exact at 300 dimensions is linear, ~60 ms a query there on an idle core;
  the HNSW recall measured on the synthetic scale-10 lake, whose texts are near-duplicate templates,
  was too low to switch earlier, see bench/bench_retrieval.py); above it an HNSW index (usearch,
  cosine, f32, one node per distinct text) answers unfiltered and
  loosely filtered queries, over-fetching and then filtering; a selective filter (few rows pass)
  is answered exactly over those rows, which is both faster and exact.
- One index per (lake, model) per process, rebuilt when the table's part files change, so the
  bot pays the load once and sees the nightly's new vectors.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

TABLE = "record_embeddings"
META_COLUMNS = ["record_id", "kind", "lead_id", "company_id", "manager", "created_at", "text"]
OVERFETCH = 8  # approximate search asks for k * OVERFETCH / selectivity neighbours before filtering
MEMO = 64  # filters whose row positions are kept per index
EXACT_BELOW_SHARE = 0.05  # a filter passing fewer than this share of rows is searched exactly
_CACHE: dict[tuple[str, str], "VectorIndex"] = {}
_LOCK = threading.Lock()


class VectorIndex:
    """Unit vectors (n, dim) float32 with their metadata; `search` returns (positions, scores)."""

    def __init__(self, meta: pd.DataFrame, matrix: np.ndarray, model: str, approx_above: int = 1_000_000,
                 signature: tuple = (), ann_path: Path | None = None) -> None:
        self.meta = meta.reset_index(drop=True)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.model = model
        self.signature = signature
        self.con = duckdb.connect()
        self.con.register("meta_df", self.meta.assign(pos=np.arange(len(self.meta))))
        self.con.execute("CREATE TABLE meta AS SELECT * FROM meta_df")
        self.con.unregister("meta_df")
        self._lock = threading.Lock()
        self._memo: dict[tuple, np.ndarray] = {}
        self.ann = None
        if len(self.meta) > approx_above:
            # identical texts have identical vectors (chat is full of «Ок», templates repeat): the graph
            # holds each distinct text once, and a hit expands to every record with that text
            # zero vectors (texts without a known word: «+», emoji) match nothing and have no cosine: left out
            nonzero = np.linalg.norm(self.matrix, axis=1) > 0
            codes = np.full(len(self.meta), -1, dtype=np.int64)
            codes[nonzero] = pd.factorize(self.meta["text"].fillna("")[nonzero])[0]
            order = np.argsort(codes, kind="stable")
            order = order[codes[order] >= 0]
            self._group_start = np.searchsorted(codes[order], np.arange(codes.max() + 2))
            self._group_rows = order
            if len(order):
                self.ann = _ann(self.matrix[order[self._group_start[:-1]]], ann_path)

    def __len__(self) -> int:
        return len(self.meta)

    def close(self) -> None:
        with self._lock:
            self.con.close()

    @property
    def approximate(self) -> bool:
        return self.ann is not None

    def positions(self, where: str, params: Sequence | None = None) -> np.ndarray | None:
        """Row positions passing an SQL filter over the metadata (None: no filter, every row)."""
        if not where:
            return None
        key = (where, tuple(params or ()))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        with self._lock:
            cur = self.con.cursor()
        rows = cur.execute(f"SELECT pos FROM meta WHERE {where} ORDER BY pos", list(params or [])).fetchnumpy()["pos"]
        pos = np.asarray(rows, dtype=np.int64)
        with self._lock:
            if len(self._memo) >= MEMO:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = pos  # the bot asks the same few filters again and again
        return pos

    def search(self, query: np.ndarray, k: int, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k positions and cosine scores, best first, among `positions` (None: all rows)."""
        q = np.asarray(query, dtype=np.float32).ravel()
        n = len(self.meta) if positions is None else len(positions)
        if n == 0 or k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if self.ann is not None and (positions is None or n >= EXACT_BELOW_SHARE * len(self.meta)):
            found = self._approx(q, k, positions)
            if found is not None:
                return found
        return self.exact(q, k, positions)

    def exact(self, q: np.ndarray, k: int, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if positions is None or len(positions) * 4 > len(self.meta):
            scores = cosines(self.matrix, q)  # one pass over all rows beats gathering most of them
            scores = scores if positions is None else scores[positions]
        else:
            scores = cosines(self.matrix[positions], q)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties by position: deterministic
        pos = top if positions is None else positions[top]
        return pos.astype(np.int64), scores[top]

    def _approx(self, q: np.ndarray, k: int, positions: np.ndarray | None):
        share = 1.0 if positions is None else len(positions) / len(self.meta)
        groups = len(self._group_start) - 1
        want = min(groups, int(np.ceil(k * (1 if positions is None else OVERFETCH) / share)))
        res = self.ann.search(q, want)
        found = np.asarray(res.keys, dtype=np.int64)
        dist = np.asarray(res.distances, dtype=np.float32)
        sizes = self._group_start[found + 1] - self._group_start[found]
        keys = np.concatenate([self._group_rows[self._group_start[g]:self._group_start[g + 1]] for g in found]) \
            if len(found) else np.empty(0, np.int64)
        scores = np.repeat(1.0 - dist, sizes)  # usearch "cos" distance = 1 - cosine
        if positions is not None:
            keep = np.isin(keys, positions)
            keys, scores = keys[keep], scores[keep]
        if len(keys) < min(k, len(self.meta) if positions is None else len(positions)):
            return None  # the filter ate the neighbours: answer exactly
        order = np.lexsort((keys, -scores))[:k]
        return keys[order].astype(np.int64), scores[order]


BLAS_ABOVE = 50_000  # rows: below, a single-threaded product; above, OpenBLAS' threaded gemv pays off


def cosines(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """matrix @ q for unit rows. Small matrices skip BLAS on purpose: OpenBLAS' threaded gemv was
    ~10x slower than einsum on a busy 2-core machine at 3,000 rows (its threads wait for cores)."""
    q = q.astype(matrix.dtype, copy=False)
    return matrix @ q if len(matrix) > BLAS_ABOVE else np.einsum("ij,j->i", matrix, q)


def _ann(matrix: np.ndarray, path: Path | None):
    """The HNSW index of a matrix: memory-mapped from `path` when a process already built it
    (building takes minutes at a million vectors; the nightly step builds it once), else built."""
    from usearch.index import Index

    if path is not None and path.exists():
        ix = Index.restore(str(path), view=True)
        if ix is not None and len(ix) == len(matrix):
            return ix
    ix = Index(ndim=matrix.shape[1], metric="cos", dtype="f32", connectivity=16, expansion_add=128,
               expansion_search=64)
    # one thread: the graph (and so every approximate answer) is the same on every build
    ix.add(np.arange(len(matrix), dtype=np.uint64), matrix, threads=1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{path.name.split('-')[0]}-*.usearch"):
            old.unlink(missing_ok=True)  # one index per data root: older lake versions are useless
        tmp = path.with_suffix(".tmp")
        ix.save(str(tmp))
        tmp.replace(path)
    return ix


def load_index(lake, model: str, approx_above: int = 1_000_000, cache_dir: Path | None = None) -> VectorIndex:
    """The index of a lake's vectors of one model (cached per process, reloaded when the table changes).

    `cache_dir` (DATA_DIR/state): where the approximate index is kept between processes."""
    sig = tuple(lake.parts(TABLE))
    key = (lake.root, model)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.signature == sig and (cached.approximate == (len(cached) > approx_above)):
            return cached
    con = lake.connect()
    tbl = con.sql(f"SELECT {', '.join(META_COLUMNS)}, dim, vector FROM {TABLE} "
                  "WHERE model = $model AND NOT coalesce(is_deleted, false) AND vector IS NOT NULL "
                  "ORDER BY record_id", params={"model": model}).to_arrow_table()
    con.close()
    dims = set(tbl.column("dim").to_pylist()) if tbl.num_rows else {0}
    dim = max(dims)
    if tbl.num_rows and len(dims) > 1:
        keep = np.asarray(tbl.column("dim").to_numpy()) == dim  # a half-finished backend switch
        tbl = tbl.filter(keep)
    flat = tbl.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    matrix = np.asarray(flat, dtype=np.float32).reshape(tbl.num_rows, dim) if tbl.num_rows else np.zeros((0, 1), np.float32)
    meta = tbl.select(META_COLUMNS).to_pandas()
    for c in ("lead_id", "company_id"):
        meta[c] = meta[c].astype("Int64")
    digest = hashlib.sha256(repr((lake.root, model, sig)).encode()).hexdigest()[:16]
    ann_path = Path(cache_dir) / "ann" / f"hnsw-{digest}.usearch" if cache_dir else None
    index = VectorIndex(meta, matrix, model, approx_above, sig, ann_path)
    with _LOCK:
        _CACHE[key] = index  # a replaced index closes when its last search lets go of it
    return index


@atexit.register
def _close_all() -> None:
    """Close the cached indexes' connections before the interpreter tears DuckDB down."""
    with _LOCK:
        cached = list(_CACHE.values())
        _CACHE.clear()
    for index in cached:
        index.close()


def models_in(lake) -> list[tuple[str, int]]:
    """(model, vectors) present in the table, most vectors first: what a model mismatch message shows."""
    con = lake.connect()
    rows = con.execute(f"SELECT model, count(*) FROM {TABLE} WHERE vector IS NOT NULL GROUP BY 1 ORDER BY 2 DESC").fetchall()
    con.close()
    return [(m, int(n)) for m, n in rows]
