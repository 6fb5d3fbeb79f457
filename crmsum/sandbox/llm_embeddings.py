"""The LLM emulator's `/v1/embeddings`: OpenAI's embeddings protocol with deterministic vectors.

Request `{"model", "input": str | [str] | [int] | [[int]], "encoding_format": "float" | "base64",
"dimensions"?}`; response `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage": {"prompt_tokens", "total_tokens"}}`. A vector is a signed feature hash of the
input's lowercase words (token ids for token input), L2-normalized: the same text gives the same
vector in every process, and texts sharing words are close, which is what a retrieval test needs.
Errors answer OpenAI's statuses and messages: missing or empty input, too many inputs, an input over
the model's 8192-token limit, `dimensions` on a model without it, bad `encoding_format`; the
emulator's injected faults (`fail_next`: rate_limit, server_error, timeout, disconnect) apply too.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import threading
from typing import Any

import numpy as np

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_DIM = 256  # any other model name (a local server's model, the emulated default)
FIXED_DIM = {"text-embedding-ada-002"}  # models that refuse `dimensions`
_WORD = re.compile(r"\w+", re.UNICODE)


class EmbeddingsEndpoint:
    """Counters and request log of the embeddings route (one per emulator)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.inputs = 0
        self.prompt_tokens = 0


def _invalid(message: str, param: str | None = None, code: str | None = None):
    from crmsum.sandbox.llm_emulator import OpenAIError

    return OpenAIError(400, message, param=param, code=code)


def _inputs(body: dict) -> list[str | list[int]]:
    if "input" not in body or body["input"] is None:
        raise _invalid("'input' is a required property", param="input")
    raw = body["input"]
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise _invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                       param="input")
    if not items:
        raise _invalid("'$.input' is invalid: an empty array. Provide at least one input.", param="input")
    if len(items) > MAX_INPUTS:
        raise _invalid(f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We recommend sending your "
                       "inputs in batches.", param="input")
    for it in items:
        ok = (isinstance(it, str) and it != "") or (isinstance(it, list) and it and all(isinstance(t, int) for t in it))
        if not ok:
            raise _invalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                           param="input")
    return items


def vector(item: str | list[int], dim: int) -> np.ndarray:
    """The deterministic unit vector of one input."""
    feats = [str(t) for t in item] if isinstance(item, list) else _WORD.findall(item.lower())
    v = np.zeros(dim, dtype=np.float64)
    for f in feats or ["<empty>"]:
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
        v[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    n = np.linalg.norm(v)
    return (v / n if n else v).astype(np.float32)


def create(app, body: Any) -> dict:
    """Validate an embeddings request and build the response (raises OpenAIError)."""
    from crmsum.sandbox.llm_emulator import OpenAIError, count_tokens

    if not isinstance(body, dict):
        raise _invalid("We could not parse the JSON body of your request.")
    ep: EmbeddingsEndpoint = app.embeddings
    raw = body.get("input")
    count = len(raw) if isinstance(raw, list) and raw and not isinstance(raw[0], int) else int(bool(raw))
    with ep.lock:
        ep.requests.append({k: v for k, v in body.items() if k != "input"} | {"n": count})
    model = body.get("model")
    if not model:
        raise _invalid("you must provide a model parameter", param="model")
    if app.strict_model and model not in (app.model, *DIMENSIONS):
        raise OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                          code="model_not_found")
    items = _inputs(body)
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise _invalid(f"Invalid value for 'encoding_format': '{fmt}'. Supported values are: 'float' and 'base64'.",
                       param="encoding_format")
    dim = DIMENSIONS.get(model, app.embedding_dim)
    if body.get("dimensions") is not None:
        if model in FIXED_DIM:
            raise _invalid("This model does not support specifying dimensions.", param="dimensions")
        d = body["dimensions"]
        if not isinstance(d, int) or not 1 <= d <= dim:
            raise _invalid(f"Invalid value for 'dimensions': must be between 1 and {dim}.", param="dimensions")
        dim = d
    fault = app._take_fault()
    if fault and fault["kind"] == "rate_limit":
        ra = fault["retry_after"] if fault["retry_after"] is not None else app.retry_after
        raise OpenAIError(429, f"Rate limit reached for {model} in organization org-emulator on requests per min "
                               f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {ra:g}s.",
                          type_="requests", code="rate_limit_exceeded",
                          headers={"retry-after": str(max(1, math.ceil(ra))), "retry-after-ms": str(int(ra * 1000))})
    if fault and fault["kind"] == "server_error":
        raise OpenAIError(500, "The server had an error while processing your request. Sorry about that!",
                          type_="server_error")
    tokens = [len(it) if isinstance(it, list) else count_tokens(it) for it in items]
    for n in tokens:
        if n > MAX_INPUT_TOKENS:
            raise _invalid(f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested "
                           f"{n} tokens ({n} in your prompt; 0 for the completion). Please reduce your prompt; or "
                           "completion length.")
    data = []
    for i, it in enumerate(items):
        v = vector(it, dim)
        emb = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else [float(x) for x in v]
        data.append({"object": "embedding", "index": i, "embedding": emb})
    with ep.lock:
        ep.inputs += len(items)
        ep.prompt_tokens += sum(tokens)
    return ({"object": "list", "data": data, "model": model,
             "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}}, fault)
