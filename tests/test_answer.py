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
from planted_pii import outside_pseudonyms

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
                                                                               "start", "end", "intent", "unresolved",
                                                                               "period_defaulted"}
    assert b.to_json(vault)["intent"] == "clarify"


def test_answers_are_recorded_anonymized(env):
    s, lake = env
    a = ask(env, "Что Ева Смирнова делала в марте? Её телефон +7 916 123-45-67", chat_id=-100123)
    A.flush()
    row = lake.read("answers", "answer_id = ?", [a.answer_id]).iloc[0]
    assert row.chat_id == -100123 and row.source == a.source and row.manager == EVA and row.text == a.text
    assert "Смирнова" not in row.question and "916" not in outside_pseudonyms(row.question) and row.latency_ms > 0
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
        assert list(out) == ["answer", "source", "manager", "company", "start", "end", "intent", "unresolved",
                             "period_defaulted"]
        assert (out["intent"], out["unresolved"], out["period_defaulted"]) == ("activity", [], False)
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



def test_ask_as_a_process_returns_first_and_records_in_a_detached_recorder(env, tmp_path):
    """`crmsum ask` in a process of its own prints, exits, and a detached recorder writes the row."""
    import os
    import subprocess
    import sys
    import time

    s, lake = env
    question = "Что Ева Смирнова делала в марте 2024? Звонил Richard Gere, +7 916 765-43-21"
    proc = subprocess.run([sys.executable, "-m", "crmsum.cli", "ask", question, "--json"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, CRMSUM_DATA_DIR=str(s.data_dir),
                                                           CRMSUM_LLM="offline"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manager"] == "Ева Смирнова"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        rows = lake.read("answers", "question LIKE '%звонил%' OR question LIKE '%Звонил%'")
        if len(rows):
            break
        time.sleep(0.2)
    assert len(rows) == 1, "the detached recorder wrote nothing"
    stored = rows.question.iloc[0]
    assert not any(v in stored for v in ("Смирнова", "Richard", "Gere", "765-43")) and PSEUDONYM_RE.search(stored)

# -- comparisons ----------------------------------------------------------------------------------
def test_compare_managers_precomputed_month(env):
    a = ask(env, "Кто выиграл больше в марте: Ева или Анна?")
    assert (a.source, a.manager, a.company) == ("precomputed", EVA, None)
    assert (a.start, a.end, a.period) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31), "2024-03")
    assert a.compared == [EVA, ANNA] and a.leader == [EVA]
    lines = a.text.splitlines()
    assert lines[0].startswith(f"Сравнение: {EVA} / {ANNA}") and "precomputed" in lines[1]
    assert f"По выигранным сделкам впереди {EVA}: 6 сделок (против: {ANNA} — 0 сделок)." in a.text
    for who in (EVA, ANNA):  # both sides: won / lost with amounts, win rate, activity
        line = next(ln for ln in lines if ln.startswith(f"• {who}:"))
        assert "выиграно" in line and "проиграно" in line and "доля побед" in line
    assert "3 600 000 ₽" in a.text and a.text.count("активность:") == 2
    for name in REAL.values():
        assert name not in a.text  # pseudonyms only; display resolves them
    shown = a.display(A.get_context(*env).vault)
    assert shown.startswith("Сравнение: Ева Смирнова / Анна Кузнецова") and "впереди Ева Смирнова" in shown


def test_compare_precomputed_facts_equal_live_facts(env):
    """Precomputed parts give the same won/lost/activity numbers as SQL over the same days."""
    s, lake = env
    prep = A.prepare("Сравни Еву и Олега Петрова за март", s, lake, TODAY)
    assert [p.summary_id for p in prep.compare] == [f"manager:{EVA}:2024-03", f"manager:{OLEG}:2024-03"]
    assert not prep.live
    ctx = A.get_context(s, lake)
    src, pre = A.compare_facts(ctx, prep)
    for p in prep.compare:
        p.summary_id = None
    assert prep.live
    src2, live = A.compare_facts(ctx, prep)
    assert (src, src2) == ("precomputed", "live")
    keys = ("deals_won", "deals_lost", "won_amount", "lost_amount", "deals_touched", "notes", "calls")
    assert [{k: f[k] for k in keys} for f in pre] == [{k: f[k] for k in keys} for f in live]
    c = ask(env, "Сравни Еву и Олега Петрова с 1 по 30 марта")  # not a week or a month
    assert c.source == "live" and c.compared == [EVA, OLEG] and "live" in c.text.splitlines()[1]


def test_compare_by_amount_and_by_win_rate(env):
    a = ask(env, "У кого выручка больше в марте: Ева или Олег Петров?")
    assert a.leader == [EVA] and f"По сумме выигранных сделок впереди {EVA}: 3 600 000 ₽" in a.text
    b = ask(env, "Ева или Олег Петров — у кого больше сумма проигранных сделок в марте?")
    assert b.leader == [OLEG] and "По сумме проигранных сделок впереди" in b.text
    assert A.compare_metric("Кто выиграл больше: Галина или Николай?") == "won"
    assert A.compare_metric("Сравни Еву и Ивана по выручке") == "won_amount"
    assert A.compare_metric("У кого выше конверсия?") == "win_rate"
    assert A.compare_metric("Кто активнее?") == "activity"


def test_compare_within_a_company_is_live(env):
    a = ask(env, "Ева или Анна — кто больше выиграл по Теххренмашу в марте?")
    assert (a.source, a.manager, a.company) == ("live", EVA, "Теххренмаш")
    assert a.compared == [EVA, ANNA] and a.leader == [EVA]
    assert "Компания: Теххренмаш" in a.text.splitlines()[0]


def test_compare_companies(env):
    a = ask(env, "Теххренмаш или СтройИнвест — где больше сделок в марте?")
    assert (a.source, a.manager, a.company) == ("precomputed", None, "Теххренмаш")
    assert a.compared == ["Теххренмаш", "СтройИнвест"]
    assert a.text.startswith("Сравнение: Теххренмаш / СтройИнвест")
    assert "• Теххренмаш:" in a.text and "• СтройИнвест:" in a.text


def test_compare_tie_and_nothing_to_compare():
    f0 = {"deals_won": 0, "deals_lost": 0}
    text, leaders = A.compare_verdict(["A", "B"], [f0, f0], "won")
    assert leaders == [] and "лидера нет" in text
    text, leaders = A.compare_verdict(["A", "B", "C"], [{"deals_won": 2}, {"deals_won": 2}, {"deals_won": 1}], "won")
    assert leaders == ["A", "B"] and "впереди A и B" in text and "C — 1 сделка" in text
    text, leaders = A.compare_verdict(["A", "B"], [{"deals_won": 1, "deals_lost": 1}, {"deals_won": 0}], "win_rate")
    assert leaders == ["A"] and "50%" in text and "нет закрытых сделок" in text


def test_compare_json_keeps_the_design_keys(env):
    vault = A.get_context(*env).vault
    out = ask(env, "Сравни Еву и Анну за прошлый месяц").to_json(vault)
    assert list(out) == ["answer", "source", "manager", "company", "start", "end", "intent", "unresolved",
                         "period_defaulted"]
    assert out["intent"] == "compare"
    assert out["manager"] == "Ева Смирнова" and out["company"] is None
    assert (out["start"], out["end"]) == ("2024-04-01", "2024-04-30")
    assert "Анна Кузнецова" in out["answer"] and out["source"] in ("precomputed", "live")


def test_explicit_week_comes_from_the_parser(env):
    assert not hasattr(A, "_explicit_week")
    a = ask(env, "Что Ева делала на 10-й неделе?")
    assert (a.source, a.manager, a.period) == ("precomputed", EVA, "2024-W10")
    b = ask(env, "Итоги команды, неделя 10 2024")
    assert (b.start, b.end, b.source) == (dt.date(2024, 3, 4), dt.date(2024, 3, 10), "precomputed")


# -- intents ------------------------------------------------------------------------------------
def _leads(lake):
    df = lake.read("crm_leads")
    df["outcome"] = df.status_id.map({142: "won", 143: "lost"}).fillna("open")
    return df


def test_deals_lists_every_matching_deal_with_reason(env):
    lead = _leads(env[1])
    want = lead[(lead.outcome == "lost") & (lead.loss_reason == "Дорого")]
    a = ask(env, "Какие сделки проиграли по цене?")
    assert a.intent == "deals" and a.period_defaulted and "всю историю" in a.text
    assert sorted(d["lead_id"] for d in a.items) == sorted(want.lead_id) and len(want) > 0
    for lid in want.lead_id:
        assert a.text.count(f"#{lid}") == 1  # each deal once
    assert f"Найдено {len(want)} " in a.text and "Дорого" in a.text


def test_metric_gives_the_figure_with_its_base(env):
    lead = _leads(env[1])
    won = lead[(lead.outcome == "won") & (lead.responsible_user_id == 101)]
    a = ask(env, "Какой средний чек у Евы Смирновой?")
    assert (a.intent, a.manager) == ("metric", EVA) and len(won) > 0
    assert a.value == pytest.approx(won.price.mean())
    assert f"база: {len(won)} " in a.text
    rate = ask(env, "Какая конверсия у Олега Петрова в марте 2024?")
    assert rate.intent == "metric" and not rate.period_defaulted and rate.items[0]["metric"] == "win_rate"


def test_ranking_orders_managers_with_their_base(env):
    lead = _leads(env[1])
    closed = lead[lead.outcome != "open"]
    by = closed.groupby("responsible_user_id").outcome.apply(lambda s: (s == "won").mean())
    a = ask(env, "Кто лучший по конверсии?")
    assert a.intent == "ranking" and a.period_defaulted
    got = [r["key"] for r in a.items if r["value"] is not None]
    from lake_fixture import MANAGERS as PSEUDO
    assert [PSEUDO[u] for u in by.sort_values(ascending=False, kind="stable").index][:1] == got[:1] or \
        by.max() == by.min()
    assert all("база:" in line for line in a.text.splitlines() if line[:2] in ("1.", "2.", "3."))


def test_unknown_name_is_said_not_dropped(env):
    a = ask(env, "Что Зоя делала в марте 2024 по Теххренмашу?")
    assert a.unresolved == ["Зоя"] and a.company == "Теххренмаш" and a.manager is None
    assert "Не нашёл менеджера «Зоя» — вот кого знаю:" in a.text
    out = a.to_json(A.get_context(*env).vault)
    assert out["unresolved"] == ["Зоя"] and "Ева Смирнова" in out["answer"]


def test_an_unknown_name_in_an_empty_lake_says_there_is_nobody(tmp_path):
    from crmsum.lake import Lake

    s = settings_for(tmp_path / "data")
    a = A.answer_question("Что Игорь делал в марте 2024?", settings=s, lake=Lake(s.lake_dir), record=False)
    assert a.unresolved == ["Игорь"]
    assert "Не нашёл менеджера «Игорь» — в CRM пока нет ни одного менеджера." in a.text and "знаю: ." not in a.text


def test_no_period_default_is_said(env):
    a = ask(env, "Как дела у Олега Петрова?")
    assert a.period_defaulted and "последнюю полную неделю" in a.text
    m = ask(env, "Сколько сделок выиграл Олег Петров?")
    assert m.period_defaulted and m.intent == "metric" and "всю историю" in m.text


def test_why_company_shows_every_loss_and_stalled_and_what_wins(env):
    lead = _leads(env[1])
    lost = lead[(lead.outcome == "lost") & (lead.company_id == 501)]
    a = ask(env, "Почему проиграли Теххренмаш?")
    assert a.intent == "why"
    for lid in lost.lead_id:
        assert f"#{lid}" in a.text
    s = ask(env, "Какие сделки висят без движения?")
    assert s.intent == "stalled" and s.source in ("live", "precomputed")
    w = ask(env, "Что помогает выигрывать сделки?")
    assert w.intent == "what_wins" and "по причинам" in w.text


@pytest.mark.parametrize("q", ["x" * 4000, "🙂🙂🙂", "/ask", "Что было 31 февраля?", "Что будет в 2031 году?",
                               "Что было по Теxхренмашу в мартe 2024?"])
def test_bad_input_gets_a_short_clarification_or_a_true_answer(env, q):
    a = ask(env, q)
    if q.startswith("Что было по Те"):
        assert a.company == "Теххренмаш"  # lookalike Latin letters read as Cyrillic
        return
    assert a.clarify and len(a.text) < 300 and a.intent == "clarify"


def test_llm_extractor_on_the_answer_path_never_invents_and_never_sees_names(env):
    from pydantic import SecretStr

    from crmsum.sandbox.llm_emulator import LLMEmulator

    s, lake = env
    with LLMEmulator(api_key="sk-ask") as emu:
        sl = s.model_copy(update={"llm": "llm", "openai_api_key": SecretStr("sk-ask"), "openai_base_url": emu.url,
                                  "llm_model": "emu"})
        A.reset_contexts()
        try:
            known = A.answer_question("Какие сделки проиграла Ева Смирнова в марте 2024?", sl, lake, today=TODAY,
                                      record=False)
            assert known.intent == "deals" and not any(
                (b.get("tools") or [{}])[0].get("function", {}).get("name") == "QuestionFields" for b in emu.requests)
            a = A.answer_question("Сводка по «Ромашкин Двор»: Ева Смирнова, март 2024", sl, lake, today=TODAY,
                                  record=False)
        finally:
            A.reset_contexts()
    extract = [b for b in emu.requests
               if (b.get("tools") or [{}])[0].get("function", {}).get("name") == "QuestionFields"]
    assert len(extract) == 1  # asked once, for the question the rules could not fully read
    sent = json.dumps(extract[0], ensure_ascii=False)
    assert "<<<ЗАПИСИ" in sent and "Ева Смирнова" not in sent and "Смирнова" not in sent  # fenced, anonymized
    assert a.company in (None, *A.get_context(s, lake).companies)  # never an invented company
    assert a.company is None and "Не нашёл компанию «Ромашкин" in a.text


def test_names_after_a_preposition_take_its_case():
    from crmsum.answer.display import inflect_name

    assert inflect_name("Кирилл Фролов", "ablt") == "Кириллом Фроловым"
    assert inflect_name("Анна Кузнецова", "gent") == "Анны Кузнецовой"
    assert inflect_name("Анна Кузнецова", "nomn") == "Анна Кузнецова"


def test_count_of_won_deals_counts_by_close_date(env):
    lead = _leads(env[1])
    closed = lead.closed_at.dt.date
    want = lead[(lead.outcome == "won") & (lead.responsible_user_id == 101)
                & (closed >= dt.date(2024, 3, 1)) & (closed <= dt.date(2024, 3, 31))]
    a = ask(env, "Сколько сделок выиграла Ева Смирнова в марте 2024?")
    assert a.intent == "metric" and a.value == len(want)


def test_similar_deals_from_the_vector_store(env):
    from crmsum import retrieval

    s, lake = env
    before = ask(env, "Похожие сделки на СтройИнвест")
    assert before.intent == "similar" and before.company == "СтройИнвест"
    assert "не проиндексированы" in before.text and not before.items  # honest without embeddings
    retrieval.update_embeddings(lake, settings=s)
    A.reset_contexts()
    a = ask(env, "Похожие сделки на СтройИнвест")
    assert a.intent == "similar" and a.items and "сходство" in a.text
    lead_ids = set(env[1].read("crm_leads").lead_id)
    assert {d["lead_id"] for d in a.items} <= lead_ids


class _Tables:
    """A lake that only keeps what is written to it (the writer's one dependency)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, int]] = []

    def write(self, name, data) -> int:
        self.written.append((name, data.num_rows))
        return data.num_rows


def test_recorder_waits_for_a_pause_and_flush_writes_at_once():
    """Recording must not anonymize (NER) in the middle of a burst of questions: rows wait for a pause in
    the answers; `flush` writes at once."""
    from crmsum.answer.record import BatchWriter

    lake = _Tables()
    w = BatchWriter(lake, str.upper, quiet=3600, max_wait=3600)
    row = {"answer_id": "a1", "question": "Что Ева делала?", "text": "ответ", "source": "precomputed"}
    w.put("answers", row)
    w.put("answers", dict(row, answer_id="a2"))
    assert lake.written == []  # no pause yet: nothing anonymized or written
    w.flush(timeout=30)
    assert lake.written == [("answers", 2)]
    w.close()
