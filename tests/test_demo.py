"""The README's first command: `crmsum demo` runs the whole product offline, end to end, through Prefect."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    data = tmp_path / "demo"
    env = {**os.environ, "CRMSUM_DATA_DIR": str(tmp_path / "unused"), "COLUMNS": "120"}
    env.pop("CRMSUM_TELEGRAM_ALLOWED_CHATS", None)
    run = subprocess.run(
        [sys.executable, "-m", "crmsum.cli", "demo", "--data-dir", str(data), "--leads", "30",
         "--chat-days", "45", "--rps", "50"],
        capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    answer = json.loads(next(line for line in run.stdout.splitlines() if line.startswith('{"answer"')))
    assert set(answer) == {"answer", "source", "manager", "company", "start", "end", "intent", "unresolved",
                           "period_defaulted"}
    assert answer["source"] in ("precomputed", "live") and answer["answer"]
    digests = list((data / "outbox").glob("*/*.md"))
    assert digests and all(d.with_suffix(".png").read_bytes()[:4] == b"\x89PNG" for d in digests)
    truth = json.loads((data / "sample" / "truth" / "pii.json").read_text())
    outbox_text = "".join(d.read_text() for d in digests)
    assert not [v for v in truth["names"] + truth["phones"] + truth["emails"] if v in outbox_text]
    # a second run reuses the sample and the lake: nothing is duplicated
    again = subprocess.run(run.args, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    count = subprocess.run([sys.executable, "-m", "crmsum.cli", "sql", "SELECT count(*) - count(DISTINCT lead_id) "
                            "AS dup FROM crm_leads", "--format", "csv"],
                           capture_output=True, text=True, env={**env, "CRMSUM_DATA_DIR": str(data)}, timeout=300)
    assert count.stdout.splitlines()[-1] == "0"
