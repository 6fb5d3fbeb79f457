"""crmsum.ru and crmsum.cites: the one home of Russian-language knowledge and of citation ids."""

from __future__ import annotations

import datetime as dt

import pytest

from crmsum.cites import PSEUDONYM_ANY_CASE_RE, PSEUDONYM_RE, cited_ids, strip_citations
from crmsum.config import Settings
from crmsum.ru import (LEGAL_FORMS, MONTHS_GEN, MONTHS_LOC, MONTHS_NOM, case_forms, company_core, is_female,
                       month_name, name_forms, now, strip_legal_form, surname_nominative, today)


def test_months_in_three_cases():
    assert (MONTHS_NOM[2], MONTHS_GEN[2], MONTHS_LOC[2]) == ("март", "марта", "марте")
    assert month_name(5, "loct") == "мае" and month_name(12) == "декабрь"
    assert len(MONTHS_NOM) == len(MONTHS_GEN) == len(MONTHS_LOC) == 12


def test_today_follows_the_account_time_zone(tmp_path):
    far_east = Settings(data_dir=tmp_path, timezone="Pacific/Kiritimati")  # UTC+14
    far_west = Settings(data_dir=tmp_path, timezone="Etc/GMT+12")  # UTC-12
    assert (today(far_east) - today(far_west)).days in (1, 2)
    assert now(far_east).tzinfo is None
    broken = Settings(data_dir=tmp_path, timezone="Nowhere/Atlantis")
    assert abs((now(broken) - dt.datetime.now()).total_seconds()) < 60  # falls back to local time


@pytest.mark.parametrize("name,core", [("ООО «Мир Окон»", "мир окон"), ("АО «3М Россия»", "3м россия"),
                                       ("ЗАО Ёлка-Строй", "елка-строй"), ("Теххренмаш", "теххренмаш"),
                                       ("Acme LLC", "acme"), ("ООО", "ооо")])
def test_company_core(name, core):
    assert company_core(name) == core


def test_legal_forms_and_the_way_people_name_companies():
    assert {"ооо", "ао", "пао", "зао", "ип", "llc", "gmbh"} <= LEGAL_FORMS
    assert strip_legal_form("ЗАО «Уралхиммаш»") == "«Уралхиммаш»"
    assert strip_legal_form("ИП Кузьмин") == "Кузьмин"
    assert strip_legal_form("Аорта") == "Аорта"


def test_name_cases_and_forms():
    assert case_forms("Ева", "Name", "femn") == ("Ева", "Евы", "Еве", "Еву", "Евой", "Еве")
    assert case_forms("Смирнов", "Surn", "femn")[4] == "Смирновой"
    with pytest.raises(ValueError):
        case_forms("Ъъъ", "Name", "masc")
    assert {"ольге", "ольгой", "ольгу"} <= name_forms("Ольга", "Name", "femn")
    assert "смирновым" not in name_forms("Смирнова", "Surn", "femn")  # his instrumental is not hers
    assert surname_nominative("Смирновой", "femn") == "смирнова"
    assert surname_nominative("Федосеевым", None) == "федосеев"
    assert is_female("Ева") and not is_female("Никита") and not is_female("Иван")


def test_citations_and_pseudonyms():
    text = "Отправили КП [note:12, msg:-100:5] и созвонились [task:7] [note:12]. PER-0a1b2c3d ждёт [см. выше]"
    assert cited_ids(text) == ["note:12", "msg:-100:5", "task:7"]
    assert strip_citations(text, "") == "Отправили КП  и созвонились  . PER-0a1b2c3d ждёт [см. выше]"
    assert PSEUDONYM_RE.findall(text) == ["PER-0a1b2c3d"]
    assert not PSEUDONYM_RE.search("XPER-0a1b2c3d PER-0a1b2c3 PER-0A1B2C3D")
    assert PSEUDONYM_ANY_CASE_RE.fullmatch("per-0a1b2c3d") and not PSEUDONYM_ANY_CASE_RE.fullmatch("per-0a1b2c3")
