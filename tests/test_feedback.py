"""Ratings analytics on hand-made `answers` + `feedback` rows."""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import pytest
from rich.console import Console

from crmsum.feedback import FeedbackError, feedback_report, monthly_feedback_summary
from crmsum.lake import Lake
from crmsum.telegram.markup import visible_len


def _answer(aid, q, manager=None, company=None, source="precomputed", backend="offline", day=dt.date(2024, 5, 6)):
    return {"answer_id": aid, "chat_id": -100, "question": q, "manager": manager, "company": company,
            "start": dt.date(2024, 4, 1), "end": dt.date(2024, 4, 30), "source": source, "backend": backend,
            "text": f"Менеджер: {manager or 'все'}\nИсточник: x\n\n• Ответ на «{q}».", "latency_ms": 12.0,
            "created_at": dt.datetime.combine(day, dt.time(10))}


def _rating(aid, user, rating, when):
    return {"feedback_id": f"-100:{aid}:{user}", "answer_id": aid, "chat_id": -100, "user": user, "rating": rating,
            "created_at": when}


@pytest.fixture()
def lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    lake.write("answers", pd.DataFrame([
        _answer("a1", "Что PER-a1b2c3d4 делала в апреле?", manager="PER-a1b2c3d4"),
        _answer("a2", "Что было по Теххренмаш в апреле?", company="Теххренмаш", source="live", backend="llm"),
        _answer("a3", "Итоги команды за апрель", backend="llm"),
        _answer("a4", "Что PER-0badf00d делал по СтройИнвест?", manager="PER-0badf00d", company="СтройИнвест",
                source="live"),
        _answer("a5", "ыыы", source="clarify", backend=None),
        _answer("a6", "Что было в марте?", day=dt.date(2024, 4, 10)),
    ]))
    may, apr = dt.datetime(2024, 5, 6, 12), dt.datetime(2024, 4, 12, 12)
    lake.write("feedback", pd.DataFrame([
        _rating("a1", "TG-00000001", 5, may), _rating("a1", "TG-00000002", 4, may + dt.timedelta(days=7)),
        _rating("a2", "TG-00000001", 1, may), _rating("a2", "TG-00000003", 2, may + dt.timedelta(days=1)),
        _rating("a3", "TG-00000002", 3, may), _rating("a4", "TG-00000001", 4, may),
        _rating("a5", "TG-00000003", 1, may), _rating("zz", "TG-00000003", 2, may),  # answer not stored
        _rating("a6", "TG-00000001", 5, apr), _rating("a6", "TG-00000002", 5, apr),
    ]))
    return lake


def test_report_distributions_and_lowest(lake):
    r = feedback_report(lake)
    assert r.total == 10 and r.raters == 3 and r.unmatched == 1
    assert r.distribution == {1: 2, 2: 2, 3: 1, 4: 2, 5: 3}
    assert r.mean == pytest.approx(3.2)
    be = r.by_backend.set_index("backend")
    assert be.loc["llm", "n"] == 3 and be.loc["llm", "mean"] == pytest.approx(2.0)
    assert be.loc["offline", ["1", "2", "3", "4", "5"]].tolist() == [0, 0, 0, 2, 3]
    assert be.loc["llm", "low_share"] == pytest.approx(2 / 3, abs=1e-3)
    sc = r.by_scope.set_index("scope")
    assert set(sc.index) == {"manager", "company", "team", "manager+company", "clarify", "unknown"}
    assert sc.loc["company", "mean"] == pytest.approx(1.5)
    wk = r.by_week.set_index("week")
    assert wk.loc["2024-W19", "n"] == 7 and wk.loc["2024-W20", "n"] == 1 and wk.loc["2024-W15", "n"] == 2
    low = r.lowest
    assert low["answer_id"].iloc[0] in ("a5", "zz", "a2")
    assert low["mean"].is_monotonic_increasing
    a2 = low.set_index("answer_id").loc["a2"]
    assert a2["question"] == "Что было по Теххренмаш в апреле?" and a2["n"] == 2 and a2["backend"] == "llm"
    assert "Менеджер:" not in (a2["answer"] or "")


def test_since_filters_and_render(lake):
    r = feedback_report(lake, since="2024-05-01")
    assert r.total == 8
    buf = io.StringIO()
    r.render(Console(file=buf, width=160))
    out = buf.getvalue()
    assert "lowest-rated answers" in out and "by backend" in out and "Теххренмаш" in out
    with pytest.raises(FeedbackError):
        feedback_report(lake, since="May")


def test_empty_lake(tmp_path):
    r = feedback_report(Lake(tmp_path / "lake"))
    assert r.total == 0 and r.mean is None and r.lowest.empty
    buf = io.StringIO()
    r.render(Console(file=buf))
    assert "No ratings" in buf.getvalue()
    assert "оценок не было" in monthly_feedback_summary(Lake(tmp_path / "lake"), "2024-05")


def test_monthly_summary_html(lake):
    html = monthly_feedback_summary(lake, "2024-05")
    assert html.startswith("<b>Оценки ответов бота — май 2024</b>")
    assert "Оценок: <b>8</b>" in html
    assert "к прошлому месяцу" in html  # April had ratings (mean 5.0)
    assert "−" in html.split("к прошлому месяцу")[0].splitlines()[-1]
    assert "Хуже всего оценены" in html and "Теххренмаш" in html
    # only tags Telegram knows, balanced
    tags = re.findall(r"</?(\w+)", html)
    assert set(tags) <= {"b", "i", "code"} and tags.count("b") % 2 == 0
    assert visible_len(html) < 4096
    assert monthly_feedback_summary(lake, dt.date(2024, 5, 17)) == html
    with pytest.raises(FeedbackError):
        monthly_feedback_summary(lake, "2024/13")


def test_summary_escapes_html(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write("answers", pd.DataFrame([_answer("x", "<script>Что & как?</script>")]))
    lake.write("feedback", pd.DataFrame([_rating("x", "TG-00000009", 1, dt.datetime(2024, 5, 2))]))
    html = monthly_feedback_summary(lake, "2024-05")
    assert "<script>" not in html and "&lt;script&gt;Что &amp; как?" in html


# -- monthly delivery to the team lead's chat -------------------------------------------------------
LEAD = -100555
TOKEN = "123456789:TEST-crmsum-feedback"


@pytest.fixture()
def fenv(tmp_path, lake):
    """DATA_DIR with the ratings lake above and a vault that knows PER-a1b2c3d4 («Ева & <Смирнова>»)."""
    from crmsum.privacy import Vault

    data_dir = tmp_path
    vault = Vault(data_dir / "vault")
    vault.upsert_person("PER-a1b2c3d4", "Ева & <Смирнова>", "manager")
    vault.close()
    lake.write("answers", pd.DataFrame([_answer("a7", "Почему PER-a1b2c3d4 проиграла СтройИнвест?",
                                                 manager="PER-a1b2c3d4", source="live")]))
    lake.write("feedback", pd.DataFrame([_rating("a7", "TG-00000004", 1, dt.datetime(2024, 5, 20, 9))]))
    return data_dir, lake


@pytest.fixture()
def tg():
    from crmsum.sandbox.telegram_emulator import TelegramEmulator

    with TelegramEmulator(token=TOKEN) as emu, emu.telebot_configured():
        yield emu


def _settings(data_dir, tg=None, **kw):
    from crmsum.config import Settings

    values = dict(llm="offline", data_dir=data_dir, telegram_allowed_chats=f"{LEAD},-100123",
                  telegram_lead_chat=LEAD)
    if tg is not None:
        values.update(telegram_token=TOKEN, telegram_api_url=tg.url)
    values.update(kw)
    return Settings(**values)


def _rows(lake):
    return {(int(r["chat_id"]), r["week"], r["kind"]): r for r in lake.read("deliveries").to_dict("records")}


@pytest.mark.slow
def test_monthly_summary_sent_once_to_the_lead_chat_with_real_names(fenv, tg):
    import json

    from crmsum.delivery import deliver_feedback_summary
    data_dir, lake = fenv
    s = _settings(data_dir, tg)
    r1 = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert (r1.week, r1.mode, r1.sent, r1.failed) == ("2024-05", "telegram", 1, 0)
    sent = tg.sent()
    assert sent and {r["chat_id"] for r in sent} == {LEAD} and all(r["parse_mode"] == "HTML" for r in sent)
    text = "\n".join(r["text"] for r in sent if r.get("text"))
    assert "Оценки ответов бота — май 2024" in text and "Теххренмаш" in text
    assert "Помогает ли crmsum" in text and "год назад" in text  # the impact section
    assert sent[0].get("photo") or sent[0].get("caption")  # its chart comes first
    assert "Ева & <Смирнова>" in text and "PER-a1b2c3d4" not in text  # resolved, and escaped in the HTML
    row = _rows(lake)[(LEAD, "2024-05", "feedback-month")]
    assert row["status"] == "sent" and json.loads(row["message_ids"]) == [r["message_id"] for r in sent]

    r2 = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert r2.sent == 0 and r2.skipped == 1 and len(tg.sent()) == len(sent)
    r3 = deliver_feedback_summary("2024-05", settings=s, lake=lake, force=True)
    assert r3.sent == 1 and len(tg.sent()) == 2 * len(sent)
    assert _rows(lake)[(LEAD, "2024-05", "feedback-month")]["attempts"] == 2


def test_monthly_summary_defaults_to_the_month_before(fenv, tg):
    import datetime as dt

    from crmsum.delivery import deliver_feedback_summary, previous_month

    assert previous_month(dt.date(2024, 6, 1)) == "2024-05" and previous_month(dt.date(2024, 1, 1)) == "2023-12"
    data_dir, lake = fenv
    r = deliver_feedback_summary(settings=_settings(data_dir, tg), lake=lake, today=dt.date(2024, 6, 1))
    assert r.week == "2024-05" and r.sent == 1
    assert "май 2024" in next(m["text"] for m in tg.sent(LEAD) if m.get("text"))


def test_monthly_summary_failure_is_retried_next_run(fenv, tg):
    from crmsum.delivery import deliver_feedback_summary

    data_dir, lake = fenv
    s = _settings(data_dir, tg)
    tg.fail_next("sendMessage", error_code=403)
    r1 = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert r1.failed == 1 and r1.sent == 0 and "403" in r1.errors[0] and TOKEN not in r1.errors[0]
    row = _rows(lake)[(LEAD, "2024-05", "feedback-month")]
    assert row["status"] == "failed" and row["attempts"] == 1
    r2 = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert r2.sent == 1 and len(tg.sent(LEAD)) >= 1
    assert _rows(lake)[(LEAD, "2024-05", "feedback-month")]["status"] == "sent"


def test_lead_chat_must_be_allowed(fenv, tg):
    from crmsum.delivery import deliver_feedback_summary

    data_dir, lake = fenv
    s = _settings(data_dir, tg, telegram_allowed_chats="-100123")
    r = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert r.sent == 0 and tg.sent() == [] and "not in CRMSUM_TELEGRAM_ALLOWED_CHATS" in r.warnings[0]
    assert lake.read("deliveries").empty
    r = deliver_feedback_summary("2024-05", settings=_settings(data_dir, tg, telegram_lead_chat=None), lake=lake)
    assert r.sent == 0 and "CRMSUM_TELEGRAM_LEAD_CHAT" in r.warnings[0] and tg.sent() == []


def test_monthly_summary_without_token_goes_to_the_outbox_once(fenv):
    from crmsum.delivery import deliver_feedback_summary

    data_dir, lake = fenv
    s = _settings(data_dir)
    r = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert (r.mode, r.outbox) == ("outbox", 1)
    html = (data_dir / "outbox" / "2024-05" / f"feedback_{LEAD}.html").read_text(encoding="utf-8")
    assert html.startswith(monthly_feedback_summary(lake, "2024-05")) and "Смирнова" not in html  # pseudonyms only
    assert "Помогает ли crmsum" in html
    png = (data_dir / "outbox" / "2024-05" / f"feedback_{LEAD}.png").read_bytes()
    assert png.startswith(b"\x89PNG")  # the chart: volume against a year before, and the rating line
    assert _rows(lake)[(LEAD, "2024-05", "feedback-month")]["status"] == "outbox"
    again = deliver_feedback_summary("2024-05", settings=s, lake=lake)
    assert again.outbox == 0 and again.skipped == 1


def test_monthly_feedback_flow(fenv, monkeypatch):
    import importlib.util
    from pathlib import Path

    import crmsum.delivery as D

    data_dir, lake = fenv
    calls = []
    spec = importlib.util.spec_from_file_location(
        "monthly_feedback_flow", Path(__file__).resolve().parents[1] / "flows" / "monthly_feedback.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "deliver_feedback_summary",
                        lambda month, force=False, settings=None: calls.append((month, force)) or
                        D.deliver_feedback_summary(month, force=force, settings=_settings(data_dir), lake=lake))
    report = mod.deliver.fn("2024-05", False)
    assert calls == [("2024-05", False)] and report["outbox"] == 1 and report["week"] == "2024-05"
