"""Personal data the generator never plants (tests/planted_pii.py): every category is masked in every
kind of text, business words beside it survive, and — end to end — none of it is found in any file
under the data directory except the vault, in any LLM request body or in any stored answer.
Also: phones beside other numbers, company names and business forms (precision), the display policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import e2e
from planted_pii import CONTEXTS, KEPT, PLANTED, Planted, secrets, survivors

from crmsum.privacy import Anonymizer, Vault
from crmsum.privacy.display import DisplayPolicyError, display_text, resolve


@pytest.fixture(scope="module")
def anon(tmp_path_factory):
    a = Anonymizer(Vault(tmp_path_factory.mktemp("planted") / "vault"), workers=1)
    a.learn_people([("Ева Соколова", "manager")])
    a.learn_companies(["Теххренмаш", "ООО «Ромашка»", "Вектор Трейд"])
    yield a
    a.close()


@pytest.mark.parametrize("ctx", CONTEXTS)
@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: f"{p.category}:{p.secrets[0]}")
def test_every_planted_category_is_masked(anon, planted: Planted, ctx: str):
    out = anon.text(ctx.format(p=planted.phrase))
    assert not survivors(out, planted), out


def test_business_words_beside_planted_values_survive(anon):
    out = "\n".join(anon.texts([p.phrase for p in PLANTED]))
    assert [k for k in KEPT if k not in out] == []


@pytest.mark.parametrize("text, kept", [
    ("Теххренмаш и Ромашка согласовали бюджет", ("Теххренмаш", "Ромашка")),
    ("Ева, глянь счёт от Ромашки", ("Ромашки",)),
    ("Ромашка-Агро хочет скидку, Альфа Групп думает", ("Ромашка-Агро", "Альфа Групп")),
    ("ООО «Звезда» оплатило счёт", ("«Звезда»",)),
    ("Офис на ул. Ленина, пропуск заказан", ("ул. Ленина",)),
    ("Иван Петров позвонил и обещал прислать договор", ("позвонил и обещал прислать договор",)),
    ("Выгрузили отчёт в Excel и отправили в Microsoft Teams", ("Excel", "Microsoft Teams")),
])
def test_company_names_and_business_forms_are_no_person(anon, text, kept):
    out = anon.text(text)
    assert all(k in out for k in kept), out


@pytest.mark.parametrize("text", [
    "звонить 89001234567 (2 раза)", "тел 8 (916) 123-45-67(10:30)", "# 89000000000 a00@aa.ru",
    "0 89000000000 a00@aa.ru", "(916) 123-45-67 после обеда",
])
def test_phone_beside_other_numbers_is_found(anon, text):
    out = anon.text(text)
    assert "TEL-" in out and not any(d in "".join(c for c in out if c.isdigit())
                                     for d in ("9001234567", "9161234567", "9000000000")), out


def test_sole_trader_company_name_keeps_only_the_form(anon):
    name = anon.company("ИП Сковородникова Агриппина Саввична")
    assert name.startswith("ИП PER-") and "Сковородников" not in name
    assert anon.company("ООО «Ромашка»") == "ООО «Ромашка»"
    # the same person in free text, in another case form, gets the same pseudonym
    assert name.split()[1] in anon.text("Звонил Агриппине Сковородниковой по счёту")


def test_display_policy_names_by_default_contacts_on_opt_in(tmp_path):
    v = Vault(tmp_path / "vault")
    a = Anonymizer(v, use_ner=False)
    text = a.text("Ольга Смирнова, тел. +7 912 345-67-89, olga@firm.ru, паспорт 4509 123456")
    v.flush()
    shown = resolve(text, v, "names")
    assert "Ольга Смирнова" in shown and "TEL-" in shown and "EML-" in shown and "DOC-" in shown
    full = resolve(text, v, "names,phones,emails,documents")
    assert "+7 912 345-67-89" in full and "olga@firm.ru" in full and "4509 123456" in full
    assert display_text(text, v, chat_id=5, allowed=[7], policy="names,phones") == text   # not allowed: nothing
    assert "+7 912" in display_text(text, v, chat_id=7, allowed=[7], policy="names,phones")
    with pytest.raises(DisplayPolicyError, match="CRMSUM_DISPLAY_RESOLVE"):
        resolve(text, v, "names,passports")


# -- end to end ---------------------------------------------------------------------------------------
def _plant_chat(account: Path) -> None:
    path = account / "telegram" / "result.json"
    export = json.loads(path.read_text(encoding="utf-8"))
    chat = export["chats"]["list"][0] if "chats" in export else export
    msgs = chat["messages"]
    last = max(int(m["date_unixtime"]) for m in msgs)
    author = next(m["from"] for m in msgs if m.get("type") == "message" and m.get("from"))
    base = {"type": "message", "from": author, "from_id": "user424242"}
    new = []
    for i, p in enumerate(PLANTED):
        new.append({**base, "text": p.phrase})
    new.append({**base, "text": "", "poll": {"question": "Кто едет к Кваснюку?", "total_voters": 2, "answers": [
        {"text": "Тихон Смоляков", "voters": 1, "chosen": False},
        {"text": "Мишаня", "voters": 1, "chosen": False},
        {"text": "John Smith", "voters": 0, "chosen": False}]}})
    new.append({**base, "text": "", "contact_information": {"first_name": "Тихон", "last_name": "Смоляков",
                                                            "phone_number": "+7 912 404 77 19"}})
    for k, m in enumerate(new):
        m.update(id=10_000_000 + k, date_unixtime=str(last - 3600 + 60 * k))
        m["date"] = "2024-06-28T12:00:00"
        msgs.append(m)
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")


def _plant_crm(amo, account: Path) -> None:
    leads = [json.loads(x) for x in (account / "amocrm" / "leads.jsonl").read_text(encoding="utf-8").splitlines()]
    recent = sorted(leads, key=lambda x: -x["created_at"])[:len(PLANTED)]
    t0 = 1_719_300_000
    notes, tasks = [], []
    for i, p in enumerate(PLANTED):
        lead = recent[i % len(recent)]
        who = lead["responsible_user_id"]
        common = {"entity_id": lead["id"], "created_at": t0 + 600 * i, "responsible_user_id": who, "created_by": who}
        notes.append({"id": 98_000_000 + i, "note_type": "common", **common, "params": {"text": p.phrase}})
        tasks.append({"id": 97_000_000 + i, "entity_type": "leads", "task_type_id": 1, "is_completed": True,
                      "text": f"Перезвонить: {p.phrase}", "result": {"text": p.phrase},
                      "complete_till": t0 + 600 * i + 86400, **common})
    notes.append({"id": 98_100_000, "note_type": "call_in", **common,
                  "params": {"phone": "8 (912) 404-77-19", "duration": 60, "text": PLANTED[0].phrase}})
    amo.upsert("notes", notes)
    amo.upsert("tasks", tasks)
    amo.upsert("companies", [{"id": 96_000_001, "name": "ИП Сковородникова Агриппина Саввична",
                              "responsible_user_id": who, "created_at": t0, "updated_at": t0,
                              "custom_fields_values": [
                                  {"field_name": "Город", "field_code": "CITY", "values": [{"value": "Казань"}]},
                                  {"field_name": "Телефон", "field_code": "PHONE",
                                   "values": [{"value": "8 (912) 404-77-19"}]}]}])
    amo.upsert("contacts", [{"id": 96_000_002, "name": "Hans Müller", "responsible_user_id": who,
                             "created_at": t0, "updated_at": t0, "custom_fields_values": [
                                 {"field_name": "Должность", "field_code": "POSITION",
                                  "values": [{"value": "снабженец, зам. Мишани"}]},
                                 {"field_name": "Email", "field_code": "EMAIL",
                                  "values": [{"value": "t.smolyakov@mail-box.ru"}]}]}])


QUESTIONS = ["Что Richard Gere говорил Петровне за июнь 2024?",
             "Что по ИП Сковородникова Агриппина Саввична за июнь 2024?",
             "Что делал СМОЛЯКОВ ТИХОН на прошлой неделе? Его телефон 8 (912) 404-77-19",
             "Итоги команды за июнь 2024: что с John Smith и чубариковым?"]
QUESTION_SECRETS = ("Richard Gere", "Gere", "Петровне", "чубариков")


def _files_text(data: Path) -> list[tuple[str, str]]:
    """(where, text) of every file under the data directory except the vault (Parquet decoded too)."""
    out = []
    for f in sorted(data.rglob("*")):
        if not f.is_file() or "vault" in f.relative_to(data).parts:
            continue
        out.append((str(f), f.read_bytes().decode("utf-8", "replace")))
        if f.suffix == ".parquet":
            t = pq.read_table(f)
            out += [(f"{f}:{c}", "\n".join(map(str, t.column(c).to_pylist()))) for c in t.column_names]
    return out


@pytest.mark.slow
def test_planted_values_found_nowhere_after_a_night(tmp_path):
    from crmsum import answer as A
    from crmsum.lake import Lake
    from crmsum.sandbox.amocrm_emulator import AmoEmulator
    from crmsum.sandbox.llm_emulator import LLMEmulator

    account = e2e.make_account(tmp_path / "account")
    _plant_chat(account)
    data = e2e.prepare_data_dir(tmp_path / "data", account)
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN) as amo, LLMEmulator(api_key=e2e.OPENAI_KEY) as llm:
        _plant_crm(amo, account)
        s, _answers, proc = e2e.llm_night_and_answers(data, amo.url, llm.url, QUESTIONS)
        A.reset_contexts()
        bodies = [json.dumps(r, ensure_ascii=False) for r in llm.requests]
    lake = Lake(s.lake_dir)
    # the planted records made it in (the scan below is not vacuous)
    assert len(lake.read("crm_notes", "note_id BETWEEN 98000000 AND 98100000")) == len(PLANTED) + 1
    assert len(lake.read("crm_tasks", "task_id BETWEEN 97000000 AND 97100000")) == len(PLANTED)
    assert lake.read("crm_companies", "company_id = 96000001").name.tolist()[0].startswith("ИП PER-")
    assert len(lake.read("chat_messages", "message_id >= 10000000")) == len(PLANTED) + 2
    assert len(lake.read("answers")) >= len(QUESTIONS) and bodies
    blobs = _files_text(data) + [("llm request", b) for b in bodies]
    blobs += [("nightly output", proc.stdout + proc.stderr)]   # answers: the `answers` table above
    wanted = secrets() + ["Смоляков", *QUESTION_SECRETS]
    leaks = sorted({(where, v) for where, text in blobs for v in wanted if v in text})
    assert not leaks, leaks[:10]
