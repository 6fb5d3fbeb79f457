"""OpenAI-compatible LLM emulator driven by the real openai / langchain-openai clients over HTTP."""

from __future__ import annotations

import json
import re

import openai
import pytest
import requests
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from crmsum.sandbox.llm_emulator import RECORD_RE, LLMEmulator, count_tokens

KEY = "sk-emulator-test-key"
PROMPT = """Сводка по менеджеру PER-1a2b3c4d за неделю 2024-W10.
Записи:
- 2024-03-04 [note:101] Звонок в Теххренмаш: обсудили поставку 12 станков на 4 500 000 руб.
- 2024-03-05 [task:45] Отправить КП в Альфа-Строй до пятницы.
- 2024-03-06 [event:01hx9zq7] Сделка «Поставка насосов» перешла в этап «Переговоры».
- 2024-03-07 [msg:7] В чате: клиент просит скидку 5%.
- 2024-03-08 [note:102] Сделка с Теххренмаш выиграна, сумма 3 900 000 руб.
"""
PROMPT_LINES = [ln[2:] for ln in PROMPT.splitlines() if ln.startswith("- ")]
PROMPT_IDS = {f"{k}:{v}" for k, v in RECORD_RE.findall(PROMPT)}


class Citation(BaseModel):
    record_id: str
    quote: str


class WeekSummary(BaseModel):
    """Итоги недели менеджера."""

    summary: str = Field(description="2–3 предложения")
    key_points: list[str] = Field(min_length=1, max_length=3)
    deals_won: int = Field(ge=0, le=100)
    amount_rub: float
    stage: str = Field(json_schema_extra={"enum": ["growth", "flat", "decline"]})
    citations: list[str]
    quotes: list[Citation] = Field(default_factory=list)


@pytest.fixture(scope="module")
def llm():
    with LLMEmulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture()
def emu(llm):
    llm.reset()
    llm.delay = 0.0
    return llm


def chat(emu: LLMEmulator, **kw) -> ChatOpenAI:
    return ChatOpenAI(base_url=emu.url, api_key=KEY, model="gpt-4o-mini", **{"timeout": 10, "max_retries": 0, **kw})


def in_prompt(text: str) -> bool:
    return text in PROMPT


# -- plain text ----------------------------------------------------------------------------
def test_invoke_returns_grounded_russian_summary_with_usage(emu):
    msg = chat(emu).invoke([SystemMessage("Ты аналитик продаж. Отвечай по-русски."), HumanMessage(PROMPT)])
    lines = msg.content.splitlines()
    assert lines[0] == "Кратко:"
    assert lines[1:] and all(ln.startswith("- ") and ln[2:] in PROMPT_LINES for ln in lines[1:])
    # numbers survive exactly as written in the prompt, and none is invented
    for num in re.findall(r"\d[\d ]*\d|\d", msg.content):
        assert num in PROMPT
    usage = msg.usage_metadata
    assert usage["input_tokens"] == emu.usage["prompt_tokens"] > count_tokens(PROMPT)
    assert usage["output_tokens"] == count_tokens(msg.content) == emu.usage["completion_tokens"]
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "gpt-4o-mini"
    assert emu.calls == 1 and emu.requests[0]["messages"][1]["content"] == PROMPT
    assert PROMPT in emu.prompts()


def test_answers_are_deterministic(emu):
    a = chat(emu).invoke(PROMPT).content
    b = chat(emu).invoke(PROMPT).content
    assert a == b


def test_max_tokens_truncates_with_finish_reason_length(emu):
    msg = chat(emu, max_tokens=5).invoke(PROMPT)
    assert msg.response_metadata["finish_reason"] == "length"
    assert msg.usage_metadata["output_tokens"] <= 5


# -- structured output ---------------------------------------------------------------------
def _check_week_summary(obj: WeekSummary) -> None:
    assert isinstance(obj, WeekSummary)
    sentences_ok = all(part in PROMPT for part in re.split(r"(?<=[.!?%])\s+", obj.summary) if part)
    assert sentences_ok, obj.summary
    assert 1 <= len(obj.key_points) <= 3 and all(in_prompt(p) for p in obj.key_points)
    assert obj.citations and set(obj.citations) <= PROMPT_IDS
    assert str(obj.deals_won) in PROMPT and 0 <= obj.deals_won <= 100
    assert obj.stage == "growth"
    for q in obj.quotes:
        assert q.record_id in PROMPT_IDS and in_prompt(q.quote)


def test_structured_output_default_method_is_json_schema(emu):
    obj = chat(emu).with_structured_output(WeekSummary).invoke(PROMPT)
    _check_week_summary(obj)
    rf = emu.requests[-1]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "WeekSummary"
    assert "tools" not in emu.requests[-1]


def test_structured_output_function_calling(emu):
    obj = chat(emu).with_structured_output(WeekSummary, method="function_calling").invoke(PROMPT)
    _check_week_summary(obj)
    body = emu.requests[-1]
    assert body["tools"][0]["function"]["name"] == "WeekSummary"
    assert body["tool_choice"]["function"]["name"] == "WeekSummary"
    choice = emu.responses[-1]["choices"][0]
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"])["citations"]


def test_structured_output_json_mode(emu):
    out = chat(emu).with_structured_output(None, method="json_mode").invoke(PROMPT + "\nОтветь в JSON.")
    assert set(out["citations"]) <= PROMPT_IDS and all(in_prompt(p) for p in out["key_points"])


def test_tool_calling_round_trip_with_openai_client(emu):
    client = openai.OpenAI(base_url=emu.url, api_key=KEY, max_retries=0)
    tools = [{"type": "function", "function": {
        "name": "find_records", "description": "search the lake",
        "parameters": {"type": "object", "properties": {"company": {"type": "string"},
                                                         "limit": {"type": "integer", "minimum": 1, "maximum": 20},
                                                         "record_ids": {"type": "array", "items": {"type": "string"}}},
                       "required": ["company", "limit"]}}}]
    messages = [{"role": "user", "content": PROMPT}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert first.object == "chat.completion" and first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    assert args["limit"] == 12 and set(args["record_ids"]) <= PROMPT_IDS and in_prompt(args["company"])
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "- [note:900] Теххренмаш: оплата 250 000 руб."}]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Кратко:\n- [note:900] Теххренмаш: оплата 250 000 руб."
    assert client.models.list().data[0].id == "emulated-gpt"


def test_streaming_matches_invoke_and_reports_usage(emu):
    model = chat(emu, stream_usage=True)
    full = model.invoke(PROMPT)
    chunks = list(model.stream(PROMPT))
    assert "".join(c.content for c in chunks) == full.content
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) == full.usage_metadata["output_tokens"]
    r = requests.post(f"{emu.url}/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=5,
                      json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "Привет."}]})
    events = [ln for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


# -- errors and faults ---------------------------------------------------------------------
def test_auth_errors(emu):
    r = requests.post(f"{emu.url}/chat/completions", json={"model": "m", "messages": []}, timeout=5)
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as ei:
        ChatOpenAI(base_url=emu.url, api_key="sk-wrong-key-123", model="m", max_retries=0).invoke("hi")
    assert ei.value.status_code == 401 and ei.value.code == "invalid_api_key"


def test_context_length_exceeded():
    with LLMEmulator(api_key=KEY, context_window=300) as small:
        with pytest.raises(openai.BadRequestError) as ei:
            chat(small).invoke(PROMPT * 5)
        assert ei.value.status_code == 400 and ei.value.code == "context_length_exceeded"
        assert "maximum context length is 300 tokens" in ei.value.message
        assert chat(small).invoke("Коротко.").content  # a prompt that fits passes


def test_rate_limit_then_success_with_client_retries(emu):
    emu.fail_next("rate_limit", times=2, retry_after=0.05)
    msg = chat(emu, max_retries=2).invoke(PROMPT)
    assert msg.content.startswith("Кратко:") and emu.calls == 3
    emu.fail_next("rate_limit", retry_after=0.05)
    with pytest.raises(openai.RateLimitError) as ei:
        chat(emu).invoke(PROMPT)
    assert ei.value.code == "rate_limit_exceeded" and ei.value.response.headers["retry-after"] == "1"
    assert ei.value.response.headers["retry-after-ms"] == "50"


def test_server_error_is_retried(emu):
    emu.fail_next("server_error")
    assert chat(emu, max_retries=1).invoke(PROMPT).content
    assert emu.calls == 2
    emu.fail_next("server_error")
    with pytest.raises(openai.InternalServerError):
        chat(emu).invoke(PROMPT)


def test_timeout_fault(emu):
    emu.fail_next("timeout", seconds=2.0)
    with pytest.raises(openai.APITimeoutError):
        chat(emu, timeout=0.3).invoke(PROMPT)


@pytest.mark.parametrize("kind", ["garbage", "wrong_schema"])
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_malformed_structured_output_is_detected(emu, kind, method):
    """The client must notice: json_schema -> the openai client's own parse raises (a ValueError:
    JSON or pydantic validation); function_calling -> langchain yields parsed=None (bad arguments
    become invalid_tool_calls, a wrong shape a parsing_error)."""
    emu.fail_next(kind)
    try:
        out = chat(emu).with_structured_output(WeekSummary, method=method, include_raw=True).invoke(PROMPT)
    except ValueError:
        assert method == "json_schema"
    else:
        assert out["parsed"] is None
        raw = out["raw"]
        assert raw.invalid_tool_calls or out["parsing_error"] is not None
    # the next answer is fine again
    _check_week_summary(chat(emu).with_structured_output(WeekSummary, method=method).invoke(PROMPT))


def test_invalid_strict_schema_rejected_like_openai(emu):
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(openai.BadRequestError) as ei:
        openai.OpenAI(base_url=emu.url, api_key=KEY, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "Loose", "schema": loose, "strict": True}})
    assert "additionalProperties" in ei.value.message


def test_json_object_requires_the_word_json(emu):
    with pytest.raises(openai.BadRequestError) as ei:
        openai.OpenAI(base_url=emu.url, api_key=KEY, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "сводка"}], response_format={"type": "json_object"})
    assert "must contain the word 'json'" in ei.value.message
