"""The answer path shared by the bot and `crmsum ask`: precomputed when covered, live otherwise."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from crmsum import answer as A
from crmsum.privacy import PSEUDONYM_RE
from delivery_env import REAL, TODAY, build_base, copy_env, settings_for
from lake_fixture import MANAGERS

EVA, OLEG, ANNA = MANAGERS[101], MANAGERS[102], MANAGERS[103]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("answer_base") / "data")


@pytest.fixture(scope="module")
def env(base, tmp_path_factory):
    data_dir, lake = copy_env(base, tmp_path_factory.mktemp("answer") / "data")
    return settings_for(data_dir), lake


def ask(env, q, **kw):
    s, lake = env
    return A.answer_question(q, settings=s, lake=lake, today=TODAY, **kw)


def summary_body(lake, sid):
    text = lake.read("summaries", "summary_id = ?", [sid]).text.iloc[0]
    return "\n".join(text.splitlines()[1:]).strip()


def test_precomputed_manager_month(env):
    a = ask(env, "Что Олег Петров делал в марте?")
    assert (a.source, a.manager, a.company, a.start, a.end) == ("precomputed", OLEG, None, dt.date(2024, 3, 1),
                                                              dt.date(2024, 3, 31))
    assert a.period == "2024-03" and a.backend == "offline" and a.answer_id
    assert summary_body(env[1], f"manager:{OLEG}:2024-03") in a.text
    assert a.text.startswith(f"Менеджер: {OLEG} · Компания: все · Период: март 2024")
    assert "precomputed" in a.text.splitlines()[1]
    shown = a.display(env[0] and A.get_context(*env).vault)
    assert shown.startswith("Менеджер: Олег Петров") and OLEG not in shown


def test_precomputed_team_week_and_company_month(env):
    a = ask(env, "Итоги команды за неделю 2024-W10")
    assert (a.source, a.manager, a.company, a.period) == ("precomputed", None, None, "2024-W10")
    assert (a.start, a.end) == (dt.date(2024, 3, 4), dt.date(2024, 3, 10))
    c = ask(env, "Что было по Теххренмашу в марте?")
    assert (c.source, c.company, c.period) == ("precomputed", "Теххренмаш", "2024-03")
    assert summary_body(env[1], "company:501:2024-03") in c.text


def test_live_when_not_covered(env):
    a = ask(env, "Что Ева делала в марте по Теххренмашу?")  # manager + company: never precomputed
    assert (a.source, a.manager, a.company) == ("live", EVA, "Теххренмаш")
    assert (a.start, a.end) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    assert "live" in a.text.splitlines()[1] and "Что произошло" in a.text
    b = ask(env, "Что было у Анны с 4 по 12 марта?")  # not a week or a month
    assert (b.source, b.manager, b.start, b.end) == ("live", ANNA, dt.date(2024, 3, 4), dt.date(2024, 3, 12))
    # answer texts carry pseudonyms only
    for ans in (a, b):
        for name in REAL.values():
            assert name not in ans.text


def test_no_period_means_latest_complete_week(env):
    a = ask(env, "Как дела у Олега Петрова?")
    assert a.manager == OLEG and a.end - a.start == dt.timedelta(days=6) and a.start.weekday() == 0
    assert a.end < TODAY


def test_unclear_and_ambiguous_questions_get_clarifications(env):
    vault = A.get_context(*env).vault
    a = ask(env, "Как дела?")
    assert a.clarify and a.answer_id is None
    shown = a.display(vault)
    assert "Ева Смирнова" in shown and "Теххренмаш" in shown
    b = ask(env, "Что делал Олег в марте?")  # Олег Петров or Олег Сидоров
    assert b.clarify and set(b.candidates) == {OLEG, "PER-0ddba115"}
    assert "Олег Петров" in b.display(vault) and "Олег Сидоров" in b.display(vault)
    assert b.to_json(vault)["source"] == "live" and set(b.to_json(vault)) == {"answer", "source", "manager", "company",
                                                                               "start", "end"}


def test_answers_are_recorded_anonymized(env):
    s, lake = env
    a = ask(env, "Что Ева Смирнова делала в марте? Её телефон +7 916 123-45-67", chat_id=-100123)
    A.flush()
    row = lake.read("answers", "answer_id = ?", [a.answer_id]).iloc[0]
    assert row.chat_id == -100123 and row.source == a.source and row.manager == EVA and row.text == a.text
    assert "Смирнова" not in row.question and "916" not in row.question and row.latency_ms > 0
    assert PSEUDONYM_RE.search(row.question)


def test_record_feedback(env):
    s, lake = env
    fid = A.record_feedback("abc123", -100123, 55, 1001, 4, s, lake)
    A.record_feedback("abc123", -100123, 55, 1001, 5, s, lake)  # a user changes their mind
    rows = lake.read("feedback", "answer_id = 'abc123'")
    assert len(rows) == 1 and rows.rating.iloc[0] == 5 and rows.feedback_id.iloc[0] == fid
    assert rows.user.iloc[0].startswith("TG-") and fid.endswith(rows.user.iloc[0])
    with pytest.raises(ValueError):
        A.record_feedback("abc123", -100123, 55, 1001, 9, s, lake)


def test_covering_period():
    assert A.covering_period(dt.date(2024, 3, 4), dt.date(2024, 3, 10)) == ("week", "2024-W10")
    assert A.covering_period(dt.date(2024, 2, 1), dt.date(2024, 2, 29)) == ("month", "2024-02")
    assert A.covering_period(dt.date(2024, 12, 30), dt.date(2025, 1, 5)) == ("week", "2025-W01")
    assert A.covering_period(dt.date(2024, 3, 4), dt.date(2024, 3, 11)) is None
    assert A.covering_period(dt.date(2024, 3, 1), dt.date(2024, 4, 30)) is None


def test_rate_limiter_and_access_gate():
    now = [0.0]
    rl = A.RateLimiter(2, clock=lambda: now[0])
    assert rl.allow(1)[0] and rl.allow(1)[0]
    ok, wait = rl.allow(1)
    assert not ok and 0 < wait <= 3600 and rl.allow(2)[0]
    now[0] = 3601
    assert rl.allow(1)[0]
    gate = A.AccessGate({5})
    assert gate.check(5) == "ok" and gate.check(6) == "refuse" and gate.check(6) == "ignore"


def test_cli_ask_json(env, monkeypatch):
    from crmsum.cli import app
    from crmsum.config import reset_settings

    s, _ = env
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("CRMSUM_LLM", "offline")
    monkeypatch.delenv("CRMSUM_LAKE_URL", raising=False)
    reset_settings()
    try:
        res = CliRunner().invoke(app, ["ask", "Что Олег Петров делал в марте 2024?", "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert list(out) == ["answer", "source", "manager", "company", "start", "end"]
        assert out["source"] == "precomputed" and out["manager"] == "Олег Петров" and out["company"] is None
        assert (out["start"], out["end"]) == ("2024-03-01", "2024-03-31")
        assert "Олег Петров" in out["answer"]  # the operator's terminal sees real names
        res = CliRunner().invoke(app, ["ask", "Что Ева делала в марте 2024 по Теххренмашу?", "--json"])
        out = json.loads(res.stdout)
        assert out["source"] == "live" and out["manager"] == "Ева Смирнова" and out["company"] == "Теххренмаш"
        res = CliRunner().invoke(app, ["ask", "Что Олег Петров делал в марте 2024?"])
        assert res.exit_code == 0 and res.stdout.startswith("Менеджер: Олег Петров")
    finally:
        reset_settings()
