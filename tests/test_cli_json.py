"""`--json` and honest exit codes of ingest, precompute and digest: counts of written, skipped and failed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from crmsum.cli import app
from crmsum.config import reset_settings
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from delivery_env import CHAT_ID, TOKEN, build_base, copy_env

AMO = "json-token"


@pytest.fixture
def run(monkeypatch):
    def invoke(data_dir, *args, **env):
        monkeypatch.setenv("CRMSUM_DATA_DIR", str(data_dir))
        monkeypatch.setenv("CRMSUM_LLM", "offline")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reset_settings()
        try:
            result = CliRunner().invoke(app, list(args))
        finally:
            reset_settings()
        doc = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
        return result.exit_code, doc

    return invoke


@pytest.mark.slow
def test_ingest_both_sources_then_rerun_writes_nothing(sample_account, tmp_path, run):
    with AmoEmulator(sample_account / "amocrm", token=AMO, rate_limit=0) as emu:
        env = dict(CRMSUM_AMOCRM_BASE_URL=emu.url, CRMSUM_AMOCRM_TOKEN=AMO, CRMSUM_AMOCRM_RPS="1000")
        code, doc = run(tmp_path, "ingest", "amocrm", "--json", **env)
        assert code == 0 and doc["ok"] and doc["written"] > 100 and doc["failed"] == 0
        assert doc["report"]["requests"] > 0
        code, again = run(tmp_path, "ingest", "amocrm", "--json", **env)
        assert code == 0 and again["written"] == 0
    code, doc = run(tmp_path, "ingest", "telegram", str(sample_account / "telegram" / "result.json"), "--json")
    assert code == 0 and doc["written"] == doc["report"]["messages_written"] > 0


@pytest.mark.slow
def test_precompute_and_digest_json(tmp_path_factory, run):
    base = build_base(tmp_path_factory.mktemp("json_base") / "data")
    data_dir, _ = copy_env(base, tmp_path_factory.mktemp("json") / "data")
    code, doc = run(data_dir, "precompute", "--json")
    assert code == 0 and doc["ok"] and doc["failed"] == 0 and doc["written"] == 0 and doc["skipped"] > 0
    code, doc = run(data_dir, "digest", "--week", "2024-W10", "--json", CRMSUM_TELEGRAM_ALLOWED_CHATS=str(CHAT_ID))
    assert code == 0 and doc["ok"] and doc["written"] == 1 and doc["report"]["mode"] == "outbox"


@pytest.mark.slow
def test_digest_with_every_send_refused_exits_non_zero(tmp_path_factory, run):
    base = build_base(tmp_path_factory.mktemp("json_base2") / "data")
    data_dir, _ = copy_env(base, tmp_path_factory.mktemp("json_fail") / "data")
    with TelegramEmulator(TOKEN) as tg:
        tg.block_chat(CHAT_ID)  # the bot was blocked: every send answers 403
        code, doc = run(data_dir, "digest", "--week", "2024-W10", "--json", CRMSUM_TELEGRAM_TOKEN=TOKEN,
                        CRMSUM_TELEGRAM_API_URL=tg.url, CRMSUM_TELEGRAM_ALLOWED_CHATS=str(CHAT_ID))
    assert code == 1 and doc["ok"] is False and doc["failed"] == 1 and doc["written"] == 0
