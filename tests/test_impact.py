"""`crmsum impact`: monthly usage, ratings and sales against a year before, recomputed with pandas."""

from __future__ import annotations

import datetime as dt
import json
import random

import pandas as pd
import pytest
from typer.testing import CliRunner

from crmsum.cli import app
from crmsum.config import Settings, reset_settings
from crmsum.impact import MIN_RATINGS, impact
from crmsum.lake import Lake
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sandbox.generate import generate

TOKEN = "impact-token"
START = dt.datetime(2024, 9, 2, 10)  # crmsum's first answer
TODAY = dt.date(2025, 3, 15)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A two-year sample account synced over HTTP, plus answers and ratings since START."""
    from crmsum import pipeline

    account = tmp_path_factory.mktemp("impact_account")
    generate(account, leads=90, chat_days=760, seed=5, end_date=TODAY - dt.timedelta(days=1))
    root = tmp_path_factory.mktemp("impact_data")
    with AmoEmulator(account / "amocrm", token=TOKEN, rate_limit=0) as emu:
        pipeline.sync_amocrm(Settings(data_dir=root, amocrm_base_url=emu.url, amocrm_token=TOKEN, amocrm_rps=1000))
    rng = random.Random(3)
    answers, feedback = [], []
    for i in range(160):
        at = START + dt.timedelta(days=rng.randint(0, 190), hours=rng.randint(0, 8)) if i else START
        answers.append({"answer_id": f"a{i}", "chat_id": 7, "question": f"вопрос {i}", "source":
                        rng.choice(["precomputed", "live"]), "intent": rng.choice(["activity", "ranking", "why"]),
                        "backend": "offline", "text": f"ответ {i}", "latency_ms": 5.0, "created_at": at})
        if i % 3:
            for user in ("PER-00000001", "PER-00000002")[: 1 + i % 2]:
                feedback.append({"feedback_id": f"7:{i}:{user}", "answer_id": f"a{i}", "chat_id": 7, "user": user,
                                 "rating": rng.choice([1, 2, 3, 4, 4, 5, 5]),
                                 "created_at": at + dt.timedelta(minutes=5)})
    lake = Lake(Settings(data_dir=root).lake_dir)
    lake.write("answers", pd.DataFrame(answers))
    lake.write("feedback", pd.DataFrame(feedback))
    return root


@pytest.fixture(scope="module")
def report(data_dir):
    con = Lake(Settings(data_dir=data_dir).lake_dir).connect()
    try:
        yield impact(con, today=TODAY)
    finally:
        con.close()


def _expected_sales(data_dir) -> pd.DataFrame:
    leads = Lake(Settings(data_dir=data_dir).lake_dir).read("crm_leads")
    closed = leads[leads["status_id"].isin([142, 143]) & ~leads["is_deleted"].fillna(False).astype(bool)].copy()
    closed["month"] = closed["closed_at"].fillna(closed["updated_at"]).dt.strftime("%Y-%m")
    closed["won"] = closed["status_id"] == 142
    closed["amount"] = closed["price"].fillna(0).where(closed["won"], 0)
    return closed.groupby("month").agg(won=("won", "sum"), closed=("won", "size"), volume=("amount", "sum"))


@pytest.mark.slow
def test_sales_match_pandas_and_compare_with_a_year_before(data_dir, report):
    exp = _expected_sales(data_dir)
    rows = {m.month: m for m in report.months}
    assert set(exp.index) <= set(rows)
    for month, e in exp.iterrows():
        m = rows[month]
        assert (m.won, m.won + m.lost, m.volume) == (e.won, e.closed, e.volume), month
        assert m.win_rate == round(e.won / e.closed, 4)
        last = str(pd.Period(month, "M") - 12)
        if last >= exp.index.min():
            want = exp.loc[last] if last in exp.index else pd.Series({"won": 0, "closed": 0, "volume": 0})
            assert (m.volume_last_year, m.closed_last_year) == (want.volume, want.closed), month
        else:
            assert m.volume_last_year is None  # no history that far back: missing, not zero
    assert sum(m.volume_last_year is not None for m in report.months) >= 12


def test_answers_and_ratings_match_pandas(data_dir, report):
    lake = Lake(Settings(data_dir=data_dir).lake_dir)
    answers, fb = lake.read("answers"), lake.read("feedback")
    fb["month"] = fb["created_at"].dt.strftime("%Y-%m")
    answers["month"] = answers["created_at"].dt.strftime("%Y-%m")
    rows = {m.month: m for m in report.months}
    for month, group in answers.groupby("month"):
        assert rows[month].answers == len(group)
        assert rows[month].by_intent == group["intent"].value_counts().to_dict()
    for month, group in fb.groupby("month"):
        m = rows[month]
        assert m.ratings == len(group) and m.rating_mean == round(group["rating"].mean(), 2)
        assert m.share_4_5 == round((group["rating"] >= 4).mean(), 4)
        assert sum(m.rating_dist.values()) == len(group)
    assert report.started == START.date() and rows["2024-09"].started
    assert [m.month for m in report.months if m.started] == ["2024-09"]


def test_trend_interval_and_before_after(report):
    t = report.trend
    assert t.ratings >= MIN_RATINGS and t.ci95[0] <= t.slope_per_month <= t.ci95[1]
    ba = report.before_after
    after = [m for m in report.months if "2024-09" <= m.month < "2025-03"]
    assert ba.months_after == len(after) == 6
    assert ba.volume_after == sum(m.volume for m in after)
    assert ba.volume_after_last_year == sum(m.volume_last_year for m in after)
    assert "не доказательство" in ba.caveat
    assert report.lowest and all(low.rating <= 2 for low in report.lowest)


def test_too_few_ratings_say_so_and_no_answers_invent_nothing(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write("feedback", pd.DataFrame([{"feedback_id": "1", "answer_id": "a", "chat_id": 1, "user": "u",
                                          "rating": 5, "created_at": dt.datetime(2024, 5, 1)}]))
    con = lake.connect()
    try:
        r = impact(con, today=TODAY)
    finally:
        con.close()
    assert r.trend.ci95 is None and "слишком мало оценок" in r.trend.reason
    assert r.started is None and r.before_after.reason and r.before_after.yoy_after is None


def test_cli_json_shape(data_dir, monkeypatch):
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(data_dir))
    reset_settings()
    try:
        result = CliRunner().invoke(app, ["impact", "--json", "--since", "2024-06-01"])
        text = CliRunner().invoke(app, ["impact"])
    finally:
        reset_settings()
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["started"] == START.date().isoformat() and doc["months"][0]["month"] == "2024-06"
    assert {"month", "answers", "ratings", "rating_mean", "volume", "volume_last_year", "won", "win_rate"} \
        <= set(doc["months"][0])
    assert text.exit_code == 0 and "не доказательство" in text.stdout
