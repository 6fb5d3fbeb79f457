"""Two `crmsum precompute` at once: the second stops at once with one line (the nightly run lock), so
the LLM is paid once; afterwards everything is computed and a rerun calls the LLM no more."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmsum.sandbox.llm_emulator import LLMEmulator
from lake_fixture import build_lake

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-lock"
HOLD = 45.0  # seconds the first run's first LLM answers stall (the second must start and stop meanwhile)


def env_for(data_dir: Path, url: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), CRMSUM_DATA_DIR=str(data_dir), CRMSUM_LLM="llm",
                OPENAI_API_KEY=KEY, OPENAI_BASE_URL=url, CRMSUM_LLM_MODEL="emulated-gpt", COLUMNS="200",
                CRMSUM_LLM_TIMEOUT="120")


@pytest.mark.slow
def test_two_precomputes_at_once_pay_the_llm_once(tmp_path):
    data_dir = tmp_path / "data"
    build_lake(data_dir / "lake", leads=8)
    lock = data_dir / "state" / "nightly.lock"
    with LLMEmulator(api_key=KEY, delay=HOLD) as emu:  # the first answers stall: the first run holds the lock
        env = env_for(data_dir, emu.url)
        first = subprocess.Popen([sys.executable, "-m", "crmsum.cli", "precompute"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and first.poll() is None and emu.calls == 0:
                time.sleep(0.05)  # the first holds the lock and is paying for summaries
            emu.delay = 0.0  # answers after the stalled ones come at once
            assert first.poll() is None and lock.read_text().strip() == str(first.pid)
            t0 = time.monotonic()
            second = subprocess.run([sys.executable, "-m", "crmsum.cli", "precompute"], env=env,
                                    capture_output=True, text=True, timeout=120)
            assert time.monotonic() - t0 < HOLD, "the second run took longer than the first held the lock"
            out, err = first.communicate(timeout=300)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, err[-2000:]
        assert second.returncode == 1
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith("error: another crmsum run is in progress") and f"pid {first.pid}" in line
        paid = emu.calls
        assert paid > 0
        again = subprocess.run([sys.executable, "-m", "crmsum.cli", "precompute"], env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert emu.calls == paid  # everything was computed once; nothing is paid twice
