"""The amoCRM emulator behaves like API v4: paging, 204, filters, auth, OAuth, rate limit, faults, shapes.

Real HTTP (requests) to the emulator on 127.0.0.1, port 0. The tiny account is written here in the
on-disk format of docs/ARCHITECTURE.md; the same checks run against the generator's `sample_account`
when that fixture exists.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from crmsum.sandbox import amocrm_emulator as amo
from crmsum.sandbox.amocrm_emulator import DROPPED, AmoEmulator, AmoEmulatorError

EXAMPLES = Path(__file__).parent / "data" / "amocrm_examples"
TOKEN = "long-lived-token"
T0 = 1_700_000_000
N_LEADS, N_EVENTS = 12, 240


# --- a tiny account in the documented on-disk format ----------------------------------------------
def _cfv(phone: str, email: str) -> list[dict]:
    return [{"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
             "values": [{"value": phone, "enum_id": 1, "enum_code": "WORK"}]},
            {"field_id": 4, "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext",
             "values": [{"value": email, "enum_id": 5, "enum_code": "WORK"}]}]


def write_account(root: Path) -> Path:
    d = root / "amocrm"
    d.mkdir(parents=True)
    acc = json.loads((EXAMPLES / "account.json").read_text())
    acc.pop("_links")
    (d / "account.json").write_text(json.dumps(acc, ensure_ascii=False))
    users = [{"id": 100 + i, "name": f"Менеджер {i}", "email": f"m{i}@example.com", "lang": "ru",
              "rights": {"is_admin": i == 0, "is_active": True}} for i in range(3)]
    pipelines = [{"id": 500, "name": "Продажи", "sort": 1, "is_main": True, "is_unsorted_on": True, "is_archive": False,
                  "account_id": 1, "_embedded": {"statuses": [
                      {"id": sid, "name": name, "sort": s, "is_editable": sid not in (142, 143), "pipeline_id": 500,
                       "color": "#99ccff", "type": 0, "account_id": 1}
                      for sid, name, s in [(5001, "Первичный контакт", 10), (142, "Успешно реализовано", 10000),
                                           (143, "Закрыто и не реализовано", 11000)]]}}]
    leads, contacts, notes, tasks = [], [], [], []
    for i in range(1, N_LEADS + 1):
        lost = i % 4 == 0
        leads.append({
            "id": i, "name": f"Сделка {i}", "price": 1000 * i, "responsible_user_id": 100 + i % 3, "group_id": 0,
            "status_id": 143 if lost else (142 if i % 4 == 1 else 5001), "pipeline_id": 500,
            "loss_reason_id": 7 if lost else None, "created_by": 100, "updated_by": 100,
            "created_at": T0 + i * 1000, "updated_at": T0 + 100_000 + i * 1000 * (-1) ** i % 50_000,
            "closed_at": T0 + i * 2000 if i % 4 in (0, 1) else None, "closest_task_at": None, "is_deleted": False,
            "custom_fields_values": None, "score": None, "account_id": 1, "labor_cost": None,
            "_embedded": {"tags": [{"id": 1, "name": "опт", "color": None}] if i % 2 else [],
                          "companies": [{"id": 900 + i % 2}],
                          "contacts": [{"id": 300 + i, "is_main": True}],
                          "loss_reason": [{"id": 7, "name": "Дорого", "sort": 10000, "created_at": T0,
                                           "updated_at": T0}] if lost else []}})
        contacts.append({"id": 300 + i, "name": f"Иван Петров {i}", "first_name": "Иван", "last_name": f"Петров {i}",
                         "responsible_user_id": 100, "group_id": 0, "created_by": 100, "updated_by": 100,
                         "created_at": T0 + i, "updated_at": T0 + i, "closest_task_at": None, "is_deleted": False,
                         "is_unsorted": False, "custom_fields_values": _cfv(f"+7912000{i:04d}", f"c{i}@example.com"),
                         "account_id": 1, "_embedded": {"tags": [], "companies": [{"id": 900 + i % 2}]}})
        notes.append({"id": 7000 + i, "entity_id": i, "created_by": 100, "updated_by": 100, "created_at": T0 + i * 10,
                      "updated_at": T0 + i * 10, "responsible_user_id": 100, "group_id": 0,
                      "note_type": "common" if i % 2 else "call_in",
                      "params": {"text": f"заметка {i}"} if i % 2 else
                      {"uniq": f"u{i}", "duration": 60, "source": "pbx", "link": "https://example.com/r.mp3",
                       "phone": "+79990000000"},
                      "account_id": 1})
        tasks.append({"id": 8000 + i, "created_by": 100, "updated_by": 100, "created_at": T0 + i * 10,
                      "updated_at": T0 + i * 10, "responsible_user_id": 100 + i % 3, "group_id": 0, "entity_id": i,
                      "entity_type": "leads", "duration": 0, "is_completed": i % 3 == 0, "task_type_id": 1 + i % 2,
                      "text": f"Позвонить {i}", "result": {"text": "готово"} if i % 3 == 0 else [],
                      "complete_till": T0 + i * 100, "account_id": 1})
    companies = [{"id": 900 + k, "name": f"ООО Ромашка {k}", "responsible_user_id": 100, "group_id": 0, "created_by": 100,
                  "updated_by": 100, "created_at": T0, "updated_at": T0 + k, "closest_task_at": None,
                  "is_deleted": False, "custom_fields_values": _cfv("+74950000000", f"info{k}@romashka.ru"),
                  "account_id": 1, "_embedded": {"tags": []}} for k in range(2)]
    types = ["lead_added", "lead_status_changed", "common_note_added", "entity_responsible_changed"]
    values = {"lead_added": ([], []),
              "lead_status_changed": ([{"lead_status": {"id": 142, "pipeline_id": 500}}],
                                      [{"lead_status": {"id": 5001, "pipeline_id": 500}}]),
              "common_note_added": ([{"note": {"id": 7001}}], []),
              "entity_responsible_changed": ([{"responsible_user": {"id": 101}}], [{"responsible_user": {"id": 100}}])}
    events = []
    for k in range(N_EVENTS):
        t = types[k % 4]
        events.append({"id": f"01h{k // 2:010d}{'ab'[k % 2]}{k:012d}", "type": t, "entity_id": 1 + k % N_LEADS,
                       "entity_type": "lead", "created_by": 0 if t == "lead_added" else 100,
                       "created_at": T0 + (k // 2) * 60,  # pairs share a second: id breaks the tie
                       "value_after": values[t][0], "value_before": values[t][1], "account_id": 1})
    events.sort(key=lambda e: (e["created_at"], e["id"]))

    def jl(name: str, rows: list[dict]) -> None:
        (d / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    jl("users.jsonl", users)
    (d / "pipelines.json").write_text(json.dumps(pipelines, ensure_ascii=False), encoding="utf-8")
    for name, rows in [("leads.jsonl", leads), ("contacts.jsonl", contacts), ("companies.jsonl", companies),
                       ("events.jsonl", events), ("notes.jsonl", notes), ("tasks.jsonl", tasks)]:
        jl(name, rows)
    return d


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_account(tmp_path_factory.mktemp("amo"))


@pytest.fixture(params=["eager", "lazy"])
def emu(request: pytest.FixtureRequest, account: Path, monkeypatch: pytest.MonkeyPatch):
    """Both loading paths: full parse (small files) and pyarrow index + raw lines (big files)."""
    if request.param == "lazy":
        monkeypatch.setattr(amo, "_LAZY_BYTES", 0)
    with AmoEmulator(account, token=TOKEN) as e:
        yield e


@pytest.fixture
def api(emu: AmoEmulator) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    yield s
    s.close()


def get(s: requests.Session, emu: AmoEmulator, path: str, **params) -> requests.Response:
    return s.get(emu.url + path, params=params, timeout=10)


def ids(r: requests.Response, entity: str) -> list:
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["_embedded"][entity]]


def crawl(s: requests.Session, url: str, entity: str, retry: bool = False) -> list[dict]:
    """Follow `next` links to the end, like the real sync client."""
    out = []
    while url:
        for attempt in range(50):
            try:
                r = s.get(url, timeout=10)
            except requests.ConnectionError:
                continue
            if r.status_code < 500 or not retry:
                break
        else:
            raise AssertionError("too many faults")
        if r.status_code == 204:
            break
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["_embedded"][entity]
        url = body["_links"].get("next", {}).get("href")
    return out


# --- paging -------------------------------------------------------------------------------------------
def test_paging_follows_next_to_the_end_then_204(emu, api):
    leads = crawl(api, emu.url + "/api/v4/leads?limit=5", "leads")
    assert [o["id"] for o in leads] == list(range(1, N_LEADS + 1))  # default order: id asc
    r = get(api, emu, "/api/v4/leads", limit=5, page=3)
    body = r.json()
    assert body["_page"] == 3 and "next" not in body["_links"]
    assert body["_links"]["self"]["href"].startswith(emu.url + "/api/v4/leads?")
    assert "page=2" in body["_links"]["prev"]["href"] and "page=1" in body["_links"]["first"]["href"]
    r = get(api, emu, "/api/v4/leads", limit=5, page=4)
    assert r.status_code == 204 and r.content == b""
    events = crawl(api, emu.url + "/api/v4/events?limit=100", "events")
    assert len(events) == N_EVENTS
    keys = [(e["created_at"], e["id"]) for e in events]
    assert keys == sorted(keys, reverse=True)  # events: newest first, id breaks ties
    r = get(api, emu, "/api/v4/leads")
    assert len(ids(r, "leads")) == N_LEADS and "next" not in r.json()["_links"]  # default limit 50


def test_limits(emu, api):
    assert get(api, emu, "/api/v4/leads", limit=250).status_code == 200
    assert get(api, emu, "/api/v4/events", limit=100).status_code == 200
    for path, limit in [("/api/v4/leads", 251), ("/api/v4/events", 101), ("/api/v4/contacts", 0),
                        ("/api/v4/tasks", -1)]:
        r = get(api, emu, path, limit=limit)
        assert r.status_code == 400, (path, limit)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json()["status"] == 400
    assert len(ids(get(api, emu, "/api/v4/events", limit=7), "events")) == 7


@pytest.mark.parametrize("query", [
    "page=abc", "page=0", "limit=x", "limit=", "filter[updated_at][from]=yesterday", "filter[id][]=1&filter[id][]=b",
    "filter[created_at][between]=1", "order[name]=asc", "order[id]=up", "order=asc", "filter=1",
    "filter[id]=", "filter[entity_id][]=lead",
])
def test_malformed_queries_are_400_problem_json(emu, api, query):
    path = "/api/v4/events" if "entity_id" in query else "/api/v4/leads"
    r = api.get(f"{emu.url}{path}?{query}", timeout=10)
    assert r.status_code == 400, query
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert set(r.json()) == {"title", "type", "status", "detail"}
    assert get(api, emu, "/api/v4/events", **{"order[updated_at]": "asc"}).status_code == 400  # events have none


# --- filters and ordering ------------------------------------------------------------------------------
def test_entity_filters_and_order(emu, api):
    all_leads = crawl(api, emu.url + "/api/v4/leads?limit=250", "leads")
    lo, hi = sorted(o["updated_at"] for o in all_leads)[3], sorted(o["updated_at"] for o in all_leads)[8]
    got = ids(get(api, emu, "/api/v4/leads", **{"filter[updated_at][from]": lo, "filter[updated_at][to]": hi}), "leads")
    assert got == sorted(o["id"] for o in all_leads if lo <= o["updated_at"] <= hi)
    got = ids(get(api, emu, "/api/v4/leads", **{"filter[created_at][from]": T0 + 5000}), "leads")
    assert got == list(range(5, N_LEADS + 1))
    got = ids(get(api, emu, "/api/v4/leads", **{"filter[created_at][to]": T0 + 3000}), "leads")
    assert got == [1, 2, 3]
    assert ids(get(api, emu, "/api/v4/leads", **{"filter[id][]": [9, 2, 4, 999]}), "leads") == [2, 4, 9]
    assert ids(get(api, emu, "/api/v4/leads", **{"filter[id]": 5}), "leads") == [5]
    assert ids(get(api, emu, "/api/v4/leads", **{"filter[id]": "3,1"}), "leads") == [1, 3]
    assert get(api, emu, "/api/v4/leads", **{"filter[id]": 999}).status_code == 204
    assert get(api, emu, "/api/v4/leads", **{"filter[updated_at][from]": T0 * 2}).status_code == 204
    by_upd = ids(get(api, emu, "/api/v4/leads", **{"order[updated_at]": "desc"}), "leads")
    assert by_upd == [o["id"] for o in sorted(all_leads, key=lambda o: (o["updated_at"], o["id"]), reverse=True)]
    assert ids(get(api, emu, "/api/v4/leads", **{"order[id]": "desc", "limit": 3}), "leads") == [12, 11, 10]
    # a time filter combined with an order on another field
    got = ids(get(api, emu, "/api/v4/leads", **{"filter[created_at][from]": T0 + 5000, "order[updated_at]": "asc"}),
              "leads")
    assert got == [o["id"] for o in sorted(all_leads, key=lambda o: (o["updated_at"], o["id"])) if o["id"] >= 5]
    # notes and tasks
    assert ids(get(api, emu, "/api/v4/leads/notes", **{"filter[entity_id][]": [3, 4]}), "notes") == [7003, 7004]
    assert ids(get(api, emu, "/api/v4/leads/4/notes"), "notes") == [7004]
    done = ids(get(api, emu, "/api/v4/tasks", **{"filter[is_completed]": 1}), "tasks")
    assert done == [8000 + i for i in range(1, N_LEADS + 1) if i % 3 == 0]
    upd = ids(get(api, emu, "/api/v4/tasks", **{"filter[updated_at][from]": T0 + 100}), "tasks")
    assert upd == [8010, 8011, 8012]


def test_event_filters(emu, api):
    all_ev = crawl(api, emu.url + "/api/v4/events?limit=100", "events")
    r = get(api, emu, "/api/v4/events", **{"filter[entity][]": "lead", "filter[entity_id][]": [3, 5],
                                           "filter[type][]": ["lead_added", "common_note_added"], "limit": 100})
    want = [e["id"] for e in all_ev if e["entity_id"] in (3, 5) and e["type"] in ("lead_added", "common_note_added")]
    assert ids(r, "events") == want and want
    # the shapes the real prototype sent: no [] and a plural entity name
    r = get(api, emu, "/api/v4/events", **{"filter[entity]": "leads", "filter[entity_id]": 3, "limit": 100})
    assert ids(r, "events") == [e["id"] for e in all_ev if e["entity_id"] == 3]
    cut = all_ev[50]["created_at"]
    r = crawl(api, f"{emu.url}/api/v4/events?filter[created_at][from]={cut}&limit=100", "events")
    assert [e["id"] for e in r] == [e["id"] for e in all_ev if e["created_at"] >= cut]
    asc = crawl(api, f"{emu.url}/api/v4/events?order[created_at]=asc&limit=100", "events")
    assert [e["id"] for e in asc] == [e["id"] for e in reversed(all_ev)]
    assert get(api, emu, "/api/v4/events", **{"filter[entity][]": "contact"}).status_code == 204
    assert get(api, emu, "/api/v4/events", **{"filter[type][]": "no_such_type"}).status_code == 204
    one = all_ev[7]
    assert ids(get(api, emu, "/api/v4/events", **{"filter[id][]": one["id"]}), "events") == [one["id"]]
    r = get(api, emu, f"/api/v4/events/{one['id']}")
    assert r.status_code == 200 and r.json() == one
    assert get(api, emu, "/api/v4/events/01nosuchevent").status_code == 204


def test_with_adds_contacts_and_loss_reason_only_when_asked(emu, api):
    plain = get(api, emu, "/api/v4/leads", limit=4).json()["_embedded"]["leads"]
    for lead in plain:
        assert set(lead["_embedded"]) == {"tags", "companies"}
        assert lead["_embedded"]["companies"][0]["_links"]["self"]["href"].startswith(emu.url + "/api/v4/companies/")
    full = get(api, emu, "/api/v4/leads", limit=4, **{"with": "contacts,loss_reason"}).json()["_embedded"]["leads"]
    lost = next(o for o in full if o["id"] == 4)
    assert set(lost["_embedded"]) == {"tags", "companies", "contacts", "loss_reason"}
    assert lost["_embedded"]["loss_reason"][0]["name"] == "Дорого"
    assert lost["_embedded"]["contacts"] == [{"id": 304, "is_main": True,
                                              "_links": {"self": {"href": f"{emu.url}/api/v4/contacts/304"}}}]
    only = get(api, emu, "/api/v4/leads/4", **{"with": "contacts"}).json()
    assert set(only["_embedded"]) == {"tags", "companies", "contacts"}
    assert get(api, emu, "/api/v4/leads/999").status_code == 204


# --- auth and OAuth ------------------------------------------------------------------------------------------
def test_401_without_or_with_a_wrong_token(emu):
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}, {"Authorization": "Basic eDp5"}]:
        r = requests.get(emu.url + "/api/v4/leads", headers=headers, timeout=10)
        assert r.status_code == 401, headers
        assert r.headers["Content-Type"].startswith("application/problem+json") and r.json()["status"] == 401


def test_oauth_refresh_is_single_use_and_access_tokens_expire(account):
    now = [float(T0)]
    emu = AmoEmulator(account, token=TOKEN, clock=lambda: now[0], client_id="cid", client_secret="sec",
                      redirect_uri="https://crmsum.example/cb", refresh_token="r0")
    with emu:
        def exchange(**body) -> requests.Response:
            base = {"client_id": "cid", "client_secret": "sec", "redirect_uri": "https://crmsum.example/cb"}
            return requests.post(emu.url + "/oauth2/access_token", json=base | body, timeout=10)

        def leads(tok: str) -> int:
            return requests.get(emu.url + "/api/v4/leads", headers={"Authorization": f"Bearer {tok}"},
                                timeout=10).status_code

        r = exchange(grant_type="refresh_token", refresh_token="r0")
        assert r.status_code == 200
        pair = r.json()
        assert set(pair) == {"token_type", "expires_in", "access_token", "refresh_token"}
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 86400
        assert leads(pair["access_token"]) == 200
        again = exchange(grant_type="refresh_token", refresh_token="r0")  # single use
        assert again.status_code == 400 and again.json()["hint"]
        now[0] += 86399
        assert leads(pair["access_token"]) == 200
        now[0] += 2
        assert leads(pair["access_token"]) == 401  # 24 h later
        assert leads(TOKEN) == 200  # the long-lived token does not expire
        pair2 = exchange(grant_type="refresh_token", refresh_token=pair["refresh_token"]).json()
        assert leads(pair2["access_token"]) == 200
        assert exchange(grant_type="refresh_token", refresh_token=pair["refresh_token"]).status_code == 400
        emu.expire_access_tokens()
        assert leads(pair2["access_token"]) == 401 and leads(TOKEN) == 200
        # authorization code grant, and bad client credentials / redirect_uri
        code = emu.issue_auth_code()
        r = exchange(grant_type="authorization_code", code=code)
        assert r.status_code == 200 and leads(r.json()["access_token"]) == 200
        assert exchange(grant_type="authorization_code", code=code).status_code == 400
        bad = requests.post(emu.url + "/oauth2/access_token", timeout=10, json={
            "client_id": "cid", "client_secret": "wrong", "grant_type": "refresh_token",
            "redirect_uri": "https://crmsum.example/cb", "refresh_token": pair2["refresh_token"]})
        assert bad.status_code == 401
        assert exchange(grant_type="refresh_token", refresh_token=pair2["refresh_token"],
                        redirect_uri="https://evil.example").status_code == 400
        assert exchange(grant_type="password").status_code == 400
        assert exchange(grant_type="refresh_token", refresh_token=pair2["refresh_token"]).status_code == 200


# --- rate limit ---------------------------------------------------------------------------------------------
def test_429_above_the_limit_then_403_block(account):
    with AmoEmulator(account, token=TOKEN, rate_limit=5, block_after=8, block_window=10, block_seconds=0.5) as emu:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        codes = [s.get(emu.url + "/api/v4/account", timeout=10) for _ in range(8)]
        first = [r.status_code for r in codes]
        assert first[:5] == [200] * 5 and 429 in first[5:]  # 8 calls well inside one second
        r429 = next(r for r in codes if r.status_code == 429)
        assert r429.headers["Retry-After"] == "1"
        assert r429.headers["Content-Type"].startswith("application/problem+json")
        statuses = [s.get(emu.url + "/api/v4/account", timeout=10).status_code for _ in range(30)]
        assert 403 in statuses  # sustained abuse: blocked
        assert statuses[-1] == 403
        time.sleep(0.6)
        time.sleep(1.0)
        assert s.get(emu.url + "/api/v4/account", timeout=10).status_code == 200  # block lifted
        assert emu.stats()["by_status"][429] >= 8


@pytest.mark.slow
def test_well_behaved_client_bursting_under_the_limit_is_never_throttled(account):
    with AmoEmulator(account, token=TOKEN, rate_limit=7, block_after=1) as emu:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        for _ in range(3):  # bursts of 6, then a pause: never more than 6 in any second
            t = time.monotonic()
            assert [s.get(emu.url + "/api/v4/account", timeout=10).status_code for _ in range(6)] == [200] * 6
            time.sleep(max(0.0, 1.05 - (time.monotonic() - t)))
        assert set(emu.stats()["by_status"]) == {200}


def test_rate_limit_zero_disables(account):
    with AmoEmulator(account, token=TOKEN, rate_limit=0) as emu:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        assert {s.get(emu.url + "/api/v4/users", timeout=10).status_code for _ in range(40)} == {200}


# --- faults -------------------------------------------------------------------------------------------------
def test_fail_rate_gives_5xx_and_drops_but_a_retrying_client_reads_identical_data(account):
    with AmoEmulator(account, token=TOKEN) as clean:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        want = {e: crawl(s, clean.url + f"/api/v4/{e}?limit=3", e.split("/")[-1]) for e in ("leads", "leads/notes")}
        want["events"] = crawl(s, clean.url + "/api/v4/events?limit=20", "events")
        clean_url = clean.url
    with AmoEmulator(account, token=TOKEN, fail_rate=0.4, seed=7, slow_seconds=0.05) as emu:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        got = {e: crawl(s, emu.url + f"/api/v4/{e}?limit=3", e.split("/")[-1], retry=True)
               for e in ("leads", "leads/notes")}
        got["events"] = crawl(s, emu.url + "/api/v4/events?limit=20", "events", retry=True)
        for e in want:  # same records (links carry the other port)
            assert json.dumps(got[e]).replace(emu.url, "X") == json.dumps(want[e]).replace(clean_url, "X")
        st = emu.stats()["by_status"]
        assert DROPPED in st and {500, 502, 503} & set(st)
    # the same seed faults the same requests
    logs = []
    for _ in range(2):
        with AmoEmulator(account, token=TOKEN, fail_rate=0.5, seed=3, slow_seconds=0.01) as e2:
            for _ in range(20):
                try:
                    requests.get(e2.url + "/api/v4/account", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
                except requests.ConnectionError:
                    pass
            deadline = time.monotonic() + 10  # the server logs a request just after answering it
            while len(e2.request_log) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            logs.append([st for _, _, st in e2.request_log])
    assert logs[0] == logs[1]


# --- shapes vs real-format examples --------------------------------------------------------------------------
LOOSE = {"custom_fields_values", "params", "rights", "value_after", "value_before", "result", "values"}
# fields the generator writes that the documentation examples do not show; passed through as stored
TOLERATED_EXTRA = {"is_needs_to_be_linked"}


def shape_diff(example, actual, path: str = "$") -> list[str]:
    """Key sets and value types, recursively; None matches anything (nullable fields)."""
    if example is None or actual is None:
        return []
    if isinstance(example, bool) or isinstance(actual, bool):
        return [] if isinstance(example, bool) and isinstance(actual, bool) else [f"{path}: bool vs {actual!r}"]
    if type(example) is not type(actual):
        return [f"{path}: {type(example).__name__} expected, got {type(actual).__name__}"]
    out: list[str] = []
    if isinstance(example, dict):
        if set(example) != set(actual) - TOLERATED_EXTRA:
            out.append(f"{path}: missing {sorted(set(example) - set(actual))}, extra {sorted(set(actual) - set(example))}")
        for k in set(example) & set(actual):
            if k in LOOSE:
                continue
            out += shape_diff(example[k], actual[k], f"{path}.{k}")
    elif isinstance(example, list) and example and actual:
        for i, item in enumerate(actual):
            out += shape_diff(example[0], item, f"{path}[{i}]")
    return out


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def _head(page: dict) -> dict:
    """The page minus `_embedded`, with only `_links.self` (next/first/prev depend on the page)."""
    head = {k: v for k, v in page.items() if k != "_embedded"}
    links = head["_links"]
    assert set(links) <= {"self", "next", "first", "prev"} and "self" in links, links
    return dict(head, _links={"self": links["self"]})


def _page_diff(ex: dict, body: dict, entity: str) -> list[str]:
    head = shape_diff(_head(ex), _head(body))
    items = [d for item in body["_embedded"][entity] for d in shape_diff(ex["_embedded"][entity][0], item, entity)]
    return head + items


def check_shapes(emu: AmoEmulator, s: requests.Session) -> None:
    def page(path: str, **params) -> dict:
        r = get(s, emu, path, **params)
        assert r.status_code == 200, (path, r.text)
        assert isinstance(r.json().get("_page", 1), int)
        return r.json()

    acc = get(s, emu, "/api/v4/account").json()
    assert not shape_diff(example("account"), acc), shape_diff(example("account"), acc)
    for name, path, entity, params in [
        ("leads", "/api/v4/leads", "leads", {"with": "contacts,loss_reason", "page": 2, "limit": 2}),
        ("contacts", "/api/v4/contacts", "contacts", {"limit": 1}),
        ("companies", "/api/v4/companies", "companies", {"limit": 1}),
        ("notes", "/api/v4/leads/notes", "notes", {"limit": 2}),
        ("tasks", "/api/v4/tasks", "tasks", {"limit": 2}),
        ("users", "/api/v4/users", "users", {}),
    ]:
        body = page(path, **params)
        diff = _page_diff(example(name), body, entity)
        assert not diff, (name, diff[:5])
    # leads with loss reason / contacts present, as in the example
    body = page("/api/v4/leads", **{"with": "contacts,loss_reason", "limit": 250})
    lost = [o for o in body["_embedded"]["leads"] if o["_embedded"]["loss_reason"]]
    for lead in lost[:3]:
        assert not shape_diff(example("leads")["_embedded"]["leads"][0], lead)
    pl = get(s, emu, "/api/v4/leads/pipelines").json()
    diff = shape_diff(example("pipelines"), pl)
    assert not diff, diff[:5]
    # events: the real page, event by event of the same type (value shapes differ by type)
    ex = example("events")
    by_type = {e["type"]: e for e in ex["_embedded"]["events"]}
    body = page("/api/v4/events", limit=100)
    assert isinstance(body["_page"], int) and isinstance(body["_links"]["self"]["href"], str)
    for ev in body["_embedded"]["events"]:
        assert isinstance(ev["id"], str) and isinstance(ev["created_at"], int)
        ref = by_type.get(ev["type"], ex["_embedded"]["events"][0])
        diff = shape_diff(ref, ev)
        if ev["type"] in by_type:
            for side in ("value_after", "value_before"):
                if ref[side] and ev[side]:
                    diff += shape_diff(ref[side], ev[side], side)
        assert not diff, (ev["type"], diff)
        assert ev["_embedded"]["entity"]["_links"]["self"]["href"] == f"{emu.url}/api/v4/leads/{ev['entity_id']}"


def test_shapes_match_real_format_examples(emu, api):
    check_shapes(emu, api)
    lead = get(api, emu, "/api/v4/leads/1").json()
    assert lead["_links"]["self"]["href"] == f"{emu.url}/api/v4/leads/1"
    note = get(api, emu, "/api/v4/leads/notes", limit=1).json()["_embedded"]["notes"][0]
    assert note["_links"]["self"]["href"] == f"{emu.url}/api/v4/leads/{note['entity_id']}/notes/{note['id']}"


def test_lazy_and_eager_loading_serve_identical_bytes(account, monkeypatch):
    bodies = []
    for threshold in (10**12, 0):
        monkeypatch.setattr(amo, "_LAZY_BYTES", threshold)
        with AmoEmulator(account, token=TOKEN) as e:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {TOKEN}"
            bodies.append([s.get(e.url + p, timeout=10).text.replace(e.url, "X") for p in (
                "/api/v4/events?limit=100&page=2", "/api/v4/leads?with=contacts", "/api/v4/tasks?filter[is_completed]=1",
                "/api/v4/leads/notes?filter[note_type][]=call_in")])
    assert bodies[0] == bodies[1]


# --- upsert --------------------------------------------------------------------------------------------------
def test_upsert_is_visible_to_incremental_filters(emu, api):
    before = crawl(api, emu.url + "/api/v4/leads?limit=250", "leads")
    watermark = max(o["updated_at"] for o in before)
    assert get(api, emu, "/api/v4/leads", **{"filter[updated_at][from]": watermark + 1}).status_code == 204
    stored = emu.upsert("leads", [{"id": 3, "status_id": 142, "price": 777},
                                  {"id": 50, "name": "Новая сделка", "price": 1, "status_id": 5001, "pipeline_id": 500,
                                   "_embedded": {"tags": [], "companies": [], "contacts": [], "loss_reason": []}}])
    assert stored[0]["updated_at"] > watermark and stored[0]["name"] == "Сделка 3"
    changed = get(api, emu, "/api/v4/leads", **{"filter[updated_at][from]": watermark + 1}).json()["_embedded"]["leads"]
    assert [(o["id"], o["price"]) for o in changed] == [(3, 777), (50, 1)]
    assert get(api, emu, "/api/v4/leads/3").json()["status_id"] == 142
    assert len(crawl(api, emu.url + "/api/v4/leads?limit=5", "leads")) == N_LEADS + 1
    newest = get(api, emu, "/api/v4/events", limit=1).json()["_embedded"]["events"][0]
    ev = emu.upsert("events", [{"type": "lead_status_changed", "entity_id": 3, "entity_type": "lead", "created_by": 100,
                                "created_at": newest["created_at"] + 5,
                                "value_after": [{"lead_status": {"id": 142, "pipeline_id": 500}}],
                                "value_before": [{"lead_status": {"id": 5001, "pipeline_id": 500}}]}])[0]
    r = get(api, emu, "/api/v4/events", **{"filter[created_at][from]": newest["created_at"] + 1})
    assert ids(r, "events") == [ev["id"]] and isinstance(ev["id"], str)
    assert ids(get(api, emu, "/api/v4/events", **{"filter[type][]": "lead_status_changed", "filter[entity_id][]": 3,
                                                  "limit": 1}), "events") == [ev["id"]]
    emu.upsert("tasks", [{"id": 8001, "is_completed": True}])
    assert 8001 in ids(get(api, emu, "/api/v4/tasks", **{"filter[is_completed]": 1}), "tasks")
    with pytest.raises(AmoEmulatorError):
        emu.upsert("deals", [{"id": 1}])


# --- hooks and odds and ends ---------------------------------------------------------------------------------
def test_stats_count_requests_by_path_and_status(emu, api):
    emu.reset_stats()
    get(api, emu, "/api/v4/leads")
    get(api, emu, "/api/v4/leads", page=99)
    requests.get(emu.url + "/api/v4/leads", timeout=10)
    st = emu.stats()
    assert st["total"] == 3 and st["by_path"] == {"/api/v4/leads": 3}
    assert st["by_status"] == {200: 1, 204: 1, 401: 1}
    assert ("GET", "/api/v4/leads", 401) in emu.request_log


def test_unknown_routes_and_methods(emu, api):
    assert get(api, emu, "/api/v4/nothing").status_code == 404
    assert api.post(emu.url + "/api/v4/leads", json=[{}], timeout=10).status_code == 405
    assert get(api, emu, "/api/v4/leads/pipelines/500").json()["_embedded"]["statuses"][1]["id"] == 142
    users = get(api, emu, "/api/v4/users").json()
    assert users["_total_items"] == 3 and users["_page_count"] == 1


def test_missing_folder_is_an_actionable_error(tmp_path):
    with pytest.raises(AmoEmulatorError, match="crmsum generate"):
        AmoEmulator(tmp_path / "nope")


def test_sample_account_from_the_generator(request):
    try:
        root = request.getfixturevalue("sample_account")
    except pytest.FixtureLookupError:
        pytest.skip("sample_account fixture not available yet")
    with AmoEmulator(root, token=TOKEN) as emu:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        check_shapes(emu, s)
        leads = crawl(s, emu.url + "/api/v4/leads?limit=250", "leads")
        assert [o["id"] for o in leads] == sorted(o["id"] for o in leads) and leads
        events = crawl(s, emu.url + "/api/v4/events?limit=100", "events")
        assert len(events) == len(emu.tables["events"])
