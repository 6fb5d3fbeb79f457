"""The Telegram bot (`crmsum bot`): pyTelegramBotAPI handlers, long polling.

Handlers are thin: each one calls a `BotApp` method, and `BotApp` calls the library
(`crmsum.answer` for questions, ratings, access and limits; `crmsum.delivery` for /digest;
`crmsum.telegram` for the client and Telegram HTML).

- /start, /help: what the bot can do and whom it knows;
- /digest: this chat's latest weekly digest (chart + text);
- /ask QUESTION and plain text: an answer from the precomputed summaries at once, or a live one
  (typing + a «Собираю данные…» message that is edited into the answer);
- every answer carries 1–5 rating buttons; ratings go to `feedback`.

Only chats in CRMSUM_TELEGRAM_ALLOWED_CHATS are served; any other chat gets one polite refusal per
process and nothing else. A per-user limit (CRMSUM_TELEGRAM_USER_RATE questions per hour) protects
the LLM budget. Both are pyTelegramBotAPI class middlewares (`crmsum.answer.access`), so no handler
runs before them. Bot API 429 answers are waited out (`crmsum.telegram.client.call_api`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import telebot
from telebot import types

from crmsum import answer as A
from crmsum.telegram import markup as th
from crmsum.config import Settings, get_settings
from crmsum.errors import CrmsumError
from crmsum.summarize import render as R
from crmsum.delivery import chat_digest, digest_parts
from crmsum.rating_callback import RatingRefused, rating_data, rating_key, verify
from crmsum.telegram.client import call_api, make_bot, no_preview
from crmsum.answer.resident import Resident
from crmsum.telegram.send_once import Telegram

log = logging.getLogger(__name__)


class BotError(CrmsumError):
    """The bot cannot start: the Bot API does not answer or does not accept the token."""

PLACEHOLDER = "Собираю данные…"
PAGE = 10  # deals per page of a long list
PAGES_KEPT = 200  # long answers kept in memory for paging
HEARTBEAT_SECONDS = 300.0
COMMANDS = [("ask", "задать вопрос: /ask Что Ева делала в марте?"), ("digest", "дайджест последней недели"),
            ("help", "что умеет бот")]
_STYLE: dict[str, Callable[[str], str]] = {R.HEAD: th.b, R.SOURCE: th.i, R.TITLE: th.b, R.TEXT: th.escape}


# -- rendering ----------------------------------------------------------------------------------
def answer_html(ans: A.Answer, show: Callable[[str], str] = str) -> list[str]:
    """An answer as Telegram HTML parts, from its records (heading bold, source italic, section titles
    bold); `show` resolves pseudonyms for the reader."""
    html = "\n".join(_STYLE[style](show(line)) for style, line in ans.layout())
    return th.split_html(html, th.MAX_MESSAGE)


def rating_keyboard(answer_id: str, chat_id: int, key: bytes, page: int | None = None,
                    pages: int = 1) -> types.InlineKeyboardMarkup:
    """1–5 rating buttons whose data is signed for this chat and answer (`crmsum.rating_callback`);
    with `pages` > 1 also «◀ n/N ▶» to page a long list."""
    kb = types.InlineKeyboardMarkup(row_width=5)
    if page is not None and pages > 1:
        nav = [types.InlineKeyboardButton("◀", callback_data=f"page:{answer_id}:{max(0, page - 1)}"),
               types.InlineKeyboardButton(f"{page + 1}/{pages}", callback_data=f"page:{answer_id}:{page}"),
               types.InlineKeyboardButton("▶", callback_data=f"page:{answer_id}:{min(pages - 1, page + 1)}")]
        kb.row(*nav)
    kb.add(*[types.InlineKeyboardButton(str(n), callback_data=rating_data(key, chat_id, answer_id, n))
             for n in range(1, 6)])
    return kb


_ITEM = re.compile(r"^\d+\. ")


def answer_pages(ans: A.Answer, show: Callable[[str], str] = str, per_page: int = PAGE) -> list[str]:
    """A long list answer (deals, stalled) as pages of `per_page` items, each page with the heading and
    the lines before the list; other answers as one page."""
    layout = ans.layout()
    items = [n for n, (_st, line) in enumerate(layout) if _ITEM.match(line)]
    if len(items) <= per_page:
        return ["\n".join(_STYLE[st](show(line)) for st, line in layout)]
    head, body = layout[:items[0]], layout[items[0]:]
    groups: list[list[tuple[str, str]]] = []
    for st, line in body:  # an item and its sub-lines (last notes) stay together
        if _ITEM.match(line) or not groups:
            groups.append([])
        groups[-1].append((st, line))
    pages = []
    for k in range(0, len(groups), per_page):
        lines = head + [x for g in groups[k:k + per_page] for x in g]
        pages.append("\n".join(_STYLE[st](show(line)) for st, line in lines))
    return pages


def _buttons(message) -> list[str] | None:
    """The callback data of a message's own inline keyboard, when Telegram sent it along."""
    markup = getattr(message, "reply_markup", None)
    rows = getattr(markup, "keyboard", None)
    if not rows:
        return None
    return [b.callback_data for row in rows for b in row if getattr(b, "callback_data", None)]


def question_of(message) -> str:
    """The question in a message: text after /ask (or /ask@bot), or the text itself."""
    text = (message.text or "").strip()
    if text.startswith("/"):
        head, _, rest = text.partition(" ")
        text = rest.strip()
    return re.sub(r"^(?:@\w+[\s,:]*)+", "", text).strip()  # «@crmsum_bot Что Ева делала?»


class BotApp:
    """Everything the handlers do, independent of how updates arrive."""

    def __init__(self, bot: telebot.TeleBot, settings: Settings, lake=None,
                 today: Callable[[], dt.date] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.bot, self.settings, self.lake = bot, settings, lake
        self.gate = A.AccessGate(settings.allowed_chats)
        self.limiter = A.RateLimiter(settings.telegram_user_rate)
        self.today = today or (lambda: A.today_in(settings))
        self.sleep = sleep
        self.pages: dict[str, list[str]] = {}  # answer id -> the pages of a long list (for «◀ ▶»)
        self.stats = {"questions": 0, "live": 0, "live_done": 0}
        self.live = (ThreadPoolExecutor(max_workers=settings.telegram_live_workers, thread_name_prefix="crmsum-live")
                     if getattr(bot, "threaded", False) else None)
        self.rating_key = rating_key(settings.state_dir)

    # sending with 429 handling
    def send(self, chat_id: int, html: str, **kw):
        return call_api(self.bot.send_message, chat_id, html, parse_mode="HTML", link_preview_options=no_preview(),
                        sleep=self.sleep, **kw)

    def reply(self, chat_id: int, text: str) -> None:
        """Send plain text (the middlewares' refusals and limit notices)."""
        self.send(chat_id, th.escape(text))

    def on_help(self, message) -> None:
        ctx = A.get_context(self.settings, self.lake)
        names = ", ".join(n for _, n in ctx.managers[:20]) or "—"
        text = (f"{th.b('Я отвечаю на вопросы о работе отдела продаж')} по данным amoCRM и командного чата.\n\n"
                "Спросите обычным текстом или через /ask, например:\n"
                "• Что Ева делала в марте по Теххренмашу?\n• Итоги команды за прошлую неделю\n"
                "• Как дела у Олега на этой неделе?\n\n"
                f"/digest — дайджест последней недели\n\n{th.b('Менеджеры')}: {th.escape(names)}\n"
                f"{th.i('Под каждым ответом можно поставить оценку 1–5.')}")
        self.send(message.chat.id, text)

    def on_digest(self, message) -> None:
        from crmsum.digest import DigestError

        try:
            week, rendered = chat_digest(message.chat.id, self.settings, self.lake, today=self.today())
        except DigestError as exc:  # an expected, user-readable reason (no data yet, ...)
            self.send(message.chat.id, th.escape(f"Не получилось собрать дайджест: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - never echo an exception's text (URLs hold the token)
            log.warning("digest for a chat failed: %s", type(exc).__name__)
            self.send(message.chat.id, th.escape("Не получилось собрать дайджест, попробуйте позже."))
            return
        channel = Telegram(self.bot, self.sleep)
        for r in rendered:  # on demand: no ledger, the chat asked for it
            channel.send_all(message.chat.id, digest_parts(r))

    def on_question(self, message, text: str | None = None) -> None:
        """Precomputed answers right here on a handler thread; live ones on the live pool, so that a
        slow live summary never holds up the quick answers of other chats."""
        chat_id = message.chat.id
        text = question_of(message) if text is None else text
        if not text:
            self.send(chat_id, th.escape("Напишите вопрос после /ask, например: /ask Что Ева делала в марте?"))
            return
        self.stats["questions"] += 1
        prep = A.prepare(text, self.settings, self.lake, self.today(), chat_id)
        ctx = A.get_context(self.settings, self.lake)
        if prep.clarification is not None:
            self.send(chat_id, th.escape(prep.clarification.display(ctx.vault)))
            return
        if not prep.live:
            self.answer(prep, chat_id, None)
            return
        call_api(self.bot.send_chat_action, chat_id, "typing", sleep=self.sleep)
        pending = self.send(chat_id, th.i(PLACEHOLDER))
        if self.live is None:  # not threaded (one update at a time anyway)
            self.answer(prep, chat_id, pending)
            return
        self.stats["live"] += 1
        self.live.submit(self._answer_guarded, prep, chat_id, pending)

    def _answer_guarded(self, prep, chat_id: int, pending) -> None:
        try:
            self.answer(prep, chat_id, pending)
        except Exception:  # noqa: BLE001 - a live answer must never kill its pool thread
            log.exception("live answer failed")
        finally:
            self.stats["live_done"] += 1

    def answer(self, prep, chat_id: int, pending) -> None:
        """Finish a prepared question and send it (editing the «Собираю данные…» message of a live one)."""
        ctx = A.get_context(self.settings, self.lake)
        try:
            ans = A.finish(prep, self.settings, self.lake)
        except Exception as exc:  # noqa: BLE001 - the user must hear back
            log.exception("answer failed")
            msg = th.escape(f"Не получилось собрать ответ ({type(exc).__name__}). Попробуйте позже или уточните вопрос.")
            if pending is not None:
                call_api(self.bot.edit_message_text, msg, chat_id, pending.message_id, parse_mode="HTML",
                         sleep=self.sleep)
            else:
                self.send(chat_id, msg)
            return
        policy = self.settings.display_resolve
        show = (lambda t: A.resolve_in_case(ctx.vault, t, policy))
        pages = answer_pages(ans, show)
        if len(pages) > 1:
            self.pages[ans.answer_id] = pages
            while len(self.pages) > PAGES_KEPT:
                self.pages.pop(next(iter(self.pages)))
            self._put(chat_id, pending, [pages[0]], rating_keyboard(ans.answer_id, chat_id, self.rating_key, 0, len(pages)))
            return
        self._put(chat_id, pending, answer_html(ans, show), rating_keyboard(ans.answer_id, chat_id, self.rating_key))

    def _put(self, chat_id: int, pending, parts: list[str], kb) -> None:
        """Send the parts (the first one into the working message, when there is one); buttons on the last."""
        for n, part in enumerate(parts):
            markup = kb if n == len(parts) - 1 else None
            if n == 0 and pending is not None:
                call_api(self.bot.edit_message_text, part, chat_id, pending.message_id, parse_mode="HTML",
                         reply_markup=markup, link_preview_options=no_preview(), sleep=self.sleep)
            else:
                self.send(chat_id, part, reply_markup=markup)

    def on_page(self, call) -> None:
        """«◀ ▶» under a long list: show another page in the same message."""
        msg = call.message
        try:
            _, answer_id, page = call.data.split(":")
            pages, n = self.pages[answer_id], int(page)
        except (ValueError, KeyError):
            call_api(self.bot.answer_callback_query, call.id, "Список устарел — спросите ещё раз", sleep=self.sleep)
            return
        n = max(0, min(n, len(pages) - 1))
        call_api(self.bot.edit_message_text, pages[n], msg.chat.id, msg.message_id, parse_mode="HTML",
                 reply_markup=rating_keyboard(answer_id, msg.chat.id, self.rating_key, n, len(pages)), link_preview_options=no_preview(),
                 sleep=self.sleep)
        call_api(self.bot.answer_callback_query, call.id, f"Страница {n + 1} из {len(pages)}", sleep=self.sleep)

    def on_rate(self, call) -> None:
        msg = call.message  # AccessMiddleware let only allowed chats through
        try:
            answer_id, rating_n = verify(self.rating_key, msg.chat.id, call.data, _buttons(msg))
        except RatingRefused as exc:
            log.warning("rating refused: %s", exc)
            call_api(self.bot.answer_callback_query, call.id, "Оценка не принята", sleep=self.sleep)
            return
        try:
            A.record_feedback(answer_id, msg.chat.id, msg.message_id, call.from_user.id, rating_n,
                              self.settings, self.lake)
        except (ValueError, TypeError):
            call_api(self.bot.answer_callback_query, call.id, "Не удалось сохранить оценку", sleep=self.sleep)
            return
        call_api(self.bot.answer_callback_query, call.id, f"Спасибо! Оценка {rating_n} сохранена.", sleep=self.sleep)


def _guard(fn: Callable) -> Callable:
    """Log a handler's unexpected error instead of killing the polling loop."""
    def wrapped(arg):
        try:
            fn(arg)
        except Exception:  # noqa: BLE001
            log.exception("bot handler %s failed", fn.__name__)
    wrapped.__name__ = fn.__name__
    return wrapped


def build_bot(settings: Settings | None = None, lake=None, today: Callable[[], dt.date] | None = None,
              threaded: bool = True) -> tuple[telebot.TeleBot, BotApp]:
    """A TeleBot with crmsum's handlers (pointed at Settings.telegram_api_url) and its BotApp."""
    s = settings or get_settings()
    bot = make_bot(s, threaded=threaded, use_class_middlewares=True, num_threads=s.telegram_workers)
    app = BotApp(bot, s, lake, today)
    bot.setup_middleware(A.AccessMiddleware(app.gate, app.reply))
    bot.setup_middleware(A.RateLimitMiddleware(app.limiter, app.reply))

    @bot.message_handler(commands=["start", "help"])
    @_guard
    def start(message):
        app.on_help(message)

    @bot.message_handler(commands=["digest"])
    @_guard
    def digest(message):
        app.on_digest(message)

    @bot.message_handler(commands=["ask"])
    @_guard
    def ask(message):
        app.on_question(message)

    @bot.message_handler(func=lambda m: bool(m.text) and not m.text.startswith("/"), content_types=["text"])
    @_guard
    def text(message):
        app.on_question(message)

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("page:"))
    @_guard
    def page(call):
        app.on_page(call)

    @bot.callback_query_handler(func=lambda c: (c.data or "").startswith("rate:"))
    @_guard
    def rate(call):
        app.on_rate(call)

    return bot, app


def run_bot(settings: Settings | None = None, lake=None, long_polling_timeout: int = 25) -> None:
    """Run the bot until interrupted (long polling)."""
    from crmsum.logs import RedactFilter, secrets_of

    s = settings or get_settings()
    logging.getLogger("TeleBot").addFilter(RedactFilter(secrets_of(s)))  # its errors quote request URLs
    bot, app = build_bot(s, lake)
    try:  # fail at once, in one line, rather than poll a dead endpoint forever
        call_api(bot.get_me)
    except Exception as exc:  # noqa: BLE001 - its text may quote the URL with the token
        raise BotError(f"the Telegram Bot API at {s.telegram_api_url} refused getMe ({type(exc).__name__}): "
                       "check CRMSUM_TELEGRAM_TOKEN and CRMSUM_TELEGRAM_API_URL") from None
    if not s.allowed_chats:
        log.warning("CRMSUM_TELEGRAM_ALLOWED_CHATS is empty: the bot will refuse every chat")
    try:
        call_api(bot.set_my_commands, [types.BotCommand(c, d) for c, d in COMMANDS])
    except Exception as exc:  # noqa: BLE001 - commands are a convenience
        log.warning("setMyCommands failed: %s", exc)
    # the lookups now, the parser, NER, LLM client and insights in the background (again after each reload)
    A.get_context(s, lake).keep_warm(A.warm)
    resident = Resident(s, lake)  # `crmsum ask` on this machine asks the warm context too
    resident.start()
    if threading.current_thread() is threading.main_thread():  # a service manager's stop: end as on Ctrl+C
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    stop = threading.Event()
    threading.Thread(target=heartbeat, args=(app, stop), name="crmsum-heartbeat", daemon=True).start()
    try:
        bot.infinity_polling(timeout=long_polling_timeout + 10, long_polling_timeout=long_polling_timeout)
    finally:
        stop.set()
        resident.close()
        if app.live is not None:
            app.live.shutdown(wait=False, cancel_futures=True)


def heartbeat(app: BotApp, stop: threading.Event, every: float = HEARTBEAT_SECONDS) -> None:
    """One log line every `every` seconds: the bot is alive, and how busy it is."""
    while not stop.wait(every):
        st = app.stats
        log.info("bot alive: %d questions, %d live answers (%d running or queued)", st["questions"], st["live"],
                 st["live"] - st["live_done"])
