"""`crmsum status`: every endpoint checked over real HTTP (emulators), local state, freshness, attention."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsum.cli import app
from crmsum.config import Settings
from crmsum.lake import Lake
from crmsum.runs import last_runs, tracked
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sandbox.llm_emulator import LLMEmulator
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from crmsum.status import status

AMO_TOKEN = "status-token"
TG_TOKEN = "123456789:STATUS-token"


@pytest.fixture(scope="module")
def world(sample_account):
    with AmoEmulator(sample_account / "amocrm", token=AMO_TOKEN) as amo, \
            TelegramEmulator(TG_TOKEN) as tg, LLMEmulator(model="emulated-gpt") as llm:
        yield amo, tg, llm


def _settings(tmp_path: Path, world, **kw) -> Settings:
    amo, tg, llm = world
    base = dict(data_dir=tmp_path, amocrm_base_url=amo.url, amocrm_token=AMO_TOKEN, telegram_token=TG_TOKEN,
                telegram_api_url=tg.url, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=llm.url, llm_model="emulated-gpt")
    base.update(kw)
    return Settings(**base)


def _by_name(report) -> dict:
    return {c.name: c for c in report.checks}


def test_all_endpoints_reachable_and_nothing_needs_attention(tmp_path, world):
    s = _settings(tmp_path, world)
    with tracked(s.state_dir, "nightly") as run:
        run.counts["records"] = 3
    report = status(s)
    checks = _by_name(report)
    assert checks["amocrm"].ok and checks["telegram"].ok and checks["llm"].ok, report.checks
    assert checks["nightly"].ok and report.runs["nightly"]["counts"] == {"records": 3}
    assert report.attention is None
    assert {t.name for t in report.tables} >= {"crm_leads", "chat_messages", "summaries"}


def test_wrong_credentials_and_missing_model_need_attention(tmp_path, world):
    s = _settings(tmp_path, world, amocrm_token="wrong", telegram_token="123456789:WRONG", llm_model="absent-model")
    report = status(s)
    checks = _by_name(report)
    assert checks["amocrm"].ok is False and "401" in checks["amocrm"].detail
    assert checks["telegram"].ok is False and "getMe" in checks["telegram"].detail
    assert checks["llm"].ok is False and "absent-model" in checks["llm"].detail
    assert "amocrm:" in report.attention and "telegram:" in report.attention and "\n" not in report.attention


def test_unreachable_endpoint_is_a_failed_check_not_a_crash(tmp_path):
    s = Settings(data_dir=tmp_path, amocrm_base_url="http://127.0.0.1:9", amocrm_token="t")
    checks = _by_name(status(s))
    assert checks["amocrm"].ok is False and checks["telegram"].ok is None and checks["llm"].ok is None


def test_loose_permissions_failed_night_and_failed_delivery(tmp_path):
    s = Settings(data_dir=tmp_path)
    s.vault_dir.mkdir(parents=True)
    (s.vault_dir / "key").write_text("k")
    os.chmod(s.vault_dir / "key", 0o644)
    with pytest.raises(RuntimeError), tracked(s.state_dir, "nightly"):
        raise RuntimeError("amoCRM blocked the account\nsecond line")
    Lake(s.lake_dir).write("deliveries", __import__("pandas").DataFrame([{
        "chat_id": -100, "week": "2024-W10", "kind": "team", "status": "failed", "message_ids": "[]",
        "error": "Forbidden: bot was blocked", "attempts": 3, "updated_at": dt.datetime(2024, 3, 11, 9)}]))
    report = status(s)
    checks = _by_name(report)
    assert checks["vault"].ok is False and "chmod" in checks["vault"].detail
    assert checks["nightly"].ok is False and "amoCRM blocked the account" in checks["nightly"].detail
    assert "second line" not in checks["nightly"].detail
    assert checks["deliveries"].ok is False and report.failed_deliveries[0]["chat_id"] == -100
    assert last_runs(s.state_dir)["nightly"]["ok"] is False


def test_cli_json_and_exit_code(tmp_path, world, monkeypatch):
    amo, tg, llm = world
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRMSUM_AMOCRM_BASE_URL", amo.url)
    monkeypatch.setenv("CRMSUM_AMOCRM_TOKEN", "wrong")
    from crmsum.config import reset_settings

    reset_settings()
    try:
        result = CliRunner().invoke(app, ["status", "--json"])
    finally:
        reset_settings()
    assert result.exit_code == 1
    doc = json.loads(result.stdout.splitlines()[0])
    assert doc["ok"] is False and doc["attention"].startswith("amocrm:")
    assert {"checks", "tables", "watermarks", "runs", "failed_deliveries", "llm_last_night"} <= set(doc)


def test_env_example_and_readme_cover_every_setting():
    from crmsum.config import Settings, env_example, env_name

    root = Path(__file__).parent.parent
    assert (root / ".env.example").read_text(encoding="utf-8") == env_example(), \
        "regenerate: python -m crmsum.config > .env.example"
    readme = (root / "README.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"`{env_name(name)}`" in readme, f"README's configuration table misses {env_name(name)}"


def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"crmsum {version('crmsum')}"
