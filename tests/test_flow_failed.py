"""A weekly digest run whose deliveries all failed ends Failed in Prefect, not green."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmsum.delivery import DeliveriesFailed, require_delivered
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from delivery_env import ALLOWED, TOKEN, build_base

ROOT = Path(__file__).resolve().parents[1]
WEEK = "2024-W11"


@pytest.mark.parametrize("report, fails", [
    ({"week": WEEK, "sent": 0, "outbox": 0, "failed": 2, "errors": ["chat 1: HTTP 403 Forbidden"]}, True),
    ({"week": WEEK, "sent": 1, "outbox": 0, "failed": 1, "errors": ["x"]}, False),  # partly delivered
    ({"week": WEEK, "sent": 0, "outbox": 2, "failed": 0, "errors": []}, False),
    ({"week": WEEK, "sent": 0, "outbox": 0, "failed": 0, "skipped": 2, "errors": []}, False),  # nothing due
])
def test_require_delivered(report, fails):
    if fails:
        with pytest.raises(DeliveriesFailed, match="all 2 deliveries of 2024-W11 failed") as err:
            require_delivered(report)
        assert "\n" not in str(err.value) and "403" in str(err.value)
    else:
        require_delivered(report)


FLOW = ("import sys\nfrom flows.weekly_digest import weekly_digest\n"
        "for _ in range(2):\n"
        "    state = weekly_digest(sys.argv[1], return_state=True)\n"
        "    print('STATE', state.type.value, flush=True)\n"
        "    sys.stdin.readline()  # the test unblocks the chats, then the rerun\n")


@pytest.mark.slow
def test_weekly_flow_with_every_delivery_failing_ends_failed(tmp_path):
    data = build_base(tmp_path / "data")
    with TelegramEmulator(token=TOKEN) as tg:
        for chat in ALLOWED:
            tg.block_chat(chat)
        env = dict(os.environ, PYTHONPATH=str(ROOT), CRMSUM_DATA_DIR=str(data), CRMSUM_LLM="offline",
                   CRMSUM_TELEGRAM_TOKEN=TOKEN, CRMSUM_TELEGRAM_API_URL=tg.url,
                   CRMSUM_TELEGRAM_ALLOWED_CHATS=",".join(map(str, ALLOWED)), PREFECT_HOME=str(tmp_path / "prefect"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600")
        env.pop("PREFECT_API_URL", None)
        child = subprocess.Popen([sys.executable, "-c", FLOW, WEEK], env=env, cwd=ROOT, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            lines = []
            while not any(x.startswith("STATE") for x in lines):
                lines.append(child.stdout.readline())
                assert lines[-1] or child.poll() is None, "".join(lines)[-3000:]
            assert "STATE FAILED" in lines[-1], "".join(lines)[-3000:]
            assert any(f"all {len(ALLOWED)} deliveries of {WEEK} failed" in x for x in lines), "".join(lines)[-3000:]
            tg._blocked.clear()  # the chats unblock the bot; the next run delivers what had failed
            child.stdin.write("\n")
            child.stdin.flush()
            while not lines[-1].startswith("STATE") or len([x for x in lines if x.startswith("STATE")]) < 2:
                lines.append(child.stdout.readline())
                assert lines[-1] or child.poll() is None, "".join(lines)[-3000:]
            assert "STATE COMPLETED" in lines[-1], "".join(lines)[-3000:]
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        assert {m["chat_id"] for m in tg.sent()} == set(ALLOWED)
