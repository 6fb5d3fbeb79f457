"""amoCRM -> lake sync over real HTTP against the amoCRM emulator serving a generated sample account."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmsum.config import Settings
from crmsum.ingest.amocrm import SYNC_STATE, STREAMS, sync, watermarks
from crmsum.lake import Lake
from crmsum.privacy import Anonymizer, Vault
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sources.amocrm import OAUTH_STATE, AmoBlockedError, AmoClient
from crmsum.state import StateStore

TOKEN = "sync-test-token"
TABLE_OF = {"users": "crm_users", "companies": "crm_companies", "contacts": "crm_contacts", "leads": "crm_leads",
            "notes": "crm_notes", "tasks": "crm_tasks", "events": "crm_events"}
KEYS = {"crm_users": "user_id", "crm_companies": "company_id", "crm_contacts": "contact_id", "crm_leads": "lead_id",
        "crm_notes": "note_id", "crm_tasks": "task_id", "crm_events": "event_id", "crm_pipelines": "pipeline_id"}


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def account(request, tmp_path_factory) -> Path:
    """The session's generated sample account (a tiny hand-made one if the generator fixture is absent)."""
    try:
        return Path(request.getfixturevalue("sample_account"))
    except pytest.FixtureLookupError:
        return tiny_account(tmp_path_factory.mktemp("tiny_account"))


def tiny_account(root: Path, n_leads: int = 40) -> Path:
    """A small API-shaped account with personal data planted in structured fields and free text."""
    import random

    rng = random.Random(3)
    first = ["Юрий", "Ольга", "Ева", "Павел", "Ирина", "Максим", "Анна", "Глеб"]
    last_m = ["Федосеев", "Смирнов", "Кузнецов", "Волков", "Лебедев", "Орлов"]
    people, phones, emails = [], [], []
    t0 = 1_700_000_000
    users = []
    for i in range(1, 5):
        name = f"{first[i]} {last_m[i]}{'а' if first[i] in ('Ольга', 'Ева', 'Ирина', 'Анна') else ''}"
        people.append(name)
        users.append({"id": 100 + i, "name": name, "email": f"user{i}@corp.example", "lang": "ru",
                      "rights": {"is_admin": i == 1, "is_active": True}})
        emails.append(f"user{i}@corp.example")
    pipelines = [{"id": 7, "name": "Продажи", "sort": 1, "is_main": True, "_embedded": {"statuses": [
        {"id": 10, "name": "Первичный контакт", "sort": 10, "type": 0, "pipeline_id": 7},
        {"id": 11, "name": "Переговоры", "sort": 20, "type": 0, "pipeline_id": 7},
        {"id": 142, "name": "Успешно реализовано", "sort": 10000, "type": 0, "pipeline_id": 7},
        {"id": 143, "name": "Закрыто и не реализовано", "sort": 11000, "type": 0, "pipeline_id": 7}]}}]
    companies = [{"id": 500 + i, "name": n, "responsible_user_id": 101, "created_at": t0, "updated_at": t0 + i,
                  "custom_fields_values": [{"field_id": 1, "field_name": "Отрасль", "field_code": None,
                                            "values": [{"value": "Машиностроение"}]}]}
                 for i, n in enumerate(["Теххренмаш", "Альфа-Строй", "Север Логистик"])]
    contacts = []
    for i in range(1, 13):
        name = f"{rng.choice(first[:2] + first[3:4] + first[5:6])} {rng.choice(last_m)}{i}"
        phone = f"+7 912 {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
        mail = f"client{i}@mail.example"
        people.append(name), phones.append(phone), emails.append(mail)
        contacts.append({"id": 1000 + i, "name": name, "first_name": name.split()[0], "last_name": name.split()[1],
                         "responsible_user_id": 101 + i % 4, "created_at": t0 + i, "updated_at": t0 + 10 * i,
                         "custom_fields_values": [
                             {"field_id": 2, "field_name": "Телефон", "field_code": "PHONE",
                              "values": [{"value": phone, "enum_code": "WORK"}]},
                             {"field_id": 3, "field_name": "Email", "field_code": "EMAIL",
                              "values": [{"value": mail, "enum_code": "WORK"}]}],
                         "_embedded": {"tags": [], "companies": [{"id": 500 + i % 3}]}})
    leads, notes, tasks, events = [], [], [], []
    for i in range(1, n_leads + 1):
        c = contacts[i % len(contacts)]
        status = [10, 11, 142, 143][i % 4]
        created = t0 + 3600 * i
        leads.append({"id": 2000 + i, "name": f"Сделка {i}", "price": 1000 * i, "responsible_user_id": 101 + i % 4,
                      "group_id": 0, "status_id": status, "pipeline_id": 7,
                      "loss_reason_id": 5 if status == 143 else None, "created_by": 101, "updated_by": 101,
                      "created_at": created, "updated_at": created + 500, "closed_at": created + 400
                      if status in (142, 143) else None, "closest_task_at": None, "is_deleted": False,
                      "custom_fields_values": [{"field_id": 9, "field_name": "Источник", "values": [{"value": "сайт"}]}],
                      "account_id": 1, "_embedded": {"tags": [{"id": 1, "name": "опт"}],
                                                     "companies": [{"id": 500 + i % 3}],
                                                     "contacts": [{"id": c["id"], "is_main": True}],
                                                     "loss_reason": [{"id": 5, "name": "Дорого"}]
                                                     if status == 143 else []}})
        for j in range(3):
            nid = 30000 + 10 * i + j
            kind = ["common", "call_out", "service_message"][j]
            params = {"text": f"Созвонились с {c['name']}, телефон {c['custom_fields_values'][0]['values'][0]['value']}"} \
                if kind == "common" else {"uniq": "x", "duration": 60 + i, "source": "pbx", "link": "",
                                          "phone": c["custom_fields_values"][0]["values"][0]["value"]} \
                if kind == "call_out" else {"service": "robot", "text": "Сделка создана"}
            notes.append({"id": nid, "entity_id": 2000 + i, "created_by": 101, "updated_by": 101,
                          "created_at": created + j, "updated_at": created + j, "responsible_user_id": 101,
                          "group_id": 0, "note_type": kind, "params": params, "account_id": 1})
            events.append({"id": f"01tiny{i:05d}{j:03d}note", "type": "common_note_added", "entity_id": 2000 + i,
                           "entity_type": "lead", "created_by": 101, "created_at": created + j,
                           "value_after": [{"note": {"id": nid}}], "value_before": [], "account_id": 1})
        events.append({"id": f"01tiny{i:05d}status", "type": "lead_status_changed", "entity_id": 2000 + i,
                       "entity_type": "lead", "created_by": 0, "created_at": created + 100,
                       "value_after": [{"lead_status": {"id": status, "pipeline_id": 7}}],
                       "value_before": [{"lead_status": {"id": 10, "pipeline_id": 7}}], "account_id": 1})
        events.append({"id": f"01tiny{i:05d}ztag", "type": "entity_tag_added", "entity_id": 2000 + i,
                       "entity_type": "lead", "created_by": 0, "created_at": created + 101,
                       "value_after": [{"tag": {"name": "опт"}}], "value_before": [], "account_id": 1})
        tasks.append({"id": 40000 + i, "created_by": 101, "updated_by": 101, "created_at": created,
                      "updated_at": created + 50, "responsible_user_id": 101, "group_id": 0, "entity_id": 2000 + i,
                      "entity_type": "leads", "duration": 0, "is_completed": i % 2 == 0, "task_type_id": 1,
                      "text": f"Позвонить {c['name']}", "result": {"text": f"Отправил КП на {c['custom_fields_values'][1]['values'][0]['value']}"}
                      if i % 2 == 0 else [], "complete_till": created + 86400, "account_id": 1})
    events.sort(key=lambda e: (e["created_at"], e["id"]))
    amo = root / "amocrm"
    amo.mkdir(parents=True)
    for name, rows in [("users", users), ("companies", companies), ("contacts", contacts), ("leads", leads),
                       ("notes", notes), ("tasks", tasks), ("events", events)]:
        (amo / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                           encoding="utf-8")
    (amo / "pipelines.json").write_text(json.dumps(pipelines, ensure_ascii=False), encoding="utf-8")
    (root / "truth").mkdir()
    (root / "truth" / "pii.json").write_text(json.dumps({"names": people, "phones": phones, "emails": emails},
                                                        ensure_ascii=False), encoding="utf-8")
    return root


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def source(account) -> dict[str, list]:
    amo = account / "amocrm"
    out = {n: read_jsonl(amo / f"{n}.jsonl") for n in ("users", "companies", "contacts", "leads", "notes", "tasks",
                                                        "events")}
    out["events"] = [e for e in out["events"] if e.get("entity_type", "lead") == "lead"]
    pl = json.loads((amo / "pipelines.json").read_text(encoding="utf-8"))
    out["pipelines"] = pl.get("_embedded", {}).get("pipelines", []) if isinstance(pl, dict) else pl
    return out


def settings_for(data_dir: Path, url: str, **kw) -> Settings:
    kw.setdefault("amocrm_token", TOKEN)
    kw.setdefault("amocrm_rps", 1000)
    return Settings(data_dir=data_dir, amocrm_base_url=url, **kw)


def run_sync(s: Settings, **kw):
    anon = Anonymizer(Vault(s.vault_dir))
    try:
        client = kw.pop("client", None) or AmoClient.from_settings(s, backoff=0.01, timeout=kw.pop("timeout", 10))
        return sync(s, Lake(s.lake_dir), anon, client=client, **kw)
    finally:
        anon.close()


def counts(lake: Lake) -> dict[str, int]:
    con = lake.connect()
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in
            ("crm_users", "crm_pipelines", "crm_statuses", "crm_companies", "crm_contacts", "crm_leads",
             "crm_notes", "crm_tasks", "crm_events")}


def expected_counts(src: dict) -> dict[str, int]:
    return {"crm_users": len(src["users"]), "crm_pipelines": len(src["pipelines"]),
            "crm_statuses": sum(len((p.get("_embedded") or {}).get("statuses", [])) for p in src["pipelines"]),
            **{TABLE_OF[n]: len(src[n]) for n in ("companies", "contacts", "leads", "notes", "tasks", "events")}}


def snapshot(lake: Lake) -> dict[str, list]:
    """Every CRM table's full content, ordered by key (for comparing two lakes)."""
    con = lake.connect()
    out = {}
    for t in ("crm_users", "crm_pipelines", "crm_statuses", "crm_companies", "crm_contacts", "crm_leads",
              "crm_notes", "crm_tasks", "crm_events"):
        out[t] = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
    return out


def share_vault(src_dir: Path, dst_dir: Path) -> None:
    """Same key -> same pseudonyms, so two lakes can be compared value by value."""
    (dst_dir / "vault").mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(src_dir / "vault" / "key", dst_dir / "vault" / "key")


def no_duplicates(lake: Lake) -> None:
    con = lake.connect()
    for t, k in KEYS.items():
        n, d = con.execute(f"SELECT count(*), count(DISTINCT {k}) FROM {t}").fetchone()
        assert n == d, t


@pytest.fixture(scope="module")
def emu(account):
    with AmoEmulator(account / "amocrm", token=TOKEN) as e:
        yield e


@pytest.fixture(scope="module")
def clean(emu, tmp_path_factory, source):
    """One clean full sync that several tests compare against."""
    d = tmp_path_factory.mktemp("clean")
    emu.reset_stats()
    s = settings_for(d, emu.url)
    report = run_sync(s)
    return d, s, report


# -- tests --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_sync_matches_source(clean, source):
    d, s, report = clean
    lake = Lake(s.lake_dir)
    assert counts(lake) == expected_counts(source)
    assert report.full and report.records >= sum(len(source[n]) for n in TABLE_OF)
    no_duplicates(lake)
    con = lake.connect()
    # typed event columns are filled from value_before / value_after
    n_status = sum(1 for e in source["events"] if e["type"] == "lead_status_changed")
    assert con.execute("SELECT count(*) FROM crm_events WHERE type='lead_status_changed' "
                       "AND status_after IS NOT NULL").fetchone()[0] == n_status
    # won/lost flags and naive local timestamps
    assert con.execute("SELECT count(*) FROM crm_statuses WHERE is_won").fetchone()[0] == len(source["pipelines"])
    lead = source["leads"][0]
    got = con.execute("SELECT created_at FROM crm_leads WHERE lead_id = ?", [lead["id"]]).fetchone()[0]
    import pandas as pd
    want = pd.Timestamp(lead["created_at"], unit="s", tz="UTC").tz_convert(s.timezone).tz_localize(None)
    assert pd.Timestamp(got) == want
    # people are pseudonyms, companies stay readable
    names = [r[0] for r in con.execute("SELECT name FROM crm_contacts").fetchall()]
    assert all(n is None or n.startswith("PER-") for n in names)
    companies = {r[0] for r in con.execute("SELECT name FROM crm_companies").fetchall()}
    assert companies == {c["name"] for c in source["companies"]}
    wm = watermarks(s)
    assert set(wm) == {st.name for st in STREAMS if st.watermark}
    assert all(v == report.window_to for v in wm.values())


def test_second_run_adds_nothing_with_a_handful_of_requests(clean, emu):
    d, s, _ = clean
    lake = Lake(s.lake_dir)
    before = snapshot(lake)
    parts = {t: len(lake.parts(t)) for t in TABLE_OF.values()}
    emu.reset_stats()
    report = run_sync(s)
    assert sum(report.written.values()) == 0
    assert not report.full
    st = emu.stats()
    assert st["total"] <= 10, st
    assert st["by_status"].get(204, 0) == 6  # one empty answer per incremental list
    assert snapshot(lake) == before
    assert {t: len(lake.parts(t)) for t in TABLE_OF.values()} == parts


def test_incremental_picks_up_exactly_the_changes(account, tmp_path, source):
    with AmoEmulator(account / "amocrm", token=TOKEN) as emu:
        _incremental(emu, tmp_path, source)


def _incremental(emu, tmp_path, source):
    s = settings_for(tmp_path, emu.url)
    run_sync(s)
    lead, contact = source["leads"][0], source["contacts"][0]
    new_lead = {"id": 10_000_001, "name": "Новая сделка", "price": 12345, "status_id": lead["status_id"],
                "pipeline_id": lead["pipeline_id"], "responsible_user_id": lead["responsible_user_id"],
                "_embedded": {"tags": [], "companies": [], "contacts": [], "loss_reason": []}}
    emu.upsert("leads", [new_lead, {"id": lead["id"], "price": 999_999_999}])
    emu.upsert("contacts", [{"id": contact["id"], "responsible_user_id": source["users"][-1]["id"]}])
    emu.upsert("notes", [{"id": 90_000_001, "entity_id": lead["id"], "note_type": "common",
                          "params": {"text": "Перезвонить завтра"}, "created_by": 0, "responsible_user_id": 0}])
    emu.upsert("events", [{"type": "lead_status_changed", "entity_id": lead["id"], "entity_type": "lead",
                           "created_by": 0, "value_before": [{"lead_status": {"id": 1, "pipeline_id": 2}}],
                           "value_after": [{"lead_status": {"id": 142, "pipeline_id": 2}}]}])

    report = run_sync(s)
    assert report.written["crm_leads"] == 2
    assert report.written["crm_contacts"] == 1
    assert report.written["crm_notes"] == 1
    assert report.written["crm_events"] == 1
    assert report.written["crm_tasks"] == report.written["crm_companies"] == 0
    con = Lake(s.lake_dir).connect()
    assert con.execute("SELECT price FROM crm_leads WHERE lead_id=?", [lead["id"]]).fetchone()[0] == 999_999_999
    assert con.execute("SELECT count(*) FROM crm_leads").fetchone()[0] == len(source["leads"]) + 1
    no_duplicates(Lake(s.lake_dir))


@pytest.mark.slow
def test_faults_and_tight_rate_limit_end_like_a_clean_run(account, clean, tmp_path):
    d, _, _ = clean
    share_vault(d, tmp_path)
    with AmoEmulator(account / "amocrm", token=TOKEN, rate_limit=40, fail_rate=0.2, seed=7,
                     slow_seconds=0.6, block_after=10_000) as e:
        s = settings_for(tmp_path, e.url, amocrm_rps=30)
        report = run_sync(s, timeout=0.4)
        st = e.stats()
    assert report.retries > 0
    assert st["by_status"].get(403, 0) == 0
    assert snapshot(Lake(s.lake_dir)) == snapshot(Lake(clean[1].lake_dir))


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("stop_after", [1, 4, 9])
@pytest.mark.slow
def test_crash_mid_run_then_rerun_is_complete(emu, clean, tmp_path, source, stop_after):
    d, _, _ = clean
    share_vault(d, tmp_path)
    s = settings_for(tmp_path, emu.url)
    calls = []

    def progress(step, advance=1, total=None):
        calls.append(step)
        if len(calls) >= stop_after:
            raise Boom("killed")

    with pytest.raises(Boom):
        run_sync(s, progress=progress, batch_rows=50)
    check_watermarks_not_ahead(s, source)
    run_sync(s)
    assert snapshot(Lake(s.lake_dir)) == snapshot(Lake(clean[1].lake_dir))
    no_duplicates(Lake(s.lake_dir))


def check_watermarks_not_ahead(s: Settings, source: dict) -> None:
    """Every record a committed watermark covers is in the lake."""
    con = Lake(s.lake_dir).connect()
    for name, mark in watermarks(s).items():
        st = next(x for x in STREAMS if x.name == name)
        t = TABLE_OF[name]
        have = {r[0] for r in con.execute(f"SELECT {KEYS[t]} FROM {t}").fetchall()}
        want = {(str(r["id"]) if name == "events" else r["id"]) for r in source[name] if r[st.watermark] <= mark}
        assert want <= have, name


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_is_complete(emu, clean, tmp_path, source):
    d, _, _ = clean
    share_vault(d, tmp_path)
    script = textwrap.dedent(f"""
        from crmsum.config import Settings
        from crmsum.ingest.amocrm import sync
        from crmsum.lake import Lake
        from crmsum.privacy import Anonymizer, Vault
        s = Settings(data_dir={str(tmp_path)!r}, amocrm_base_url={emu.url!r}, amocrm_token={TOKEN!r},
                     amocrm_rps=25)
        sync(s, Lake(s.lake_dir), Anonymizer(Vault(s.vault_dir)), batch_rows=50)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    state = StateStore(Path(tmp_path) / "state")
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if len((state.load(SYNC_STATE, {}) or {}).get("watermarks", {})) >= 2:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it really died mid-run
    check_watermarks_not_ahead(settings_for(tmp_path, emu.url), source)
    s = settings_for(tmp_path, emu.url)
    run_sync(s)
    assert snapshot(Lake(s.lake_dir)) == snapshot(Lake(clean[1].lake_dir))
    no_duplicates(Lake(s.lake_dir))


def test_oauth_refresh_mid_run_persists_new_pair(account, tmp_path, source, caplog):
    with AmoEmulator(account / "amocrm", token=None, refresh_token="initial-refresh-token",
                     client_id="cid", client_secret="csecret", redirect_uri="https://example.com/cb") as e:
        s = settings_for(tmp_path, e.url, amocrm_token=None, amocrm_client_id="cid", amocrm_client_secret="csecret",
                         amocrm_refresh_token="initial-refresh-token", amocrm_redirect_uri="https://example.com/cb")
        state = StateStore(s.state_dir)
        seen = {}

        def progress(step, advance=1, total=None):
            if step == "companies" and not seen:
                seen["pair"] = state.load(OAUTH_STATE)
                e.expire_access_tokens()  # mid-run: every access token dies; leads..events still to fetch

        with caplog.at_level(logging.DEBUG):
            report = run_sync(s, progress=progress, queue_pages=1)
        assert report.token_refreshes == 2  # the first one (no access token yet) and the mid-run one
        pair = state.load(OAUTH_STATE)
        assert pair["refresh_token"] != seen["pair"]["refresh_token"] != "initial-refresh-token"
        assert stat.S_IMODE(os.stat(state.path(OAUTH_STATE)).st_mode) == 0o600
        assert counts(Lake(s.lake_dir)) == expected_counts(source)
        for secret in (pair["access_token"], pair["refresh_token"], "csecret", "initial-refresh-token"):
            assert secret not in caplog.text
        # a later run starts from the persisted pair (the env refresh token is spent)
        e.reset_stats()
        report2 = run_sync(s)
        assert report2.token_refreshes == 0 and sum(report2.written.values()) == 0


def test_blocked_integration_stops_with_clear_error(account, tmp_path):
    with AmoEmulator(account / "amocrm", token=TOKEN, rate_limit=1, block_after=1, block_seconds=60) as e:
        s = settings_for(tmp_path, e.url)
        with pytest.raises(AmoBlockedError) as ei:
            run_sync(s)
    msg = str(ei.value)
    assert "403" in msg and "blocked" in msg and "\n" not in msg
    assert watermarks(s) == {}


@pytest.mark.slow
def test_limiter_keeps_the_real_limit(account, tmp_path, source):
    """At the emulator's real 7 requests/s the client is never blocked and (bar arrival jitter on a
    loaded machine, which the limiter then adapts to) not throttled either."""
    with AmoEmulator(account / "amocrm", token=TOKEN, rate_limit=7) as e:
        s = settings_for(tmp_path, e.url, amocrm_rps=7)
        run_sync(s)
        # a second, empty run too (requests back to back)
        run_sync(s)
        st = e.stats()
    assert st["by_status"].get(429, 0) <= 1
    assert st["by_status"].get(403, 0) == 0
    assert counts(Lake(s.lake_dir)) == expected_counts(source)


def test_no_personal_data_leaks(clean, account, caplog):
    d, s, _ = clean
    pii = json.loads((account / "truth" / "pii.json").read_text(encoding="utf-8"))
    values = {v for k in ("names", "phones", "emails") for v in pii.get(k, []) if isinstance(v, str) and len(v) >= 4}
    assert values
    # a fresh incremental run's logs, plus the clean run's lake and state
    with caplog.at_level(logging.DEBUG):
        run_sync(s)
    blobs: list[tuple[str, str]] = [("log", caplog.text)]
    for f in sorted(Path(s.state_dir).glob("*")):
        if f.is_file():
            blobs.append((str(f), f.read_bytes().decode("utf-8", "replace")))
    lake_files = sorted(Path(s.lake_dir).rglob("*.parquet"))
    assert lake_files
    for f in lake_files:
        blobs.append((str(f), f.read_bytes().decode("utf-8", "replace")))
        t = pq.read_table(f)
        for col in t.column_names:
            blobs.append((f"{f}:{col}", "\n".join(map(str, t.column(col).to_pylist()))))
    leaks = [(where, v) for where, text in blobs for v in values if v in text]
    assert not leaks, leaks[:5]


# -- mapping (no HTTP) ------------------------------------------------------------------------------
REAL_EVENTS = [  # from a real /api/v4/events page (docs/reference): note entity_tag_added, created_by 0, URLs
    {"id": "01g8demdv2gtyj86hbzx32en7r", "type": "lead_status_changed", "entity_id": 22993645,
     "entity_type": "lead", "created_by": 8034787, "created_at": 1658308933,
     "value_after": [{"lead_status": {"id": 34994938, "pipeline_id": 1924486}}],
     "value_before": [{"lead_status": {"id": 28971487, "pipeline_id": 1924486}}], "account_id": 15895585},
    {"id": "01g7vyrzwegy9gn7yhtr3cya8j", "type": "entity_responsible_changed", "entity_id": 22993645,
     "entity_type": "lead", "created_by": 8034787, "created_at": 1657721880,
     "value_after": [{"responsible_user": {"id": 8034787}}], "value_before": [{"responsible_user": {"id": 6261658}}]},
    {"id": "01g813mz5z1zba3v34xpf7kw6m", "type": "common_note_added", "entity_id": 22993645, "entity_type": "lead",
     "created_by": 8034787, "created_at": 1657894763, "value_after": [{"note": {"id": 248407043}}],
     "value_before": []},
    {"id": "01f23xn245pk0e6x22g7bz0kv9", "type": "entity_tag_added", "entity_id": 22993645, "entity_type": "lead",
     "created_by": 0, "created_at": 1617186949, "value_after": [{"tag": {"name": "tilda"}}], "value_before": []},
    {"id": "01f23xn1vgtj0b6m62cpcgwhry", "type": "custom_field_485435_value_changed", "entity_id": 22993645,
     "entity_type": "lead", "created_by": 0, "created_at": 1617186948,
     "value_after": [{"custom_field_value": {"field_id": 485435, "field_type": 9, "enum_id": None,
                                             "text": "Перезвонить Юрию Федосееву +7 912 345-67-89"}}],
     "value_before": []},
    {"id": "x1", "type": "sale_field_changed", "entity_id": 1, "entity_type": "lead", "created_by": 0,
     "created_at": 1617186948, "value_after": [{"sale_field_value": {"sale": "15000"}}], "value_before": []},
    {"id": "x2", "type": "brand_new_event_type", "entity_id": 1, "entity_type": "lead", "created_by": 0,
     "created_at": "garbage", "value_after": {"weird": ["shape"]}, "value_before": None, "new_top_field": 1},
]


def test_events_mapping_typed_columns_and_tolerance(tmp_path):
    from crmsum.sources import amocrm_rows as rows

    anon = Anonymizer(Vault(tmp_path / "vault"))
    anon.learn_people([("Юрий Федосеев", "contact")])
    unknown = rows.Unknown()
    unknown.scan("events", REAL_EVENTS)
    df = rows.events_rows(REAL_EVENTS, anon, "Europe/Moscow", unknown).set_index("event_id")
    r = df.loc["01g8demdv2gtyj86hbzx32en7r"]
    assert (r.status_before, r.status_after, r.pipeline_after) == (28971487, 34994938, 1924486)
    assert str(r.created_at) == "2022-07-20 12:22:13"  # naive Moscow time
    r = df.loc["01g7vyrzwegy9gn7yhtr3cya8j"]
    assert (r.responsible_before, r.responsible_after) == (6261658, 8034787)
    assert df.loc["01g813mz5z1zba3v34xpf7kw6m"].note_id == 248407043
    assert df.loc["x1"].sale_after == 15000
    cf = df.loc["01f23xn1vgtj0b6m62cpcgwhry"].value_after
    assert "Федосеев" not in cf and "345-67-89" not in cf and "PER-" in cf and "TEL-" in cf
    assert json.loads(df.loc["01f23xn245pk0e6x22g7bz0kv9"].value_after) == [{"tag": {"name": "tilda"}}]
    bad = df.loc["x2"]
    assert bad.created_at is pd.NaT or str(bad.created_at) == "NaT"
    assert unknown["events.type:brand_new_event_type"] == 1
    assert unknown["events.field:new_top_field"] == 1
    assert "events.type:entity_tag_added" not in unknown


def test_notes_tasks_leads_contacts_mapping(tmp_path):
    from crmsum.sources import amocrm_rows as rows

    anon = Anonymizer(Vault(tmp_path / "vault"))
    anon.learn_people([("Ольга Смирнова", "contact")])
    notes = [{"id": 1, "entity_id": 5, "note_type": "common", "params": {"text": "Ольге Смирновой отправил КП"},
              "created_at": 1700000000, "updated_at": 1700000000},
             {"id": 2, "entity_id": 5, "note_type": "call_in",
              "params": {"uniq": "u", "duration": 125, "phone": "8 (912) 345-67-89", "link": "", "source": "x"}},
             {"id": 3, "entity_id": 5, "note_type": "hologram", "params": "not-a-dict"}]
    n = rows.notes_rows(notes, anon, "Europe/Moscow", rows.Unknown()).set_index("note_id")
    assert n.loc[1].text.endswith("отправил КП") and "Смирнов" not in n.loc[1].text
    assert n.loc[2].call_duration == 125 and n.loc[2].call_phone.startswith("TEL-")
    assert n.loc[3].note_type == "hologram" and pd.isna(n.loc[3].text)
    tasks = [{"id": 9, "entity_id": 5, "entity_type": "leads", "text": "Позвонить", "is_completed": True,
              "result": {"text": "Смирнова согласна"}, "complete_till": 1700000000},
             {"id": 10, "entity_id": 5, "result": []}]
    t = rows.tasks_rows(tasks, anon, "Europe/Moscow").set_index("task_id")
    assert "Смирнова" not in t.loc[9].result_text and pd.isna(t.loc[10].result_text)
    leads = [{"id": 7, "name": "Поставка", "price": 100, "status_id": 143, "loss_reason_id": 3,
              "_embedded": {"tags": [{"name": "опт"}], "companies": [{"id": 44}],
                            "contacts": [{"id": 8, "is_main": False}, {"id": 9, "is_main": True}],
                            "loss_reason": [{"id": 3, "name": "Дорого"}]}}]
    ld = rows.leads_rows(leads, anon, "Europe/Moscow").iloc[0]
    assert (ld.company_id, ld.main_contact_id, list(ld.contact_ids)) == (44, 9, [8, 9])
    assert (ld.loss_reason, list(ld.tags)) == ("Дорого", ["опт"])
    contacts = [{"id": 8, "name": "Ольга Смирнова", "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+7 912 345-67-89"}, {"value": "89123456789"}]},
        {"field_code": "EMAIL", "values": [{"value": "Olga@Example.com"}]}]}]
    c = rows.contacts_rows(contacts, anon, "Europe/Moscow").iloc[0]
    assert c["name"] == anon.person("Ольга Смирнова")
    assert len(set(c.phones)) == 1 and c.phones[0] == n.loc[2].call_phone  # one number, one pseudonym
    assert c.emails == [anon.email("olga@example.com")]
