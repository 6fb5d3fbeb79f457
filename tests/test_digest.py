"""Weekly digests: content, Telegram limits, exactly-once delivery, retries, 429s and the outbox."""

from __future__ import annotations

import json
import re

import pytest
import telebot
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from hypothesis_profiles import examples

from crmsum.telegram import markup as th
from crmsum.delivery import deliver_digests, digest_targets, match_manager
from crmsum.digest import DigestError, build_digest, latest_complete_week, render_digest
from crmsum.privacy import PSEUDONYM_RE
from crmsum.sandbox.telegram_emulator import TelegramEmulator, parse_html
from crmsum.summarize.model import SUMMARY_SECTIONS, Point, Section, points_of, sections_from_json
from delivery_env import ALLOWED, REAL, TODAY, TOKEN, build_base, copy_env, settings_for
from lake_fixture import CHAT_ID, MANAGERS

WEEK = "2024-W10"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("digest_base") / "data")


@pytest.fixture()
def env(base, tmp_path):
    return copy_env(base, tmp_path / "data")


@pytest.fixture()
def tg():
    with TelegramEmulator(token=TOKEN) as emu, emu.telebot_configured():
        yield emu


def tg_settings(data_dir, tg, **kw):
    return settings_for(data_dir, telegram_token=TOKEN, telegram_api_url=tg.url, **kw)


def deliveries(lake):
    return {(int(r["chat_id"]), r["kind"]): r for r in lake.read("deliveries").to_dict("records")}


def check_limits(records):
    for r in records:
        if r["method"] == "sendPhoto":
            assert len(r["caption"] or "") <= 1024
        else:
            assert 0 < len(r["text"]) <= 4096
        assert r["parse_mode"] == "HTML"


# -- splitting -------------------------------------------------------------------------------
def test_split_prefers_paragraphs_and_keeps_tags_and_entities_whole():
    para = "<b>Заголовок</b>\n" + "выручка &lt;5% &amp; рост " * 30
    html = "\n\n".join(f"{i}. {para}" for i in range(40))
    parts = th.split_html(html, 4096)
    assert len(parts) > 1
    for p in parts:
        text, _ = parse_html(p)  # every part is valid Telegram HTML
        assert len(text.strip()) <= 4096
        assert re.match(r"^\d+\. <b>", p), "cut at a paragraph boundary"
    # nothing lost, nothing duplicated
    plain = lambda s: re.sub(r"\s+", "", parse_html(s)[0])  # noqa: E731
    assert "".join(plain(p) for p in parts) == plain(html)


def test_split_entity_exactly_at_the_boundary():
    # 4095 visible characters, then an entity that would be the 4097th unit if it were cut badly
    html = "<i>" + "я" * 4095 + "&amp;&lt;" + "x" * 10 + "</i>"
    parts = th.split_html(html, 4096)
    texts = [parse_html(p)[0] for p in parts]
    assert [len(t) for t in texts] == [4096, 11]
    assert texts[0].endswith("я&") and texts[1] == "<" + "x" * 10
    assert all(p.startswith("<i>") and p.endswith("</i>") for p in parts)  # reopened and closed
    cap = th.split_html("<b>" + "&quot;" * 3000 + "</b>", 1024)
    assert [len(parse_html(p)[0]) for p in cap] == [1024, 1024, 952]


@pytest.mark.parametrize("html", ["<\t>текст", "текст</ \n>", "< >x<b>y</b>"])
def test_split_a_tag_of_whitespace(html):
    """A tag with no name (only whitespace inside) is split like any tag, not an IndexError."""
    parts = th.split_html(html * 40, 64)
    assert parts and all(parts)


@hsettings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "b", "i", "code"]),
                          st.text(alphabet="аб <>&\"xy\n😀", min_size=0, max_size=300)), min_size=1, max_size=30),
       st.sampled_from([64, 200, 1024]))
def test_split_property(chunks, limit):
    html = "".join(f"<{t}>{th.escape(s)}</{t}>" if t else th.escape(s) for t, s in chunks)
    parts = th.split_html(html, limit)
    for p in parts:
        text, _ = parse_html(p)
        assert th.utf16_len(text.strip()) <= limit and text.strip()
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    assert "".join(squash(parse_html(p)[0]) for p in parts) == squash(parse_html(html)[0])


# -- content ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_digest_content_from_summaries(env):
    _, lake = env
    con = lake.connect()
    assert latest_complete_week(con, TODAY) == "2024-W19" or latest_complete_week(con, TODAY) <= "2024-W19"
    data = build_digest(con, WEEK)
    assert data.precomputed and data.kind == "team"
    team = json.loads(lake.read("summaries", "summary_id = ?", [f"team:team:{WEEK}"]).facts.iloc[0])
    assert data.numbers["deals_won"] == team["deals_won"] == len(data.won)
    assert {m["key"] for m in data.managers} <= set(MANAGERS.values())
    r = render_digest(data)
    assert th.visible_len(r.caption) <= 1024 and all(th.visible_len(m) <= 4096 for m in r.messages)
    text = "\n".join(r.messages)
    for needle in ("Неделя в цифрах", "Менеджеры", "Выиграны", "Что сработало", "На что обратить внимание"):
        assert needle in text
    assert r.chart[:8] == b"\x89PNG\r\n\x1a\n"
    # a week with losses lists each lost deal with its reason
    lost_week = next(w for w in sorted(set(lake.read("summaries", "period_kind = 'week' AND scope = 'team'").period))
                     if build_digest(con, w).lost)
    lost = build_digest(con, lost_week)
    body = "\n".join(render_digest(lost, chart=False).messages)
    assert "Проиграны" in body and all(d["loss_reason"] in body for d in lost.lost[:8])
    with pytest.raises(DigestError):
        build_digest(con, "2024-13")


def test_digest_and_answer_render_from_stored_sections_with_the_text_column_emptied(env):
    """The records are the summary: with `summaries.text` blanked, digest and answer say the same."""
    from crmsum import answer as A
    from crmsum.bot import answer_html

    data_dir, lake = env
    rows = lake.read("summaries")
    stored = {r.summary_id: sections_from_json(r.sections) for r in rows.itertuples()}
    lake.write("summaries", rows.assign(text=""))
    assert (lake.read("summaries").text == "").all()
    team = stored[f"team:team:{WEEK}"]
    data = build_digest(lake.connect(), WEEK)
    assert data.worked and data.worked == points_of(team, "worked")[:len(data.worked)]
    assert data.watch and all(p in points_of(team, "failed", "next") for p in data.watch)
    for m in data.managers:
        mine = stored[f"manager:{m['key']}:{WEEK}"]
        assert m["points"] and all(p.cites and p in points_of(mine, *SUMMARY_SECTIONS) for p in m["points"])
    body = "\n".join(render_digest(data, chart=False).messages)
    for p in data.worked + data.watch + [p for m in data.managers for p in m["points"]]:
        assert th.escape(p.text) in body
    # other producers' sections render the same way, after the summary's
    data.extra = [Section("risks", "Риски недели", (Point("risk", "«Поставка» <без движения> 20 дней", lead_id=1),))]
    body = "\n".join(render_digest(data, chart=False).messages)
    assert body.rstrip().endswith("<b>Риски недели</b>\n• «Поставка» &lt;без движения&gt; 20 дней")
    A.reset_contexts()
    try:
        a = A.answer_question(f"Итоги команды за неделю {WEEK}", settings=settings_for(data_dir), lake=lake,
                              today=TODAY, record=False)
    finally:
        A.reset_contexts()
    assert a.source == "precomputed" and a.sections == team
    for sec in team:
        assert f"{sec.title}:" in a.text and all(f"• {p.text}" in a.text for p in sec.points)
    html = "\n".join(answer_html(a))
    assert html.startswith("<b>Менеджер: все") and f"<b>{team[0].title}:</b>" in html


def test_personal_digest_targets():
    managers = [(p, REAL[p]) for p in MANAGERS.values()]
    assert match_manager("Ева Смирнова", managers) == MANAGERS[101]
    assert match_manager("смирнова", managers) == MANAGERS[101]
    assert match_manager(MANAGERS[102], managers) == MANAGERS[102]
    s = settings_for("/tmp/x", telegram_digest_chats="4242:Ева Смирнова, 4242:team, 555:Олег Петров, 9:Никто")
    targets, warnings = digest_targets(s, managers)
    assert {(t.chat_id, t.kind) for t in targets} == {(CHAT_ID, "team"), (4242, f"manager:{MANAGERS[101]}"),
                                                      (4242, "team")}
    assert len(warnings) == 2  # 555 not allowed, 9 not allowed


# -- delivery --------------------------------------------------------------------------------
def test_outbox_mode_writes_md_and_png_without_real_names(env):
    data_dir, lake = env
    s = settings_for(data_dir, telegram_token=None)
    report = deliver_digests(WEEK, settings=s, lake=lake)
    assert report.mode == "outbox" and report.outbox == len(ALLOWED) and report.failed == 0
    for chat in ALLOWED:
        md = (data_dir / "outbox" / WEEK / f"{chat}.md").read_text(encoding="utf-8")
        png = (data_dir / "outbox" / WEEK / f"{chat}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and "Неделя в цифрах" in md
        for name in REAL.values():
            assert name not in md and name.split()[1] not in md
        assert set(PSEUDONYM_RE.findall(md)) & set(MANAGERS.values())
        assert "<b>" not in md and "&amp;" not in md
    rows = deliveries(lake)
    assert {k: r["status"] for k, r in rows.items()} == {(c, "team"): "outbox" for c in ALLOWED}
    again = deliver_digests(WEEK, settings=s, lake=lake)
    assert again.outbox == 0 and again.skipped == len(ALLOWED)


@pytest.mark.slow
def test_sent_once_then_force_resends(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg, telegram_digest_chats="4242:Ева Смирнова")
    r1 = deliver_digests(WEEK, settings=s, lake=lake)
    assert r1.sent == 2 and r1.failed == 0
    sent = tg.sent()
    check_limits(sent)
    assert {r["chat_id"] for r in sent} == set(ALLOWED)
    group = tg.sent(CHAT_ID)
    assert group[0]["method"] == "sendPhoto" and group[0]["photo"][:4] == b"\x89PNG"
    text = "\n".join(r["text"] or r["caption"] for r in group)
    assert "Ева Смирнова" in text and "Олег Петров" in text  # names resolved for the allowed chat
    assert not set(PSEUDONYM_RE.findall(text)) & set(MANAGERS.values())
    personal = "\n".join(r["text"] or r["caption"] for r in tg.sent(4242))
    assert "Личный дайджест: Ева Смирнова" in personal and "Олег Петров" not in personal
    rows = deliveries(lake)
    assert rows[(CHAT_ID, "team")]["status"] == "sent"
    assert json.loads(rows[(CHAT_ID, "team")]["message_ids"]) == [r["message_id"] for r in group]
    assert rows[(4242, f"manager:{MANAGERS[101]}")]["attempts"] == 1

    r2 = deliver_digests(WEEK, settings=s, lake=lake)
    assert r2.sent == 0 and r2.skipped == 2 and len(tg.sent()) == len(sent)

    r3 = deliver_digests(WEEK, settings=s, lake=lake, force=True)
    assert r3.sent == 2 and len(tg.sent()) == 2 * len(sent)
    assert deliveries(lake)[(CHAT_ID, "team")]["attempts"] == 2


def test_failed_send_is_retried_next_run_without_repeating_parts(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg, telegram_allowed_chats=str(CHAT_ID))
    tg.fail_next("sendMessage", error_code=403)
    r1 = deliver_digests(WEEK, settings=s, lake=lake)
    assert r1.failed == 1 and r1.sent == 0 and "403" in r1.errors[0]
    row = deliveries(lake)[(CHAT_ID, "team")]
    assert row["status"] == "failed" and row["attempts"] == 1 and "Forbidden" in row["error"]
    photo_ids = json.loads(row["message_ids"])
    assert len(photo_ids) == 1  # the chart went out before the text failed
    r2 = deliver_digests(WEEK, settings=s, lake=lake)
    assert r2.sent == 1
    methods = [r["method"] for r in tg.sent(CHAT_ID)]
    assert methods.count("sendPhoto") == 1  # resumed after the chart, not repeated
    row = deliveries(lake)[(CHAT_ID, "team")]
    assert row["status"] == "sent" and row["attempts"] == 2 and json.loads(row["message_ids"])[0] == photo_ids[0]


@pytest.mark.slow
def test_crash_mid_run_never_resends_to_a_chat_that_got_it(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg)
    bot = telebot.TeleBot(TOKEN, threaded=False)
    real_send = bot.send_photo

    def crashing_send(chat_id, *a, **kw):
        if chat_id == ALLOWED[1]:
            raise KeyboardInterrupt("the process dies here")
        return real_send(chat_id, *a, **kw)

    bot.send_photo = crashing_send
    with pytest.raises(KeyboardInterrupt):
        deliver_digests(WEEK, settings=s, lake=lake, bot=bot)
    first = len(tg.sent(ALLOWED[0]))
    assert first >= 2 and not tg.sent(ALLOWED[1])
    r = deliver_digests(WEEK, settings=s, lake=lake)
    assert r.sent == 1 and r.skipped == 1
    assert len(tg.sent(ALLOWED[0])) == first and tg.sent(ALLOWED[1])


@pytest.mark.slow
def test_crash_inside_a_chat_resumes_with_the_next_part(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg, telegram_allowed_chats=str(CHAT_ID))
    bot = telebot.TeleBot(TOKEN, threaded=False)

    def dies(*a, **kw):
        raise KeyboardInterrupt("killed after the chart went out")

    bot.send_message = dies
    with pytest.raises(KeyboardInterrupt):
        deliver_digests(WEEK, settings=s, lake=lake, bot=bot)
    assert [m["method"] for m in tg.sent(CHAT_ID)] == ["sendPhoto"]
    row = deliveries(lake)[(CHAT_ID, "team")]
    assert row["status"] == "failed" and row["error"].startswith("interrupted")
    r = deliver_digests(WEEK, settings=s, lake=lake)
    assert r.sent == 1
    methods = [m["method"] for m in tg.sent(CHAT_ID)]
    assert methods.count("sendPhoto") == 1 and methods[1:] and set(methods[1:]) == {"sendMessage"}
    row = deliveries(lake)[(CHAT_ID, "team")]
    assert row["status"] == "sent" and row["error"] is None
    assert json.loads(row["message_ids"]) == [m["message_id"] for m in tg.sent(CHAT_ID)]


@pytest.mark.slow
def test_429_retry_after_is_honoured(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg, telegram_allowed_chats=str(CHAT_ID))
    waits = []
    tg.fail_next("sendPhoto", error_code=429, retry_after=3)
    tg.fail_next("sendMessage", error_code=429, retry_after=2, times=2)
    r = deliver_digests(WEEK, settings=s, lake=lake, sleep=waits.append)
    assert r.sent == 1 and r.failed == 0
    assert [round(w) for w in waits] == [3, 2, 2]
    assert [c["method"] for c in tg.api_calls if c["method"].startswith("send")][:4] == \
        ["sendPhoto", "sendPhoto", "sendMessage", "sendMessage"]
    # a flood wait that never ends: bounded retries, then the chat is marked failed for the next run
    s2 = tg_settings(data_dir, tg, telegram_allowed_chats="4242")
    tg.fail_next("sendPhoto", error_code=429, retry_after=1, times=100)
    waits.clear()
    r2 = deliver_digests(WEEK, settings=s2, lake=lake, sleep=waits.append)
    assert r2.failed == 1 and 1 <= len(waits) <= 5
    assert deliveries(lake)[(4242, "team")]["status"] == "failed"


def test_without_week_takes_latest_complete_week_with_data(env, tg):
    data_dir, lake = env
    s = tg_settings(data_dir, tg, telegram_allowed_chats=str(CHAT_ID))
    r = deliver_digests(settings=s, lake=lake, today=TODAY)
    assert r.week == latest_complete_week(lake.connect(), TODAY) and r.sent == 1
