"""Pseudonym -> real value, only for authorized display (allowed chats, the local CLI)."""

from __future__ import annotations

from typing import Iterable

from crmsum.cites import PSEUDONYM_RE

from .vault import Vault


def is_allowed(chat_id: int | str | None, allowed: Iterable[int]) -> bool:
    """True when a chat may see real names (it is in CRMSUM_TELEGRAM_ALLOWED_CHATS)."""
    if chat_id is None:
        return False
    try:
        return int(chat_id) in {int(a) for a in allowed}
    except (TypeError, ValueError):
        return False


def display_text(text: str, vault: Vault | None, *, chat_id: int | str | None = None,
                 allowed: Iterable[int] = (), cli: bool = False) -> str:
    """Text for a reader: real names for the CLI or an allowed chat, pseudonyms otherwise."""
    if not text or vault is None:
        return text
    if cli or is_allowed(chat_id, allowed):
        return vault.resolve(text)
    return text


def display_name(pseudonym: str, vault: Vault | None) -> str:
    """Real name of one pseudonym or the pseudonym itself when unknown."""
    if vault is None or not PSEUDONYM_RE.fullmatch(pseudonym or ""):
        return pseudonym
    return vault.real(pseudonym) or pseudonym
