"""The fixed sample account the labelled retrieval set (tests/data/retrieval.jsonl) is written over.

The same account as the test suite's `sample_account` fixture (40 leads, 90 chat days ending
2024-06-30, seed 1): generated, synced from the amoCRM emulator over HTTP, the chat imported,
records embedded. Used by bench/bench_retrieval.py and tests/test_retrieval_eval.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

SAMPLE = {"leads": 40, "chat_days": 90, "seed": 1, "end_date": dt.date(2024, 6, 30)}
TOKEN = "retrieval-sample-token"


def build(root: Path, account: Path | None = None, embed: bool = True):
    """(settings, lake) of the sample account ingested under `root` (generated there unless given)."""
    from crmsum import pipeline
    from crmsum.config import Settings
    from crmsum.lake import Lake
    from crmsum.sandbox.amocrm_emulator import AmoEmulator
    from crmsum.sandbox.generate import generate

    root = Path(root)
    if account is None:
        account = root / "account"
        if not (account / "amocrm").exists():
            generate(account, **SAMPLE)
    with AmoEmulator(Path(account) / "amocrm", token=TOKEN) as emu:
        s = Settings(data_dir=root / "data", amocrm_base_url=emu.url, amocrm_token=TOKEN, llm="offline",
                     amocrm_rps=1000)
        lake = Lake(s.lake_dir)
        pipeline.sync_amocrm(s, lake)
    pipeline.import_telegram(Path(account) / "telegram" / "result.json", s, lake)
    if embed:
        pipeline.embed_records(s, lake)
    return s, lake
