"""Telegram Desktop export importer: reader, anonymization before write, idempotent all-or-nothing merge."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples

from crmsum.ingest.telegram import ImportReport, import_export
from crmsum.lake import Lake
from crmsum.sources.telegram import ALL_TYPES, ExportError, ExportReader

TZ = "Europe/Moscow"
PII = ["Иван Петров", "Мария Сидорова", "Ольга Кузнецова", "Пётр Смирнов", "Анна Волкова",
       "+7 916 123-45-67", "ivan.petrov@example.com", "@ivan_petrov", "user1001", "user1002"]


# -- anonymizer: the real one when crmsum.privacy exists, else a stand-in with the same API --------
class _FakeAnonymizer:
    """Same API as crmsum.privacy.Anonymizer; replaces the planted test PII only."""

    key = b"test"

    def _h(self, prefix: str, s: str) -> str:
        return f"{prefix}-{hmac.new(self.key, s.lower().encode(), hashlib.sha256).hexdigest()[:8]}"

    def person(self, name: str) -> str:
        return self._h("PER", " ".join(name.split()))

    def phone(self, raw: str) -> str:
        return self._h("TEL", re.sub(r"\D", "", raw))

    def email(self, raw: str) -> str:
        return self._h("EML", raw)

    def text(self, s: str) -> str:
        for name in PII[:5]:
            s = s.replace(name, self.person(name))
            s = s.replace(name.split()[0], self.person(name))
        s = re.sub(r"\+7[\d \-()]{10,16}\d", lambda m: self.phone(m.group()), s)
        s = re.sub(r"[\w.]+@[\w.]+", lambda m: self.email(m.group()), s)
        s = re.sub(r"@\w+", lambda m: self._h("TG", m.group()), s)
        return s

    def texts(self, items, docs=None):
        return [self.text(s) for s in items]


def _make_anonymizer(tmp: Path):
    try:
        from crmsum.privacy import Anonymizer, Vault
    except ImportError:
        return _FakeAnonymizer()
    return Anonymizer(Vault(tmp / "vault"))


@pytest.fixture
def anon(tmp_path):
    return _make_anonymizer(tmp_path)


@pytest.fixture
def lake(tmp_path):
    return Lake(tmp_path / "lake")


# -- export builders ------------------------------------------------------------------------------
BASE = 1_700_000_000  # 2023-11-14 22:13:20 UTC = 2023-11-15 01:13:20 Moscow


def msg(i: int, text="привет", **kw) -> dict:
    m = {"id": i, "type": "message", "date": "2023-11-15T01:13:20", "date_unixtime": str(BASE + 60 * i),
         "from": "Иван Петров", "from_id": "user1001", "text": text,
         "text_entities": [{"type": "plain", "text": text}] if isinstance(text, str) else None}
    if m["text_entities"] is None:
        del m["text_entities"]
    m.update(kw)
    return m


def rich_messages() -> list[dict]:
    return [
        msg(1, "Доброе утро, коллеги"),
        msg(2, ["Звонил ", {"type": "mention_name", "text": "Мария Сидорова", "user_id": 1002},
                ", телефон ", {"type": "phone", "text": "+7 916 123-45-67"},
                " почта ", {"type": "email", "text": "ivan.petrov@example.com"},
                " ", {"type": "bold", "text": "Теххренмаш"}, " ",
                {"type": "text_link", "text": "КП", "href": "https://example.com/kp"}],
            reply_to_message_id=1),
        {"id": 3, "type": "service", "date": "2023-11-15T01:20:00", "date_unixtime": str(BASE + 500),
         "actor": "Мария Сидорова", "actor_id": "user1002", "action": "invite_members",
         "members": ["Ольга Кузнецова", "Пётр Смирнов"], "text": "", "text_entities": []},
        {"id": 4, "type": "service", "date": "2023-11-15T01:21:00", "date_unixtime": str(BASE + 560),
         "actor": "Иван Петров", "actor_id": "user1001", "action": "pin_message", "message_id": 2,
         "text": "", "text_entities": []},
        msg(5, "Смотрите", forwarded_from="Анна Волкова"),
        msg(6, "ок", edited="2023-11-15T02:00:00", edited_unixtime=str(BASE + 3000)),
        msg(7, "", photo="photos/photo_1.jpg", width=800, height=600,
            reactions=[{"type": "emoji", "count": 2, "emoji": "👍",
                        "recent": [{"from": "Пётр Смирнов", "from_id": "user1003"}]},
                       {"type": "emoji", "count": 1, "emoji": "🔥"}]),
        msg(8, "", file="voice_messages/audio_1.ogg", media_type="voice_message", duration_seconds=4),
        msg(9, "", file="stickers/sticker.webp", media_type="sticker", sticker_emoji="😀"),
        msg(10, "", poll={"question": "Когда созвон?", "closed": False, "total_voters": 2,
                          "answers": [{"text": "Утром", "voters": 1, "chosen": False},
                                      {"text": "Вечером", "voters": 1, "chosen": True}]}),
        msg(11, "", contact_information={"first_name": "Пётр", "last_name": "Смирнов",
                                         "phone_number": "+7 916 123-45-67"},
            contact_vcard="contacts/contact_1.vcf"),
        msg(12, "", location_information={"latitude": 55.75, "longitude": 37.61}),
        {"id": 13, "type": "service", "date": "2023-11-15T01:30:00", "actor": "Иван Петров",
         "actor_id": "user1001", "action": "phone_call", "duration_seconds": 65, "text": ""},
        msg(14, "Пишите @ivan_petrov", date_unixtime=None),
        msg(15, "channel post", forwarded_from="Новости отрасли", forwarded_from_id="channel777"),
    ]


def chat(cid=4242, name="Отдел продаж", type_="private_supergroup", messages=None) -> dict:
    return {"name": name, "type": type_, "id": cid, "messages": rich_messages() if messages is None else messages}


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def account(*chats, left=()) -> dict:
    return {"about": "Here is the data you requested.",
            "personal_information": {"user_id": 1001, "first_name": "Иван", "last_name": "Петров",
                                     "phone_number": "+7 916 123-45-67", "username": "@ivan_petrov"},
            "contacts": {"about": "", "list": [{"first_name": "Мария", "last_name": "Сидорова",
                                                "phone_number": "+7 916 123-45-67"}]},
            "chats": {"about": "", "list": list(chats)},
            "left_chats": {"about": "", "list": list(left)}}


def parquet_state(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def assert_no_pii(root: Path, values) -> None:
    import duckdb

    blob = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM read_parquet('{root}/chat_messages/*.parquet', union_by_name=true)").fetchall()
    decoded = "\n".join(str(v) for r in rows for v in r if v is not None)
    for v in values:
        assert v.encode() not in blob, "raw value in lake bytes"
        assert v not in decoded, "raw value in lake text"


# -- reader ---------------------------------------------------------------------------------------
def test_reader_normalizes_every_message_kind(tmp_path):
    path = write_json(tmp_path / "ChatExport" / "result.json", chat())
    reader = ExportReader(path.parent, timezone=TZ)
    msgs = {m.message_id: m for m in reader}
    assert reader.chats[0].id == 4242 and reader.chats[0].name == "Отдел продаж"
    assert len(msgs) == 15 and not reader.stats.skipped
    assert str(msgs[1].date) == "2023-11-15 01:14:20"  # date_unixtime -> Moscow, naive
    assert str(msgs[14].date) == "2023-11-15T01:13:20".replace("T", " ")  # only `date`
    assert "".join(t for _, t in msgs[2].parts).startswith("Звонил Мария Сидорова, телефон +7")
    assert msgs[2].reply_to == 1
    assert msgs[3].kind == "service" and msgs[3].action == "invite_members"
    assert msgs[3].members == ["Ольга Кузнецова", "Пётр Смирнов"]
    assert msgs[4].reply_to == 2  # pinned message
    assert msgs[5].forwarded_from == "Анна Волкова" and msgs[5].forwarded_is_person
    assert msgs[6].edited is not None
    assert msgs[7].media_type == "photo" and msgs[7].reactions == 3
    assert msgs[8].media_type == "voice_message"
    assert msgs[9].media_type == "sticker" and msgs[9].extra_text == ["😀"]
    assert msgs[10].media_type == "poll" and "Утром" in msgs[10].extra_text
    assert msgs[11].media_type == "contact" and msgs[11].contact == ("Пётр Смирнов", "+7 916 123-45-67")
    assert msgs[12].media_type == "location"
    assert msgs[13].action == "phone_call" and msgs[13].service_text == "65 s"
    assert not msgs[15].forwarded_is_person
    assert reader.stats.digest and len(reader.stats.digest) == 16


def test_text_forms_plain_and_list_without_entities(tmp_path):
    m1 = msg(1, "просто текст")
    m2 = msg(2, ["a ", {"type": "bold", "text": "b"}, " c"])
    del m1["text_entities"]
    path = write_json(tmp_path / "result.json", chat(messages=[m1, m2]))
    got = {m.message_id: "".join(t for _, t in m.parts) for m in ExportReader(path, timezone=TZ)}
    assert got == {1: "просто текст", 2: "a b c"}


# -- import ---------------------------------------------------------------------------------------
def test_import_single_chat_rows_and_anonymized(tmp_path, lake, anon):
    path = write_json(tmp_path / "export" / "result.json", chat())
    report = import_export(path.parent, lake, anon, timezone=TZ)
    assert isinstance(report, ImportReport)
    assert (report.chats, report.messages_read, report.messages_written, report.skipped) == (1, 15, 15, 0)
    df = lake.read("chat_messages").set_index("message_id")
    assert len(df) == 15
    assert set(df["chat_id"]) == {4242} and set(df["chat_name"]) == {"Отдел продаж"}
    assert re.fullmatch(r"PER-[0-9a-f]{8}", df.loc[1, "author"])
    assert df.loc[1, "author"] == anon.person("Иван Петров")
    assert df.loc[5, "forwarded_from"] == anon.person("Анна Волкова")
    assert df.loc[15, "forwarded_from"] == "Новости отрасли"
    assert df.loc[3, "author"] == anon.person("Мария Сидорова") and df.loc[3, "kind"] == "service"
    assert anon.person("Ольга Кузнецова") in df.loc[3, "text"]
    assert "Теххренмаш" in df.loc[2, "text"]  # company names stay readable
    assert df.loc[7, "reactions"] == 3 and df.loc[7, "media_type"] == "photo"
    assert df.loc[2, "reply_to"] == 1 and df.loc[4, "action"] == "pin_message"
    assert str(df.loc[6, "edited"]) == "2023-11-15 02:03:20"
    assert df.loc[11, "media_type"] == "contact"
    assert df["author_user_id"].isna().all()
    assert set(df["source_file"]) == {report.source_file}
    assert "export" not in report.source_file
    assert_no_pii(tmp_path / "lake", PII)


def test_reimport_adds_nothing_and_overlap_adds_only_new(tmp_path, lake, anon):
    first = write_json(tmp_path / "a" / "result.json", chat(messages=[msg(i) for i in range(1, 101)]))
    assert import_export(first, lake, anon, timezone=TZ).messages_written == 100
    parts = parquet_state(tmp_path / "lake")
    again = import_export(first, lake, anon, timezone=TZ)
    assert (again.messages_read, again.messages_written) == (100, 0)
    assert parquet_state(tmp_path / "lake") == parts
    # a newer export overlapping 51..150 (different file, different digest)
    newer = write_json(tmp_path / "b" / "result.json", chat(messages=[msg(i) for i in range(51, 151)]))
    rep = import_export(newer, lake, anon, timezone=TZ)
    assert rep.messages_written == 50
    assert lake.row_count("chat_messages") == 150


def test_edited_message_updates_and_older_export_does_not_revert(tmp_path, lake, anon):
    old = write_json(tmp_path / "a" / "result.json", chat(messages=[msg(1, "цена 100"), msg(2)]))
    import_export(old, lake, anon, timezone=TZ)
    edited = msg(1, "цена 120", edited="2023-11-15T03:00:00", edited_unixtime=str(BASE + 7200))
    new = write_json(tmp_path / "b" / "result.json", chat(messages=[edited, msg(2), msg(3)]))
    rep = import_export(new, lake, anon, timezone=TZ)
    assert rep.messages_written == 2  # the edit and message 3
    df = lake.read("chat_messages").set_index("message_id")
    assert df.loc[1, "text"] == "цена 120" and df.loc[1, "edited"] is not None
    assert import_export(old, lake, anon, timezone=TZ).messages_written == 0
    assert lake.read("chat_messages").set_index("message_id").loc[1, "text"] == "цена 120"


def test_whole_account_export_imports_groups_only_by_default(tmp_path, lake, anon):
    data = account(chat(1, "Отдел продаж", messages=[msg(i) for i in range(1, 6)]),
                   chat(2, "Иван Петров", "personal_chat", messages=[msg(i) for i in range(1, 4)]),
                   {"type": "saved_messages", "id": 3, "messages": [msg(1)]},
                   chat(4, "Закупки", "private_group", messages=[msg(i) for i in range(1, 8)]),
                   chat(5, "Бот", "bot_chat", messages=[msg(1)]),
                   left=[chat(6, "Старый чат", "public_supergroup", messages=[msg(1), msg(2)])])
    path = write_json(tmp_path / "DataExport" / "result.json", data)
    rep = import_export(path.parent, lake, anon, timezone=TZ)
    assert rep.chats == 3 and rep.chats_ignored == 3
    assert rep.messages_written == 5 + 7 + 2
    counts = dict(lake.connect().execute(
        "SELECT chat_id, count(*) FROM chat_messages GROUP BY 1").fetchall())
    assert counts == {1: 5, 4: 7, 6: 2}
    rep_all = import_export(path, lake, anon, timezone=TZ, chat_types=ALL_TYPES)
    assert rep_all.chats == 6 and rep_all.messages_written == 3 + 1 + 1
    assert_no_pii(tmp_path / "lake", PII)


def test_unknown_type_and_bad_fields_are_skipped_with_warning(tmp_path, lake, anon):
    msgs = [msg(1), {"id": 2, "type": "hologram", "date": "2023-11-15T01:00:00"},
            msg(3, text=42), {"id": "x", "type": "message", "date": "2023-11-15T01:00:00"},
            msg(5, date_unixtime="soon", date=None), msg(6, reply_to_message_id="1"), "junk", msg(8)]
    path = write_json(tmp_path / "result.json", chat(messages=msgs))
    rep = import_export(path, lake, anon, timezone=TZ)
    assert rep.messages_read == 8 and rep.skipped == 6 and rep.messages_written == 2
    assert any("unknown message type 'hologram'" in w for w in rep.warnings)
    assert all("Иван" not in w for w in rep.warnings)


@pytest.mark.parametrize("content, match", [
    (None, "truncated"),
    (b"this is not json at all", "not valid JSON"),
    (b'{"foo": 1, "bar": [1, 2]}', "not a Telegram Desktop export"),
    (b'[1, 2, 3]', "not a Telegram Desktop export"),
    (b'{"name": "x", "messages": "none"}', "not a list"),
    (b"", "truncated"),
])
def test_bad_files_raise_and_write_nothing(tmp_path, lake, anon, content, match):
    write_json(tmp_path / "good" / "result.json", chat(messages=[msg(1), msg(2)]))
    import_export(tmp_path / "good", lake, anon, timezone=TZ)
    before = parquet_state(tmp_path / "lake")
    if content is None:
        full = json.dumps(chat(messages=[msg(i) for i in range(1, 200)]), ensure_ascii=False).encode()
        content = full[: len(full) * 3 // 4]
    bad = tmp_path / "bad" / "result.json"
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(ExportError, match=match) as err:
        import_export(bad, lake, anon, timezone=TZ)
    assert "\n" not in str(err.value) and "Иван" not in str(err.value)
    assert parquet_state(tmp_path / "lake") == before


def test_missing_path_and_html_export(tmp_path, lake, anon):
    with pytest.raises(ExportError, match="does not exist"):
        import_export(tmp_path / "nope.json", lake, anon, timezone=TZ)
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "messages.html").write_text("<html></html>")
    with pytest.raises(ExportError, match="HTML export"):
        import_export(tmp_path / "html", lake, anon, timezone=TZ)


def test_progress_callback_reports_bytes(tmp_path, lake, anon):
    path = write_json(tmp_path / "result.json", chat(messages=[msg(i) for i in range(1, 300)]))
    seen = []
    import_export(path, lake, anon, lambda done, total: seen.append((done, total)), timezone=TZ)
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size


def test_small_batches_stream_into_staging(tmp_path, lake, anon):
    path = write_json(tmp_path / "result.json", chat(messages=[msg(i) for i in range(1, 1001)]))
    rep = import_export(path, lake, anon, timezone=TZ, batch_size=64, staging_dir=tmp_path)
    assert rep.messages_written == 1000 and lake.row_count("chat_messages") == 1000
    assert not list(tmp_path.glob("tg-import-*"))  # staging removed


def test_known_managers_get_author_user_id(tmp_path, lake, anon):
    path = write_json(tmp_path / "result.json", chat(messages=[msg(1)]))
    import_export(path, lake, anon, timezone=TZ, user_ids={anon.person("Иван Петров"): 77})
    assert lake.read("chat_messages")["author_user_id"].tolist() == [77]


# -- property: mutated / truncated exports --------------------------------------------------------
_BASE_EXPORT = json.dumps(chat(messages=rich_messages()[:8]), ensure_ascii=False).encode()


def _mutations():
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8),
                       st.floats(allow_nan=False, allow_infinity=False))
    value = st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                         max_leaves=6)
    keys = st.sampled_from(["id", "type", "date", "date_unixtime", "text", "text_entities", "from",
                            "reactions", "members", "media_type", "poll", "reply_to_message_id",
                            "edited_unixtime", "contact_information", "actor", "action"])
    return st.lists(st.tuples(st.integers(0, 7), keys, value), max_size=4)


@pytest.mark.slow  # a full import per example
@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(mutations=_mutations(), cut=st.one_of(st.none(), st.integers(0, len(_BASE_EXPORT))),
       noise=st.binary(max_size=3))
def test_property_mutated_or_truncated_export(tmp_path_factory, mutations, cut, noise):
    tmp = tmp_path_factory.mktemp("prop")
    lake = Lake(tmp / "lake")
    anon = _make_anonymizer(tmp)
    data = copy.deepcopy(chat(messages=rich_messages()[:8]))
    for idx, key, val in mutations:
        data["messages"][idx][key] = val
    raw = json.dumps(data, ensure_ascii=False).encode()
    if cut is not None:
        raw = raw[:cut] + noise
    path = tmp / "result.json"
    path.write_bytes(raw)
    import_export(write_json(tmp / "seed" / "result.json", chat(cid=1, messages=[msg(99)])),
                  lake, anon, timezone=TZ)
    before = parquet_state(tmp / "lake")
    try:
        rep = import_export(path, lake, anon, timezone=TZ)
    except ExportError as exc:
        assert "\n" not in str(exc)
        assert parquet_state(tmp / "lake") == before
        return
    # complete: exactly the messages the reader accepted are in the lake, next to the seed chat
    expected = {m.message_id for m in ExportReader(path, timezone=TZ)}
    got = {r[0] for r in lake.connect().execute("SELECT message_id FROM chat_messages WHERE chat_id = 4242").fetchall()}
    assert got == expected
    assert rep.messages_read - rep.skipped >= len(expected)
    assert lake.connect().execute("SELECT count(*) FROM chat_messages WHERE chat_id = 1").fetchone()[0] == 1


# -- the generated sample account -----------------------------------------------------------------
@pytest.mark.slow
def test_sample_account_leaves_no_pii_in_lake(request, tmp_path, anon):
    try:
        sample = request.getfixturevalue("sample_account")
    except pytest.FixtureLookupError:
        pytest.skip("sample_account fixture not available yet")
    from crmsum.privacy import Anonymizer  # noqa: F401 — the real anonymizer is required here

    lake = Lake(tmp_path / "lake")
    rep = import_export(Path(sample) / "telegram", lake, anon, timezone=TZ)
    assert rep.messages_written > 0 and rep.skipped == 0
    truth = json.loads((Path(sample) / "truth" / "pii.json").read_text(encoding="utf-8"))
    values = [v for k in ("names", "phones", "emails") for v in truth.get(k, []) if v and len(v) >= 4]
    export = json.loads((Path(sample) / "telegram" / "result.json").read_text(encoding="utf-8"))
    for m in export["messages"]:  # raw Telegram user ids and @handles are personal data too
        values += [m[k] for k in ("from_id", "actor_id") if m.get(k)]
        values += [e["text"] for e in m.get("text_entities", []) if e.get("type") in ("mention", "phone", "email")]
    assert_no_pii(tmp_path / "lake", values)


def test_rich_console_progress(tmp_path, lake, anon):
    import io

    from rich.console import Console

    path = write_json(tmp_path / "result.json", chat(messages=[msg(i) for i in range(1, 50)]))
    console = Console(file=io.StringIO(), force_terminal=True)
    rep = import_export(path, lake, anon, console, timezone=TZ)
    assert rep.messages_written == 49
