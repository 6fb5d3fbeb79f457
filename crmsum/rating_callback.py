"""Signed rating buttons: a rating is accepted only for the answer the rated message carries.

Why: Telegram passes a button's `callback_data` back verbatim, and any client can send any
callback data for any message it can see. Unsigned `rate:<answer_id>:<n>` let a user attach a
rating to any answer id. Each button's data now carries an HMAC (key in DATA_DIR/state, 0600) over
the chat, the answer id and the rating; a callback is accepted only when the HMAC checks and, when
Telegram includes the message's keyboard, the data is one of that message's own buttons.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from crmsum.errors import CrmsumError

PREFIX = "rate"
KEY_FILE = "rating_callback.key"
SIG_HEX = 16  # 64 bits; callback_data stays under Telegram's 64 bytes


class RatingRefused(CrmsumError):
    """The callback was not made by this bot for this chat's answer."""


def rating_key(state_dir: str | Path) -> bytes:
    """The signing key, created once (32 random bytes, owner-only)."""
    path = Path(state_dir) / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _sig(key: bytes, chat_id: int, answer_id: str, rating: int) -> str:
    msg = f"{int(chat_id)}:{answer_id}:{int(rating)}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:SIG_HEX]


def rating_data(key: bytes, chat_id: int, answer_id: str, rating: int) -> str:
    """callback_data of one rating button."""
    return f"{PREFIX}:{answer_id}:{int(rating)}:{_sig(key, chat_id, answer_id, rating)}"


def verify(key: bytes, chat_id: int, data: str, buttons: list[str] | None = None) -> tuple[str, int]:
    """(answer_id, rating) of a genuine callback; RatingRefused otherwise.

    `buttons`: the callback data of the rated message's own keyboard when Telegram sent it."""
    parts = (data or "").split(":")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
        raise RatingRefused("rating callback without this bot's signature")
    _, answer_id, rating, sig = parts
    n = int(rating)
    if not 1 <= n <= 5 or not hmac.compare_digest(sig, _sig(key, chat_id, answer_id, n)):
        raise RatingRefused("rating callback with a wrong signature")
    if buttons is not None and data not in buttons:
        raise RatingRefused("rating callback for an answer the rated message does not carry")
    return answer_id, n
