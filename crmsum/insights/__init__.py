"""What wins and loses deals: deal features, drivers with honest uncertainty, phrases, win probability, risks.

The public API (other packages — `crmsum.answer`, digests, briefs — call only these):

- `report(lake_or_con, *, start=None, end=None, manager=None, as_of=None) -> InsightsReport`
  drivers (win rate with/without each feature, Newcombe 95% interval of the difference, adjusted odds
  ratio from one logistic regression controlling for manager, pipeline and deal size, Benjamini–Hochberg
  q-values), distinguishing phrases (weighted log-odds, informative Dirichlet prior), open deals at
  risk and the out-of-time validated win-probability model. `start`/`end` (dates, inclusive) filter
  the closed deals by `closed_at`; `manager` is a pseudonym. When the data cannot support a
  conclusion, `InsightsReport.reason` says why in one line and the lists stay empty.
  `InsightsReport.to_dict()` is the `crmsum insights --json` shape of ../shared/design.md.
- `deal_vs_won(lake_or_con, lead_id) -> DealComparison`: one deal's features beside the won deals of
  its pipeline («Почему проиграли X?»).
- `manager_habits(lake_or_con, manager, *, start=None, end=None) -> HabitsComparison`: a manager's
  habits (the driver features) beside the team's, with the one habit whose change matters most.
- `refresh(lake, *, as_of=None) -> RefreshReport`: the nightly step — features (incremental: only leads
  whose inputs changed get their text re-read) -> model -> drivers, written to `deal_features` and
  `drivers`.
- `crmsum.insights.present`: digest sections («Риски недели», «Что выигрывает сделки», habits) as
  `crmsum.summarize.model.Section` records built from an `InsightsReport`.

Modules, one job each: `text_facts` (negation-aware meeting / proposal / discount facts from Russian
text, lemmas from `crmsum.ru.morph`), `features` (the `deal_features` SQL), `stats` (Wilson/Newcombe,
Benjamini–Hochberg, AUC), `drivers`, `phrases`, `model`, `risks`, `analysis` (the report and the nightly refresh), `present`, `compare`.
"""

from crmsum.insights.records import (
    DealComparison, Driver, HabitsComparison, InsightsReport, ModelSummary, Phrase, RefreshReport, Risk,
)


def report(lake_or_con, *, start=None, end=None, manager=None, as_of=None) -> InsightsReport:
    """See the module docstring."""
    from crmsum.insights.analysis import build_report

    return build_report(lake_or_con, start=start, end=end, manager=manager, as_of=as_of)


def refresh(lake, *, as_of=None) -> RefreshReport:
    """Nightly: recompute features (incrementally), the model and the drivers table."""
    from crmsum.insights.analysis import refresh as run

    return run(lake, as_of=as_of)


def deal_vs_won(lake_or_con, lead_id: int, profile=None) -> DealComparison:
    """`profile`: `compare.won_profile(features)` kept by a caller that asks about many deals."""
    from crmsum.insights.compare import deal_vs_won as run

    return run(lake_or_con, lead_id, profile)


def manager_habits(lake_or_con, manager: str, *, start=None, end=None) -> HabitsComparison:
    from crmsum.insights.compare import manager_habits as run

    return run(lake_or_con, manager, start=start, end=end)


__all__ = ["DealComparison", "Driver", "HabitsComparison", "InsightsReport", "ModelSummary", "Phrase",
           "RefreshReport", "Risk", "deal_vs_won", "manager_habits", "refresh", "report"]
