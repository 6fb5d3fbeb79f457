"""The sample-account generator: determinism, amoCRM/Telegram shapes, planted PII, story signal."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from crmsum.sandbox.generate import GenerateError, generate

END = dt.date(2024, 3, 31)
FILES = ["amocrm/account.json", "amocrm/users.jsonl", "amocrm/pipelines.json", "amocrm/leads.jsonl",
         "amocrm/contacts.jsonl", "amocrm/companies.jsonl", "amocrm/events.jsonl", "amocrm/notes.jsonl",
         "amocrm/tasks.jsonl", "telegram/result.json", "truth/pii.json", "truth/story.json"]
ULID_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")
PHONE_RE = re.compile(r"(?<![\w+])(?:\+7|8)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\w)"
                      r"|(?<![\w+-])\d{3} \d{3} \d{2} \d{2}(?![\w-])")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def strings(obj) -> list[str]:
    """Every string value inside a JSON document (keys excluded)."""
    out: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            out.append(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "acc"
    stats = generate(out, leads=30, chat_days=60, seed=3, end_date=END)
    assert stats["leads"] == 30 and stats["messages"] > 0
    return out


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Path:
    """Long enough for deals to close: signal and per-card volumes are checked here."""
    out = tmp_path_factory.mktemp("gen") / "medium"
    generate(out, leads=200, chat_days=300, seed=11, end_date=END)
    return out


@pytest.fixture(scope="module")
def source_texts(small) -> list[str]:
    texts: list[str] = []
    for name in FILES:
        if name.startswith("truth/"):
            continue
        p = small / name
        if p.suffix == ".jsonl":
            for row in jsonl(p):
                texts.extend(strings(row))
        else:
            texts.extend(strings(json.loads(p.read_text(encoding="utf-8"))))
    return texts


# ---------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    again = tmp_path / "again"
    generate(again, leads=30, chat_days=60, seed=3, end_date=END)
    for name in FILES:
        assert (small / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    generate(other, leads=30, chat_days=60, seed=4, end_date=END)
    assert (other / "amocrm/leads.jsonl").read_bytes() != (small / "amocrm/leads.jsonl").read_bytes()
    assert (other / "telegram/result.json").read_bytes() != (small / "telegram/result.json").read_bytes()
    assert not list(small.glob(".gen-*")), "temporary files left behind"


@pytest.mark.slow
def test_output_does_not_depend_on_hash_seed(tmp_path):
    outs = []
    for hs in ("1", "2"):
        out = tmp_path / f"h{hs}"
        r = subprocess.run([sys.executable, "-m", "crmsum.cli", "generate", "--out", str(out), "--leads", "4",
                            "--chat-days", "6", "--seed", "5", "--end-date", "2023-05-31"],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": hs})
        assert r.returncode == 0, r.stderr
        assert (out / "amocrm/leads.jsonl").read_text(encoding="utf-8").count("\n") == 4
        outs.append(out)
    for name in FILES:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


# ---------------------------------------------------------------------------- amoCRM shapes

def test_amocrm_shapes(small):
    a = small / "amocrm"
    leads = jsonl(a / "leads.jsonl")
    lead_ids = {x["id"] for x in leads}
    assert len(lead_ids) == 30
    users = jsonl(a / "users.jsonl")
    assert [u["id"] for u in users] == sorted(u["id"] for u in users)
    assert all({"id", "name", "email", "lang", "rights"} <= u.keys() for u in users)
    user_ids = {u["id"] for u in users}
    pipelines = json.loads((a / "pipelines.json").read_text(encoding="utf-8"))
    status_ids = set()
    for p in pipelines:
        sts = p["_embedded"]["statuses"]
        assert {142, 143} <= {s["id"] for s in sts}
        assert all(s["pipeline_id"] == p["id"] for s in sts)
        status_ids |= {(p["id"], s["id"]) for s in sts}
    contacts = {c["id"]: c for c in jsonl(a / "contacts.jsonl")}
    companies = {c["id"]: c for c in jsonl(a / "companies.jsonl")}
    for c in contacts.values():
        codes = {f["field_code"] for f in c["custom_fields_values"]}
        assert {"PHONE", "EMAIL"} <= codes
        assert c["created_at"] <= c["updated_at"]
    for x in leads:
        assert "_links" not in x
        assert set(x["_embedded"]) == {"tags", "companies", "contacts", "loss_reason"}
        for k in ("id", "price", "responsible_user_id", "status_id", "pipeline_id", "created_at", "updated_at"):
            assert type(x[k]) is int, k
        assert (x["pipeline_id"], x["status_id"]) in status_ids
        assert x["responsible_user_id"] in user_ids
        assert x["created_at"] <= x["updated_at"]
        assert all(c["id"] in contacts for c in x["_embedded"]["contacts"])
        assert all(c["id"] in companies for c in x["_embedded"]["companies"])
        assert sum(c["is_main"] for c in x["_embedded"]["contacts"]) == 1
        if x["status_id"] == 143:
            assert x["loss_reason_id"] == x["_embedded"]["loss_reason"][0]["id"]
            assert x["_embedded"]["loss_reason"][0]["name"]
        if x["status_id"] in (142, 143):
            assert isinstance(x["closed_at"], int)
        else:
            assert x["closed_at"] is None
        for cf in x["custom_fields_values"] or []:
            assert {"field_id", "field_name", "field_code", "field_type", "values"} <= cf.keys()
        for co in x["_embedded"]["companies"]:
            assert companies[co["id"]]["created_at"] <= x["created_at"]

    events = jsonl(a / "events.jsonl")
    keys = [(e["created_at"], e["id"]) for e in events]
    assert keys == sorted(keys)
    assert len({e["id"] for e in events}) == len(events)
    last = defaultdict(int)
    for e in events:
        assert isinstance(e["id"], str) and ULID_RE.match(e["id"]), e["id"]
        assert type(e["created_at"]) is int and type(e["created_by"]) is int
        assert e["entity_type"] == "lead" and e["entity_id"] in lead_ids
        assert isinstance(e["value_after"], list) and isinstance(e["value_before"], list)
        assert "_links" not in e
        last[e["entity_id"]] = max(last[e["entity_id"]], e["created_at"])
        if e["type"] == "lead_status_changed":
            st = e["value_after"][0]["lead_status"]
            assert (st["pipeline_id"], st["id"]) in status_ids
    types = Counter(e["type"] for e in events)
    for t in ("lead_added", "lead_status_changed", "sale_field_changed", "common_note_added", "outgoing_call",
              "entity_linked", "task_added", "task_completed", "entity_tag_added"):
        assert types[t] > 0, t
    assert any(t.startswith("custom_field_") and t.endswith("_value_changed") for t in types)
    assert types["lead_added"] == 30

    notes = jsonl(a / "notes.jsonl")
    tasks = jsonl(a / "tasks.jsonl")
    note_ids = {n["id"] for n in notes}
    assert len(note_ids) == len(notes)
    for n in notes:
        assert n["entity_id"] in lead_ids and type(n["created_at"]) is int
        assert n["note_type"] in {"common", "call_in", "call_out", "service_message", "sms_in", "sms_out"}
        if n["note_type"] in ("call_in", "call_out"):
            assert {"uniq", "duration", "source", "link", "phone"} <= n["params"].keys()
        last[n["entity_id"]] = max(last[n["entity_id"]], n["updated_at"])
    referenced = {v["note"]["id"] for e in events for v in e["value_after"] if "note" in v}
    assert referenced == note_ids
    for t in tasks:
        assert t["entity_id"] in lead_ids and t["entity_type"] == "leads"
        assert t["task_type_id"] in (1, 2, 3)
        assert (t["result"] == []) != t["is_completed"]
        last[t["entity_id"]] = max(last[t["entity_id"]], t["updated_at"])
    for x in leads:
        assert x["updated_at"] == last[x["id"]], "updated_at must match the card's history"
    end_ts = int(dt.datetime(2024, 4, 1, tzinfo=dt.timezone(dt.timedelta(hours=3))).timestamp())
    assert max(e["created_at"] for e in events) < end_ts


def test_records_per_card_between_10_and_200(medium):
    a = medium / "amocrm"
    per = Counter()
    for name in ("events", "notes", "tasks"):
        for row in jsonl(a / f"{name}.jsonl"):
            per[row["entity_id"]] += 1
    assert len(per) == 200
    assert min(per.values()) >= 10 and max(per.values()) <= 200
    counts = sorted(per.values())
    assert counts[len(counts) // 2] < sum(counts) / len(counts)  # skewed: mean above median
    story = json.loads((medium / "truth/story.json").read_text(encoding="utf-8"))
    assert {x["id"]: x["records"] for x in story["leads"]} == dict(per)


# ---------------------------------------------------------------------------- PII

def test_every_planted_value_appears_and_every_found_value_is_planted(small, source_texts):
    pii = json.loads((small / "truth/pii.json").read_text(encoding="utf-8"))
    assert set(pii) >= {"names", "phones", "emails", "documents"}
    blob = "\n".join(source_texts)
    for kind in ("names", "phones", "emails", "documents"):
        for v in pii[kind]:
            assert v in blob, (kind, v)
    assert len(pii["names"]) > 50 and len(pii["phones"]) > 30 and len(pii["emails"]) > 10
    found_phones = {m.group(0) for t in source_texts for m in PHONE_RE.finditer(t)}
    found_emails = {m.group(0) for t in source_texts for m in EMAIL_RE.finditer(t)}
    assert found_phones and found_phones <= set(pii["phones"]), found_phones - set(pii["phones"])
    assert found_emails and found_emails <= set(pii["emails"]), found_emails - set(pii["emails"])
    # several phone formats and inflected names
    styles = {re.sub(r"\d", "9", p) for p in pii["phones"]}
    assert len(styles) >= 5
    names = pii["names"]
    assert all(len(n) >= 5 for n in names)
    assert any(n.endswith(("ым", "ой", "ем", "ым")) and " " in n for n in names)  # instrumental forms


def test_names_are_specific_and_not_inside_company_names(small):
    from crmsum.sandbox.sample_people import FEMALE_FIRST, MALE_FIRST

    pii = json.loads((small / "truth/pii.json").read_text(encoding="utf-8"))
    firsts = set(MALE_FIRST) | set(FEMALE_FIRST)
    assert not firsts & set(pii["names"]), "lone first names must not be listed"
    companies = [c["name"] for c in jsonl(small / "amocrm/companies.jsonl")]
    for n in pii["names"]:
        for c in companies:
            assert n not in c, (n, c)


def test_injection_and_documents_planted(medium):
    pii = json.loads((medium / "truth/pii.json").read_text(encoding="utf-8"))
    assert pii["documents"]
    notes = (medium / "amocrm/notes.jsonl").read_text(encoding="utf-8")
    assert "игнорируй" in notes.lower() or "ignore previous instructions" in notes.lower()


# ---------------------------------------------------------------------------- Telegram export

def test_telegram_export_variants(small):
    chat = json.loads((small / "telegram/result.json").read_text(encoding="utf-8"))
    assert chat["type"] == "private_supergroup" and isinstance(chat["id"], int) and chat["name"]
    msgs = chat["messages"]
    ids = [m["id"] for m in msgs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stamps = [int(m["date_unixtime"]) for m in msgs]
    assert stamps == sorted(stamps)
    entity_types, actions, media = set(), set(), set()
    seen = Counter()
    for m in msgs:
        assert m["type"] in ("message", "service")
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", m["date"]) and isinstance(m["date_unixtime"], str)
        assert "text" in m and "text_entities" in m
        if m["type"] == "service":
            actions.add(m["action"])
            assert m["actor_id"].startswith("user")
            continue
        assert m["from_id"].startswith("user") and m["from"]
        if isinstance(m["text"], list):
            seen["list_text"] += 1
            for part in m["text"]:
                assert isinstance(part, (str, dict))
                if isinstance(part, dict):
                    entity_types.add(part["type"])
            assert "".join(p if isinstance(p, str) else p["text"] for p in m["text"]) == \
                "".join(e["text"] for e in m["text_entities"])
        for k in ("reply_to_message_id", "forwarded_from", "edited", "reactions", "photo"):
            if k in m:
                seen[k] += 1
        if "reply_to_message_id" in m:
            assert m["reply_to_message_id"] < m["id"]
        if "edited" in m:
            assert int(m["edited_unixtime"]) >= int(m["date_unixtime"])
        if "media_type" in m:
            media.add(m["media_type"])
        if "reactions" in m:
            r = m["reactions"][0]
            assert r["type"] == "emoji" and r["count"] == len(r["recent"])
    for k in ("list_text", "reply_to_message_id", "forwarded_from", "edited", "reactions", "photo"):
        assert seen[k] > 0, k
    assert {"phone", "email", "mention", "mention_name", "bold"} <= entity_types
    assert {"sticker", "voice_message", "video_file"} <= media
    assert {"invite_members", "remove_members", "pin_message", "join_group_by_link"} <= actions
    per_day = Counter(m["date"][:10] for m in msgs)
    assert min(per_day.values()) >= 5 and max(per_day.values()) <= 110
    assert len(per_day) == 60


def test_chat_mentions_the_same_people_and_companies(small):
    chat = (small / "telegram/result.json").read_text(encoding="utf-8")
    companies = [c["name"] for c in jsonl(small / "amocrm/companies.jsonl")]
    assert sum(1 for c in companies if c in chat) >= len(companies) // 2
    users = [u["name"] for u in jsonl(small / "amocrm/users.jsonl")]
    assert all(u in chat for u in users if u)


# ---------------------------------------------------------------------------- story

def test_story_outcomes_match_crm_and_carry_signal(medium):
    story = json.loads((medium / "truth/story.json").read_text(encoding="utf-8"))
    leads = {x["id"]: x for x in jsonl(medium / "amocrm/leads.jsonl")}
    assert len(story["leads"]) == len(leads)
    for s in story["leads"]:
        x = leads[s["id"]]
        expect = {"won": 142, "lost": 143}.get(s["outcome"])
        if expect:
            assert x["status_id"] == expect
        else:
            assert x["status_id"] not in (142, 143)
        assert x["price"] == s["amount"]
        assert (x["_embedded"]["loss_reason"][0]["name"] if x["_embedded"]["loss_reason"] else None) == s["loss_reason"]
    rates = story["behaviour_win_rates"]
    for flag in ("fast_follow_up", "meeting_held"):
        assert rates[flag]["with"]["win_rate"] > rates[flag]["without"]["win_rate"], flag
    mgrs = [m for m in story["managers"] if m["role"] == "manager"]
    assert 8 <= len(mgrs) <= 12
    assert any(m["left_at"] for m in mgrs) and any(m["joined_at"] for m in mgrs)
    assert all(set(m["traits"]) >= {"fast_follow_up", "meetings", "discounts"} for m in mgrs)
    events = jsonl(medium / "amocrm/events.jsonl")
    handovers = [e for e in events if e["type"] == "entity_responsible_changed"]
    assert handovers
    # fast follow-up is visible in the data: first call within an hour of the lead
    first_call: dict[int, int] = {}
    for e in events:
        if e["type"] == "outgoing_call":
            first_call.setdefault(e["entity_id"], e["created_at"])
    for s in story["leads"]:
        if s["drivers"]["fast_follow_up"] and s["id"] in first_call:
            assert first_call[s["id"]] - s["created_at"] <= 3600


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs, words", [
    ({"leads": 0}, "leads"), ({"leads": -5}, "leads"), ({"leads": 10**9}, "leads"),
    ({"chat_days": 0}, "chat_days"), ({"end_date": dt.date.today() + dt.timedelta(days=3)}, "future"),
    ({"end_date": dt.date(2001, 1, 1), "chat_days": 5000}, "2000"),
])
def test_generate_error_on_bad_arguments(tmp_path, kwargs, words):
    with pytest.raises(GenerateError) as exc:
        generate(tmp_path / "x", **kwargs)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg


def test_out_is_an_existing_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(GenerateError, match="not a directory"):
        generate(f, leads=1, chat_days=1)


def test_cli_rejects_bad_arguments_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "crmsum.cli", "generate", "--out", str(tmp_path / "x"), "--leads", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "leads" in lines[0], r.stderr


def test_sample_account_fixture(sample_account):
    assert (sample_account / "amocrm/leads.jsonl").read_text(encoding="utf-8").count("\n") == 40
    assert (sample_account / "telegram/result.json").exists()
    assert (sample_account / "truth/pii.json").exists()
