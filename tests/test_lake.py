"""The lake's one merge and one "newest version of each key", and compaction that survives SIGKILL.

- `write` merges by key, writes only new or changed rows, a later row wins, and a streamed write of
  several chunks is all or nothing;
- `chat_messages`: the export digest is not a change and an older edit never replaces a newer one;
- `compact` rewrites a table as one base with the same visible rows; a view opened before it keeps
  answering; parts written after it stack on top;
- a compaction killed at any of its steps leaves the same visible rows, and the rerun finishes it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crmsum.lake import COMPACT_AFTER, Lake

ROOT = Path(__file__).resolve().parent.parent


def leads(ids, price: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": list(ids), "name": [f"Сделка {i}" for i in ids], "price": price,
                         "created_at": dt.datetime(2024, 5, 1)})


def visible(lake: Lake, name: str = "crm_leads") -> list[tuple]:
    con = lake.connect()
    try:
        return con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
    finally:
        con.close()


def files(lake: Lake, name: str = "crm_leads") -> list[str]:
    return [Path(p).name.split("-")[0] for p in lake.parts(name)]


def test_merge_writes_only_changes_and_the_newest_version_wins(tmp_path):
    lake = Lake(tmp_path)
    assert lake.write("crm_leads", leads(range(5))) == 5
    assert lake.write("crm_leads", leads(range(5))) == 0
    assert files(lake) == ["base", "part"]
    assert lake.write("crm_leads", leads([3, 7], price=300)) == 2
    got = lake.read("crm_leads").set_index("lead_id")["price"].to_dict()
    assert got == {0: 100, 1: 100, 2: 100, 3: 300, 4: 100, 7: 300}
    assert lake.row_count("crm_leads") == 6
    # within one call (one frame or several chunks) the later row of a key wins
    assert lake.write("crm_leads", pd.concat([leads([1], 5), leads([1], 6)])) == 1
    assert lake.write("crm_leads", iter([leads([2], 7), leads([2], 8)])) == 2
    assert lake.read("crm_leads", "lead_id IN (1, 2)").set_index("lead_id")["price"].to_dict() == {1: 6, 2: 8}


def test_a_streamed_write_is_all_or_nothing(tmp_path):
    lake = Lake(tmp_path)
    lake.write("crm_leads", leads(range(3)))
    before, names = visible(lake), lake.parts("crm_leads")

    def chunks():
        yield leads(range(10, 20))
        raise RuntimeError("the source broke half way")

    with pytest.raises(RuntimeError):
        lake.write("crm_leads", chunks())
    assert visible(lake) == before and lake.parts("crm_leads") == names
    assert not list((tmp_path / "crm_leads").glob(".tmp-*"))


def test_chat_messages_digest_is_not_a_change_and_older_edits_lose(tmp_path):
    lake = Lake(tmp_path)
    msg = pd.DataFrame({"chat_id": [1], "message_id": [1], "text": ["v2"], "edited": [dt.datetime(2024, 1, 2)],
                        "source_file": ["0123456789abcdef"]})
    assert lake.write("chat_messages", msg) == 1
    assert lake.write("chat_messages", msg.assign(source_file="fedcba9876543210")) == 0
    assert lake.write("chat_messages", msg.assign(text="v1", edited=dt.datetime(2024, 1, 1))) == 0
    assert lake.write("chat_messages", msg.assign(text="v3", edited=dt.datetime(2024, 1, 3))) == 1
    assert lake.read("chat_messages")["text"].tolist() == ["v3"]


def test_compaction_keeps_rows_and_open_views_answer(tmp_path):
    lake = Lake(tmp_path)
    for i in range(5):
        lake.write("crm_leads", leads(range(i * 3, i * 3 + 6), price=i))
    con = lake.connect()  # a long-lived reader, like the bot
    before = visible(lake)
    assert lake.compact("crm_leads") is True
    assert files(lake) == ["base"] and visible(lake) == before
    assert con.execute("SELECT count(*) FROM crm_leads").fetchone()[0] == len(before)
    assert lake.compact("crm_leads") is False  # nothing on top of the base
    lake.write("crm_leads", leads([0, 100], price=99))
    assert files(lake) == ["base", "part"]
    assert con.execute("SELECT price FROM crm_leads WHERE lead_id IN (0, 100)").fetchall() == [(99,), (99,)]
    assert con.execute("SELECT count(*) FROM crm_leads").fetchone()[0] == len(before) + 1
    con.close()
    assert lake.compact_all() == {"crm_leads": 2}
    assert lake.write("crm_leads", leads([0, 100], price=99)) == 0  # the merge reads the base too


def test_compaction_in_key_ranges_keeps_rows_and_key_order(tmp_path, monkeypatch):
    """A compaction sorts one key range at a time (wide rows do not fit one sort): same visible
    rows, one base, sorted by key across the ranges, composite keys included."""
    import pyarrow.parquet as pq

    from crmsum import lake as lake_mod

    monkeypatch.setattr(lake_mod, "ROW_GROUP", 4)  # ranges of 4 keys
    lake = Lake(tmp_path)
    for i in range(4):
        lake.write("crm_leads", leads(range(20 - 5 * i, 31 - 5 * i), price=i))
    msgs = pd.DataFrame({"chat_id": [2, 1, 2, 1, 1, 3], "message_id": [1, 9, 2, 3, 1, 1], "text": list("abcdef"),
                         "date": dt.datetime(2024, 5, 1)})
    lake.write("chat_messages", msgs.iloc[:3])
    lake.write("chat_messages", msgs.iloc[3:])
    before = {t: visible(lake, t) for t in ("crm_leads", "chat_messages")}
    assert lake.compact_all() == {"crm_leads": 5, "chat_messages": 3}
    for t in ("crm_leads", "chat_messages"):
        assert visible(lake, t) == before[t] and files(lake, t) == ["base"]
    base = next((tmp_path / "crm_leads").glob("base-*"))
    ids = pq.read_table(base).column("lead_id").to_pylist()
    assert ids == sorted(ids) == list(range(5, 31))
    assert pq.read_metadata(base).num_row_groups == 7  # 26 keys in ranges of 4
    keys = pq.read_table(next((tmp_path / "chat_messages").glob("base-*")), columns=["chat_id", "message_id"])
    pairs = list(zip(*(keys.column(c).to_pylist() for c in ("chat_id", "message_id"))))
    assert pairs == sorted(pairs) and len(pairs) == 6


@pytest.mark.slow
def test_too_many_parts_compact_on_write(tmp_path):
    lake = Lake(tmp_path)
    for i in range(COMPACT_AFTER + 1):
        lake.write("crm_leads", leads([i]))
    assert files(lake) == ["base"]
    assert lake.row_count("crm_leads") == COMPACT_AFTER + 1


def test_an_old_lake_without_a_base_is_read_and_compacted(tmp_path):
    """Lakes written before bases existed hold parts only (seq 0 is the empty first part)."""
    lake = Lake(tmp_path)
    lake.write("crm_leads", leads(range(4)))
    lake.write("crm_leads", leads([1], price=5))
    for p in (tmp_path / "crm_leads").glob("base-*"):
        p.rename(p.with_name(p.name.replace("base-", "part-")))
    old = Lake(tmp_path)  # opening adds an empty base at seq 0: older than every part
    assert sorted(files(old)) == ["base", "part", "part", "part"]
    assert visible(old) == visible(lake) and len(visible(old)) == 4
    old.compact("crm_leads")
    assert files(old) == ["base"] and len(visible(old)) == 4


COMPACT_CHILD = "import sys; from crmsum.lake import Lake; Lake(sys.argv[1]).compact_all()"


@pytest.mark.parametrize("spec", ["lake.put.before_rename=kill@1", "lake.put.after_rename=kill@1",
                                  "lake.compact.before_cleanup=kill@1", "lake.compact.before_cleanup=kill@2",
                                  "lake.compact.before_base=kill@1"])
@pytest.mark.slow  # two subprocesses per kill point
def test_compaction_killed_anywhere_loses_nothing_and_reruns(tmp_path, spec):
    lake = Lake(tmp_path)
    for i in range(4):
        lake.write("crm_leads", leads(range(i * 2, i * 2 + 5), price=i))
        lake.write("crm_tasks", pd.DataFrame({"task_id": [i], "text": [f"t{i}"]}))
    want = {t: visible(lake, t) for t in ("crm_leads", "crm_tasks")}
    env = {**os.environ, "CRMSUM_FAILPOINTS": spec,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert {t: visible(Lake(tmp_path), t) for t in want} == want
    proc = subprocess.run([sys.executable, "-c", COMPACT_CHILD, str(tmp_path)], env={**env, "CRMSUM_FAILPOINTS": ""},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = Lake(tmp_path)
    assert {t: visible(after, t) for t in want} == want
    assert files(after, "crm_leads") == ["base"] and files(after, "crm_tasks") == ["base"]
