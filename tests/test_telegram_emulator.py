"""Telegram Bot API emulator driven by the real pyTelegramBotAPI client over HTTP."""

from __future__ import annotations

import struct
import threading
import zlib

import pytest
import requests
import telebot
from telebot import types
from telebot.apihelper import ApiTelegramException

from crmsum.sandbox.telegram_emulator import TelegramEmulator, parse_html

TOKEN = "123456789:AAE-emulator-test-token"
GROUP = -1001234567890


def png_bytes(width: int = 64, height: int = 32) -> bytes:
    raw = b"".join(b"\x00" + b"\x20\x80\xff" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture()
def tg():
    with TelegramEmulator(token=TOKEN) as emu, emu.telebot_configured():
        yield emu


@pytest.fixture()
def bot(tg):
    return telebot.TeleBot(TOKEN, threaded=False)


def short_poll(tg, **params) -> list[dict]:
    """getUpdates with timeout=0 (telebot always long-polls, 10 s by default)."""
    r = requests.get(f"{tg.url}/bot{TOKEN}/getUpdates", params={"timeout": 0, **params}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def api_error(excinfo) -> tuple[int, str]:
    e = excinfo.value
    return e.error_code, e.description


# -- a real polling bot ---------------------------------------------------------------------
def test_polling_bot_answers_start_callbacks_and_edits(tg):
    bot = telebot.TeleBot(TOKEN)  # threaded handlers, like `crmsum bot`
    errors: list[Exception] = []

    @bot.message_handler(commands=["start"])
    def start(message):
        bot.send_chat_action(message.chat.id, "typing")
        kb = types.InlineKeyboardMarkup(row_width=5)
        kb.add(*[types.InlineKeyboardButton(str(i), callback_data=f"rate:{i}") for i in range(1, 6)])
        bot.send_message(message.chat.id, f"Привет, <b>{message.from_user.first_name}</b>! Оцените: &lt;1–5&gt;",
                         parse_mode="HTML", reply_markup=kb)

    @bot.callback_query_handler(func=lambda c: c.data.startswith("rate:"))
    def rate(call):
        try:
            bot.answer_callback_query(call.id, "Спасибо!")
            bot.edit_message_text(f"Оценка: {call.data.split(':')[1]}", call.message.chat.id,
                                  call.message.message_id)
        except Exception as exc:  # surfaced to the test thread
            errors.append(exc)

    bot.set_my_commands([types.BotCommand("start", "начать"), types.BotCommand("ask", "задать вопрос")])
    poller = threading.Thread(target=bot.polling, kwargs={"non_stop": True, "timeout": 10,
                                                          "long_polling_timeout": 1}, daemon=True)
    poller.start()
    try:
        tg.push_command(GROUP, "start", chat_title="Продажи", first_name="Ева")
        sent = tg.wait_for_sent(lambda m: m["method"] == "sendMessage", timeout=10)
        assert sent["chat_id"] == GROUP
        assert sent["text"] == "Привет, Ева! Оцените: <1–5>"
        assert sent["parse_mode"] == "HTML"
        assert sent["entities"] == [{"offset": 8, "length": 3, "type": "bold"}]
        buttons = sent["reply_markup"]["inline_keyboard"][0]
        assert [b["callback_data"] for b in buttons] == [f"rate:{i}" for i in range(1, 6)]
        assert sent["message"]["from"]["is_bot"] is True and sent["message"]["chat"]["type"] == "supergroup"
        assert tg.chat_actions[0]["action"] == "typing"

        tg.push_callback(GROUP, sent["message_id"], "rate:4", user_id=555)
        edit = tg.wait_for_sent(lambda m: m["method"] == "editMessageText", timeout=10)
        assert edit["text"] == "Оценка: 4" and edit["message_id"] == sent["message_id"]
        assert edit["reply_markup"] is None and "edit_date" in edit["message"]
        tg.wait_for(lambda t: t.answered_callbacks, timeout=5)
        assert tg.answered_callbacks[0]["text"] == "Спасибо!"
        assert tg.answered_callbacks[0]["data"] == "rate:4" and tg.answered_callbacks[0]["user_id"] == 555
        assert not errors
    finally:
        bot.stop_polling()
        poller.join(10)
    assert not poller.is_alive()
    assert [c["command"] for c in tg.commands] == ["start", "ask"]
    assert [c.command for c in bot.get_my_commands()] == ["start", "ask"]
    assert any(c["method"] == "getMe" for c in tg.api_calls)


# -- sendMessage validation -----------------------------------------------------------------
def test_send_message_shape_and_limits(tg, bot):
    msg = bot.send_message(42, "Итог недели: 3 сделки")
    assert msg.chat.type == "private" and msg.from_user.is_bot and msg.message_id == 1 and msg.date > 0
    assert msg.text == "Итог недели: 3 сделки"

    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(42, "x" * 4097)
    assert api_error(ei) == (400, "Bad Request: message is too long")
    assert ei.value.result_json == {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}

    # the limit applies after entity parsing: 4096 "<" written as &lt; fit
    ok = bot.send_message(42, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
    assert len(ok.text) == 4096
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(42, "<b>" + "&lt;" * 4097 + "</b>", parse_mode="HTML")
    assert api_error(ei) == (400, "Bad Request: message is too long")

    for empty in ("", "   ", "<b></b>"):
        with pytest.raises(ApiTelegramException) as ei:
            bot.send_message(42, empty, parse_mode="HTML")
        assert api_error(ei) == (400, "Bad Request: message text is empty")


@pytest.mark.parametrize("html, reason", [
    ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
    ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("выручка < 5", 'Unsupported start tag "" at byte offset 15'),
    ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("<b", "Unclosed start tag at byte offset 0"),
])
def test_bad_html_is_rejected_like_telegram(tg, bot, html, reason):
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(GROUP, html, parse_mode="HTML")
    assert api_error(ei) == (400, "Bad Request: can't parse entities: " + reason)
    assert tg.sent() == []


def test_supported_html_and_entities():
    text, ents = parse_html('<b>Ж</b> <a href="https://e.x/?a=1&amp;b=2">ссылка</a> '
                            '<pre><code class="language-sql">SELECT 1</code></pre> &quot;q&quot; &#128512; '
                            '<tg-spoiler>s</tg-spoiler> <blockquote expandable>bq</blockquote> a & b')
    assert text == 'Ж ссылка SELECT 1 "q" 😀 s bq a & b'
    types_ = {e["type"]: e for e in ents}
    assert types_["text_link"]["url"] == "https://e.x/?a=1&b=2"
    assert types_["pre"]["language"] == "sql"
    assert types_["spoiler"]["offset"] == 25  # the emoji counts as 2 UTF-16 units
    assert types_["expandable_blockquote"]["length"] == 2


def test_inline_keyboard_validation(tg, bot):
    kb = types.InlineKeyboardMarkup()
    kb.add(types.InlineKeyboardButton("x", callback_data="d" * 65))
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(GROUP, "t", reply_markup=kb)
    assert api_error(ei) == (400, "Bad Request: BUTTON_DATA_INVALID")


# -- photos -------------------------------------------------------------------------------
def test_send_photo_multipart_and_caption_limit(tg, bot):
    png = png_bytes(1600, 900)
    msg = bot.send_photo(GROUP, png, caption="<b>Воронка</b> за неделю", parse_mode="HTML")
    assert msg.caption == "Воронка за неделю" and msg.caption_entities[0].type == "bold"
    assert (msg.photo[-1].width, msg.photo[-1].height) == (1600, 900)
    assert [p.width for p in msg.photo] == [90, 320, 800, 1280, 1600]
    rec = tg.sent(GROUP)[-1]
    assert rec["method"] == "sendPhoto" and rec["photo"] == png and rec["photo"][:8] == b"\x89PNG\r\n\x1a\n"
    # the file can be fetched back through getFile + FILE_URL
    assert bot.download_file(bot.get_file(msg.photo[-1].file_id).file_path) == png

    ok = bot.send_photo(GROUP, png, caption="&amp;" * 1024, parse_mode="HTML")  # 1024 after parsing
    assert len(ok.caption) == 1024
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_photo(GROUP, png, caption="я" * 1025)
    assert api_error(ei) == (400, "Bad Request: message caption is too long")
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_photo(GROUP, b"not an image at all")
    assert api_error(ei) == (400, "Bad Request: IMAGE_PROCESS_FAILED")
    assert [r["method"] for r in tg.sent()] == ["sendPhoto", "sendPhoto"]


# -- edits ----------------------------------------------------------------------------------
def test_edit_message_text(tg, bot):
    msg = bot.send_message(GROUP, "<i>считаю…</i>", parse_mode="HTML")
    edited = bot.edit_message_text("<b>готово</b>", GROUP, msg.message_id, parse_mode="HTML")
    assert edited.text == "готово" and edited.entities[0].type == "bold" and edited.edit_date
    with pytest.raises(ApiTelegramException) as ei:
        bot.edit_message_text("<b>готово</b>", GROUP, msg.message_id, parse_mode="HTML")
    assert ei.value.error_code == 400 and ei.value.description.startswith("Bad Request: message is not modified")
    with pytest.raises(ApiTelegramException) as ei:
        bot.edit_message_text("x", GROUP, 9999)
    assert api_error(ei) == (400, "Bad Request: message to edit not found")
    assert [r["method"] for r in tg.sent(GROUP)] == ["sendMessage", "editMessageText"]


# -- injected errors, auth, routing -----------------------------------------------------------
def test_fail_next_429_surfaces_retry_after(tg, bot):
    tg.fail_next("sendMessage", error_code=429, retry_after=7)
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(GROUP, "digest")
    assert ei.value.error_code == 429
    assert ei.value.description == "Too Many Requests: retry after 7"
    assert ei.value.result_json["parameters"]["retry_after"] == 7
    assert bot.send_message(GROUP, "digest").text == "digest"  # only the next call failed
    assert len(tg.sent()) == 1

    tg.fail_next("*", error_code=403, times=2)
    for _ in range(2):
        with pytest.raises(ApiTelegramException) as ei:
            bot.send_photo(GROUP, png_bytes())
        assert api_error(ei) == (403, "Forbidden: bot was blocked by the user")
    tg.block_chat(77)
    with pytest.raises(ApiTelegramException) as ei:
        bot.send_message(77, "hi")
    assert ei.value.error_code == 403


def test_wrong_token_and_unknown_method(tg):
    with pytest.raises(ApiTelegramException) as ei:
        telebot.TeleBot("999:wrong").get_me()
    assert ei.value.result_json == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    r = requests.post(f"{tg.url}/bot{TOKEN}/sendMagic", data={"x": "1"}, timeout=5)
    assert r.status_code == 404 and r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    # after an error on a kept-alive connection the next request still parses (JSON body this time)
    s = requests.Session()
    assert s.post(f"{tg.url}/botWRONG/getMe", data={"a": "b"}, timeout=5).status_code == 401
    r = s.post(f"{tg.url}/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": "json body"}, timeout=5)
    assert r.json()["result"]["text"] == "json body"
    r = s.get(f"{tg.url}/bot{TOKEN}/getMe", timeout=5)
    assert r.json()["result"]["is_bot"] is True and r.headers["Content-Type"].startswith("application/json")


# -- getUpdates semantics -------------------------------------------------------------------
def test_get_updates_offset_limit_and_long_polling(tg, bot):
    for i in range(3):
        tg.push_message(GROUP, f"сообщение {i}", user_id=100 + i, chat_type="supergroup", chat_title="Продажи")
    ups = bot.get_updates(long_polling_timeout=5)  # updates are pending: answers at once
    assert [u.message.text for u in ups] == ["сообщение 0", "сообщение 1", "сообщение 2"]
    assert ups[0].message.chat.title == "Продажи" and ups[1].message.from_user.id == 101
    assert [u.message.message_id for u in ups] == [1, 2, 3]
    assert len(bot.get_updates(limit=2)) == 2
    # without confirmation the same updates come again; offset confirms and drops earlier ones
    assert len(bot.get_updates(offset=ups[1].update_id)) == 2
    assert short_poll(tg, offset=ups[-1].update_id + 1) == []
    assert tg.pending_updates == 0

    # long polling: the request blocks until an update arrives
    timer = threading.Timer(0.3, tg.push_message, args=(GROUP, "поздно"))
    timer.start()
    got = bot.get_updates(offset=ups[-1].update_id + 1, long_polling_timeout=10)
    timer.join()
    assert [u.message.text for u in got] == ["поздно"]

    # negative offset keeps only the last updates; allowed_updates filters types
    for i in range(3):
        tg.push_message(GROUP, f"m{i}")
    assert [u.message.text for u in bot.get_updates(offset=-1)] == ["m2"]
    assert [u["message"]["text"] for u in short_poll(tg)] == ["m2"]
    msg = bot.send_message(GROUP, "кнопки")
    tg.push_callback(GROUP, msg.message_id, "x")
    only_cb = bot.get_updates(offset=-2, allowed_updates=["callback_query"])
    assert [u.callback_query.data for u in only_cb] == ["x"]


def test_concurrent_get_updates_conflict_and_webhook(tg, bot):
    result: dict = {}

    def first_poller():
        try:
            bot.get_updates(long_polling_timeout=10)
        except ApiTelegramException as exc:
            result["error"] = exc

    t = threading.Thread(target=first_poller)
    t.start()
    tg.wait_for(lambda e: any(c["method"] == "getUpdates" for c in e.api_calls))
    short_poll(tg)  # a second bot instance polls
    t.join(10)
    assert result["error"].error_code == 409
    assert "terminated by other getUpdates request" in result["error"].description

    assert bot.set_webhook("https://example.org/hook")
    with pytest.raises(ApiTelegramException) as ei:
        bot.get_updates(long_polling_timeout=1)
    assert ei.value.error_code == 409
    tg.push_message(GROUP, "pending")
    assert bot.delete_webhook(drop_pending_updates=True)
    assert short_poll(tg) == []


def test_get_chat_and_get_me(tg, bot):
    me = bot.get_me()
    assert me.is_bot and me.username == "crmsum_test_bot" and me.id == 123456789
    tg.add_chat(GROUP, "supergroup", title="Отдел продаж")
    chat = bot.get_chat(GROUP)
    assert chat.title == "Отдел продаж" and chat.type == "supergroup"
    with pytest.raises(ApiTelegramException) as ei:
        bot.get_chat(-5)
    assert api_error(ei) == (400, "Bad Request: chat not found")


def test_strict_chats():
    with TelegramEmulator(token=TOKEN, strict_chats=True) as emu, emu.telebot_configured():
        bot = telebot.TeleBot(TOKEN)
        with pytest.raises(ApiTelegramException) as ei:
            bot.send_message(-42, "hi")
        assert api_error(ei) == (400, "Bad Request: chat not found")
        emu.add_chat(-42, "group", title="Команда")
        assert bot.send_message(-42, "hi").chat.title == "Команда"
