"""API faults the outside world throws at a night, against the loopback emulators.

tests/test_amocrm_sync.py already proves: a mixed fault rate with a tight limit ends like a clean run, a
block (403) stops with a clear error, OAuth refresh mid-run, 7 req/s never blocked. Here:
- a 429 storm (tight server limit, small pages = many requests): never blocked, the client's own request
  rate as the emulator saw it stays within the limit, tables equal a clean run's;
- each fault kind alone at a high rate (5xx, dropped connections, answers slower than the client timeout);
- OAuth mode with faults on every endpoint (the token endpoint too) and all access tokens expiring mid-run;
- the LLM path of precompute under 429 / 500 / timeout / garbage / disconnect: every summary lands, the
  ones the LLM could not do are offline with the fallback note.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import pytest

import e2e
from crmsum import pipeline
from crmsum.config import Settings
from crmsum.ingest import amocrm as ingest
from crmsum.lake import Lake
from crmsum.precompute import precompute
from crmsum.privacy import Anonymizer, Vault
from crmsum.sandbox.amocrm_emulator import DROPPED, AmoEmulator
from crmsum.sandbox.llm_emulator import LLMEmulator
from crmsum.sources.amocrm import AmoClient
from crmsum.summarize import NOTE_LLM_DOWN

pytestmark = pytest.mark.slow  # whole syncs against a faulty emulator, real time outs

CRM = ("crm_users", "crm_pipelines", "crm_statuses", "crm_companies", "crm_contacts", "crm_leads", "crm_notes",
       "crm_tasks", "crm_events")
OAUTH = {"client_id": "e2e-client", "client_secret": "e2e-client-secret-9d7", "redirect_uri": "https://e2e.example/cb",
         "refresh_token": "e2e-initial-refresh-token-77"}


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    return e2e.make_account(tmp_path_factory.mktemp("faults") / "account")


@pytest.fixture(scope="module")
def clean(account, tmp_path_factory):
    """A clean sync (and Telegram import) of the account: the reference lake and its vault key."""
    d = tmp_path_factory.mktemp("faults_clean")
    e2e.prepare_data_dir(d, account)
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN) as emu:
        s = settings_for(d, emu.url)
        sync(s)
    pipeline.import_inbox(s)
    return d, e2e.lake_rows(Lake(s.lake_dir), CRM)


def settings_for(data_dir: Path, url: str, **kw) -> Settings:
    kw.setdefault("amocrm_token", e2e.AMO_TOKEN)
    kw.setdefault("amocrm_rps", 1000)
    return Settings(data_dir=data_dir, amocrm_base_url=url, llm="offline", **kw)


def sync(s: Settings, timeout: float = 10, **kw):
    anon = Anonymizer(Vault(s.vault_dir))
    try:
        client = AmoClient.from_settings(s, backoff=0.05, max_backoff=2.0, timeout=timeout)
        return ingest.sync(s, Lake(s.lake_dir), anon, client=client, **kw)
    finally:
        anon.close()


def fresh(tmp_path: Path, clean) -> Path:
    d = tmp_path / "data"
    (d / "vault").mkdir(parents=True, mode=0o700)
    shutil.copy2(clean[0] / "vault" / "key", d / "vault" / "key")
    return d


def stamp_arrivals(emu: AmoEmulator) -> list[float]:
    """Record when each request reached the emulator's gate (the request_log has no times)."""
    arrivals: list[float] = []
    lock = threading.Lock()
    admit = emu.admit

    def stamped():
        with lock:
            arrivals.append(time.monotonic())
        return admit()

    emu.admit = stamped
    return arrivals


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.fixture()
def small_pages(monkeypatch):
    """Pages of 20 records, so the small account takes ~90 requests (a storm at a tight limit)."""
    monkeypatch.setattr(ingest, "STREAMS", tuple(dataclasses.replace(s, limit=20) for s in ingest.STREAMS))


# -- amoCRM -------------------------------------------------------------------------------------------
def test_429_storm_never_blocked_and_within_the_limit(account, clean, tmp_path, small_pages):
    limit = 6
    d = fresh(tmp_path, clean)
    # block after 8 throttled calls in 10 s: a client that ignored 429s / Retry-After would be blocked
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN, rate_limit=limit, block_after=8) as emu:
        arrivals = stamp_arrivals(emu)
        s = settings_for(d, emu.url, amocrm_rps=limit)
        report = sync(s)
        st = emu.stats()
        log = list(emu.request_log)
    assert st["by_status"].get(403, 0) == 0, st
    assert report.requests >= 60 and len(log) == len(arrivals) == st["total"]
    # the rate the server saw: the limiter spaces departures over a window a little longer than 1 s,
    # so any 1-second window holds at most `limit` arrivals, plus the requests a loaded machine may have
    # held back and delivered together (at most the client's concurrency: 3 page prefetches)
    assert max_in_window(arrivals, 1.0) <= limit + 3
    assert max_in_window(arrivals, 5.0) <= 5 * limit + 3
    span = max(arrivals) - min(arrivals)
    assert (len(arrivals) - 1) / span <= limit  # and on average, strictly within it
    assert st["by_status"].get(429, 0) <= 8
    assert e2e.lake_rows(Lake(s.lake_dir), CRM) == clean[1]


@pytest.mark.parametrize("faults", [[("500", 1.0), ("502", 1.0), ("503", 1.0)], [("drop", 1.0)], [("slow", 1.0)]],
                         ids=["5xx", "dropped", "slow"])
def test_one_fault_kind_at_a_high_rate_ends_like_a_clean_run(account, clean, tmp_path, faults):
    d = fresh(tmp_path, clean)
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN, fail_rate=0.35, seed=11, slow_seconds=1.5) as emu:
        emu.faults = faults
        s = settings_for(d, emu.url)
        report = sync(s, timeout=0.5)
        st = emu.stats()
    kinds = {"5xx": {500, 502, 503}, "dropped": {DROPPED}}
    seen = set(st["by_status"])
    assert report.retries > 0
    if faults[0][0] != "slow":
        assert seen & kinds["5xx" if faults[0][0] == "500" else "dropped"]
    assert e2e.lake_rows(Lake(s.lake_dir), CRM) == clean[1]


def test_oauth_tokens_expire_mid_run_with_faults_everywhere(account, clean, tmp_path):
    """OAuth mode: faults also hit the token endpoint, and every access token dies mid-run."""
    d = fresh(tmp_path, clean)
    with AmoEmulator(account / "amocrm", token=None, fail_rate=0.3, seed=5, slow_seconds=1.0, **OAUTH) as emu:
        emu.faults = [("500", 1.0), ("503", 1.0), ("drop", 1.0)]
        s = settings_for(d, emu.url, amocrm_token=None, amocrm_client_id=OAUTH["client_id"],
                         amocrm_client_secret=OAUTH["client_secret"], amocrm_refresh_token=OAUTH["refresh_token"],
                         amocrm_redirect_uri=OAUTH["redirect_uri"])
        expired = []

        def progress(step, advance=1, total=None):
            if step in ("contacts", "notes") and step not in expired:
                expired.append(step)
                emu.expire_access_tokens()

        report = sync(s, timeout=0.5, progress=progress, queue_pages=1)
        st = emu.stats()
    assert expired == ["contacts", "notes"] and report.token_refreshes >= 3
    assert st["by_path"].get("/oauth2/access_token", 0) >= 3
    assert st["by_status"].get(403, 0) == 0
    assert e2e.lake_rows(Lake(s.lake_dir), CRM) == clean[1]


# -- LLM ----------------------------------------------------------------------------------------------
def test_llm_precompute_survives_every_fault_kind(clean, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(clean[0], d)
    with LLMEmulator(api_key=e2e.OPENAI_KEY, retry_after=0.05) as llm:
        s = Settings(data_dir=d, llm="llm", llm_model="emulated-gpt", llm_timeout=1.0,
                     OPENAI_API_KEY=e2e.OPENAI_KEY, OPENAI_BASE_URL=llm.url)
        # transient: each recovers within the client's bounded retries
        for kind in ("rate_limit", "server_error", "garbage", "timeout", "disconnect"):
            llm.fail_next(kind, times=1, seconds=3.0)
        # then an outage long enough to exhaust the retries of several summaries (the breaker opens)
        llm.fail_next("server_error", times=12)
        report = precompute(s, Lake(s.lake_dir))
        calls = llm.calls
    assert report.failed == 0 and report.computed == report.total > 0
    assert 0 < report.fallbacks < report.total
    df = Lake(s.lake_dir).read("summaries")
    assert len(df) == report.total
    fb = df[df.backend == "offline"]
    assert len(fb) == report.fallbacks and fb.note.str.startswith(NOTE_LLM_DOWN).all()
    assert (df[df.backend == "llm"].note.isna()).all()
    assert calls >= report.total - report.fallbacks
    llm_calls = Lake(s.lake_dir).read("llm_calls")
    assert (~llm_calls.ok).sum() >= 5 + 3  # every failed attempt is accounted for
