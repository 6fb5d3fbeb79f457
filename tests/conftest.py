"""Shared fixtures. `sample_account`: one small deterministic sample account per test session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import hypothesis_profiles  # noqa: F401 - loads the Hypothesis profile (HYPOTHESIS_PROFILE, default ci)


@pytest.fixture(scope="session")
def sample_account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a generated sample account (amocrm/, telegram/result.json, truth/): 40 leads, 90 chat
    days ending 2024-06-30, seed 1. Read-only: copy it before changing anything."""
    from crmsum.sandbox.generate import generate

    out = tmp_path_factory.mktemp("sample_account")
    generate(out, leads=40, chat_days=90, seed=1, end_date=dt.date(2024, 6, 30))
    return out
