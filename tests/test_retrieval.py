"""Semantic retrieval: incremental embeddings, filters, LangChain interfaces, similar deals, the
OpenAI-compatible backend over real HTTP, bad input and `crmsum search`.

Runs on the small anonymized fixture lake (tests/lake_fixture.py); the labelled quality proof on the
generated sample account is tests/test_retrieval_eval.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.lake_fixture import COMPANIES, MANAGERS, add_note, build_lake


@pytest.fixture()
def env(tmp_path):
    from crmsum.answer import reset_contexts
    from crmsum.config import Settings

    lake = build_lake(tmp_path / "data" / "lake")
    s = Settings(data_dir=tmp_path / "data", llm="offline")
    reset_contexts()
    yield s, lake
    reset_contexts()


@pytest.fixture()
def embedded(env):
    """A fixture lake with its embeddings, to change (function scope)."""
    from crmsum.retrieval import update_embeddings

    s, lake = env
    report = update_embeddings(lake, s)
    return s, lake, report


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One embedded fixture lake for the read-only tests of this module."""
    from crmsum.answer import reset_contexts
    from crmsum.config import Settings
    from crmsum.retrieval import update_embeddings

    root = tmp_path_factory.mktemp("retrieval")
    lake = build_lake(root / "data" / "lake")
    s = Settings(data_dir=root / "data", llm="offline")
    reset_contexts()
    report = update_embeddings(lake, s)
    yield s, lake, report
    reset_contexts()


@pytest.mark.slow
def test_first_run_embeds_every_record_and_a_rerun_embeds_nothing(embedded):
    from crmsum.retrieval import update_embeddings

    s, lake, first = embedded
    con = lake.connect()
    notes = con.execute("SELECT count(*) FROM crm_notes").fetchone()[0]
    tasks = con.execute("SELECT count(*) FROM crm_tasks").fetchone()[0]
    msgs = con.execute("SELECT count(*) FROM chat_messages WHERE kind = 'message'").fetchone()[0]
    leads = con.execute("SELECT count(*) FROM crm_leads").fetchone()[0]
    assert first.refit and first.embedded == first.records == notes + tasks + msgs + leads
    row = con.execute("SELECT backend, model, dim, len(vector) FROM record_embeddings LIMIT 1").fetchone()
    assert row[0] == "offline" and row[1].startswith("navec-sif-") and row[2] == row[3] == 300
    parts = lake.parts("record_embeddings")
    again = update_embeddings(lake, s)
    assert (again.embedded, again.updated, again.removed, again.refit) == (0, 0, 0, False)
    assert lake.parts("record_embeddings") == parts  # nothing written either


@pytest.mark.slow
def test_only_new_or_changed_records_are_embedded(embedded):
    from crmsum.retrieval import update_embeddings

    s, lake, _ = embedded
    add_note(lake, 60_001, 9003, dt.datetime(2024, 3, 20, 11), "Клиент пропал после КП, не берёт трубку.")
    lake.write("crm_notes", lake.read("crm_notes", "note_id = 50001").assign(text="Текст заметки исправлен."))
    report = update_embeddings(lake, s)
    assert (report.embedded, report.refit) == (2, False)  # the frozen model is not refitted for two notes
    rows = dict(lake.connect().execute("SELECT record_id, text FROM record_embeddings "
                                       "WHERE record_id IN ('note:60001', 'note:50001')").fetchall())
    assert rows == {"note:60001": "Клиент пропал после КП, не берёт трубку.", "note:50001": "Текст заметки исправлен."}


@pytest.mark.slow
def test_metadata_change_rewrites_without_embedding_and_deleted_lead_is_tombstoned(embedded):
    from crmsum.retrieval import update_embeddings

    s, lake, _ = embedded
    lead = lake.read("crm_leads", "lead_id = 9004")
    note = f"note:{int(lake.read('crm_notes', 'lead_id = 9004')['note_id'].min())}"
    vec_before = lake.read("record_embeddings", f"record_id = '{note}'")["vector"][0]
    lake.write("crm_leads", lead.assign(company_id=502))
    report = update_embeddings(lake, s)
    assert report.embedded == 0 and report.updated > 0
    after = lake.read("record_embeddings", f"record_id = '{note}'")
    assert int(after["company_id"][0]) == 502 and np.allclose(after["vector"][0], vec_before)
    lake.write("crm_leads", lead.assign(company_id=502, is_deleted=True))
    report = update_embeddings(lake, s)
    gone = lake.read("record_embeddings", "lead_id = 9004")
    assert report.removed == len(gone) > 0 and gone["is_deleted"].all()
    assert not any(h.lead_id == 9004 for h in _search(s, lake, "Клиент просит скидку", k=200))


@pytest.mark.slow
def test_refit_on_growth_changes_the_model_and_reembeds_everything(embedded):
    from crmsum.retrieval import update_embeddings

    s, lake, first = embedded
    when = dt.datetime(2024, 4, 1, 10)
    lake.write("crm_notes", pd.DataFrame([  # the corpus doubles: past the 50 % refit growth
        {"note_id": 70_000 + i, "lead_id": 9000 + i % 24, "note_type": "common", "created_by": 101,
         "responsible_user_id": 101, "created_at": when, "updated_at": when,
         "text": f"Новая заметка номер {i}: согласовали поставку."} for i in range(first.records)]))
    report = update_embeddings(lake, s)
    assert report.refit and report.model != first.model
    assert report.embedded == report.records
    models = lake.connect().execute("SELECT DISTINCT model FROM record_embeddings WHERE vector IS NOT NULL").fetchall()
    assert models == [(report.model,)]


def _search(s, lake, text, **kw):
    from crmsum.retrieval import search

    return search(lake, text, settings=s, **kw)


def test_search_ranks_by_meaning_and_filters_by_sql(shared):
    s, lake, _ = shared
    hits = _search(s, lake, "заказчик хочет уступку по цене", k=5)
    assert hits and all(h.score <= 1.0001 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert any("скидк" in h.text or "цен" in h.text for h in hits[:3])
    mgr = MANAGERS[102]
    by_manager = _search(s, lake, "скидка", k=50, manager=mgr)
    assert by_manager and all(h.manager == mgr for h in by_manager)
    by_company = _search(s, lake, "скидка", k=50, company_id=501, kind=["note", "task"])
    assert by_company and all(h.company_id == 501 and h.kind in ("note", "task") for h in by_company)
    by_lead = _search(s, lake, "скидка", k=50, lead_id=9003)
    assert by_lead and {h.lead_id for h in by_lead} == {9003}
    since, until = dt.date(2024, 3, 1), dt.date(2024, 3, 10)
    period = _search(s, lake, "скидка", k=50, since=since, until=until)
    assert period and all(since <= h.created_at.date() <= until for h in period)
    chat = _search(s, lake, "скидка", k=50, kind="msg")
    assert chat and all(h.kind == "msg" and h.id.startswith("msg:-100123:") for h in chat)
    assert not any(h.kind == "deal" for h in _search(s, lake, "Поставка оборудования", k=100))


def test_hybrid_question_filters_company_and_period_then_ranks(shared):
    from crmsum.retrieval import search_question

    s, lake, _ = shared
    res = search_question(lake, "скидку просят в СтройИнвест в марте 2024", k=20, settings=s,
                          today=dt.date(2024, 5, 15))
    assert res.company == "СтройИнвест" and res.company_id == 502
    assert (res.since, res.until) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    assert "СтройИнвест" not in res.query and "марте" not in res.query and "скидку" in res.query
    assert res.hits and all(h.company_id == 502 and h.created_at.month == 3 for h in res.hits)


@pytest.mark.parametrize("query, message", [
    ("", "empty query"), ("   \n ", "empty query"), ("и", "nothing to search for"), ("в на и по", "nothing to search for"),
    ("東京タワー", "nothing to search for"), ("12345 !!! ...", "nothing to search for"),
])
def test_bad_queries_get_one_clear_message(shared, query, message):
    from crmsum.retrieval import RetrievalError

    s, lake, _ = shared
    with pytest.raises(RetrievalError, match=message):
        _search(s, lake, query)


def test_huge_query_is_bounded_and_still_answers(shared):
    s, lake, _ = shared
    hits = _search(s, lake, ("клиент просит скидку " * 600)[:10_000], k=3)
    assert len(hits) == 3


def test_lake_without_embeddings_says_to_run_the_nightly(env):
    from crmsum.retrieval import RetrievalError, similar_deals

    s, lake = env
    with pytest.raises(RetrievalError, match="run the nightly flow"):
        _search(s, lake, "скидка")
    with pytest.raises(RetrievalError, match="run the nightly flow"):
        similar_deals(lake, "скидка", settings=s)


def test_langchain_retrieval_chain(shared):
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from crmsum.retrieval import LakeVectorStore, RetrievalError, get_embeddings

    s, lake, _ = shared
    store = LakeVectorStore(lake, get_embeddings(s), s)
    scored = store.similarity_search_with_score("клиент сравнивает с конкурентом", k=3, filter={"kind": "note"})
    assert len(scored) == 3 and all(isinstance(d, Document) and d.id.startswith("note:") for d, _ in scored)
    assert scored[0][1] >= scored[-1][1]
    retriever = store.as_retriever(search_kwargs={"k": 4, "filter": {"company_id": 503}})
    chain = ({"context": retriever | RunnableLambda(lambda docs: "\n".join(f"[{d.id}] {d.page_content}" for d in docs)),
              "question": RunnablePassthrough()}
             | RunnableLambda(lambda x: f"Вопрос: {x['question']}\nЗаписи:\n{x['context']}"))
    prompt = chain.invoke("договор подписан")
    assert prompt.startswith("Вопрос: договор подписан") and prompt.count("\n[") == 4
    docs = retriever.invoke("договор подписан")
    assert all(d.metadata["company_id"] == 503 for d in docs)
    relevance = store.similarity_search_with_relevance_scores("оплата", k=2)
    assert all(0 <= r <= 1 for _, r in relevance)
    assert store.get_by_ids([docs[0].id])[0].page_content == docs[0].page_content
    with pytest.raises(RetrievalError, match="read-only"):
        store.add_texts(["x"])
    with pytest.raises(RetrievalError, match="unknown filter"):
        store.similarity_search("оплата", filter={"color": "red"})


def test_similar_deals_by_situation_and_by_deal(shared):
    from crmsum.retrieval import DealHit, similar_deals

    s, lake, _ = shared
    deals = similar_deals(lake, "клиент ушёл к конкуренту из-за цены", k=3, settings=s)
    assert 0 < len(deals) <= 3 and all(isinstance(d, DealHit) for d in deals)
    assert all(d.outcome in ("won", "lost") and d.amount and d.records for d in deals)
    assert all(r.lead_id == d.lead_id and r.kind != "deal" for d in deals for r in d.records)
    assert [d.score for d in deals] == sorted((d.score for d in deals), reverse=True)
    lost = [d for d in deals if d.outcome == "lost"]
    assert all(d.loss_reason for d in lost)
    like = similar_deals(lake, deals[0].lead_id, k=5, settings=s, company_id=deals[0].company_id)
    assert like and deals[0].lead_id not in {d.lead_id for d in like}
    assert all(d.company_id == deals[0].company_id for d in like)
    assert json.dumps(like[0].to_json(), ensure_ascii=False)
    with_open = similar_deals(lake, "Поставка оборудования", k=30, settings=s, closed_only=False)
    assert any(d.outcome == "open" for d in with_open)


def test_evidence_keeps_the_records_about_the_question(shared):
    from crmsum.retrieval import evidence
    from crmsum.summarize.records import records_for

    s, lake, _ = shared
    con = lake.connect()
    records = records_for(con, dt.date(2024, 2, 1), dt.date(2024, 4, 30))
    assert len(records) > 20
    picked = evidence(lake, "клиент просит скидку", records, k=8, settings=s)
    events = [r for r in records if r["id"].startswith("event:")]
    assert len(picked) == 8 + len(events)
    assert [r["id"] for r in picked] == [r["id"] for r in records if r in picked]  # time order kept
    about = [r for r in picked if not r["id"].startswith("event:")]
    assert sum("скидк" in r["text"].lower() for r in about) >= 6
    assert evidence(lake, "", records, k=8, settings=s) == records
    assert evidence(lake, "клиент просит скидку", records[:5], k=8, settings=s) == records[:5]


@pytest.mark.slow
def test_openai_embeddings_through_the_emulator(env):
    from crmsum.retrieval import RetrievalError, get_embeddings, search, update_embeddings
    from crmsum.sandbox.llm_emulator import LLMEmulator

    s, lake = env
    with LLMEmulator(api_key="sk-emb-test", embedding_dim=64) as emu:
        cfg = s.model_copy(update={"embeddings": "openai", "embeddings_model": "local-embedder",
                                   "embeddings_base_url": emu.url})
        cfg.openai_api_key = type(s.openai_api_key or __import__("pydantic").SecretStr(""))("sk-emb-test")
        report = update_embeddings(lake, cfg)
        assert report.backend == "openai" and report.model == "local-embedder" and report.embedded == report.records
        assert emu.embeddings.inputs < report.records  # identical texts are sent once
        assert emu.embeddings.prompt_tokens > 0
        row = lake.connect().execute("SELECT DISTINCT backend, model, dim FROM record_embeddings").fetchall()
        assert row == [("openai", "local-embedder", 64)]
        assert update_embeddings(lake, cfg).embedded == 0
        hits = search(lake, "Клиент сравнивает нас с конкурентом", k=3, settings=cfg)
        assert hits and "конкурент" in hits[0].text
        emu.fail_next("server_error", times=1)  # retried by the client, then answered
        assert len(get_embeddings(cfg).embed_documents(["скидка", "оплата"])) == 2
        bad = cfg.model_copy()
        bad.openai_api_key = type(cfg.openai_api_key)("sk-wrong")
        with pytest.raises(RetrievalError, match="AuthenticationError"):
            get_embeddings(bad).embed_query("скидка")
    offline_again = update_embeddings(lake, s)  # switching back re-embeds with the offline model
    assert offline_again.backend == "offline" and offline_again.embedded == offline_again.records


def test_emulator_embeddings_protocol():
    import openai

    from crmsum.sandbox.llm_emulator import LLMEmulator

    with LLMEmulator(api_key="sk-x") as emu:
        client = openai.OpenAI(base_url=emu.url, api_key="sk-x", max_retries=0)
        r = client.embeddings.create(model="text-embedding-3-small", input=["скидка", "скидка", "оплата"])
        v = [np.asarray(d.embedding) for d in r.data]
        assert [d.index for d in r.data] == [0, 1, 2] and len(v[0]) == 1536
        assert np.allclose(v[0], v[1]) and abs(np.linalg.norm(v[2]) - 1) < 1e-5
        assert r.usage.prompt_tokens == r.usage.total_tokens > 0
        short = client.embeddings.create(model="text-embedding-3-small", input="скидка", dimensions=32,
                                         encoding_format="float")
        assert len(short.data[0].embedding) == 32
        assert len(client.embeddings.create(model="m", input=[[101, 202, 303]]).data[0].embedding) == 256
        for kwargs in ({"input": ""}, {"input": []}, {"input": ["a"] * 2049}, {"input": "слово " * 9000},
                       {"input": "a", "model": "text-embedding-ada-002", "dimensions": 8}):
            with pytest.raises(openai.BadRequestError):
                client.embeddings.create(**{"model": "m", **kwargs})
        emu.fail_next("rate_limit")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="m", input="a")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=emu.url, api_key="sk-bad", max_retries=0).embeddings.create(model="m", input="a")


def test_cli_search(shared, monkeypatch):
    from typer.testing import CliRunner

    from crmsum.cli import app
    from crmsum.config import reset_settings

    s, lake, _ = shared
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("CRMSUM_LLM", "offline")
    reset_settings()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["search", "клиент просит скидку", "--k", "4", "--json"])
        assert out.exit_code == 0, out.output
        rows = json.loads(out.stdout)
        assert len(rows) == 4 and set(rows[0]) == {"id", "lead_id", "kind", "text", "created_at", "score"}
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
        company = runner.invoke(app, ["search", "скидка", "--company", COMPANIES[504], "--since", "2024-03-01", "--json"])
        got = json.loads(company.stdout)
        assert company.exit_code == 0 and got and all(r["created_at"] >= "2024-03-01" for r in got)
        assert {lake.read("record_embeddings", f"record_id = '{r['id']}'")["company_id"][0] for r in got} == {504}
        for args, message in ((["search", ""], "empty query"), (["search", "и"], "nothing to search for"),
                              (["search", "скидка", "--since", "March"], "YYYY-MM-DD"),
                              (["search", "скидка", "--company", "Несуществующая Фирма"], "unknown company"),
                              (["search", "скидка", "--manager", "Никто Никакой"], "unknown manager"),
                              (["search", "скидка", "--k", "0"], "--k")):
            bad = runner.invoke(app, args)
            assert bad.exit_code == 1 and message in bad.output and "Traceback" not in bad.output, args
    finally:
        reset_settings()


@pytest.mark.slow
def test_cli_search_builds_embeddings_on_request(env, monkeypatch):
    from typer.testing import CliRunner

    from crmsum.cli import app
    from crmsum.config import reset_settings

    s, lake = env
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(s.data_dir))
    reset_settings()
    try:
        runner = CliRunner()
        missing = runner.invoke(app, ["search", "скидка"])
        assert missing.exit_code == 1 and "run the nightly flow" in missing.output
        built = runner.invoke(app, ["search", "скидка", "--build", "--json"])
        assert built.exit_code == 0 and json.loads(built.stdout)
        assert lake.row_count("record_embeddings") > 0
    finally:
        reset_settings()


@pytest.mark.slow
def test_llm_summary_of_a_topic_takes_its_evidence_through_the_retriever(embedded):
    from crmsum.config import Settings
    from crmsum.sandbox.llm_emulator import LLMEmulator
    from crmsum.summarize import summarize_scope
    from crmsum.summarize.llm import EVIDENCE_K
    from crmsum.summarize.records import records_for

    s, lake, _ = embedded
    start, end = dt.date(2024, 2, 1), dt.date(2024, 4, 30)
    records = records_for(lake.connect(), start, end)
    plain_ids = {r["id"] for r in records if not r["id"].startswith("event:")}
    assert len(plain_ids) > EVIDENCE_K
    with LLMEmulator(api_key="sk-topic") as emu:
        cfg = Settings(llm="llm", data_dir=s.data_dir, OPENAI_API_KEY="sk-topic", OPENAI_BASE_URL=emu.url,
                       llm_model="emulated-gpt", llm_timeout=5.0)
        topic = summarize_scope(lake, start=start, end=end, settings=cfg, question="клиент просит скидку")
        lines = [ln for p in emu.prompts() for ln in p.splitlines() if re.match(r"\[(note|task|msg):", ln)]
    sent = {re.match(r"\[([^\]]+)\]", ln).group(1) for ln in lines}
    assert sent <= plain_ids and len(sent) == EVIDENCE_K
    by_id = {r["id"]: r["text"].lower() for r in records}
    share_sent = sum("скидк" in by_id[i] for i in sent) / len(sent)
    share_all = sum("скидк" in by_id[i] for i in plain_ids) / len(plain_ids)
    assert share_sent > 2 * share_all  # the prompt is about the question, not the first records of the period
    assert topic.backend == "llm" and 0 <= topic.grounding <= 1  # the grounding check ran over the evidence
    assert all(c["id"] in sent or c["id"].startswith("event:") for c in topic.citations)


def test_similar_question_answers_with_past_deals_and_records(shared):
    from crmsum.answer import answer_question

    s, lake, _ = shared
    a = answer_question("похожие сделки на «клиент сравнивает с конкурентом»", settings=s, lake=lake,
                        today=dt.date(2024, 5, 15))
    assert a.intent == "similar", a.text
    assert "Ближайшие прошлые сделки" in a.text and ("выиграна" in a.text or "проиграна" in a.text)
    assert re.search(r"\[(note|task|msg):[^\]]+\]", a.text)  # cited records
    deals = [i for i in a.items if "outcome" in i]
    assert deals and all(d["outcome"] in ("won", "lost") for d in deals)


@pytest.mark.slow
def test_an_empty_lake_fits_later_when_records_arrive(tmp_path):
    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.retrieval import update_embeddings

    s = Settings(data_dir=tmp_path, llm="offline")
    lake = Lake(s.lake_dir)
    empty = update_embeddings(lake, s)
    assert (empty.records, empty.embedded) == (0, 0)
    tables = build_lake(tmp_path / "other")  # the fixture's rows arrive in this lake
    for name in ("crm_users", "crm_companies", "crm_leads", "crm_notes", "crm_tasks", "chat_messages"):
        lake.write(name, tables.read(name))
    later = update_embeddings(lake, s)
    assert later.refit and later.embedded == later.records > 0


def test_approximate_index_agrees_with_exact_search(shared):
    from crmsum.retrieval.embeddings import get_embeddings
    from crmsum.retrieval.index import VectorIndex, load_index

    s, lake, _ = shared
    emb = get_embeddings(s)
    exact = load_index(lake, emb.model)
    approx = VectorIndex(exact.meta, exact.matrix, exact.model, approx_above=0)
    assert approx.approximate and not exact.approximate
    for text in ("клиент просит скидку", "договор подписан", "встреча в офисе клиента", "счёт выставлен"):
        q = emb.embed_matrix([text])[0]
        e_pos, e_score = exact.search(q, 10)
        a_pos, a_score = approx.search(q, 10)
        assert len(a_pos) == 10 and a_score[0] == pytest.approx(e_score[0], abs=1e-4)
        assert np.all(a_score >= e_score[-1] - 1e-4)  # the same ten best scores (ties may swap records)
        assert np.allclose(exact.matrix[a_pos] @ q, a_score, atol=1e-4)
        notes = exact.positions("kind = ?", ["note"])
        f_pos, _ = approx.search(q, 5, notes)
        assert set(f_pos) <= set(notes)
