"""What one night did, as a record: the nightly flow publishes it (a Prefect markdown artifact) and
fails the run when a step failed.

Built from the steps' reports (plain dicts, as Prefect stores task results) plus, when the
`deal_features` table exists, the open deals at risk read from the lake by SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RISK_BELOW = 0.3  # an open deal whose modelled win probability is under this is "at risk"
RISKS_SHOWN = 5


@dataclass
class AtRisk:
    """Open deals at risk, with their base: `at_risk` of `open_deals`."""

    open_deals: int
    at_risk: int
    top: list[dict[str, Any]] = field(default_factory=list)  # lead_id, manager, amount, win_probability


@dataclass
class NightReport:
    records_synced: int | None = None  # amoCRM records fetched (None: no sync configured)
    rows_written: int = 0  # lake rows new or changed by the sync
    exports: int = 0  # Telegram exports imported from the inbox
    messages_imported: int = 0
    summaries_computed: int = 0
    summaries_unchanged: int = 0
    summaries_failed: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    compacted: dict[str, int] = field(default_factory=dict)  # table -> files merged into its base
    risks: AtRisk | None = None
    failures: list[str] = field(default_factory=list)  # one line per failed step or partial failure

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def markdown(self) -> str:
        """The artifact: one table of what happened, then the failures and the deals at risk."""
        rows = [("amoCRM records synced", "not configured" if self.records_synced is None else
                 f"{self.records_synced:,} ({self.rows_written:,} lake rows new or changed)"),
                ("Telegram messages imported", f"{self.messages_imported:,} from {self.exports} export(s)"),
                ("summaries computed", f"{self.summaries_computed:,} ({self.summaries_unchanged:,} unchanged, "
                                       f"{self.summaries_failed} failed)"),
                ("LLM calls", f"{self.llm_calls:,} ({self.tokens_in:,} tokens in, {self.tokens_out:,} out)"),
                ("lake compaction", ", ".join(f"{t} ({n} files)" for t, n in self.compacted.items()) or "nothing to do")]
        out = ["# crmsum nightly", "", f"**{'FAILED' if self.failed else 'OK'}**", "", "| step | result |",
               "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
        if self.failures:
            out += ["## Failures", "", *(f"- {f}" for f in self.failures), ""]
        if self.risks is not None:
            r = self.risks
            out += [f"## Deals at risk: {r.at_risk} of {r.open_deals} open deals (win probability < "
                    f"{RISK_BELOW:.0%})", ""]
            if r.top:
                out += ["| lead | manager | amount | win probability |", "|---|---|---|---|"]
                out += [f"| {d['lead_id']} | {d['manager'] or '—'} | {d['amount'] or 0:,.0f} | "
                        f"{d['win_probability']:.0%} |" for d in r.top]
                out.append("")
        return "\n".join(out)


def night_report(steps: dict[str, Any], failures: list[str], con=None) -> NightReport:
    """Fold the steps' result dicts (amocrm, telegram, precompute, compact) into one record.

    `con`: a lake connection for the deals at risk (skipped when the `deal_features` view is absent).
    """
    r = NightReport(failures=list(failures))
    amo = steps.get("amocrm")
    if amo:
        r.records_synced = sum((amo.get("fetched") or {}).values())
        r.rows_written = sum((amo.get("written") or {}).values())
    for exp in steps.get("telegram") or []:
        r.exports += 1
        r.messages_imported += int(exp.get("messages_written") or 0)
    pre = steps.get("precompute") or {}
    r.summaries_computed, r.summaries_unchanged = int(pre.get("computed") or 0), int(pre.get("skipped") or 0)
    r.summaries_failed = int(pre.get("failed") or 0)
    r.llm_calls, r.tokens_in, r.tokens_out = (int(pre.get(k) or 0) for k in ("llm_calls", "tokens_in", "tokens_out"))
    if r.summaries_failed:
        r.failures.append(f"precompute: {r.summaries_failed} summaries failed "
                          f"({'; '.join((pre.get('errors') or [])[:3])})")
    r.compacted = dict(steps.get("compact") or {})
    if con is not None:
        r.risks = deals_at_risk(con)
    return r


def deals_at_risk(con) -> AtRisk | None:
    """Open deals whose win probability is under RISK_BELOW, from `deal_features` (None if it is absent)."""
    have = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_features'"
                       ).fetchone()[0]
    if not have:
        return None
    open_n, risky = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE win_probability < ?) FROM deal_features WHERE outcome = 'open'",
        [RISK_BELOW]).fetchone()
    top = con.execute(
        "SELECT lead_id, manager, amount, win_probability FROM deal_features "
        "WHERE outcome = 'open' AND win_probability < ? ORDER BY win_probability, amount DESC NULLS LAST LIMIT ?",
        [RISK_BELOW, RISKS_SHOWN]).fetchall()
    return AtRisk(int(open_n), int(risky), [dict(zip(("lead_id", "manager", "amount", "win_probability"), t))
                                            for t in top])
