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
from crmsum.telegram_html import visible_len


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
