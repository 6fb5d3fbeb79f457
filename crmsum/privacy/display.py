"""The one display gate: which pseudonyms a reader sees resolved to real values.

Everything shown to a person (digests, bot answers, the monthly ratings summary, `crmsum ask`) goes
through `resolve` / `resolver`; nothing else calls `Vault.resolve`. The policy is the setting
``CRMSUM_DISPLAY_RESOLVE``: by default ``names`` — people's names only; phones, e-mails, document
numbers, messenger handles and profile links stay pseudonyms unless the operator lists them
(``names,phones,emails,documents,handles,links``). Addresses, birth dates and IP addresses are
masked by fixed tokens and never resolve.
"""

from __future__ import annotations

from typing import Callable, Iterable

from crmsum.cites import PSEUDONYM_RE
from crmsum.errors import CrmsumError

from .vault import Vault

# policy word -> pseudonym prefix
KINDS = {"names": "PER", "phones": "TEL", "emails": "EML", "documents": "DOC", "handles": "TG", "links": "URL"}
DEFAULT_POLICY = "names"


class DisplayPolicyError(CrmsumError):
    """CRMSUM_DISPLAY_RESOLVE names something that is not a kind of personal data."""


def policy_prefixes(policy: str | None = None) -> frozenset[str]:
    """Pseudonym prefixes the policy resolves («names,phones» -> {"PER", "TEL"})."""
    if policy is None:
        from crmsum.config import get_settings

        policy = get_settings().display_resolve
    words = [w.strip().lower() for w in (policy or "").replace(";", ",").split(",") if w.strip()]
    bad = [w for w in words if w not in KINDS]
    if bad:
        raise DisplayPolicyError(f"CRMSUM_DISPLAY_RESOLVE: unknown kind {bad[0]!r}; use any of "
                                 f"{', '.join(KINDS)} (default: {DEFAULT_POLICY})")
    return frozenset(KINDS[w] for w in words)


def resolve(text: str, vault: Vault | None, policy: str | None = None,
            escape: Callable[[str], str] | None = None) -> str:
    """The text with the pseudonyms the policy allows replaced by real values (`escape` applied to
    each real value, e.g. for Telegram HTML); other pseudonyms stay as they are."""
    if not text or vault is None:
        return text
    allowed = policy_prefixes(policy)
    found = {p for p in set(PSEUDONYM_RE.findall(text)) if p.split("-", 1)[0] in allowed}
    if not found:
        return text
    real = vault.real_many(found)
    esc = escape or (lambda v: v)

    def sub(m) -> str:
        v = real.get(m.group(0))
        return esc(v) if v is not None else m.group(0)

    return PSEUDONYM_RE.sub(sub, text)


def resolver(vault: Vault | None, policy: str | None = None,
             escape: Callable[[str], str] | None = None) -> Callable[[str], str]:
    """`resolve` bound to one vault and policy (the renderers take a function)."""
    policy_prefixes(policy)   # a bad policy fails here, before anything is sent
    return lambda text: resolve(text, vault, policy, escape)


def is_allowed(chat_id: int | str | None, allowed: Iterable[int]) -> bool:
    """True when a chat may see real names (it is in CRMSUM_TELEGRAM_ALLOWED_CHATS)."""
    if chat_id is None:
        return False
    try:
        return int(chat_id) in {int(a) for a in allowed}
    except (TypeError, ValueError):
        return False


def display_text(text: str, vault: Vault | None, *, chat_id: int | str | None = None,
                 allowed: Iterable[int] = (), cli: bool = False, policy: str | None = None) -> str:
    """Text for a reader: the policy's kinds resolved for the CLI or an allowed chat, pseudonyms otherwise."""
    if not text or vault is None:
        return text
    if cli or is_allowed(chat_id, allowed):
        return resolve(text, vault, policy)
    return text


def display_name(pseudonym: str, vault: Vault | None) -> str:
    """Real name of one person pseudonym or the pseudonym itself when unknown (names are always shown)."""
    if vault is None or not PSEUDONYM_RE.fullmatch(pseudonym or ""):
        return pseudonym
    if not pseudonym.startswith("PER-"):
        return pseudonym
    return vault.real(pseudonym) or pseudonym
