"""A rating is accepted only for the answer the rated message carries: forged callbacks (any answer id,
a wrong signature, a genuine button replayed under another message) are refused and store nothing."""

from __future__ import annotations

import time

import pytest

from crmsum.rating_callback import RatingRefused, rating_data, rating_key, verify
from lake_fixture import CHAT_ID
from test_bot import answer_to, base, env, running, tg  # noqa: F401 - the bot's fixtures


def test_signature_binds_chat_answer_and_rating(tmp_path):
    key = rating_key(tmp_path)
    assert rating_key(tmp_path) == key and (tmp_path / "rating_callback.key").stat().st_mode & 0o077 == 0
    data = rating_data(key, CHAT_ID, "a" * 16, 4)
    assert len(data.encode()) <= 64  # Telegram's callback_data limit
    assert verify(key, CHAT_ID, data) == ("a" * 16, 4)
    assert verify(key, CHAT_ID, data, buttons=[data]) == ("a" * 16, 4)
    forged = [f"rate:{'b' * 16}:4", f"rate:{'b' * 16}:4:{data.split(':')[3]}",  # another answer id
              data.replace(":4:", ":5:"),  # another rating
              f"rate:{'a' * 16}:4:0000000000000000", "rate:x", "", "rate:a:9:zz"]
    for bad in forged:
        with pytest.raises(RatingRefused):
            verify(key, CHAT_ID, bad)
    with pytest.raises(RatingRefused):
        verify(key, CHAT_ID + 1, data)  # the same button pressed in another chat
    with pytest.raises(RatingRefused, match="does not carry"):
        verify(key, CHAT_ID, data, buttons=[rating_data(key, CHAT_ID, "c" * 16, 4)])


def feedback_rows(env) -> int:
    return len(env[1].read("feedback"))


@pytest.mark.slow
def test_forged_rating_callbacks_are_refused_over_the_bot_api(tg, env, running):
    running()
    tg.push_message(CHAT_ID, "Что Олег Петров делал в марте?", chat_type="supergroup", user_id=501)
    first = answer_to(tg, CHAT_ID)
    tg.push_message(CHAT_ID, "Итоги команды за март", chat_type="supergroup", user_id=501)
    second = answer_to(tg, CHAT_ID, since=len(tg.sent()))
    assert second["message_id"] != first["message_id"]
    genuine_first = first["reply_markup"]["inline_keyboard"][0][4]["callback_data"]
    other_answer = second["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    before = feedback_rows(env)
    forged = [f"rate:{other_answer}:5",  # the old unsigned form, any answer id
              f"rate:{other_answer}:5:{genuine_first.split(':')[3]}",  # a signature lifted from another button
              genuine_first]  # a genuine button of the first answer, replayed under the second message
    for data in forged:
        tg.push_callback(CHAT_ID, second["message_id"], data, user_id=777)
    tg.wait_for(lambda t: len(t.answered_callbacks) == len(forged), timeout=10)
    assert [c["text"] for c in tg.answered_callbacks] == ["Оценка не принята"] * len(forged)
    assert feedback_rows(env) == before
    tg.push_callback(CHAT_ID, first["message_id"], genuine_first, user_id=777)  # the real press is kept
    tg.wait_for(lambda t: len(t.answered_callbacks) == len(forged) + 1, timeout=10)
    assert tg.answered_callbacks[-1]["text"].startswith("Спасибо! Оценка 5")
    deadline = time.monotonic() + 5
    while feedback_rows(env) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    fb = env[1].read("feedback", "answer_id = ?", [genuine_first.split(":")[1]])
    assert len(fb) == 1 and fb.rating.iloc[0] == 5
