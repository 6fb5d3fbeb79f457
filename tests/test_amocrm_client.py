"""amoCRM client over real HTTP against a tiny scripted server: paging, retries, limiter, auth, state."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from crmsum.sandbox.httpserver import HttpError, JsonHandler, Server
from crmsum.sources.amocrm import (
    OAUTH_STATE,
    AmoAuthError,
    AmoBlockedError,
    AmoClient,
    AmoError,
    OAuthConfig,
    RateLimiter,
)
from crmsum.state import LockedError, RunInProgressError, StateStore, run_lock

SECRET = "long-lived-secret-token-xyz"


class App:
    """Scripted state: `script` is a list of faults served before normal answers."""

    def __init__(self, n_items: int = 0, page_limit_cap: int = 250) -> None:
        self.items = [{"id": i, "name": f"lead {i}"} for i in range(1, n_items + 1)]
        self.script: list = []
        self.log: list[tuple[float, str, str]] = []
        self.tokens = {SECRET}
        self.refresh_tokens = {"r0"}
        self.refreshes = 0
        self.no_next_on_last = True
        self.lock = threading.Lock()
        self.cap = page_limit_cap


class Handler(JsonHandler):
    def route(self, method: str) -> None:
        app: App = self.app
        with app.lock:
            app.log.append((time.monotonic(), method, self.path))
            fault = app.script.pop(0) if app.script else None
        if fault == "drop":
            return self.drop_connection()
        if fault == "slow":
            time.sleep(1.0)
        elif fault == 429:
            raise HttpError(429, "Too Many Requests", headers={"Retry-After": "0.05"})
        elif fault:
            raise HttpError(fault, "scripted")
        if self.path_only == "/oauth2/access_token":
            body = self.json_body()
            with app.lock:
                if body.get("grant_type") != "refresh_token" or body.get("refresh_token") not in app.refresh_tokens:
                    raise HttpError(400, "Bad Request", "refresh token revoked")
                app.refresh_tokens.discard(body["refresh_token"])  # single-use
                app.refreshes += 1
                access, refresh = f"acc{app.refreshes}", f"r{app.refreshes}"
                app.tokens.add(access)
                app.refresh_tokens.add(refresh)
            return self.send_json(200, {"token_type": "Bearer", "expires_in": 86400,
                                        "access_token": access, "refresh_token": refresh})
        auth = self.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in app.tokens:
            raise HttpError(401, "Unauthorized")
        q = dict(self.query)
        page, limit = int(q.get("page", 1)), min(int(q.get("limit", 250)), app.cap)
        chunk = app.items[(page - 1) * limit: page * limit]
        if not chunk:
            return self.send_empty(204)
        links = {"self": {"href": f"{self.path}"}}
        if page * limit < len(app.items) or not app.no_next_on_last:
            links["next"] = {"href": f"/api/v4/leads?page={page + 1}&limit={limit}"}
        self.send_json(200, {"_page": page, "_links": links, "_embedded": {"leads": chunk}})


@pytest.fixture
def server() -> Iterator[tuple[Server, App]]:
    app = App()
    srv = Server(Handler, app).start()
    try:
        yield srv, app
    finally:
        srv.stop()


def client_for(srv: Server, **kw) -> AmoClient:
    kw.setdefault("rps", 1000)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    return AmoClient(srv.url, **({"token": SECRET} | kw))


def all_ids(client: AmoClient) -> list[int]:
    return [it["id"] for page in client.pages("/api/v4/leads", "leads", limit=10) for it in page]


@pytest.mark.parametrize("n", [0, 1, 10, 11, 57])
@pytest.mark.parametrize("prefetch", [1, 3])
def test_pages_to_the_end(server, n, prefetch):
    srv, app = server
    app.items = [{"id": i} for i in range(1, n + 1)]
    client = client_for(srv, prefetch=prefetch)
    assert all_ids(client) == list(range(1, n + 1))
    if n == 0:
        assert client.stats.requests == 1  # an empty list costs one request (answered 204)


def test_204_ends_list_even_with_next_link(server):
    srv, app = server
    app.items = [{"id": i} for i in range(1, 21)]
    app.no_next_on_last = False  # every page claims a next page; the 204 after it ends the list
    client = client_for(srv, prefetch=1)
    assert all_ids(client) == list(range(1, 21))
    assert client.stats.by_status.get(204) == 1


def test_retries_transient_faults(server, caplog):
    srv, app = server
    app.items = [{"id": i} for i in range(1, 31)]
    app.script = [500, 429, "drop", 502, 503]
    client = client_for(srv, prefetch=1)
    with caplog.at_level(logging.DEBUG):
        assert all_ids(client) == list(range(1, 31))
    assert client.stats.retries == 5
    assert SECRET not in caplog.text


def test_timeout_is_retried(server):
    srv, app = server
    app.items = [{"id": 1}]
    app.script = ["slow"]
    client = client_for(srv, timeout=0.3, prefetch=1)
    assert all_ids(client) == [1]
    assert client.stats.retries == 1


def test_gives_up_after_max_attempts(server):
    srv, app = server
    app.script = [500] * 10
    client = client_for(srv, max_attempts=3)
    with pytest.raises(AmoError, match="kept failing after 3 attempts"):
        all_ids(client)
    assert client.stats.requests == 3


def test_403_is_blocked_error(server):
    srv, app = server
    app.script = [403]
    with pytest.raises(AmoBlockedError) as ei:
        all_ids(client_for(srv))
    assert "blocked" in str(ei.value) and "\n" not in str(ei.value)
    assert isinstance(ei.value, AmoError)


def test_401_with_long_lived_token(server):
    srv, app = server
    app.tokens = {"other"}
    with pytest.raises(AmoAuthError) as ei:
        all_ids(client_for(srv))
    assert SECRET not in str(ei.value) and "CRMSUM_AMOCRM_TOKEN" in str(ei.value)


def oauth(refresh: str = "r0") -> OAuthConfig:
    return OAuthConfig("cid", "csecret", refresh, "https://example.test/cb")


def test_oauth_refresh_persists_new_pair_first(server, tmp_path):
    srv, app = server
    app.items = [{"id": i} for i in range(1, 6)]
    state = StateStore(tmp_path / "state")
    c1 = AmoClient(srv.url, oauth=oauth(), state=state, rps=1000)
    assert all_ids(c1) == [1, 2, 3, 4, 5]
    saved = state.load(OAUTH_STATE)
    assert saved["refresh_token"] == "r1" and saved["access_token"] == "acc1"
    assert stat.S_IMODE(os.stat(state.path(OAUTH_STATE)).st_mode) == 0o600
    assert "csecret" not in repr(oauth()) and "r0" not in repr(oauth())

    # access token expires: one refresh mid-run, the new pair is stored
    app.tokens.clear()
    assert all_ids(c1) == [1, 2, 3, 4, 5]
    assert state.load(OAUTH_STATE)["refresh_token"] == "r2"

    # a later run starts from the persisted pair even though the env still says r0 (now dead)
    c2 = AmoClient(srv.url, oauth=oauth("r0"), state=state, rps=1000)
    assert all_ids(c2) == [1, 2, 3, 4, 5]
    assert app.refreshes == 2  # acc2 still valid: no refresh needed
    app.tokens.clear()
    assert all_ids(c2) == [1, 2, 3, 4, 5]
    assert state.load(OAUTH_STATE)["refresh_token"] == "r3"


def test_oauth_refresh_concurrent_401s_refresh_once(server, tmp_path):
    srv, app = server
    app.items = [{"id": i} for i in range(1, 101)]
    state = StateStore(tmp_path / "state")
    client = AmoClient(srv.url, oauth=oauth(), state=state, rps=1000, prefetch=4)
    assert len(all_ids(client)) == 100
    app.tokens.clear()
    assert len(all_ids(client)) == 100
    assert app.refreshes == 2


def test_oauth_refresh_rejected_is_auth_error(server, tmp_path, caplog):
    srv, app = server
    app.refresh_tokens.clear()
    client = AmoClient(srv.url, oauth=oauth(), state=StateStore(tmp_path), rps=1000)
    with caplog.at_level(logging.DEBUG), pytest.raises(AmoAuthError) as ei:
        all_ids(client)
    assert "re-authorize" in str(ei.value)
    assert "r0" not in str(ei.value) and "csecret" not in caplog.text


def test_no_credentials():
    with pytest.raises(AmoAuthError, match="CRMSUM_AMOCRM_TOKEN"):
        AmoClient("http://127.0.0.1:9")


def test_limiter_keeps_under_rps_including_retries(server):
    """Server-side arrival times: no one-second window holds more than rps requests."""
    srv, app = server
    rps = 20
    app.items = [{"id": i} for i in range(1, 41)]
    app.script = [500, 429, 500]
    client = client_for(srv, rps=rps, prefetch=3, backoff=0.0)
    t0 = time.monotonic()
    assert len(all_ids(client)) == 40
    elapsed = time.monotonic() - t0
    times = sorted(t for t, _, _ in app.log)
    n = len(times)
    assert n >= 7
    assert elapsed >= (n - 1) * RateLimiter(rps).interval  # the limiter never spaces two departures closer
    worst = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
    assert worst <= rps


def test_limiter_thread_safe():
    lim = RateLimiter(20, margin=0.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            lim.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(stamps) == 40
    assert min(gaps) >= 0.75 / 20 * 0.8
    assert all(b - a >= 0.99 for a, b in zip(stamps, stamps[20:]))  # never 21 in one second


def test_client_from_settings_uses_secretstr(tmp_path, server):
    from crmsum.config import Settings

    srv, app = server
    app.items = [{"id": 1}]
    s = Settings(data_dir=tmp_path, amocrm_base_url=srv.url, amocrm_token=SECRET, amocrm_rps=1000)
    assert SECRET not in repr(s)
    assert all_ids(AmoClient.from_settings(s)) == [1]


# -- state store and run lock ------------------------------------------------------------------
def test_state_store_atomic_and_private(tmp_path):
    st = StateStore(tmp_path / "state")
    assert st.load("x", {}) == {}
    st.save("x", {"a": 1})
    st.update("x", b=2)
    assert st.load("x") == {"a": 1, "b": 2}
    assert stat.S_IMODE(os.stat(st.path("x")).st_mode) == 0o600
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]


def test_run_lock_conflict_and_reentry(tmp_path):
    code = (
        "import sys, time; from crmsum.state import run_lock\n"
        f"with run_lock({str(tmp_path)!r}):\n"
        "    print('locked', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunInProgressError, match="another crmsum run is in progress"):
            with run_lock(tmp_path):
                pass
        with pytest.raises(LockedError):
            with run_lock(tmp_path, wait=0.3):
                pass
        with run_lock(tmp_path, "amocrm"):  # another lock name is independent
            pass
    finally:
        proc.kill()
        proc.wait()
    with run_lock(tmp_path, wait=5):
        with run_lock(tmp_path):  # re-entrant in one process (nightly flow -> sync)
            pass
    with run_lock(tmp_path):
        pass
