"""Shared setup for the digest / bot / answer tests: the fixture lake, precomputed offline, plus a vault
that knows the managers' real names. Built once per session; each test works on its own copy."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from crmsum.config import Settings
from crmsum.lake import Lake
from lake_fixture import AS_OF, CHAT_ID, MANAGERS, build_lake

TOKEN = "123456789:TEST-crmsum-delivery"
TODAY = dt.date(2024, 5, 15)  # matches lake_fixture.AS_OF
# Real names live only in the vault; the lake has the pseudonyms of lake_fixture.MANAGERS.
REAL = {MANAGERS[101]: "Ева Смирнова", MANAGERS[102]: "Олег Петров", MANAGERS[103]: "Анна Кузнецова",
        "PER-0ddba115": "Олег Сидоров"}  # a fourth manager without deals: makes «Олег» ambiguous
ALLOWED = (CHAT_ID, 4242)
STRANGER = 777


def build_base(root: Path) -> Path:
    """DATA_DIR with lake/ (fixture + summaries) and vault/ (managers' real names)."""
    from crmsum.precompute import precompute
    from crmsum.privacy import Vault

    lake = build_lake(root / "lake")
    lake.write("crm_users", pd.DataFrame([{"user_id": 104, "name": "PER-0ddba115", "lang": "ru",
                                           "is_admin": False, "is_active": True}]))
    vault = Vault(root / "vault")
    for p, name in REAL.items():
        vault.upsert_person(p, name, "manager")
    vault.close()
    precompute(Settings(llm="offline", data_dir=root), lake, as_of=AS_OF)
    return root


def copy_env(base: Path, dest: Path) -> tuple[Path, Lake]:
    shutil.copytree(base, dest)
    return dest, Lake(dest / "lake")


def settings_for(data_dir: Path, **kw) -> Settings:
    values = dict(llm="offline", data_dir=data_dir, telegram_allowed_chats=",".join(map(str, ALLOWED)))
    values.update(kw)
    return Settings(**values)
