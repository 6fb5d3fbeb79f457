"""Anonymization before anything is written: vault of keyed pseudonyms + text scrubber.

    vault = Vault(settings.vault_dir); anon = Anonymizer(vault)
    anon.learn_people([("Ева Соколова", "manager")]); anon.learn_companies(["Теххренмаш"])
    anon.person("Ева Соколова"); anon.phone("+7 912 345-67-89"); anon.text("Позвонил Еве ...")
    vault.resolve("PER-1a2b3c4d звонила") -> real names (allowed chats / CLI only)
"""

from .anonymizer import Anonymizer
from .display import display_text, is_allowed
from .people import normalize_name
from .vault import PSEUDONYM_RE, Vault, VaultError
from .detectors import normalize_phone

__all__ = ["Anonymizer", "Vault", "VaultError", "PSEUDONYM_RE", "normalize_name", "normalize_phone",
           "display_text", "is_allowed"]
