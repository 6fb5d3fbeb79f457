"""Every command ends an expected failure the same way: one line on stderr, exit code 1 (2 for a
usage error, as click does), never a traceback. The catch lives once in `crmsum.cli`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from crmsum.cli import app
from crmsum.config import reset_settings

_CLEAN_ENV = ("CRMSUM_AMOCRM_BASE_URL", "CRMSUM_AMOCRM_TOKEN", "CRMSUM_AMOCRM_CLIENT_ID", "CRMSUM_TELEGRAM_TOKEN",
              "CRMSUM_TELEGRAM_ALLOWED_CHATS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CRMSUM_LLM")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Invoke `crmsum ARGS` with a fresh, empty data root and the given extra environment."""
    for name in _CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(tmp_path / "data"))

    def invoke(args: list[str], **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        try:
            return CliRunner().invoke(app, args)
        finally:
            reset_settings()

    return invoke


def _one_line(result, alone: bool = True) -> str:
    """The error line (the last on stderr); with `alone`, the only one (no warnings, no blank lines)."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.rstrip("\n").splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert not alone or len(lines) == 1, result.stderr
    return lines[-1]


EXPECTED = [
    (["eval", "--truth", "/missing/truth"], {}, "story.json"),
    (["eval", "--truth", "/missing/truth", "--backend", "nope"], {}, "unknown backend"),
    (["digest", "--week", "2024-13"], {}, "2024-W10"),
    (["digest"], {}, "crmsum ingest"),
    (["feedback", "--month", "2024-99"], {}, "YYYY-MM"),
    (["feedback", "--since", "yesterday"], {}, "YYYY-MM-DD"),
    (["ingest", "telegram", "/missing/result.json"], {}, "does not exist"),
    (["ingest", "amocrm"], {}, "CRMSUM_AMOCRM_BASE_URL"),
    (["ingest", "amocrm"], {"CRMSUM_AMOCRM_BASE_URL": "http://127.0.0.1:9"}, "CRMSUM_AMOCRM_TOKEN"),
    (["bot"], {}, "CRMSUM_TELEGRAM_TOKEN"),
    (["impact", "--since", "2024-13-01"], {}, "YYYY-MM-DD"),
    (["insights", "--period", "2024-13"], {}, "--period"),
    (["sql", "DROP TABLE crm_leads"], {}, "refused"),
    (["search", "скидка", "--k", "0"], {}, "--k"),
    (["generate", "--out", "{tmp}/sample", "--leads", "0"], {}, "leads"),
    (["generate", "--out", "{tmp}/sample", "--end-date", "30.06.2024"], {}, "YYYY-MM-DD"),
    (["precompute"], {"CRMSUM_DATA_DIR": "/proc/crmsum-missing/data"}, "No such file or directory"),
]


@pytest.mark.parametrize("args,env,needle", EXPECTED, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _e, _n)
                                                        in enumerate(EXPECTED)])
def test_expected_failure_is_one_line(run, tmp_path, args, env, needle):
    result = run([a.replace("{tmp}", str(tmp_path)) for a in args], **env)
    assert result.exit_code == 1, result.output
    assert needle in _one_line(result)


def test_wrong_token_at_a_live_endpoint_is_one_line(run, sample_account):
    from crmsum.sandbox.amocrm_emulator import AmoEmulator

    with AmoEmulator(sample_account / "amocrm", token="right", rate_limit=0) as emu:
        result = run(["ingest", "amocrm"], CRMSUM_AMOCRM_BASE_URL=emu.url, CRMSUM_AMOCRM_TOKEN="wrong")
    assert result.exit_code == 1, result.output
    assert "amoCRM" in _one_line(result)


def test_bot_that_cannot_reach_the_bot_api_stops_in_one_line(run):
    from crmsum.sandbox.telegram_emulator import TelegramEmulator

    with TelegramEmulator(token="123:right") as tg:
        wrong = run(["bot"], CRMSUM_TELEGRAM_TOKEN="123:wrong", CRMSUM_TELEGRAM_API_URL=tg.url)
    assert wrong.exit_code == 1, wrong.output
    assert "getMe" in _one_line(wrong, alone=False) and "123:wrong" not in wrong.output
    dead = run(["bot"], CRMSUM_TELEGRAM_TOKEN="123:t", CRMSUM_TELEGRAM_API_URL="http://127.0.0.1:9")
    assert dead.exit_code == 1, dead.output
    assert "http://127.0.0.1:9" in _one_line(dead, alone=False)  # after «bot running»


@pytest.mark.slow
def test_unreachable_endpoint_is_one_line(run):
    """Nothing listens on port 9: the client retries with backoff (~50 s), then says so in one line."""
    result = run(["ingest", "amocrm"], CRMSUM_AMOCRM_BASE_URL="http://127.0.0.1:9", CRMSUM_AMOCRM_TOKEN="t")
    assert result.exit_code == 1, result.output
    assert "kept failing" in _one_line(result, alone=False)  # after a warning per retry


@pytest.mark.parametrize("args", [["ask"], ["generate"], ["ingest", "telegram"], ["sql"], ["nonsense"]])
def test_usage_error_exits_2(run, args):
    result = run(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
