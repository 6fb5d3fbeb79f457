"""Evaluation: metric definitions on hand-made cases, the question set from a generated + ingested
sample account, eval rows in the lake without real names, and the LLM judge over real HTTP."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from crmsum.evaluation.judge import LLMJudge
from crmsum.evaluation.claims import claims
from crmsum.evaluation.metrics import (Context, RefClaim, Sample, Similarity, answer_correctness,
                                       answer_relevancy, context_precision, context_recall, faithfulness,
                                       fact_f1, id_context_recall, score_offline, semantic_similarity)

FACTS = {"scope": "manager", "key": "PER-a1b2c3d4", "label": "PER-a1b2c3d4", "period_kind": "month",
         "period": "2024-03", "start": "2024-03-01", "end": "2024-03-31", "deals_won": 2, "won_amount": 1_570_000,
         "deals_lost": 1, "lost_amount": 480_000, "win_rate": 0.6667, "calls": 7, "notes": 12,
         "loss_reasons": [{"reason": "Дорого", "count": 1}]}
NOTE = Context("note:501", "Созвонились с ЛПР PER-11aa22bb, клиент просит скидку 7% и ждёт КП до пятницы.")
EVENT = Context("event:01ev000007", "Сделка «Поставка насосов» проиграна, причина: Дорого.")
CHAT = Context("msg:-100123:1005", "Закрыли Теххренмаш, договор подписан!")
CONTEXTS = [Context("facts", data=FACTS), NOTE, EVENT, CHAT]
COMPANIES = ["Теххренмаш", "ООО «СтройИнвест»"]

GOOD = """Менеджер: PER-a1b2c3d4 · Период: март 2024 (01.03.2024–31.03.2024)
Источник: готовая сводка (precomputed)

Что произошло:
• Итоги: 2 сделки выиграны на 1 570 000 ₽, 1 сделка проиграна на 480 000 ₽ (конверсия 67%).
• Активность: 7 звонков, 12 заметок.
• Созвонились с ЛПР PER-11aa22bb, клиент просит скидку 7% и ждёт КП до пятницы. [note:501]

Что не получилось:
• Сделка «Поставка насосов» проиграна, причина: Дорого. [event:01ev000007]
• Закрыли Теххренмаш, договор подписан! [msg:-100123:1005]"""


# -- metric definitions -----------------------------------------------------------------------
def test_claims_split_sentences_skip_headers_and_keep_citations():
    cs = claims(GOOD)
    texts = [c.text for c in cs]
    assert not any(t.endswith(":") for t in texts) and not any(t.startswith("Источник") for t in texts)
    assert len(cs) == 6
    assert cs[3].cites == ["note:501"] and "[note" not in cs[3].text


def test_faithfulness_fully_supported_is_one():
    assert faithfulness(GOOD, CONTEXTS, COMPANIES) == 1.0


def test_faithfulness_invented_number_lowers_it():
    bad = GOOD.replace("1 570 000", "2 570 000")
    f = faithfulness(bad, CONTEXTS, COMPANIES)
    assert f == pytest.approx(5 / 6, abs=1e-3)
    assert faithfulness(GOOD.replace("скидку 7%", "скидку 15%"), CONTEXTS, COMPANIES) < 1


def test_faithfulness_other_unsupported_claims():
    # an unknown pseudonym, a company nobody mentioned, a cited record that was not retrieved, made-up prose
    for extra in ("• Встреча с PER-deadbeef прошла отлично.", "• Подписан договор со СтройИнвест.",
                  "• Клиент согласовал оплату. [note:999]", "• Руководство одобрило бюджет на следующий квартал."):
        assert faithfulness(GOOD + "\n" + extra, CONTEXTS, COMPANIES) == pytest.approx(6 / 7, abs=1e-3), extra
    # a citation of the wrong record: the quote does not match what it cites
    assert faithfulness("• Закрыли Теххренмаш, договор подписан! [note:501]", CONTEXTS, COMPANIES) == 0.0
    assert faithfulness("", CONTEXTS) is None


def test_context_precision_is_ranked():
    assert context_precision([True, True, True]) == 1.0
    assert context_precision([True, False, True]) == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert context_precision([False, True, True]) == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-4)
    assert context_precision([True, True, False]) == 1.0  # irrelevant items ranked last cost nothing
    assert context_precision([False, False]) == 0.0 and context_precision([]) is None
    # an irrelevant context in a sample lowers it
    ref = [RefClaim("x", [2], ["event:01ev000007"])]
    base = Sample("q", GOOD, [Context("facts", data=FACTS, relevant=True), EVENT], "r", ref, ["event:01ev000007"])
    noisy = Sample("q", GOOD, [Context("facts", data=FACTS, relevant=True), Context("note:77", "шум", relevant=False),
                               EVENT], "r", ref, ["event:01ev000007"])
    assert score_offline(base)["context_precision"] == 1.0
    assert score_offline(noisy)["context_precision"] < 1.0


def test_context_recall_missing_reference_lowers_it():
    ref = [RefClaim("PER-a1b2c3d4: выиграно 2 сделки на 1 570 000 ₽.", [2, 1_570_000], [], "won"),
           RefClaim("Причина потерь «Дорого» — 1 сделка.", ["Дорого", 1], ["event:01ev000007"], "reason"),
           RefClaim("Выиграна сделка «Насосы для Альфы».", ["Насосы для Альфы"], ["event:01ev000009"], "deal")]
    assert context_recall(ref, CONTEXTS) == pytest.approx(2 / 3, abs=1e-3)
    assert context_recall(ref, CONTEXTS + [Context("event:01ev000009", "Сделка выиграна.")]) == 1.0
    assert context_recall(ref[:1], [NOTE]) == 0.0  # the numbers are not in the retrieved context
    assert id_context_recall(["event:01ev000007", "note:501"], ["event:01ev000007", "event:01ev000009"]) == 0.5
    assert id_context_recall(["note:1"], []) is None


def test_similarity_and_correctness():
    ref = "PER-a1b2c3d4 выиграла 2 сделки на 1 570 000 ₽ и проиграла 1 сделку на 480 000 ₽, причина: дорого."
    assert semantic_similarity(ref, ref) == pytest.approx(1.0)
    assert semantic_similarity(GOOD, ref) > semantic_similarity("Погода в Москве солнечная, без осадков.", ref)
    claims_ref = [RefClaim("выиграно", [2, 1_570_000]), RefClaim("проиграно", [1, 480_000]),
                  RefClaim("причина", ["Дорого", 1])]
    good = answer_correctness(GOOD, claims_ref, ref)
    wrong = answer_correctness(GOOD.replace("1 570 000", "2 570 000").replace("480 000", "380 000"), claims_ref, ref)
    assert 0.6 < good <= 1.0 and wrong < good
    # F1 over facts: all 3 reference facts found; «конверсия 67%» is an outcome number the reference lacks (FP)
    assert fact_f1(GOOD, claims_ref)[1:] == (3, 1, 0)
    assert fact_f1(GOOD, claims_ref + [RefClaim("конверсия", [67])])[1:] == (4, 0, 0)
    sim = Similarity([ref, "другой эталон про компанию"])
    assert 0 <= sim(GOOD, ref) <= 1


def test_answer_relevancy():
    aspects = [["PER-a1b2c3d4"], ["01.03.2024"], ["сделк"]]
    assert answer_relevancy("Что PER-a1b2c3d4 делала в марте 2024?", GOOD, aspects) == 1.0
    assert answer_relevancy("q", GOOD.replace("01.03.2024", "01.04.2024"), aspects) == pytest.approx(2 / 3, abs=1e-3)
    assert answer_relevancy("q", "Не понял, о ком вопрос. Уточните, пожалуйста.", aspects) == 0.0
    assert answer_relevancy("Сколько сделок выиграно?", "Выиграно 2 сделки.") > 0


# -- the question set and the run on a generated + ingested account ---------------------------
@pytest.fixture(scope="module")
def evaluated(sample_account, tmp_path_factory):
    """The session's sample account synced from the amoCRM emulator, chat imported, precomputed offline."""
    from crmsum import pipeline
    from crmsum.answer import reset_contexts
    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.sandbox.amocrm_emulator import AmoEmulator

    root = tmp_path_factory.mktemp("eval")
    with AmoEmulator(sample_account / "amocrm", token="eval-token") as emu:
        s = Settings(data_dir=root / "data", amocrm_base_url=emu.url, amocrm_token="eval-token", llm="offline",
                     amocrm_rps=1000)
        lake = Lake(s.lake_dir)
        pipeline.sync_amocrm(s, lake)
    pipeline.import_telegram(sample_account / "telegram" / "result.json", s, lake)
    pipeline.precompute(s, lake)
    reset_contexts()
    yield s, lake, sample_account / "truth"
    reset_contexts()


@pytest.mark.slow
def test_build_questions(evaluated):
    from crmsum.evaluation import build_questions

    s, lake, truth = evaluated
    qs = build_questions(lake, truth, n=20)
    assert 10 <= len(qs) <= 20
    assert len({q.id for q in qs}) == len(qs)
    kinds = {q.kind for q in qs}
    assert {"manager", "company", "period", "comparison", "loss_reasons"} <= kinds
    story = json.loads((truth / "story.json").read_text(encoding="utf-8"))
    real = {m["name"] for m in story["managers"]}
    firsts = {n.split()[0] for n in real}
    for q in qs:
        assert q.reference and q.reference_claims and q.start <= q.end
        assert re.fullmatch(r"[\s\S]*\d{4}[\s\S]*", q.text)  # explicit year: stable period parsing
        assert not any(n in q.stored or n in q.reference for n in real | firsts), q.stored
        for i in q.reference_ids:
            assert re.fullmatch(r"event:[0-9a-z]+", i)
        if q.kind == "manager":
            assert any(f in q.text for f in firsts) and q.managers[0] in q.stored
    # reference numbers come from the truth: total lost in a loss-reasons month equals the story's count
    lr = next(q for q in qs if q.kind == "loss_reasons")
    lost = lr.reference_claims[0]
    assert lost.kind == "lost" and lost.values[0] == sum(
        1 for x in story["leads"] if x["outcome"] == "lost" and lr.start.isoformat() <= _day(x["closed_at"]) <= lr.end.isoformat())


def _day(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=3))).date().isoformat()


@pytest.mark.slow
def test_run_eval_writes_rows_without_real_names(evaluated):
    from crmsum.evaluation.run import EvalReport, run_eval
    from crmsum.schema import table

    s, lake, truth = evaluated
    buf = io.StringIO()
    report = run_eval(s, lake, truth_dir=truth, limit=10, n=20, console=Console(file=buf, width=150))
    assert isinstance(report, EvalReport) and report.written == len(report.rows) + len(report.intent_rows) > 0
    out = buf.getvalue()
    assert "faithfulness" in out and "context_recall" in out and "offline" in out and "by intent" in out
    from crmsum.query.intent import INTENTS

    bi = report.by_intent
    assert set(INTENTS) <= set(bi.index), bi  # every intent asked
    assert bi.loc[["ranking", "deals", "metric"], "exact_accuracy"].notna().all()
    assert (bi["intent_accuracy"].dropna() >= 0.5).all(), bi
    df = lake.read("eval_results", "run_id = ?", [report.run_id])
    assert len(df) == report.written
    assert set(df.columns) == set(table("eval_results").schema.names)
    assert set(df["backend"]) == {"offline"} and set(df["judge"]) <= {"offline", "exact"}
    df = df[df["judge"] == "offline"]
    for m in ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "semantic_similarity",
              "answer_correctness"):
        vals = df[m].dropna()
        assert len(vals) and vals.between(0, 1).all(), m
    pii = json.loads((truth / "pii.json").read_text(encoding="utf-8"))
    story = json.loads((truth / "story.json").read_text(encoding="utf-8"))
    names = set(pii["names"]) | {m["name"] for m in story["managers"]} | {m["name"].split()[0] for m in story["managers"]}
    blob = "\n".join(str(v) for col in ("question", "reference", "answer") for v in df[col])
    leaked = [n for n in names if len(n) >= 3 and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", blob)]
    assert not leaked
    for ph in pii["phones"] + pii["emails"]:
        assert ph not in blob
    assert re.search(r"PER-[0-9a-f]{8}", blob)
    # the answer path answered what was asked (parser + precomputed lookup)
    assert report.rows["parsed_ok"].mean() >= 0.8
    assert report.metric("faithfulness") is not None


# -- the LLM judge over real HTTP --------------------------------------------------------------
def test_llm_judge_against_emulator():
    from langchain_openai import ChatOpenAI

    from crmsum.sandbox.llm_emulator import LLMEmulator

    ref = [RefClaim("PER-a1b2c3d4: выиграно 2 сделки на 1 570 000 ₽.", [2, 1_570_000]),
           RefClaim("Причина потерь «Дорого» — 1 сделка.", ["Дорого", 1], ["event:01ev000007"])]
    sample = Sample("Что PER-a1b2c3d4 делала в марте 2024?", GOOD, CONTEXTS, " ".join(r.text for r in ref), ref,
                    ["event:01ev000007"], [["PER-a1b2c3d4"]], COMPANIES)
    with LLMEmulator(api_key="sk-judge") as emu:
        chat = ChatOpenAI(base_url=emu.url, api_key="sk-judge", model="judge-model", max_retries=0, temperature=0)
        judge = LLMJudge(chat=chat, model="judge-model")
        scores = judge.score(sample)
        assert emu.calls == judge.calls == 6  # claims, verdicts, questions, precision, recall, correctness
        bodies = [json.dumps(r, ensure_ascii=False) for r in emu.requests]
        assert any("response_format" in b or "tools" in b for b in bodies)
        assert any("event:01ev000007" in b for b in bodies)  # the context went to the judge
        for m in ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "semantic_similarity",
                  "answer_correctness"):
            assert scores[m] is not None and 0 <= scores[m] <= 1, m
        assert "_judge_failures" not in scores
        assert len(judge.rows) == 6 and all(r["purpose"] == "judge" and r["ok"] for r in judge.rows)
        # a failing endpoint falls back to the offline value for that metric, never crashes
        emu.fail_next("server_error", times=10)
        s2 = judge.score(sample)
        assert s2["_judge_failures"] >= 1 and s2["faithfulness"] == score_offline(sample)["faithfulness"]
    assert judge.name == "llm:judge-model"


@pytest.mark.slow
def test_run_eval_llm_judge_and_backends_side_by_side(evaluated, tmp_path):
    from langchain_openai import ChatOpenAI

    from crmsum.answer import reset_contexts
    from crmsum.evaluation.run import run_eval
    from crmsum.sandbox.llm_emulator import LLMEmulator

    s, lake, truth = evaluated
    with LLMEmulator(api_key="sk-eval") as emu:
        from pydantic import SecretStr

        sl = s.model_copy(update={"openai_api_key": SecretStr("sk-eval"), "openai_base_url": emu.url, "llm_model": "emu",
                                  "data_dir": Path(s.data_dir)})
        judge = LLMJudge(chat=ChatOpenAI(base_url=emu.url, api_key="sk-eval", model="emu", max_retries=0), model="emu")
        buf = io.StringIO()
        report = run_eval(sl, lake, truth_dir=truth, backends=("offline", "llm"), judge=judge, limit=2, n=20,
                          console=Console(file=buf, width=150))
        reset_contexts()
    assert emu.calls > 0
    df = lake.read("eval_results", "run_id = ?", [report.run_id])
    assert set(df["backend"]) == {"offline", "llm"} and set(df["judge"]) == {"llm:emu", "exact"}
    assert len(df[df["judge"] != "exact"]) == 4
    agg = report.aggregates
    assert list(agg.columns) == ["offline", "llm"]
    assert "offline" in buf.getvalue() and "llm" in buf.getvalue()
    assert any("live path" in n for n in report.notes)  # llm answered live on a scratch copy
    calls = lake.read("llm_calls", "purpose = 'judge'")
    assert len(calls) >= 6
