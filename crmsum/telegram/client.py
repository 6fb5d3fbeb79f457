"""The Telegram Bot API client: one way to make the TeleBot and to call it.

pyTelegramBotAPI is pointed at `Settings.telegram_api_url` (the official API or the loopback
emulator). Every call goes through `call_api`, which honours Bot API 429 answers: wait
`retry_after` seconds and retry, a bounded number of times; a longer flood wait fails the call, so
the caller records it and the next run retries. Delivery and the bot import this module alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from crmsum.config import Settings
from crmsum.errors import CrmsumError

log = logging.getLogger(__name__)

MAX_429_RETRIES = 4
MAX_RETRY_WAIT = 120.0  # seconds; a longer flood wait fails the call (retried on the next run)


class TelegramConfigError(CrmsumError):
    """The bot cannot be made (no token)."""


def configure_telebot(settings: Settings) -> None:
    """Point pyTelegramBotAPI at Settings.telegram_api_url (the official API or an emulator), sending its
    requests with `send_request`."""
    from telebot import apihelper

    base = settings.telegram_api_url.rstrip("/")
    apihelper.API_URL = base + "/bot{0}/{1}"
    apihelper.FILE_URL = base + "/file/bot{0}/{1}"
    apihelper.CUSTOM_REQUEST_SENDER = send_request


_sessions = threading.local()


def send_request(method: str, url: str, params: dict | None = None, files: dict | None = None,
                 timeout: Any = None, proxies: Any = None):
    """pyTelegramBotAPI's request sender (`apihelper.CUSTOM_REQUEST_SENDER`): a POST's parameters go in a
    JSON body (the Bot API accepts application/json), a GET's in the URL, uploads as multipart; one
    keep-alive session per thread.

    Why not telebot's own sender: it puts every parameter, the whole message included, into the URL,
    which requests and urllib3 then percent-encode and re-check character by character in Python — for
    an answer of a few KB of Cyrillic HTML about as much CPU as computing the answer, under the GIL that
    every other chat's answer waits for."""
    session = getattr(_sessions, "session", None)
    if session is None:
        import requests

        session = _sessions.session = requests.Session()
    if files:
        return session.request(method, url, data=params, files=files, timeout=timeout, proxies=proxies)
    if method.lower() == "get":
        return session.request(method, url, params=params, timeout=timeout, proxies=proxies)
    return session.request(method, url, json=params, timeout=timeout, proxies=proxies)


def no_preview():
    """Link previews off, the current Bot API way (`link_preview_options`; `disable_web_page_preview` is
    deprecated): digests and answers cite records, never pages."""
    from telebot.types import LinkPreviewOptions

    return LinkPreviewOptions(is_disabled=True)


def make_bot(settings: Settings, threaded: bool = False, use_class_middlewares: bool = False, num_threads: int = 2):
    """A TeleBot for the configured token and API (raises `TelegramConfigError` without a token);
    the bot turns class middlewares on (its access gate and rate limit are middlewares) and runs its
    handlers on `num_threads` workers."""
    import telebot

    if settings.telegram_token is None:
        raise TelegramConfigError("CRMSUM_TELEGRAM_TOKEN is not set")
    configure_telebot(settings)
    return telebot.TeleBot(settings.telegram_token.get_secret_value(), threaded=threaded, parse_mode=None,
                           use_class_middlewares=use_class_middlewares, num_threads=num_threads)


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds to wait if `exc` is a Bot API 429 (ApiTelegramException), else None."""
    if getattr(exc, "error_code", None) != 429:
        return None
    params = (getattr(exc, "result_json", None) or {}).get("parameters") or {}
    try:
        return float(params.get("retry_after", 1))
    except (TypeError, ValueError):
        return 1.0


def call_api(fn: Callable[..., Any], *args: Any, sleep: Callable[[float], None] = time.sleep,
             retries: int = MAX_429_RETRIES, max_wait: float = MAX_RETRY_WAIT, **kwargs: Any) -> Any:
    """Call a telebot method; on 429 wait retry_after (+ a little) and retry, at most `retries` times."""
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only 429 is retried here
            wait = retry_after_of(exc)
            if wait is None or attempt >= retries or wait > max_wait:
                raise
            log.warning("Telegram flood control: waiting %.0fs (attempt %d)", wait, attempt + 1)
            sleep(wait + 0.1)
    raise AssertionError("unreachable")


def error_text(exc: BaseException) -> str:
    """What may be stored or logged about a failed call: the Bot API's code and description only.

    A network error's own text holds the request URL, i.e. the bot token and the message (real names)."""
    code = getattr(exc, "error_code", None)
    if code is not None:
        return f"Telegram {code}: {getattr(exc, 'description', '')}"
    return f"{type(exc).__name__}: Telegram unreachable or the request failed"
