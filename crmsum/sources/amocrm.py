"""amoCRM API v4 client: auth (long-lived token or OAuth 2 with single-use refresh tokens),
paging to the end, a client-side rate limiter and retries with backoff.

Why this shape:
- amoCRM allows 7 requests/s per integration and blocks (403) integrations that keep exceeding
  it, so every attempt — retries and token refreshes included — passes one shared limiter.
- refresh tokens are single-use: the new pair is persisted (0600, fsync) before it is used.
- tokens are never logged or put in exception messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from crmsum.errors import CrmsumError
from crmsum.sources.amocrm_paging import PageGuard, page_items
from crmsum.state import StateStore

log = logging.getLogger(__name__)

OAUTH_STATE = "amocrm_oauth"
PAGE_LIMIT = 250
EVENTS_LIMIT = 100


class AmoError(CrmsumError, RuntimeError):
    """An amoCRM call failed in a way the sync cannot work around."""


class AmoAuthError(AmoError):
    """401 that a token refresh cannot fix (or no credentials at all)."""


class AmoBlockedError(AmoError):
    """403: amoCRM blocked the integration or the account."""


class _Retryable(Exception):
    """Internal: a transient failure worth another attempt."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


# -- rate limiter -----------------------------------------------------------------------------
class RateLimiter:
    """Thread-safe sliding-window limiter: at most `rps` request departures in any `window` seconds.

    The window is a little longer than one second (`margin`) because the server counts arrivals,
    and arrivals jitter; departures are stamped when they really happen (after the sleep), so a
    late wake-up never lets the next request catch up. A token bucket with burst capacity would let
    a one-second window see up to 2×rps requests. Every 429 widens the margin a little (`penalize`);
    every `relax_after` departures without one narrow it back a little, down to the initial margin:
    the margin caps the pace at n / (base + margin), and a penalty kept for good made a scale-10 sync
    that met three 429s in 4,343 requests run at 90% of the rate bound instead of 95%.
    """

    def __init__(self, rps: float, margin: float = 0.03, max_margin: float = 0.25, relax_after: int = 100) -> None:
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.rps = rps
        self.n = max(1, int(rps))
        self.base = self.n / rps  # seconds that hold n requests at exactly rps (1.0 for whole rps)
        self.margin, self.max_margin = margin, max_margin
        self.min_margin, self.relax_after = margin, relax_after
        self._clean = 0  # departures since the last penalty
        # minimum spacing below the average, so a late departure (GIL, slow parse) can be partly
        # caught up by the next while the window rule still bounds every second
        self.interval = 0.75 / rps
        self._log: deque[float] = deque(maxlen=self.n)
        self._last = float("-inf")
        self._pause_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers spent waiting for a slot
        self.acquired = 0

    @property
    def window(self) -> float:
        return self.base + self.margin

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                t = max(now, self._last + self.interval, self._pause_until)
                if len(self._log) >= self.n:
                    t = max(t, self._log[0] + self.window)
                if t <= now:
                    self._log.append(now)
                    self._last = now
                    self.acquired += 1
                    self._relax()
                    return
            delay = t - now
            self.waited += delay
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every caller back (the server said Retry-After)."""
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def penalize(self) -> None:
        """The server still saw too many requests: keep a wider safety margin for a while."""
        with self._lock:
            self.margin = min(self.max_margin, self.margin + 0.02)
            self._clean = 0

    def _relax(self) -> None:
        """(Under the lock.) `relax_after` clean departures: narrow the margin by 0.01 again."""
        self._clean += 1
        if self._clean >= self.relax_after and self.margin > self.min_margin:
            self.margin = max(self.min_margin, self.margin - 0.01)
            self._clean = 0


# -- auth -------------------------------------------------------------------------------------
@dataclass
class OAuthConfig:
    client_id: str
    client_secret: str
    refresh_token: str
    redirect_uri: str

    def __repr__(self) -> str:  # never show secrets
        return f"OAuthConfig(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class _TokenManager:
    """Holds the current access token; refreshes once per failed generation, persisting first."""

    def __init__(self, token: str | None, oauth: OAuthConfig | None, state: StateStore | None) -> None:
        if not token and not oauth:
            raise AmoAuthError(
                "no amoCRM credentials: set CRMSUM_AMOCRM_TOKEN or CRMSUM_AMOCRM_CLIENT_ID, "
                "_CLIENT_SECRET, _REFRESH_TOKEN and _REDIRECT_URI"
            )
        self.oauth = oauth
        self.state = state
        self._lock = threading.Lock()
        self.generation = 0
        self.refreshes = 0
        self.access: str | None = token
        self.refresh: str | None = None
        if oauth:
            self.access, self.refresh = None, oauth.refresh_token
            saved = state.load(OAUTH_STATE, {}) if state else {}
            # Later runs start from the persisted pair: the env refresh token was used up by the
            # first refresh. A different env token than the one that seeded the state means the
            # integration was re-authorized by hand, so the env wins then.
            if saved.get("refresh_token") and saved.get("seed") == _fingerprint(oauth.refresh_token):
                self.access = saved.get("access_token")
                self.refresh = saved["refresh_token"]

    @property
    def can_refresh(self) -> bool:
        return self.oauth is not None

    def header(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            return self.generation, ({"Authorization": f"Bearer {self.access}"} if self.access else {})

    def refresh_after(self, failed_generation: int, client: AmoClient) -> None:
        """Refresh unless another thread already did since `failed_generation`."""
        with self._lock:
            if self.generation != failed_generation and self.access:
                return
            if not self.oauth:
                raise AmoAuthError("amoCRM rejected the access token (401); issue a new CRMSUM_AMOCRM_TOKEN")
            body = {
                "client_id": self.oauth.client_id,
                "client_secret": self.oauth.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": self.refresh,
                "redirect_uri": self.oauth.redirect_uri,
            }
            # transient failures (5xx, drops, 429) are retried like any call: a server error means the
            # refresh token was not consumed, and an escaping _Retryable would abort the whole sync
            resp = client._with_retries("POST", "/oauth2/access_token", None, {}, json=body)
            if resp.status_code != 200:
                raise AmoAuthError(
                    f"amoCRM refused the OAuth refresh (HTTP {resp.status_code}); re-authorize the "
                    "integration and set a new CRMSUM_AMOCRM_REFRESH_TOKEN"
                )
            try:
                data = resp.json()
                access, refresh = data["access_token"], data["refresh_token"]
            except (ValueError, KeyError, TypeError):
                raise AmoAuthError("amoCRM OAuth refresh answered without a token pair") from None
            if self.state is not None:  # persist BEFORE use: the old refresh token is dead now
                self.state.save(OAUTH_STATE, {
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_at": int(time.time()) + int(data.get("expires_in") or 86400),
                    "refreshed_at": int(time.time()),
                    "seed": _fingerprint(self.oauth.refresh_token),
                })
            self.access, self.refresh = access, refresh
            self.generation += 1
            self.refreshes += 1
            log.info("amoCRM access token refreshed (pair persisted)")


# -- client -----------------------------------------------------------------------------------
@dataclass
class ClientStats:
    requests: int = 0  # HTTP attempts sent (including retries and refreshes)
    retries: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    api_seconds: float = 0.0  # time inside HTTP calls
    latency: float = 0.0  # moving average of one HTTP call, seconds
    errors: dict[str, int] = field(default_factory=dict)


class AmoClient:
    """amoCRM API v4 over one `requests.Session`; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        oauth: OAuthConfig | None = None,
        state: StateStore | None = None,
        rps: float = 7.0,
        timeout: float = 30.0,
        max_attempts: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        prefetch: int = 3,
    ) -> None:
        if not base_url:
            raise AmoError("CRMSUM_AMOCRM_BASE_URL is not set (e.g. https://yourco.amocrm.ru)")
        self.base_url = base_url.rstrip("/")
        self.tokens = _TokenManager(token, oauth, state)
        self.limiter = RateLimiter(rps)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.prefetch = max(1, prefetch)
        self.stats = ClientStats()
        self._server_clock: tuple[float, float] | None = None  # (server unix time, local monotonic)
        self._stats_lock = threading.Lock()
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(4, self.prefetch * 2),
                                                max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "crmsum/0.1"})

    @classmethod
    def from_settings(cls, settings: Any, state: StateStore | None = None, **kw: Any) -> AmoClient:
        """Build from `Settings`: long-lived token if set, else OAuth 2 with refresh."""
        state = state if state is not None else StateStore(settings.state_dir)
        token = settings.amocrm_token.get_secret_value() if settings.amocrm_token else None
        oauth = None
        if not token and settings.amocrm_client_id and settings.amocrm_refresh_token:
            oauth = OAuthConfig(
                client_id=settings.amocrm_client_id,
                client_secret=settings.amocrm_client_secret.get_secret_value()
                if settings.amocrm_client_secret else "",
                refresh_token=settings.amocrm_refresh_token.get_secret_value(),
                redirect_uri=settings.amocrm_redirect_uri or "",
            )
        kw.setdefault("rps", settings.amocrm_rps)
        return cls(settings.amocrm_base_url or "", token=token, oauth=oauth, state=state, **kw)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> AmoClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- low level ------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: Any = None, json: Any = None,
              auth: bool = True, headers: dict | None = None) -> requests.Response:
        """One attempt through the limiter; transient failures become `_Retryable`."""
        self.limiter.acquire()
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        t0 = time.monotonic()
        try:
            resp = self.session.request(method, url, params=params, json=json, headers=headers,
                                        timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            self._count(None, type(exc).__name__)
            raise _Retryable(f"{method} {path}: {type(exc).__name__}") from None
        except requests.exceptions.ChunkedEncodingError as exc:
            self._count(None, type(exc).__name__)
            raise _Retryable(f"{method} {path}: {type(exc).__name__}") from None
        finally:
            dt = time.monotonic() - t0
            with self._stats_lock:
                self.stats.requests += 1
                self.stats.api_seconds += dt
                lat = self.stats.latency
                self.stats.latency = dt if lat == 0 else 0.8 * lat + 0.2 * dt
        self._count(resp.status_code, None)
        date = resp.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
                self._server_clock = (parsedate_to_datetime(date).timestamp(), time.monotonic())
        if resp.status_code == 429:
            ra = _retry_after(resp)
            self.limiter.penalize()
            if ra:
                self.limiter.pause(ra)
            raise _Retryable(f"{method} {path}: HTTP 429", ra)
        if resp.status_code >= 500:
            raise _Retryable(f"{method} {path}: HTTP {resp.status_code}", _retry_after(resp))
        return resp

    def _count(self, status: int | None, error: str | None) -> None:
        with self._stats_lock:
            if status is not None:
                self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            if error:
                self.stats.errors[error] = self.stats.errors.get(error, 0) + 1

    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome else None
        ra = getattr(exc, "retry_after", None)
        if ra:
            return min(float(ra), 120.0) + random.uniform(0, 0.25)
        cap = min(self.max_backoff, self.backoff * 2 ** (rs.attempt_number - 1))
        return random.uniform(cap / 2, cap)  # exponential with jitter

    def _before_sleep(self, rs: RetryCallState) -> None:
        with self._stats_lock:
            self.stats.retries += 1
        exc = rs.outcome.exception() if rs.outcome else None
        log.warning("amoCRM transient failure (%s), retry %d", exc, rs.attempt_number)

    def request(self, method: str, path: str, params: Any = None) -> requests.Response:
        """Authenticated call with retries on 429/5xx/timeouts/drops and one refresh on 401."""
        refreshed = False
        while True:
            gen, auth = self.tokens.header()
            if not auth and self.tokens.can_refresh:
                self.tokens.refresh_after(gen, self)
                refreshed = True
                continue
            resp = self._with_retries(method, path, params, auth)
            if resp.status_code == 401:
                if refreshed or not self.tokens.can_refresh:
                    raise AmoAuthError(
                        f"amoCRM rejected the credentials (401 on {path}); "
                        + ("re-authorize the integration" if self.tokens.can_refresh
                           else "issue a new CRMSUM_AMOCRM_TOKEN")
                    )
                self.tokens.refresh_after(gen, self)
                refreshed = True
                continue
            if resp.status_code == 403:
                raise AmoBlockedError(
                    f"amoCRM answered 403 on {path}: the integration or account is blocked "
                    "(too many requests or no access); check the integration in amoCRM and retry later"
                )
            if resp.status_code >= 400:
                raise AmoError(f"amoCRM {method} {path} failed: HTTP {resp.status_code} {_problem(resp)}")
            return resp

    def _with_retries(self, method: str, path: str, params: Any, auth: dict, json: Any = None) -> requests.Response:
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Retryable),
                stop=stop_after_attempt(self.max_attempts),
                wait=self._wait,
                before_sleep=self._before_sleep,
                reraise=True,
            ):
                with attempt:
                    return self._send(method, path, params=params, json=json, headers=auth)
        except _Retryable as exc:
            raise AmoError(f"amoCRM kept failing after {self.max_attempts} attempts: {exc}") from None
        raise AssertionError("unreachable")

    def get(self, path: str, params: Any = None) -> dict | None:
        """GET JSON; None for 204 No Content (an empty page)."""
        resp = self.request("GET", path, params)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise AmoError(f"amoCRM GET {path} answered HTTP {resp.status_code} with non-JSON") from None

    # -- lists ----------------------------------------------------------------------------
    def pages(self, path: str, key: str, params: list[tuple[str, Any]] | None = None,
              limit: int = PAGE_LIMIT, stop: threading.Event | None = None) -> Iterator[list[dict]]:
        """Yield each page's `_embedded[key]` list, in order, until 204 or no `_links.next`.

        The first page is fetched alone (an empty list costs one request); once a next link is seen,
        as many pages are in flight as it takes to cover one call's latency at the limiter's pace
        (at most `prefetch`), so network latency does not leave the limiter idle while a fast link
        wastes no speculative request past the end.
        """
        base = [(k, v) for k, v in (params or []) if k not in ("page", "limit")] + [("limit", limit)]

        def fetch(page: int) -> tuple[list[dict], bool]:
            return page_items(self.get(path, base + [("page", page)]), path, key, page)

        seen = PageGuard(path)
        items, more = fetch(1)
        if items:
            seen.check(1, items)
            yield items
        if not more:
            return
        page = 2
        window = max(1, min(self.prefetch, 1 + int(self.stats.latency * self.limiter.rps)))
        if window == 1:
            while more and not (stop and stop.is_set()):
                items, more = fetch(page)
                if items:
                    seen.check(page, items)
                    yield items
                page += 1
            return
        pool = ThreadPoolExecutor(window, thread_name_prefix="amocrm-page")
        inflight: deque[Future] = deque()
        try:
            done = 1
            while True:
                while len(inflight) < window:
                    inflight.append(pool.submit(fetch, page))
                    page += 1
                items, more = inflight.popleft().result()
                done += 1
                if items:
                    seen.check(done, items)
                    yield items
                if not more or (stop and stop.is_set()):
                    return
        finally:
            for f in inflight:
                f.cancel()
            for f in inflight:
                with contextlib.suppress(Exception):
                    f.result()
            pool.shutdown(wait=True)

    def server_now(self) -> float | None:
        """The API server's clock (from the last response's Date header), or None before any answer.
        Record stamps come from that clock, so sync windows are cut with it, not with ours."""
        sc = self._server_clock
        return None if sc is None else sc[0] + (time.monotonic() - sc[1])

    def pipelines(self) -> list[dict]:
        return page_items(self.get("/api/v4/leads/pipelines"), "/api/v4/leads/pipelines", "pipelines", 1)[0]

    def account(self) -> dict:
        return self.get("/api/v4/account") or {}


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _problem(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        return str(data.get("title") or data.get("detail") or "")[:200]
    return ""
