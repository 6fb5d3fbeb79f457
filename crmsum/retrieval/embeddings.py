"""Embeddings behind langchain-core's `Embeddings` interface: offline navec SIF, or any
OpenAI-compatible `/v1/embeddings` endpoint.

- `offline` (default, `CRMSUM_EMBEDDINGS=offline`): SIF over navec (`crmsum.retrieval.sif`),
  shipped with the install, no network. Its word frequencies and principal component are fitted
  on the account's own corpus and frozen in DATA_DIR/state/embeddings_sif.json; the model name
  recorded with every vector (`navec-sif-<version>`) is a content hash of that fit.
- `openai` (`CRMSUM_EMBEDDINGS=openai`): `langchain_openai.OpenAIEmbeddings` with
  `CRMSUM_EMBEDDINGS_BASE_URL` (default `OPENAI_BASE_URL`) and `OPENAI_API_KEY`, model
  `CRMSUM_EMBEDDINGS_MODEL` (default text-embedding-3-small). Only anonymized text is sent.

Every backend returns unit vectors, so a dot product is the cosine similarity.

Refit schedule (offline): the fit is frozen after the first night and refitted only when the
corpus has grown by `CRMSUM_EMBEDDINGS_REFIT_GROWTH` (default 0.5 = +50 % records) since the
fit; a refit changes the version, and the nightly step then re-embeds every record once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from crmsum.retrieval import sif
from crmsum.retrieval.text import tokens
from crmsum.retrieval.types import RetrievalError

log = logging.getLogger(__name__)

STATE_NAME = "embeddings_sif"
_OFFLINE: dict[str, tuple] = {}  # state file -> ((path, mtime), embeddings): one parse per fit and process
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_MAX_CHARS = 8000  # one input stays well under the endpoint's 8192-token limit


class LakeEmbeddings(Embeddings):
    """An `Embeddings` that also knows its backend and model name and returns numpy matrices."""

    backend: str = ""
    model: str = ""

    def embed_matrix(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - interface
        raise RetrievalError(f"{type(self).__name__} cannot embed")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_matrix(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_matrix([text])[0].tolist()

    def meaningful(self, text: str) -> bool:
        """Whether a query has anything to embed (the offline backend drops function words)."""
        return bool((text or "").strip())


class NavecSifEmbeddings(LakeEmbeddings):
    """Offline SIF sentence vectors over navec with a fitted, frozen `SifModel`."""

    backend = "offline"

    def __init__(self, model: sif.SifModel) -> None:
        self.sif_model = model
        self.encoder = sif.SifEncoder(model)
        self.model = model.name

    def embed_matrix(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode([tokens(t) for t in texts])

    def embed_tokens(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        return self.encoder.encode(docs)

    def meaningful(self, text: str) -> bool:
        """A query means something when one of its words is known to navec or to the account's corpus
        (a query in another script, or of stop words only, would match noise)."""
        words = self.encoder.words.ids
        return any(w in self.sif_model.counts or (w in words and w != "<unk>") for w in tokens(text))


class OpenAICompatibleEmbeddings(LakeEmbeddings):
    """`OpenAIEmbeddings` against any compatible endpoint; errors become one-line `RetrievalError`s."""

    backend = "openai"

    def __init__(self, settings, chunk_size: int = 256) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.model = settings.embeddings_model or OPENAI_DEFAULT_MODEL
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        if key is None:
            raise RetrievalError("CRMSUM_EMBEDDINGS=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL or "
                                 "CRMSUM_EMBEDDINGS_BASE_URL for a compatible server)")
        # check_embedding_ctx_length=False: send strings, not tiktoken ids (compatible servers
        # such as vLLM or llama.cpp expect text, and the tokenizer download is not possible offline)
        self.client = OpenAIEmbeddings(model=self.model, api_key=key, chunk_size=chunk_size,
                                       base_url=settings.embeddings_base_url or settings.openai_base_url,
                                       check_embedding_ctx_length=False, max_retries=3,
                                       request_timeout=settings.llm_timeout)

    def embed_matrix(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        clean = [(t or "")[:OPENAI_MAX_CHARS].strip() or "-" for t in texts]  # the API rejects empty strings
        try:
            vecs = np.asarray(self.client.embed_documents(clean), dtype=np.float32)
        except openai.APIError as exc:
            raise RetrievalError(f"embeddings endpoint failed ({type(exc).__name__}): "
                                 f"{str(exc).splitlines()[0][:200]}") from exc
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)


def load_sif(settings) -> sif.SifModel | None:
    """The frozen offline model of this data root, or None before the first nightly run."""
    from crmsum.state import StateStore

    doc = StateStore(settings.state_dir).load(STATE_NAME)
    return sif.SifModel.from_doc(doc) if doc else None


def save_sif(settings, model: sif.SifModel) -> None:
    from crmsum.state import StateStore

    StateStore(settings.state_dir).save(STATE_NAME, model.to_doc())


def get_embeddings(settings=None, model: sif.SifModel | None = None) -> LakeEmbeddings:
    """The configured embeddings (`CRMSUM_EMBEDDINGS`); offline needs the fitted model of the nightly run."""
    from crmsum.config import get_settings

    s = settings or get_settings()
    backend = (s.embeddings or "offline").lower()
    if backend == "openai":
        return OpenAICompatibleEmbeddings(s)
    if backend != "offline":
        raise RetrievalError(f"CRMSUM_EMBEDDINGS must be offline or openai, got {s.embeddings!r}")
    if model is not None:
        return NavecSifEmbeddings(model)
    from crmsum.state import StateStore

    path = StateStore(s.state_dir).path(STATE_NAME)
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise RetrievalError("no embeddings yet: run the nightly flow (`python flows/nightly.py`) "
                             "or `crmsum search --build TEXT`") from None
    cached = _OFFLINE.get(str(path))
    if cached is None or cached[0] != stamp:  # a bot process sees a refit of the nightly run
        cached = _OFFLINE[str(path)] = (stamp, NavecSifEmbeddings(load_sif(s)))
    return cached[1]
