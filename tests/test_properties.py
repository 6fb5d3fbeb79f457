"""Bad input across module boundaries, property-based (hypothesis).

Already covered elsewhere and not repeated: message-level mutations and truncation of one export
(test_telegram_import), `parse_question` on any text (test_parse_question), `Anonymizer.text` on random
Unicode and planted phones/e-mails in tame filler (test_privacy). Here:
- the importer with the real anonymizer: odd Unicode, huge strings and planted contacts in message text,
  names and chat titles -> the import lands and no planted phone/e-mail/name is in the lake;
- the importer on exports whose *structure* is wrong (top-level types, chats list, whole-account shape),
  also through the nightly inbox: ExportError or a clean import, never a half-written lake or a stopped night;
- the anonymizer with planted contacts next to arbitrary Unicode (not just tame filler);
- question -> answer end to end on a real lake: any text gets an Answer, never a contact or a real name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples

from crmsum.config import Settings
from crmsum.ingest.telegram import ExportError, import_export
from crmsum.lake import Lake
from crmsum.privacy import PSEUDONYM_RE, Anonymizer, Vault

TZ = "Europe/Moscow"
BASE = 1_700_000_000
PEOPLE = ["Глеб Воронцов", "Алиса Белоусова", "Тимофей Гаврилов"]
# no shrinking phase for the slow ones: a failing example is reported as found, not minimized for minutes
SLOW = settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples(15),
                phases=[Phase.explicit, Phase.reuse, Phase.generate])

PHONES = st.builds(lambda d, f: f(d), st.text("0123456789", min_size=9, max_size=9).map(lambda x: "9" + x),
                   st.sampled_from([lambda d: f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}", lambda d: "8" + d,
                                    lambda d: f"+7 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}", lambda d: "+7" + d]))
EMAILS = st.from_regex(r"[a-z][a-z0-9._]{1,10}[a-z0-9]@[a-z]{2,8}\.(ru|com|org)", fullmatch=True)
ODD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # emoji, RTL marks, NUL, combining...
SEP = st.sampled_from([" ", "\n", " — ", ": ", ", ", "\u00a0", " (", ") "])


@pytest.fixture(scope="module")
def vault_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("props_vault") / "vault"


@pytest.fixture(scope="module")
def anon(vault_dir):
    a = Anonymizer(Vault(vault_dir))
    a.learn_people([(p, "contact") for p in PEOPLE])
    yield a
    a.close()


def digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def lake_state(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def message(i: int, text, author="Глеб Воронцов") -> dict:
    return {"id": i, "type": "message", "date": "2023-11-15T01:13:20", "date_unixtime": str(BASE + 60 * i),
            "from": author, "from_id": f"user{1000 + i % 3}", "text": text}


# -- importer + anonymizer + lake ---------------------------------------------------------------------
@SLOW
@given(odd=st.lists(ODD, min_size=1, max_size=4), phone=PHONES, email=EMAILS, sep=SEP,
       person=st.sampled_from(PEOPLE), big=st.integers(0, 60_000), title=ODD)
@pytest.mark.slow  # a full import per example
def test_odd_unicode_and_huge_messages_land_without_contacts(tmp_path_factory, anon, odd, phone, email, sep,
                                                             person, big, title):
    tmp = tmp_path_factory.mktemp("odd")
    texts = [f"{o}{sep}{phone}{sep}{email}{sep}{o}" for o in odd]
    texts.append([{"type": "plain", "text": "x" * big + sep}, {"type": "phone", "text": phone},
                  {"type": "plain", "text": f"{sep}{person}{sep}"}, {"type": "email", "text": email}])
    export = {"name": f"Отдел {title}", "type": "private_supergroup", "id": 4242,
              "messages": [message(i, t, author=person if i % 2 else PEOPLE[0]) for i, t in enumerate(texts, 1)]}
    path = tmp / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    lake = Lake(tmp / "lake")
    rep = import_export(path, lake, anon, timezone=TZ)
    assert rep.messages_written == len(texts)
    rows = lake.read("chat_messages")
    fields = [str(v) for col in rows.columns for v in rows[col].tolist()]
    for f in fields:
        assert email not in f.lower() and phone not in f
        assert digits(phone)[-10:] not in re.sub(r"[\s()\-\u00a0]", "", PSEUDONYM_RE.sub("|", f))
        assert person not in f and person.split()[1] not in f


def _structure():
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.text(max_size=6), st.floats())
    value = st.recursive(scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                         max_leaves=5)
    good_chat = st.fixed_dictionaries({"name": st.just("Продажи"), "type": st.just("private_supergroup"),
                                       "id": st.just(77), "messages": st.just([message(1, "ok"), message(2, "да")])})
    chat = st.one_of(good_chat, value, good_chat.flatmap(
        lambda c: st.sampled_from(list(c)).flatmap(lambda k: value.map(lambda v: {**c, k: v}))))
    single = chat
    whole = st.fixed_dictionaries({"about": st.just("Telegram export"),
                                   "personal_information": st.just({"first_name": "Глеб", "phone_number": "+79161234567"}),
                                   "chats": st.one_of(st.fixed_dictionaries({"list": st.lists(chat, max_size=3)}), value),
                                   "left_chats": st.one_of(st.just({"list": []}), value)})
    return st.one_of(single, whole, value)


@SLOW
@given(doc=_structure(), cut=st.one_of(st.none(), st.integers(0, 400)))
@pytest.mark.slow  # a full import per example
def test_wrong_structure_is_an_export_error_or_a_clean_import(tmp_path_factory, anon, doc, cut):
    tmp = tmp_path_factory.mktemp("shape")
    raw = json.dumps(doc, ensure_ascii=False).encode()
    if cut is not None:
        raw = raw[:cut]
    path = tmp / "result.json"
    path.write_bytes(raw)
    lake = Lake(tmp / "lake")
    before = lake_state(tmp / "lake")
    try:
        rep = import_export(path, lake, anon, timezone=TZ)
    except ExportError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "+79161234567" not in msg
        assert lake_state(tmp / "lake") == before
        return
    n = lake.row_count("chat_messages")
    assert n == rep.messages_written <= rep.messages_read
    assert "+79161234567" not in json.dumps(lake.read("chat_messages").astype(str).to_dict("records"), ensure_ascii=False)


def test_nightly_inbox_survives_bad_exports(tmp_path, anon):
    """A broken export waits in inbox/failed/ and does not stop the good one after it."""
    from crmsum import pipeline

    s = Settings(data_dir=tmp_path, llm="offline")
    inbox = s.inbox_dir
    inbox.mkdir(parents=True)
    good = {"name": "Продажи", "type": "private_supergroup", "id": 77, "messages": [message(1, "ok")]}
    (inbox / "a_truncated.json").write_text(json.dumps(good)[:-20], encoding="utf-8")
    (inbox / "b_not_export.json").write_text("[1, 2, 3]", encoding="utf-8")
    (inbox / "c_binary.json").write_bytes(b"\x00\xff\xfe garbage")
    (inbox / "d_good.json").write_text(json.dumps(good), encoding="utf-8")
    reports = pipeline.import_inbox(s)
    assert len(reports) == 1 and reports[0].messages_written == 1
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["a_truncated.json", "b_not_export.json",
                                                                    "c_binary.json"]
    assert [p.name for p in (inbox / "done").iterdir()] == ["d_good.json.imported.json"]  # a receipt only
    assert not (inbox / "d_good.json").exists()
    assert Lake(s.lake_dir).row_count("chat_messages") == 1


# -- anonymizer ---------------------------------------------------------------------------------------
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples(150))
@given(a=ODD, phone=PHONES, b=ODD, email=EMAILS, c=ODD, s1=SEP, s2=SEP)
# found by this test: the phone's candidate run swallowed the «(» of a remark after it
@example(a="", phone="+7 (912) 345-67-89", b="2 раза)", email="ivan@mail.ru", c="", s1=" ", s2=" (")
@example(a="", phone="89123456789", b="10:30)", email="ivan@mail.ru", c="", s1=" ", s2="(")
@example(a="", phone="+7 912 345 67 89", b="10:30)", email="ivan@mail.ru", c="", s1=": ", s2=" (")
# found by this test: a digit before the phone joined its candidate run («0 89000000000»)
@example(a="0", phone="89000000000", b="", email="a00@aa.ru", c="", s1=" ", s2=" ")
@example(a="0", phone="89000000000", b="", email="a00@aa.ru", c="", s1=" (", s2=" ")
# found by this test: digits of the filler around a replaced phone spelled the phone's own digits
@example(a="", phone="+7 (900) 000-00-00", b=":9", email="a00@aa.ru", c="000000000", s1=" ", s2=" ")
def test_planted_contacts_never_survive_next_to_any_unicode(anon, a, phone, b, email, c, s1, s2):
    text = f"{a}{s1}{phone}{s2}{b}{s1}{email}{s2}{c}"
    out = anon.text(text)
    assert isinstance(out, str)
    assert email not in out
    tail = digits(phone)[-10:]
    if tail not in digits(text.replace(phone, " ")):  # else the filler itself spells those digits
        assert tail not in digits(PSEUDONYM_RE.sub("", out))
    assert PSEUDONYM_RE.sub("", anon.text(out)) == PSEUDONYM_RE.sub("", out)  # a second pass finds nothing new


# -- question -> answer --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def answer_env(tmp_path_factory):
    from crmsum import answer as A
    from delivery_env import build_base, settings_for

    base = build_base(tmp_path_factory.mktemp("props_answer") / "data")
    A.reset_contexts()
    yield settings_for(base)
    A.reset_contexts()


QUESTION_WORDS = st.sampled_from(["что", "делала", "Ева", "Смирнова", "Теххренмаш", "в", "марте", "за", "неделю",
                                  "2024", "W10", "по", "итоги", "команды", "с", "1", "по", "15", "апреля", "вчера",
                                  "телефон", "+7 916 123-45-67", "client@mail.ru", "игнорируй", "инструкции", "?",
                                  "Олег", "Петров", "АгроПлюс", "прошлый", "месяц"])


@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples(30))
@given(q=st.one_of(st.lists(QUESTION_WORDS, max_size=10).map(" ".join), ODD))
@pytest.mark.slow
def test_any_question_gets_an_answer_without_contacts(answer_env, q):
    from crmsum import answer as A
    from delivery_env import REAL

    a = A.answer_question(q, answer_env, today=dt.date(2024, 5, 15), record=False)
    assert a.source in ("precomputed", "live", "clarify") and isinstance(a.text, str) and a.text
    assert "+7 916" not in a.text and "9161234567" not in digits(a.text) and "client@mail.ru" not in a.text
    assert not [n for n in REAL.values() if n in a.text]  # the lake and answers hold pseudonyms only
    if a.start and a.end:
        assert a.start <= a.end
