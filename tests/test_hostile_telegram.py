"""Telegram exports nobody planned for: deep nesting, huge fields, duplicate ids, invalid UTF-8, and a
file that kills the import process. Each gives a clear line, loses nothing usable, and the rerun finishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmsum.config import Settings
from crmsum.ingest.telegram import import_export
from crmsum.lake import Lake
from crmsum.sources.telegram import ExportReader
from crmsum.sources.telegram_json import MAX_FIELD_CHARS
from test_telegram_import import TZ, _make_anonymizer, chat, msg, write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def anon(tmp_path):
    return _make_anonymizer(tmp_path)


@pytest.fixture
def lake(tmp_path):
    return Lake(tmp_path / "lake")


def nested_export(path: Path, depth: int) -> Path:
    """A ~400 KB single-chat export whose second message's `text` is `depth` lists deep."""
    head = json.dumps({"name": "Отдел продаж", "type": "private_supergroup", "id": 4242})[:-1]
    ok = json.dumps(msg(1, "обычное сообщение"), ensure_ascii=False)
    plain = {k: v for k, v in msg(2, "X").items() if k != "text_entities"}
    deep = json.dumps(plain, ensure_ascii=False).replace('"text": "X"', '"text": ' + "[" * depth + '"глубоко"' + "]" * depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{head}, "messages": [{ok}, {deep}, {json.dumps(msg(3, "после"), ensure_ascii=False)}]}}',
                    encoding="utf-8")
    return path


def child(code: str, data_dir: Path, *args: str, failpoints: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRMSUM_DATA_DIR=str(data_dir), CRMSUM_TIMEZONE=TZ)
    env.pop("CRMSUM_FAILPOINTS", None)
    if failpoints:
        env["CRMSUM_FAILPOINTS"] = failpoints
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child forked from a big pytest
# process would report the parent's size
PEAK = ("import re, sys\nfrom crmsum.pipeline import import_telegram\n"
        "r = import_telegram(sys.argv[1])\nprint(r.messages_written, r.capped)\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024)\n")


@pytest.mark.slow
def test_deeply_nested_export_imports_in_bounded_memory(tmp_path):
    """400 KB of nesting (200,000 levels): at HEAD 23.5 GB and a kernel kill; now under 300 MB peak RSS."""
    path = nested_export(tmp_path / "nested" / "result.json", depth=200_000)  # 400,000 bytes of brackets
    assert 400_000 < path.stat().st_size < 410_000
    proc = child(PEAK, tmp_path / "data", str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    written, capped, peak_mb = (int(x) for x in proc.stdout.split())
    assert written == 3 and capped == 1  # the nested message is kept, only its excess depth dropped
    assert peak_mb < 300, f"peak RSS {peak_mb} MB"
    line = [x for x in proc.stderr.splitlines() if "message 2 is nested deeper than" in x]
    assert line, proc.stderr[-2000:]


def test_huge_string_is_cut_with_a_warning_and_the_message_kept(tmp_path, lake, anon):
    big = "а" * (MAX_FIELD_CHARS * 3)
    path = write_json(tmp_path / "result.json", chat(messages=[msg(1, big), msg(2, "обычное")]))
    rep = import_export(path, lake, anon, timezone=TZ)
    assert rep.messages_written == 2 and rep.capped == 1
    assert any("longer than 65,536 characters" in w and "ids 1" in w for w in rep.warnings)
    lengths = dict(lake.connect().execute("SELECT message_id, length(text) FROM chat_messages").fetchall())
    assert lengths[1] <= MAX_FIELD_CHARS and lengths[2] > 0


def test_duplicate_ids_are_counted_and_the_newest_edit_wins(tmp_path, lake, anon):
    msgs = [msg(1, "первая версия"),
            msg(1, "правка", edited="2023-11-15T03:00:00", edited_unixtime="1700010000"),
            msg(1, "старая копия", edited="2023-11-15T02:00:00", edited_unixtime="1700005000"),
            msg(2, "раз"), msg(2, "два"), msg(3, "одна")]
    path = write_json(tmp_path / "result.json", chat(messages=msgs))
    rep = import_export(path, lake, anon, timezone=TZ)
    assert rep.duplicates == 3 and rep.messages_written == 3
    assert any(w.startswith("3 duplicate message id(s)") for w in rep.warnings)
    texts = dict(lake.connect().execute("SELECT message_id, text FROM chat_messages").fetchall())
    assert texts == {1: "правка", 2: "два", 3: "одна"}  # newest edit; equal edits: the later in the file
    again = import_export(path, lake, anon, timezone=TZ)
    assert again.messages_written == 0 and again.duplicates == 3


def test_invalid_utf8_is_replaced_and_counted_not_refused(tmp_path, lake, anon):
    raw = json.dumps(chat(messages=[msg(1, "до MARK после"), msg(2, "чисто")]), ensure_ascii=False).encode()
    raw = raw.replace(b"MARK", b"\xff\xfe\xc3")  # two stray bytes and a cut-off two-byte sequence
    path = tmp_path / "result.json"
    path.write_bytes(raw)
    rep = import_export(path, lake, anon, timezone=TZ)
    assert rep.messages_written == 2 and rep.bad_utf8 == 6  # 3 in `text`, 3 in `text_entities`
    assert any("invalid UTF-8" in w and "encoding" in w for w in rep.warnings)
    texts = dict(lake.connect().execute("SELECT message_id, text FROM chat_messages").fetchall())
    assert texts[1] == "до \ufffd\ufffd\ufffd после" and texts[2] == "чисто"
    assert ExportReader(path, timezone=TZ).stats.total_bytes == len(raw)


INBOX = "from crmsum.pipeline import import_inbox\nprint(len(import_inbox()))\n"


@pytest.mark.slow
def test_export_that_kills_the_import_is_moved_aside_and_the_night_goes_on(tmp_path):
    data = tmp_path / "data"
    inbox = Settings(data_dir=data).inbox_dir
    write_json(inbox / "a_poison.json", chat(cid=1, messages=[msg(1, "яд")]))
    write_json(inbox / "b_good.json", chat(cid=2, messages=[msg(1, "хорошее")]))
    for _ in range(2):  # the process dies inside the first export's import, twice (like an OOM kill)
        proc = child(INBOX, data, failpoints="anonymize.batch=kill@1")
        assert proc.returncode == -9, proc.stderr[-2000:]
        assert (inbox / "a_poison.json").exists()
    proc = child(INBOX, data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "1"
    assert (inbox / "failed" / "a_poison.json").exists() and not (inbox / "b_good.json").exists()
    assert "a_poison.json stopped 2 import(s) before they finished; moved to inbox/failed/" in proc.stderr
    assert Lake(data / "lake").connect().execute("SELECT count(*) FROM chat_messages WHERE chat_id = 2").fetchone()[0] == 1
    proc = child(INBOX, data)  # the next night: nothing left to do, nothing fails
    assert proc.returncode == 0 and proc.stdout.strip() == "0"
