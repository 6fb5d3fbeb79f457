"""The one send-once routine: exactly once per chat and key, resumable between parts, over real HTTP."""

from __future__ import annotations

import json

import pytest
import telebot

from crmsum.lake import Lake
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from crmsum.telegram.send_once import INTERRUPTED, File, Key, Outbox, Photo, Telegram, Text, send_once

TOKEN = "123456789:TEST-send-once"
CHAT = -100555
KEY = Key("2024-W10", "brief:PER-a1b2c3d4")
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16
PARTS = [Photo(PNG, "<b>Сводка</b>"), Text("часть 1"), Text("часть 2 &amp; конец")]


@pytest.fixture()
def tg():
    with TelegramEmulator(token=TOKEN) as emu, emu.telebot_configured():
        yield emu


def ledger(lake: Lake) -> dict:
    rows = lake.read("deliveries").to_dict("records")
    return {(int(r["chat_id"]), r["week"], r["kind"]): r for r in rows}


def test_sent_once_per_chat_and_key_then_force(tmp_path, tg):
    lake = Lake(tmp_path / "lake")
    channel = Telegram(telebot.TeleBot(TOKEN, threaded=False))
    first = send_once(lake, channel, CHAT, KEY, PARTS)
    assert first.status == "sent" and first.new == 3
    assert [m["method"] for m in tg.sent(CHAT)] == ["sendPhoto", "sendMessage", "sendMessage"]
    row = ledger(lake)[(CHAT, *KEY)]
    assert row["status"] == "sent" and json.loads(row["message_ids"]) == first.message_ids and row["attempts"] == 1
    rendered = []
    again = send_once(lake, channel, CHAT, KEY, lambda: rendered.append(1) or PARTS)
    assert again.status == "skipped" and again.message_ids == first.message_ids and not rendered  # no rendering
    assert len(tg.sent(CHAT)) == 3
    other = send_once(lake, channel, CHAT, Key("2024-W11", KEY.kind), PARTS[1:])  # another key: its own row
    assert other.status == "sent" and len(tg.sent(CHAT)) == 5
    forced = send_once(lake, channel, CHAT, KEY, PARTS, force=True)
    assert forced.status == "sent" and forced.new == 3 and ledger(lake)[(CHAT, *KEY)]["attempts"] == 2


def test_interrupted_between_parts_resumes_with_the_next(tmp_path, tg):
    lake = Lake(tmp_path / "lake")
    bot = telebot.TeleBot(TOKEN, threaded=False)
    real = bot.send_message
    calls = []

    def dies_on_second_text(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **kw)

    bot.send_message = dies_on_second_text
    with pytest.raises(KeyboardInterrupt):
        send_once(lake, Telegram(bot), CHAT, KEY, PARTS)
    row = ledger(lake)[(CHAT, *KEY)]
    assert row["status"] == "failed" and row["error"] == INTERRUPTED and len(json.loads(row["message_ids"])) == 2
    done = send_once(lake, Telegram(telebot.TeleBot(TOKEN, threaded=False)), CHAT, KEY, PARTS)
    assert done.status == "sent" and done.new == 1 and len(done.message_ids) == 3
    assert [m["text"] or m["caption"] for m in tg.sent(CHAT)] == ["Сводка", "часть 1", "часть 2 & конец"]


def test_api_error_is_recorded_without_the_url_and_retried(tmp_path, tg):
    lake = Lake(tmp_path / "lake")
    channel = Telegram(telebot.TeleBot(TOKEN, threaded=False))
    tg.fail_next("sendMessage", error_code=403)
    failed = send_once(lake, channel, CHAT, KEY, PARTS)
    assert failed.status == "failed" and failed.error.startswith("Telegram 403") and len(failed.message_ids) == 1
    row = ledger(lake)[(CHAT, *KEY)]
    assert row["status"] == "failed" and TOKEN not in row["error"]
    tg.fail_next("sendMessage", error_code=429, retry_after=1)
    waits: list[float] = []
    ok = send_once(lake, Telegram(channel.bot, sleep=waits.append), CHAT, KEY, PARTS)
    assert ok.status == "sent" and ok.new == 2 and [round(w) for w in waits] == [1]
    assert [m["method"] for m in tg.sent(CHAT)].count("sendPhoto") == 1
    assert ledger(lake)[(CHAT, *KEY)]["attempts"] == 2


def test_outbox_writes_files_once(tmp_path):
    lake = Lake(tmp_path / "lake")
    path = tmp_path / "outbox" / KEY.period / "brief.md"
    out = send_once(lake, Outbox(), 0, KEY, [File(path, "# Сводка\n".encode())])
    assert out.status == "outbox" and path.read_text(encoding="utf-8") == "# Сводка\n"
    assert send_once(lake, Outbox(), 0, KEY, [File(path, b"other")]).status == "skipped"
    assert path.read_text(encoding="utf-8") == "# Сводка\n"
    with pytest.raises(TypeError):
        Outbox().put(0, Text("not a file"))
