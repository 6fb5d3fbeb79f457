"""The bot end to end: real pyTelegramBotAPI long polling against the Telegram emulator over HTTP."""

from __future__ import annotations

import threading
import time

import pytest

from crmsum import answer as A
from crmsum.bot import PLACEHOLDER, build_bot
from crmsum.privacy import PSEUDONYM_RE
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from delivery_env import REAL, STRANGER, TODAY, TOKEN, build_base, copy_env, settings_for
from lake_fixture import CHAT_ID, MANAGERS


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("bot_base") / "data")


@pytest.fixture(scope="module")
def env(base, tmp_path_factory):
    return copy_env(base, tmp_path_factory.mktemp("bot") / "data")


@pytest.fixture()
def tg():
    with TelegramEmulator(token=TOKEN) as emu, emu.telebot_configured():
        yield emu


def start_bot(tg, env, **kw):
    data_dir, lake = env
    s = settings_for(data_dir, telegram_token=TOKEN, telegram_api_url=tg.url, **kw)
    bot, app = build_bot(s, lake, today=lambda: TODAY)
    t = threading.Thread(target=bot.polling, kwargs={"non_stop": True, "timeout": 10, "long_polling_timeout": 1},
                         daemon=True)
    t.start()
    return bot, t


@pytest.fixture()
def running(tg, env):
    bots = []

    def run(**kw):
        bots.append(start_bot(tg, env, **kw))
        return bots[-1][0]

    yield run
    for bot, t in bots:
        bot.stop_polling()
        t.join(10)


def answer_to(tg, chat_id, since=0, timeout=20):
    """The next message or edit with rating buttons in a chat."""
    return tg.wait_for_sent(lambda m: m["chat_id"] == chat_id and m["reply_markup"] is not None, timeout=timeout,
                            since=since)


def test_precomputed_answer_comes_at_once(tg, env, running):
    running()
    tg.push_message(CHAT_ID, "Что Олег Петров делал в марте?", chat_type="supergroup", chat_title="Продажи")
    msg = answer_to(tg, CHAT_ID)
    assert msg["method"] == "sendMessage"
    assert msg["text"].startswith("Менеджер: Олег Петров · Компания: все · Период: март 2024")
    assert "precomputed" in msg["text"] and "Что произошло" in msg["text"]
    assert not set(PSEUDONYM_RE.findall(msg["text"])) & set(MANAGERS.values())  # real names in an allowed chat
    assert msg["entities"][0]["type"] == "bold"
    buttons = msg["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert not any(PLACEHOLDER in (m["text"] or "") for m in tg.sent()) and not tg.chat_actions


def test_live_answer_placeholder_then_edit_and_rating(tg, env, running):
    running()
    tg.push_command(CHAT_ID, "ask", "Что Ева делала в марте по Теххренмашу?", chat_type="supergroup", user_id=501)
    edit = answer_to(tg, CHAT_ID)
    sent = tg.sent(CHAT_ID)
    placeholder = next(m for m in sent if m["method"] == "sendMessage")
    assert placeholder["text"] == PLACEHOLDER
    assert tg.chat_actions and tg.chat_actions[0]["action"] == "typing"
    assert edit["method"] == "editMessageText" and edit["message_id"] == placeholder["message_id"]
    assert edit["text"].startswith("Менеджер: Ева Смирнова · Компания: Теххренмаш · Период: март 2024")
    assert "live" in edit["text"]

    data = edit["reply_markup"]["inline_keyboard"][0][3]["callback_data"]
    assert data.startswith("rate:") and data.split(":")[2] == "4"  # rate:<answer>:<n>:<signature>
    tg.push_callback(CHAT_ID, edit["message_id"], data, user_id=501)
    tg.wait_for(lambda t: t.answered_callbacks, timeout=10)
    assert tg.answered_callbacks[0]["text"].startswith("Спасибо")
    answer_id = data.split(":")[1]
    fb = env[1].read("feedback", "answer_id = ?", [answer_id])
    assert len(fb) == 1 and fb.rating.iloc[0] == 4 and fb.chat_id.iloc[0] == CHAT_ID
    A.flush()
    ans = env[1].read("answers", "answer_id = ?", [answer_id])
    assert len(ans) == 1 and ans.source.iloc[0] == "live" and ans.company.iloc[0] == "Теххренмаш"


def test_other_chats_get_one_refusal_and_nothing_else(tg, env, running):
    running()
    tg.push_message(STRANGER, "Что Ева делала в марте по Теххренмашу?", first_name="Чужой")
    refusal = tg.wait_for_sent(lambda m: m["chat_id"] == STRANGER, timeout=10)
    for name in list(REAL.values()) + list(MANAGERS.values()) + ["Теххренмаш"]:
        assert name not in refusal["text"]
    tg.push_message(STRANGER, "Итоги команды за март")
    tg.push_command(STRANGER, "start")
    tg.push_command(STRANGER, "digest")
    tg.push_callback(STRANGER, refusal["message_id"], "rate:deadbeef:5")
    # an allowed chat is still served after the stranger's updates were handled
    tg.push_command(CHAT_ID, "help", chat_type="supergroup")
    help_msg = tg.wait_for_sent(lambda m: m["chat_id"] == CHAT_ID, timeout=10)
    assert "Ева Смирнова" in help_msg["text"]
    tg.wait_for(lambda t: t.pending_updates == 0, timeout=5)
    time.sleep(1.0)
    assert len(tg.sent(STRANGER)) == 1 and not tg.answered_callbacks
    assert not any(c["chat_id"] == STRANGER for c in tg.chat_actions)


def test_clarification_lists_known_names(tg, env, running):
    running()
    tg.push_message(CHAT_ID, "Что делал Олег в марте?", chat_type="supergroup")
    msg = tg.wait_for_sent(lambda m: m["chat_id"] == CHAT_ID, timeout=10)
    assert "Олег Петров" in msg["text"] and "Олег Сидоров" in msg["text"] and msg["reply_markup"] is None
    tg.push_message(CHAT_ID, "Как дела?", chat_type="supergroup")
    msg = tg.wait_for_sent(lambda m: m["chat_id"] == CHAT_ID, timeout=10, since=len(tg.sent()))
    assert "Анна Кузнецова" in msg["text"] and "Теххренмаш" in msg["text"]


def test_digest_command_sends_chart_and_text(tg, env, running):
    running()
    tg.push_command(CHAT_ID, "digest", chat_type="supergroup")
    photo = tg.wait_for_sent(lambda m: m["method"] == "sendPhoto", timeout=20)
    assert photo["chat_id"] == CHAT_ID and photo["photo"][:4] == b"\x89PNG" and len(photo["caption"]) <= 1024
    text = tg.wait_for_sent(lambda m: m["method"] == "sendMessage", timeout=10)
    assert "Неделя в цифрах" in text["text"] and len(text["text"]) <= 4096


def test_user_rate_limit_and_429_on_answer(tg, env, running):
    running(telegram_user_rate=2)
    tg.fail_next("sendMessage", error_code=429, retry_after=1)
    for n in range(3):
        tg.push_message(CHAT_ID, "Итоги команды за неделю 2024-W10", chat_type="supergroup", user_id=900)
        tg.wait_for(lambda t, n=n: len([m for m in t.sent(CHAT_ID) if m["method"] == "sendMessage"]) > n,
                    timeout=20)
    msgs = [m for m in tg.sent(CHAT_ID) if m["method"] == "sendMessage"]
    assert sum("Период: неделя 2024-W10" in m["text"] for m in msgs) == 2  # the first survived a 429
    assert "Слишком много вопросов" in msgs[2]["text"]
    assert sum(1 for c in tg.api_calls if c["method"] == "sendMessage") == 4  # 429, answer, answer, limit
    # another user is not limited
    tg.push_message(CHAT_ID, "Итоги команды за неделю 2024-W10", chat_type="supergroup", user_id=901)
    answer_to(tg, CHAT_ID, since=len(tg.sent()))


def test_comparison_answer_in_the_chat(tg, env, running):
    running()
    tg.push_message(CHAT_ID, "Кто выиграл больше в марте: Ева или Анна?", chat_type="supergroup", user_id=502)
    msg = answer_to(tg, CHAT_ID)
    assert msg["method"] == "sendMessage"  # precomputed parts: no placeholder
    assert msg["text"].startswith("Сравнение: Ева Смирнова / Анна Кузнецова · Период: март 2024")
    assert msg["entities"][0]["type"] == "bold" and "впереди Ева Смирнова" in msg["text"]
    assert not set(PSEUDONYM_RE.findall(msg["text"])) & set(MANAGERS.values())
    since = len(tg.sent())
    tg.push_message(CHAT_ID, "Ева или Анна — кто больше выиграл по Теххренмашу в марте?", chat_type="supergroup",
                    user_id=502)
    edit = answer_to(tg, CHAT_ID, since=since)
    assert edit["method"] == "editMessageText" and "live" in edit["text"]  # manager within a company: live
    assert edit["text"].startswith("Сравнение: Ева Смирнова / Анна Кузнецова · Компания: Теххренмаш")


def test_long_deal_list_is_paged_with_buttons(tg, env, running):
    running()
    tg.push_message(CHAT_ID, "Покажи все сделки", chat_type="supergroup", user_id=503)
    msg = answer_to(tg, CHAT_ID)
    rows = msg["reply_markup"]["inline_keyboard"]
    assert [b["text"] for b in rows[0]] == ["◀", "1/3", "▶"] and [b["text"] for b in rows[1]][0] == "1"
    assert msg["text"].startswith("Сделки") and "Найдено 24 сделки" in msg["text"]
    assert sum(1 for line in msg["text"].splitlines() if line[:1].isdigit() and ". «" in line) == 10
    tg.push_callback(CHAT_ID, msg["message_id"], rows[0][2]["callback_data"], user_id=503)
    edit = tg.wait_for_sent(lambda m: m["method"] == "editMessageText" and m["message_id"] == msg["message_id"],
                            timeout=20)
    assert "11. «" in edit["text"] and "1. «" not in edit["text"].split("\n11. ")[0].split("Найдено")[1]
    assert [b["text"] for b in edit["reply_markup"]["inline_keyboard"][0]] == ["◀", "2/3", "▶"]


LIVE_CHATS = (-3001, -3002, -3003, -3004)


@pytest.mark.slow  # ~4 s: five chats, the LLM client, four live summaries
def test_quick_answer_is_sent_while_four_live_answers_wait_for_the_model(tg, env, running):
    """The requirement of the bot under load, by order of events, not by the clock: with the model holding
    every completion, four live answers are in flight and a precomputed question still gets its answer."""
    from crmsum.sandbox.llm_emulator import LLMEmulator

    with LLMEmulator(api_key="sk-load") as llm:
        llm.hold()
        running(llm="llm", OPENAI_API_KEY="sk-load", OPENAI_BASE_URL=llm.url, llm_model="emulated-gpt",
                telegram_allowed_chats=",".join(map(str, (CHAT_ID, *LIVE_CHATS))), telegram_live_workers=4)
        for chat in LIVE_CHATS:
            tg.push_message(chat, "Что Ева делала в марте по Теххренмашу?", chat_type="supergroup")
        llm.wait_held(4, timeout=60)  # all four live answers are waiting for the model

        since = tg.sent_count()
        tg.push_message(CHAT_ID, "Что Олег Петров делал в марте?", chat_type="supergroup")
        quick = answer_to(tg, CHAT_ID, since=since, timeout=30)
        assert "precomputed" in quick["text"]
        assert llm.held == 4  # still waiting: the quick answer did not need them to finish
        assert not [m for m in tg.sent() if m["chat_id"] in LIVE_CHATS and m["method"] == "editMessageText"]

        llm.release()
        for chat in LIVE_CHATS:
            edit = answer_to(tg, chat, timeout=60)
            assert edit["method"] == "editMessageText" and "live" in edit["text"]
