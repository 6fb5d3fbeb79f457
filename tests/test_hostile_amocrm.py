"""amoCRM payloads nobody planned for, served over real HTTP by the emulator's hostile modes: a float
call duration, ids above 2^64, a server that ignores `?page=`, `_embedded.<list>` as a string.
Each gives one clear line, loses nothing but the malformed value, and the rerun finishes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmsum.lake import Lake
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sandbox.amocrm_hostile import MODES
from crmsum.sources.amocrm import AmoClient, AmoError
from test_amocrm_sync import TOKEN, counts, expected_counts, run_sync, settings_for, source  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def account(sample_account) -> Path:
    return Path(sample_account)


@pytest.fixture
def emu(account):
    with AmoEmulator(account / "amocrm", token=TOKEN) as e:
        yield e


def cli(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRMSUM_DATA_DIR=str(data_dir), CRMSUM_AMOCRM_BASE_URL=url,
               CRMSUM_AMOCRM_TOKEN=TOKEN, CRMSUM_AMOCRM_RPS="1000", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "crmsum.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_modes_are_known():
    assert set(MODES) == {"ignore_paging", "string_embedded", "float_duration", "huge_ids"}


@pytest.mark.slow
def test_float_duration_and_huge_ids_become_nulls_counted_in_one_warning(emu, tmp_path, source):
    """At HEAD one `"duration": 12.5` stopped every run with a 95-line traceback."""
    emu.hostile = {"float_duration": {"notes"}, "huge_ids": {"tasks"}}
    proc = cli(tmp_path, emu.url, "ingest", "amocrm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "malformed values" in x]
    assert len(lines) == 1, proc.stderr[-3000:]
    calls = sum(1 for n in source["notes"] if isinstance(n.get("params"), dict) and "duration" in n["params"])
    assert calls and f"notes.call_duration×{calls}" in lines[0]
    assert f"tasks.responsible_user_id×{len(source['tasks'])}" in lines[0]
    lake = Lake(tmp_path / "lake")
    assert counts(lake) == expected_counts(source)  # every record landed, only the bad values are null
    con = lake.connect()
    assert con.execute("SELECT count(*) FROM crm_notes WHERE call_duration IS NOT NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM crm_tasks WHERE created_by IS NOT NULL").fetchone()[0] == 0
    emu.hostile = {}
    again = cli(tmp_path, emu.url, "ingest", "amocrm")  # the next run is an ordinary incremental one
    assert again.returncode == 0 and "malformed values" not in again.stderr, again.stderr[-2000:]


@pytest.mark.slow
def test_server_ignoring_page_stops_with_one_line(emu, tmp_path, source):
    emu.hostile = {"ignore_paging": {"events"}}
    assert len(source["events"]) > 100  # more than one page of events
    proc = cli(tmp_path, emu.url, "ingest", "amocrm")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]  # above it: the progress bars
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("error: amoCRM GET /api/v4/events: page 2 repeats page 1 (the server ignores ?page=)")
    events_requests = sum(n for (path, _), n in emu._counts.items() if path == "/api/v4/events")
    assert events_requests <= 6  # stopped at once, not paged forever at the rate limit
    emu.hostile = {}
    ok = cli(tmp_path, emu.url, "ingest", "amocrm")  # the lock was released; the rerun completes
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert counts(Lake(tmp_path / "lake")) == expected_counts(source)


def test_client_pages_detects_the_repeat_with_prefetch(emu):
    emu.hostile = {"ignore_paging": {"leads"}}
    with AmoClient(emu.url, token=TOKEN, rps=1000, prefetch=3) as client:
        client.stats.latency = 1.0  # as on a slow link: several pages in flight
        with pytest.raises(AmoError, match="page 2 repeats page 1") as err:
            list(client.pages("/api/v4/leads", "leads", limit=5))
    assert "\n" not in str(err.value)
    assert client.stats.requests <= 5


def test_string_embedded_stops_with_one_line_and_rerun_completes(emu, tmp_path, source):
    emu.hostile = {"string_embedded": {"contacts"}}
    s = settings_for(tmp_path, emu.url)
    with pytest.raises(AmoError, match=r"_embedded\.contacts is not a list") as err:
        run_sync(s)
    assert "\n" not in str(err.value)
    emu.hostile = {}
    run_sync(s)
    assert counts(Lake(s.lake_dir)) == expected_counts(source)
