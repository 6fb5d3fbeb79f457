"""Precompute: every (scope, key, period) summarized once; reruns are incremental and LLM-free."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from crmsum.config import Settings
from crmsum.facts import period_bounds
from crmsum.precompute import WRITE_BATCH, PrecomputeReport, estimate, iter_items, precompute, run_item
from crmsum.sandbox.llm_emulator import LLMEmulator
from crmsum.schema import table
from lake_fixture import AS_OF, MANAGERS, TRUTH_PII, add_note, build_lake

KEY = "sk-test-precompute"


def offline(tmp_path) -> Settings:
    return Settings(llm="offline", data_dir=tmp_path)


@pytest.mark.slow
def test_offline_precompute_rows_and_incremental_rerun(tmp_path):
    lake = build_lake(tmp_path / "lake")
    st = offline(tmp_path)
    seen = []
    r1 = precompute(st, lake, progress=lambda d, t: seen.append((d, t)), as_of=AS_OF)
    assert isinstance(r1, PrecomputeReport) and r1.computed == r1.total > 0 and r1.failed == 0
    assert seen[-1] == (r1.total, r1.total)
    df = lake.read("summaries")
    assert len(df) == r1.total
    assert set(df.columns) == set(table("summaries").schema.names)
    assert set(df.scope) == {"manager", "company", "team"} and set(df.period_kind) == {"week", "month"}
    assert set(df[df.scope == "manager"].key) == set(MANAGERS.values())
    comp = df[df.scope == "company"].iloc[0]
    assert comp.key.isdigit() and comp.label and not comp.label.isdigit()
    for row in df.itertuples():
        assert row.summary_id == f"{row.scope}:{row.key}:{row.period}"
        assert (pd.Timestamp(row.start).date(), pd.Timestamp(row.end).date()) == period_bounds(row.period_kind, row.period)
        assert row.backend == "offline" and row.grounding == 1.0 and row.text
        assert json.loads(row.facts)["period"] == row.period
        assert isinstance(json.loads(row.citations), list)
    assert "2024-W10" in set(df.period) and "2024-03" in set(df.period)

    r2 = precompute(st, lake, as_of=AS_OF)
    assert r2.computed == 0 and r2.skipped == r2.total == r1.total

    # a new note changes exactly its manager, company and team for its week and month
    add_note(lake, 88_001, 9000, dt.datetime(2024, 3, 5, 11, 0), "Клиент согласовал скидку 3%, готовим договор.", 101)
    stored = dict(zip(df.summary_id, df.input_hash))
    changed = {it.summary_id for it in iter_items(lake, st, as_of=AS_OF) if stored.get(it.summary_id) != it.input_hash}
    assert changed == {f"{s}:{k}:{p}" for s, k in (("manager", MANAGERS[101]), ("company", "501"), ("team", "team"))
                       for p in ("2024-W10", "2024-03")}
    before = json.loads(df[df.summary_id == "manager:PER-a1b2c3d4:2024-W10"].facts.iloc[0])
    r3 = precompute(st, lake, as_of=AS_OF)
    assert r3.computed == 6
    after = json.loads(lake.read("summaries", "summary_id = ?", ["manager:PER-a1b2c3d4:2024-W10"]).facts.iloc[0])
    assert after["notes"] == before["notes"] + 1


@pytest.mark.slow
def test_plan_and_run_item_with_custom_mapper(tmp_path):
    lake = build_lake(tmp_path / "lake")
    st = offline(tmp_path)
    items = list(iter_items(lake, st, as_of=AS_OF))  # a fresh lake: every item is due
    used = []

    def mapper(fn, work):  # what a Dask/Prefect runner would do
        used.append(len(work))
        return [fn(it) for it in reversed(work)]

    r = precompute(st, lake, mapper=mapper, as_of=AS_OF)
    # one call per window of periods (each window is written before the next is fetched)
    assert sum(used) == r.computed == len(items) and 1 < len(used) and max(used) <= WRITE_BATCH
    row = run_item(items[0], st)
    assert row["summary_id"] == items[0].summary_id and row["input_hash"] == items[0].input_hash
    est = estimate(items, 6000)
    assert est["calls"] >= len(items) and est["tokens_in"] > 0


@pytest.mark.slow
def test_llm_precompute_second_run_makes_zero_calls(tmp_path):
    lake = build_lake(tmp_path / "lake", leads=12)
    with LLMEmulator(api_key=KEY) as emu:
        st = Settings(llm="llm", data_dir=tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=emu.url,
                      llm_model="emulated-gpt", llm_timeout=5)
        r1 = precompute(st, lake, as_of=AS_OF)
        assert r1.backend == "llm" and r1.computed == r1.total and r1.fallbacks == 0
        assert r1.llm_calls == emu.calls >= r1.total and r1.tokens_in > 0
        df = lake.read("summaries")
        assert set(df.backend) == {"llm"} and set(df.model) == {"emulated-gpt"}
        assert df.grounding.between(0, 1).all()
        calls = lake.read("llm_calls")
        assert len(calls) == r1.llm_calls and calls.ok.all()

        blob = "\n".join(emu.prompts())
        for values in TRUTH_PII.values():
            for v in values:
                assert v not in blob

        n = emu.calls
        r2 = precompute(st, lake, as_of=AS_OF)
        assert r2.computed == 0 and r2.llm_calls == 0 and emu.calls == n

        # forcing a recompute re-uses the response cache: still nothing sent
        r3 = precompute(st, lake, as_of=AS_OF, force=True)
        assert r3.computed == r1.total and r3.cache_hits >= r1.total and emu.calls == n


@pytest.mark.slow
def test_llm_outage_gives_offline_rows_with_note(tmp_path):
    lake = build_lake(tmp_path / "lake", leads=9)
    with LLMEmulator(api_key=KEY) as emu:
        st = Settings(llm="llm", data_dir=tmp_path, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=emu.url,
                      llm_model="emulated-gpt", llm_timeout=5)
        emu.fail_next("server_error", times=10_000)
        r = precompute(st, lake, as_of=AS_OF)
        assert r.failed == 0 and r.fallbacks == r.computed == r.total
        # bounded retries, then the breaker stops hammering the endpoint, probing every Nth summary
        from crmsum.precompute import LLM_WORKERS
        from crmsum.summarize.llm import BREAKER_AFTER, BREAKER_PROBE_EVERY, MAX_ATTEMPTS

        probes = r.total // BREAKER_PROBE_EVERY + 1
        assert emu.calls <= MAX_ATTEMPTS * (BREAKER_AFTER + LLM_WORKERS + probes) < 5 * r.total
        df = lake.read("summaries")
        assert set(df.backend) == {"offline"} and df.note.str.startswith("LLM недоступна").all()
        # when the endpoint is back, the fallbacks are redone with the LLM (their input hash differs)
        emu.reset()
        r2 = precompute(st, lake, as_of=AS_OF)
        assert r2.computed == r.total and set(lake.read("summaries").backend) == {"llm"}


@pytest.mark.parametrize("kind", ["week", "month"])
@pytest.mark.slow
def test_precompute_covers_every_period_with_activity(tmp_path, kind):
    lake = build_lake(tmp_path / "lake")
    st = offline(tmp_path)
    precompute(st, lake, as_of=AS_OF)
    df = lake.read("summaries", "period_kind = ? AND scope = 'team'", [kind])
    starts = sorted(pd.Timestamp(x).date() for x in df.start)
    assert starts[0] <= dt.date(2024, 2, 5) and len(starts) == len(set(starts))
