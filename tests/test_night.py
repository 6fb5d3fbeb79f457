"""What the nightly flow reports: the steps' results folded into one record, and its markdown artifact."""

from __future__ import annotations

import duckdb

from crmsum.night import RISK_BELOW, deals_at_risk, night_report

STEPS = {
    "amocrm": {"fetched": {"leads": 40, "notes": 300}, "written": {"crm_leads": 40, "crm_notes": 290}},
    "telegram": [{"messages_written": 120}, {"messages_written": 5}],
    "precompute": {"computed": 42, "skipped": 7, "failed": 0, "llm_calls": 3, "tokens_in": 1500, "tokens_out": 200},
    "compact": {"crm_notes": 3},
}


def test_steps_fold_into_one_record():
    r = night_report(STEPS, [])
    assert (r.records_synced, r.rows_written, r.exports, r.messages_imported) == (340, 330, 2, 125)
    assert (r.summaries_computed, r.summaries_unchanged, r.llm_calls, r.tokens_in, r.tokens_out) == (42, 7, 3, 1500, 200)
    assert not r.failed and r.risks is None
    md = r.markdown()
    assert "**OK**" in md and "| amoCRM records synced | 340 (330 lake rows new or changed) |" in md
    assert "125 from 2 export(s)" in md and "crm_notes (3 files)" in md and "Deals at risk" not in md


def test_a_failed_step_or_summary_fails_the_night():
    pre = {**STEPS["precompute"], "failed": 2, "errors": ["team:team:2024-W01: ValueError: x"]}
    r = night_report({**STEPS, "amocrm": None, "precompute": pre}, ["Telegram export a.json not imported"])
    assert r.failed and r.records_synced is None
    assert r.failures[0] == "Telegram export a.json not imported" and "2 summaries failed" in r.failures[1]
    md = r.markdown()
    assert "**FAILED**" in md and "## Failures" in md and "not configured" in md


def test_deals_at_risk_from_deal_features_when_present():
    con = duckdb.connect()
    assert deals_at_risk(con) is None and night_report(STEPS, [], con).risks is None
    con.execute("CREATE TABLE deal_features AS SELECT * FROM (VALUES "
                "(1, 'PER-0000000a', 500000, 'open', 0.1), (2, 'PER-0000000b', 90000, 'open', 0.25), "
                "(3, 'PER-0000000a', 10000, 'open', 0.8), (4, NULL, NULL, 'open', 0.05), "
                "(5, 'PER-0000000b', 70000, 'won', 0.01)) t(lead_id, manager, amount, outcome, win_probability)")
    risks = deals_at_risk(con)
    assert (risks.open_deals, risks.at_risk) == (4, 3)
    assert [d["lead_id"] for d in risks.top] == [4, 1, 2]
    md = night_report(STEPS, [], con).markdown()
    assert f"Deals at risk: 3 of 4 open deals (win probability < {RISK_BELOW:.0%})" in md
    assert "| 1 | PER-0000000a | 500,000 | 10% |" in md and "| 4 | — | 0 | 5% |" in md
    con.close()
