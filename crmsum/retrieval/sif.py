"""SIF sentence vectors over natasha's navec word vectors (Arora, Liang & Ma, 2017).

    v(s) = mean over words w of s of  a / (a + p(w)) * vec(w),   then  v -= (v · u) u

`p(w)` is the word's frequency in the account's own corpus (lemmas, see `crmsum.retrieval.text`),
`u` the first principal component of the corpus' sentence vectors (what every sentence shares:
the common discourse of sales notes). Both are learned by `fit` and frozen into a `SifModel`
whose `version` is a content hash, so a stored vector says exactly which model made it.

Words navec does not know (company names, jargon, typos) and pseudonyms get a deterministic
pseudo-random vector from hashed character trigrams (pseudonyms: from the whole token), of the
typical navec norm: quasi-orthogonal to the semantic space, they add an exact-match signal
(«Нефтетруб», PER-1a2b3c4d) without disturbing the meaning of the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from crmsum.cites import PSEUDONYM_RE

A = 3e-3  # SIF smoothing: above the paper's 1e-4..1e-3 because an account's corpus is small and repetitive,
#   which inflates p(w) of domain words (chosen on tests/data/retrieval.jsonl: bench/bench_retrieval.py)
MIN_COUNT_FOR_PC = 20  # fewer sentences than this: no principal component is removed
PC_SAMPLE = 50_000  # sentences used to estimate the principal component
_LOCK = threading.Lock()
_NAVEC = None


def navec_path() -> str:
    """The navec file natasha ships inside its package (no download)."""
    from natasha.data import NEWS_EMBEDDING

    return NEWS_EMBEDDING


def navec():
    """The process' navec table (~0.6 s and ~30 MB to load, so once)."""
    global _NAVEC
    if _NAVEC is None:
        with _LOCK:
            if _NAVEC is None:
                from navec import Navec

                _NAVEC = Navec.load(navec_path())
    return _NAVEC


def navec_name() -> str:
    import os

    return os.path.basename(navec_path()).removesuffix(".tar")


class WordVectors:
    """Vectors of tokens: navec's where it has one, hashed trigram vectors otherwise."""

    def __init__(self) -> None:
        nv = navec()
        self.ids = nv.vocab.word_ids
        self.pq = nv.pq
        self.dim = int(nv.pq.dim)
        self.unk = self.ids.get("<unk>")
        self._cache: dict[str, np.ndarray] = {}
        sample = self.pq.norm[:: max(1, len(self.pq.norm) // 5000)]
        self.typical_norm = float(np.median(sample))

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """Matrix (len(words), dim) float32."""
        out = np.empty((len(words), self.dim), dtype=np.float32)
        known, known_rows = [], []
        for i, w in enumerate(words):
            wid = None if PSEUDONYM_RE.fullmatch(w) else self.ids.get(w)
            if wid is None or wid == self.unk:
                out[i] = self._oov(w)
            else:
                known.append(wid)
                known_rows.append(i)
        if known:
            idx = self.pq.indexes[np.asarray(known)]  # (n, qdim)
            parts = self.pq.codes[self.pq.qdims[None, :], idx]  # (n, qdim, subdim)
            out[np.asarray(known_rows)] = parts.reshape(len(known), self.dim)
        return out

    def _oov(self, w: str) -> np.ndarray:
        v = self._cache.get(w)
        if v is None:
            grams = [w] if PSEUDONYM_RE.fullmatch(w) else _trigrams(w)
            v = np.sum([_hashed(g, self.dim) for g in grams], axis=0)
            v = (v / (np.linalg.norm(v) or 1.0) * self.typical_norm).astype(np.float32)
            if len(self._cache) < 200_000:
                self._cache[w] = v
        return v


def _trigrams(w: str) -> list[str]:
    s = f"<{w}>"
    return [s[i:i + 3] for i in range(max(1, len(s) - 2))]


@lru_cache(maxsize=100_000)
def _hashed(gram: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


@dataclass
class SifModel:
    """Frozen SIF parameters: word counts of the corpus, `a`, and the removed principal component."""

    counts: dict[str, int]
    total: int
    pc: list[float] | None
    records: int  # corpus size (records) at fit time: the refit schedule compares against it
    fitted_at: str = ""
    a: float = A
    words: str = field(default_factory=navec_name)

    @property
    def version(self) -> str:
        h = hashlib.sha256(f"{self.words}|{self.a}|{self.total}\n".encode())
        for w in sorted(self.counts):
            h.update(f"{w}\t{self.counts[w]}\n".encode())
        if self.pc is not None:
            h.update(np.asarray(self.pc, dtype=np.float32).tobytes())
        return h.hexdigest()[:12]

    @property
    def name(self) -> str:
        """What is recorded with every vector: the vectors, the method and the fitted version."""
        return f"navec-sif-{self.version}"

    def to_doc(self) -> dict:
        return {"counts": self.counts, "total": self.total, "pc": self.pc, "records": self.records,
                "fitted_at": self.fitted_at, "a": self.a, "words": self.words, "version": self.version}

    @classmethod
    def from_doc(cls, doc: dict) -> "SifModel":
        return cls(counts={k: int(v) for k, v in doc["counts"].items()}, total=int(doc["total"]), pc=doc.get("pc"),
                   records=int(doc.get("records", 0)), fitted_at=doc.get("fitted_at", ""), a=float(doc.get("a", A)),
                   words=doc.get("words", navec_name()))


class SifEncoder:
    """Applies a `SifModel`: token lists -> unit vectors (float32)."""

    def __init__(self, model: SifModel, words: WordVectors | None = None) -> None:
        self.model = model
        self.words = words or WordVectors()
        self.dim = self.words.dim
        self._pc = None if model.pc is None else np.asarray(model.pc, dtype=np.float32)
        total = max(1, model.total)
        self._weight = {w: model.a / (model.a + c / total) for w, c in model.counts.items()}

    def raw(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        """Weighted averages before the principal component is removed (zeros for empty docs)."""
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        flat = [w for d in docs for w in d]
        if not flat:
            return out
        vecs = self.words.vectors(flat)
        weights = np.fromiter((self._weight.get(w, 1.0) for w in flat), dtype=np.float32, count=len(flat))
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        rows = np.repeat(np.arange(len(docs)), lengths)
        np.add.at(out, rows, vecs * weights[:, None])
        out /= np.maximum(lengths, 1)[:, None].astype(np.float32)
        return out

    def encode(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        """Unit SIF vectors; an empty doc stays the zero vector (it matches nothing)."""
        v = self.raw(docs)
        if self._pc is not None:
            v -= np.outer(v @ self._pc, self._pc)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def fit(docs: Iterable[Sequence[str]], words: WordVectors | None = None) -> SifModel:
    """Learn word counts and the first principal component from the account's corpus."""
    docs = [list(d) for d in docs]
    counts = Counter(w for d in docs for w in d)
    model = SifModel(counts=dict(counts), total=sum(counts.values()), pc=None, records=len(docs),
                     fitted_at=dt.datetime.now().replace(microsecond=0).isoformat())
    nonempty = [d for d in docs if d]
    if len(nonempty) >= MIN_COUNT_FOR_PC:
        step = max(1, len(nonempty) // PC_SAMPLE)
        x = SifEncoder(model, words).raw(nonempty[::step])
        # first right singular vector of X (uncentered, as in the paper) = top eigenvector of XᵀX
        _, vecs = np.linalg.eigh((x.T @ x).astype(np.float64))
        u = vecs[:, -1]
        u = u if u[np.argmax(np.abs(u))] > 0 else -u  # a fixed sign: the same corpus, the same version
        model.pc = [round(float(c), 7) for c in u]
    return model
