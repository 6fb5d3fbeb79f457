"""Who may ask and how often: the access gate and the per-user rate limit, and their
pyTelegramBotAPI class middlewares (`AccessMiddleware`, `RateLimitMiddleware`) that the bot installs,
so that no handler can forget either check.

The gate and the limiter are plain objects (testable without Telegram); the middlewares only turn
their verdicts into a reply and `CancelUpdate`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from telebot.handler_backends import BaseMiddleware, CancelUpdate

log = logging.getLogger(__name__)


class AccessGate:
    """Allowed chats get answers; any other chat gets one refusal per process, then silence."""

    REFUSAL = ("Извините, этот бот отвечает только в чатах отдела продаж. "
               "Если вам нужен доступ, попросите администратора добавить этот чат.")

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = set(allowed)
        self._refused: set[int] = set()
        self._lock = threading.Lock()

    def check(self, chat_id: int) -> str:
        """'ok', 'refuse' (send the refusal now) or 'ignore'."""
        if int(chat_id) in self.allowed:
            return "ok"
        with self._lock:
            if int(chat_id) in self._refused:
                return "ignore"
            self._refused.add(int(chat_id))
            return "refuse"


class RateLimiter:
    """At most `per_hour` questions per user in any sliding hour."""

    def __init__(self, per_hour: int, window: float = 3600.0, clock=time.monotonic) -> None:
        self.per_hour = int(per_hour)
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque] = {}
        self._lock = threading.Lock()

    def allow(self, user_id: int) -> tuple[bool, float]:
        """(allowed, seconds until the next question is allowed)."""
        if self.per_hour <= 0:
            return True, 0.0
        now = self.clock()
        with self._lock:
            q = self._hits.setdefault(int(user_id), deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.per_hour:
                return False, q[0] + self.window - now
            q.append(now)
            return True, 0.0


def is_question(message) -> bool:
    """A message the bot answers as a question: plain text or /ask (commands like /help are not)."""
    text = (getattr(message, "text", None) or "").strip()
    if not text:
        return False
    if not text.startswith("/"):
        return True
    return text[1:].split(None, 1)[0].split("@", 1)[0].lower() == "ask"


class AccessMiddleware(BaseMiddleware):
    """Messages and button presses from chats that are not allowed never reach a handler; each such
    chat gets one polite refusal per process (`reply(chat_id, text)` sends it)."""

    def __init__(self, gate: AccessGate, reply: Callable[[int, str], None]) -> None:
        super().__init__()
        self.update_types = ["message", "callback_query"]
        self.gate, self.reply = gate, reply

    def pre_process(self, update, data):
        msg = getattr(update, "message", None) if hasattr(update, "data") else update  # a callback carries .message
        chat = getattr(msg, "chat", None)
        if chat is None:
            return CancelUpdate()
        if hasattr(update, "data"):  # button presses: allowed chats only, never a refusal
            return None if int(chat.id) in self.gate.allowed else CancelUpdate()
        verdict = self.gate.check(chat.id)
        if verdict == "refuse":
            log.info("refused a chat that is not allowed")
            try:
                self.reply(chat.id, AccessGate.REFUSAL)
            except Exception:  # noqa: BLE001
                log.warning("could not send the refusal")
        return None if verdict == "ok" else CancelUpdate()

    def post_process(self, update, data, exception=None):
        return None


class RateLimitMiddleware(BaseMiddleware):
    """Questions beyond the per-user limit get one line saying when to ask again, and no answer."""

    def __init__(self, limiter: RateLimiter, reply: Callable[[int, str], None]) -> None:
        super().__init__()
        self.update_types = ["message"]
        self.limiter, self.reply = limiter, reply

    def pre_process(self, message, data):
        if not is_question(message):
            return None
        user = message.from_user.id if message.from_user else message.chat.id
        ok, wait = self.limiter.allow(user)
        if ok:
            return None
        self.reply(message.chat.id, f"Слишком много вопросов: не больше {self.limiter.per_hour} в час. "
                                    f"Попробуйте через {max(1, round(wait / 60))} мин.")
        return CancelUpdate()

    def post_process(self, message, data, exception=None):
        return None
