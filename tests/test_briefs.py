"""Deal briefs: a hand-over or the decisive stage in the synced window -> one brief to the manager's chat."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crmsum.briefs import WINDOW_DAYS, build_brief, decisive_stages, triggers
from crmsum.delivery import deliver_briefs
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from delivery_env import REAL, TOKEN, build_base, copy_env, settings_for
from lake_fixture import AS_OF, MANAGERS

NOW = AS_OF
EVA_CHAT = 4242  # allowed in delivery_env; mapped to Ева (MANAGERS[101]) below


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("briefs_base") / "data")


def _event(lake, event_id: str, lead_id: int, at: dt.datetime, **kw) -> None:
    row = {"event_id": event_id, "lead_id": lead_id, "entity_type": "lead", "created_by": 101, "created_at": at}
    row.update(kw)
    lake.write("crm_events", pd.DataFrame([row]))


@pytest.fixture
def env(base, tmp_path):
    data_dir, lake = copy_env(base, tmp_path / "data")
    # lead 9000 is open and Ева's: handed over to her yesterday; lead 9004 (Олег's) handed over too
    _event(lake, "01hand0001", 9000, NOW - dt.timedelta(days=1), type="entity_responsible_changed",
           responsible_before=102, responsible_after=101)
    _event(lake, "01hand0002", 9004, NOW - dt.timedelta(hours=5), type="entity_responsible_changed",
           responsible_before=101, responsible_after=102)
    _event(lake, "01hand0003", 9000, NOW - dt.timedelta(days=WINDOW_DAYS + 5), type="entity_responsible_changed",
           responsible_before=103, responsible_after=101)  # too old: the first sync brings years of these
    _event(lake, "01stage001", 9000, NOW - dt.timedelta(hours=2), type="lead_status_changed",
           status_before=1002, status_after=1003, pipeline_after=10)
    s = settings_for(data_dir, telegram_digest_chats=f"{EVA_CHAT}:{REAL[MANAGERS[101]]}")
    return s, lake


@pytest.mark.slow
def test_triggers_find_recent_handovers_and_the_decisive_stage(env):
    s, lake = env
    con = lake.connect()
    try:
        assert decisive_stages(con) == {(10, 1003)}  # the stage right before won
        assert decisive_stages(con, "переговоры") == {(10, 1002)}
        found = {(t.kind, t.lead_id, t.manager) for t in triggers(con, NOW)}
    finally:
        con.close()
    assert found == {("handover", 9000, MANAGERS[101]), ("handover", 9004, MANAGERS[102]),
                     ("stage", 9000, MANAGERS[101])}


def test_brief_holds_the_deal_history_as_records(env):
    s, lake = env
    con = lake.connect()
    try:
        trig = next(t for t in triggers(con, NOW) if t.kind == "handover" and t.lead_id == 9000)
        brief = build_brief(con, trig, NOW)
    finally:
        con.close()
    keys = [sec.key for sec in brief.sections]
    assert "tasks" in keys and "last_contact" in keys
    assert "Поставка оборудования #9000" in brief.title and "₽" in brief.title
    last = next(sec for sec in brief.sections if sec.key == "last_contact").points[0]
    assert last.cites and last.cites[0].split(":")[0] in ("note", "task")
    assert all("Ева" not in p.text for sec in brief.sections for p in sec.points)  # pseudonyms only


@pytest.mark.slow
def test_outbox_once_and_unmapped_manager_logged_once(env):
    s, lake = env
    first = deliver_briefs(s, lake, now=NOW)
    assert first.mode == "outbox" and first.outbox == 2 and first.failed == 0  # Ева: hand-over + stage
    assert len([w for w in first.warnings if "no chat for manager" in w]) == 1  # Олег has no chat
    html = open(first.files[0], encoding="utf-8").read()
    assert "Вам передана сделка" in html or "решающем этапе" in html
    again = deliver_briefs(s, lake, now=NOW)
    assert again.outbox == 0 and again.skipped == 2 and not [w for w in again.warnings if "no chat" in w]


@pytest.mark.slow
def test_sent_exactly_once_over_the_bot_api(env):
    s, lake = env
    with TelegramEmulator(TOKEN) as tg:
        s = settings_for(s.data_dir, telegram_digest_chats=s.telegram_digest_chats, telegram_token=TOKEN,
                         telegram_api_url=tg.url)
        first = deliver_briefs(s, lake, now=NOW)
        sent = tg.sent(EVA_CHAT)
        again = deliver_briefs(s, lake, now=NOW)
        assert len(tg.sent(EVA_CHAT)) == len(sent)
    assert first.sent == 2 and again.sent == 0 and again.skipped == 2
    text = " ".join(m.get("text", "") for m in sent)
    assert "Вам передана сделка" in text and "Сделка на решающем этапе" in text
    assert "Открытые задачи и обещания" in text and "Последний контакт" in text
