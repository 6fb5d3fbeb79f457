"""Anonymization before anything is written: vault of keyed pseudonyms + text scrubber.

    vault = Vault(settings.vault_dir); anon = Anonymizer(vault)
    anon.learn_people([("Ева Соколова", "manager")]); anon.learn_companies(["Теххренмаш"])
    anon.person("Ева Соколова"); anon.phone("+7 912 345-67-89"); anon.text("Позвонил Еве ...")
    vault.resolve("PER-1a2b3c4d звонила") -> real names (allowed chats / CLI only)

Decisions (see module docstrings for details):
- pseudonym = PREFIX + first 8 hex of HMAC-SHA256(key, "kind:normalized"); persons are normalized to
  «first surname» nominative lowercase (patronymic dropped), phones to E.164 digits, e-mails lowercased.
- Personal links (t.me, vk.com, wa.me, instagram, ok.ru, linkedin.com/in, …) become URL-…; other web
  sites (company sites such as https://tehhrenmash.ru) stay readable, personal data inside them is
  still scrubbed by the other detectors.
- Company INN (10 digits), amounts, dates, order/invoice numbers stay; personal INN (12 digits), SNILS,
  passport, bank cards become DOC-….
- Learned company words are never persons; a person's name inside a company name («ИП Смирнов»)
  is not treated as a company word, so it stays private in free text.
"""

from crmsum import lazy
from crmsum.cites import PSEUDONYM_RE

_EXPORTS = {"Anonymizer": "anonymizer", "normalize_phone": "detectors", "display_text": "display",
            "display_name": "display", "is_allowed": "display", "normalize_name": "people", "Vault": "vault",
            "VaultError": "vault"}
__all__ = ["PSEUDONYM_RE", *_EXPORTS]
__getattr__ = lazy.exports(__name__, _EXPORTS)
