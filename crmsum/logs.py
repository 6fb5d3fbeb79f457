"""Logging with a safety net: secrets and stray contact details are masked before any handler sees them.

Personal data must never reach a log by construction (only pseudonyms travel past ingestion);
the filter here is the second line of defence, plus the guarantee that tokens never appear.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from crmsum.config import Settings

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])(?:\+?\d[\s()-]*){10,14}\d(?![\w-])")


class RedactFilter(logging.Filter):
    """Replace known secrets and anything shaped like an e-mail or phone number."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:  # tracebacks carry URLs with tokens in them
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def secrets_of(settings: Settings) -> list[str]:
    values = [settings.amocrm_token, settings.amocrm_client_secret, settings.amocrm_refresh_token,
              settings.telegram_token, settings.openai_api_key]
    return [v.get_secret_value() for v in values if v is not None]


def setup_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log crmsum's messages to DATA_DIR/logs/crmsum.log and warnings to stderr, all redacted."""
    logger = logging.getLogger("crmsum")
    if getattr(logger, "_crmsum_configured", None) == str(settings.data_dir):
        return
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logs = Path(settings.data_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    redact = RedactFilter(secrets_of(settings))
    file_handler = logging.FileHandler(logs / "crmsum.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    for handler in (file_handler, stderr):
        handler.addFilter(redact)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger._crmsum_configured = str(settings.data_dir)  # type: ignore[attr-defined]
