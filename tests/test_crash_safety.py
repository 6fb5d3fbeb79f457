"""Crash safety of the whole night: SIGKILL the nightly steps (sync -> import -> precompute -> compact -> digest,
in a subprocess) at named failpoints, rerun, and prove the end state is a clean run's.

Each scenario is a chain of kills at different points (later kills hit the reruns of earlier ones, as a
flaky host would), then a rerun without failpoints. After every kill: the lake is readable, no watermark
covers records that are not in the lake, no chat got a message twice. At the end: every table equals a
clean run's (timestamps of computation aside) and every chat got exactly the clean run's messages.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import e2e
from crmsum import failpoints
from crmsum.failpoints import FailpointError, failpoint
from crmsum.lake import Lake
from crmsum.sandbox.amocrm_emulator import AmoEmulator
from crmsum.sandbox.telegram_emulator import TelegramEmulator
from crmsum.state import StateStore

LISTS = {  # watermarked list -> (source file, lake table, key column, stamp field)
    "companies": ("companies", "crm_companies", "company_id", "updated_at"),
    "contacts": ("contacts", "crm_contacts", "contact_id", "updated_at"),
    "leads": ("leads", "crm_leads", "lead_id", "updated_at"),
    "notes": ("notes", "crm_notes", "note_id", "updated_at"),
    "tasks": ("tasks", "crm_tasks", "task_id", "updated_at"),
    "events": ("events", "crm_events", "event_id", "created_at"),
}

# (step the hit count starts at, failpoint spec): every point of the night, spread over two chains
CHAINS = {
    "sync-and-import": [
        ("sync", "amocrm.page=kill@3"),                 # mid-paging, first lists only partly landed
        ("sync", "state.save.before_rename=kill@2"),    # a watermark fsynced but not renamed into place
        ("sync", "lake.put.before_rename=kill@2"),      # a Parquet part written, not yet visible
        ("import", "anonymize.batch=kill@1"),           # anonymizing the Telegram export (staging)
        ("precompute", "precompute.item=kill@60"),      # half the summaries computed, none written
        ("compact", "lake.compact.before_cleanup=kill@2"),  # a table's compacted part visible, old files still there
        ("digest", "delivery.part=kill@2"),             # chart sent to the first chat, text not yet
    ],
    "late-steps": [
        ("sync", "amocrm.list_end=kill@6"),             # leads..notes in the lake, watermark not saved
        ("sync", "state.save.after_rename=kill@4"),     # a watermark saved, the run dies right after
        ("import", "lake.put.after_rename=kill@1"),     # chat_messages landed, export not moved to done/
        ("precompute", "lake.put.before_rename=kill@1"),  # summaries written to a temp file only
        ("compact", "lake.put.before_rename=kill@3"),   # a compacted base written to a temp file only
        ("digest", "delivery.chat=kill@2"),             # first chat fully served, second not started
        ("digest", "delivery.part=kill@1"),             # the second chat: nothing sent yet
    ],
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.exists() else []


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small account, its amoCRM emulator and a clean reference run (lake rows + messages per chat)."""
    root = tmp_path_factory.mktemp("crash")
    account = e2e.make_account(root / "account")
    source = {name: read_jsonl(account / "amocrm" / f"{name}.jsonl") for name, *_ in LISTS.values()}
    source["events"] = [e for e in source["events"] if e.get("entity_type", "lead") == "lead"]
    with AmoEmulator(account / "amocrm", token=e2e.AMO_TOKEN) as amo, TelegramEmulator(token=e2e.BOT_TOKEN) as tg:
        clean = e2e.prepare_data_dir(root / "clean", account)
        proc = e2e.run_child(e2e.child_env(clean, amo.url, tg.url))
        assert proc.returncode == 0, proc.stderr[-3000:]
        ref_sent = {c: messages(tg, c) for c in e2e.CHATS}
        assert all(ref_sent.values()), "the clean run sent no digest"
        yield {"root": root, "account": account, "source": source, "amo": amo, "clean": clean,
               "rows": e2e.lake_rows(Lake(clean / "lake")), "sent": ref_sent}


def messages(tg: TelegramEmulator, chat: int) -> list[tuple]:
    return [(m["method"], m["text"], m["caption"]) for m in tg.sent(chat)]


def check_after_kill(data_dir: Path, world: dict, tg: TelegramEmulator, where: str) -> None:
    lake = Lake(data_dir / "lake")
    # every visible part is a whole Parquet file and every view answers (nothing half-written)
    for part in sorted((data_dir / "lake").rglob("*-*.parquet")):
        pq.read_metadata(part)
    e2e.lake_rows(lake)
    # no watermark covers a record that is not in the lake
    marks = (StateStore(data_dir / "state").load("amocrm_sync", {}) or {}).get("watermarks") or {}
    con = lake.connect()
    for name, mark in marks.items():
        src, tbl, key, stamp = LISTS[name]
        have = {r[0] for r in con.execute(f"SELECT {key} FROM {tbl}").fetchall()}
        want = {(str(r["id"]) if name == "events" else r["id"]) for r in world["source"][src] if r[stamp] <= mark}
        assert want <= have, f"{where}: watermark of {name} moved past {len(want - have)} records not in the lake"
    # no chat got any part twice
    for chat in e2e.CHATS:
        got = messages(tg, chat)
        assert len(got) == len(set(got)), f"{where}: chat {chat} got a digest part twice"
        assert got == world["sent"][chat][:len(got)], f"{where}: chat {chat} got something else than the digest"


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.slow  # whole nights in subprocesses, killed and rerun
def test_sigkill_anywhere_then_rerun_equals_clean_run(world, tmp_path, chain):
    data_dir = e2e.prepare_data_dir(tmp_path / "data", world["account"], key_from=world["clean"])
    with TelegramEmulator(token=e2e.BOT_TOKEN) as tg:
        for step, spec in CHAINS[chain]:
            env = e2e.child_env(data_dir, world["amo"].url, tg.url, failpoints=spec, CRMSUM_E2E_ARM_AT=step)
            proc = e2e.run_child(env)
            assert proc.returncode == -signal.SIGKILL, f"{spec} in {step} was not reached: {proc.stderr[-2000:]}"
            check_after_kill(data_dir, world, tg, f"{step}/{spec}")
        proc = e2e.run_child(e2e.child_env(data_dir, world["amo"].url, tg.url))
        assert proc.returncode == 0, proc.stderr[-3000:]
        sent = {c: messages(tg, c) for c in e2e.CHATS}
    assert sent == world["sent"], "every chat gets the digest exactly once"
    assert not list((data_dir / "inbox").glob("*.json")), "the export was not moved to done/"
    assert e2e.diff_rows(e2e.lake_rows(Lake(data_dir / "lake")), world["rows"]) == {}


@pytest.mark.slow  # whole nights in subprocesses, killed and rerun
def test_two_nightly_runs_at_once(world, tmp_path):
    """The second run exits at once with a clear message; the first finishes as a clean run."""
    data_dir = e2e.prepare_data_dir(tmp_path / "data", world["account"], key_from=world["clean"])
    lock = data_dir / "state" / "nightly.lock"
    with TelegramEmulator(token=e2e.BOT_TOKEN) as tg:
        first = e2e.start_child(e2e.child_env(data_dir, world["amo"].url, tg.url))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and first.poll() is None:
                if lock.exists() and lock.read_text().strip() == str(first.pid):
                    break
                time.sleep(0.05)
            second = e2e.run_child(e2e.child_env(data_dir, world["amo"].url, tg.url))
            out, err = first.communicate(timeout=600)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, err[-3000:]
        assert second.returncode == 75, second.stderr[-2000:]
        msg = second.stderr.strip().splitlines()[-1]
        assert "another crmsum run is in progress" in msg and str(first.pid) in msg
        # a third run that waits for the lock finds nothing left to do
        third = e2e.run_child(e2e.child_env(data_dir, world["amo"].url, tg.url, CRMSUM_E2E_LOCK_WAIT="600"))
        assert third.returncode == 0, third.stderr[-2000:]
        assert json.loads(third.stdout.strip().splitlines()[-1]) == {"sent": 0, "written": 0}
        sent = {c: messages(tg, c) for c in e2e.CHATS}
    assert sent == world["sent"]
    assert e2e.diff_rows(e2e.lake_rows(Lake(data_dir / "lake")), world["rows"]) == {}


# -- the failpoint module itself ------------------------------------------------------------------------
def test_failpoints_parse_arm_count_and_raise():
    assert failpoints.parse("a=kill@3, b=raise ,c=count") == {"a": ("kill", 3), "b": ("raise", 1), "c": ("count", 1)}
    for bad in ("a", "a=explode", "a=kill@0", "a=kill@x", "=kill"):
        with pytest.raises(ValueError):
            failpoints.parse(bad)
    try:
        failpoints.arm("x.y=raise@2,z=count")
        failpoint("x.y")
        failpoint("z"), failpoint("z"), failpoint("unarmed")
        with pytest.raises(FailpointError):
            failpoint("x.y")
        failpoint("x.y")  # only the Nth hit fires
        assert failpoints.hits() == {"x.y": 3, "z": 2}
    finally:
        failpoints.disarm()
    failpoint("x.y")  # disarmed: a no-op
    assert failpoints.hits() == {}


def test_every_failpoint_is_compiled_in():
    """Each name in failpoints.NAMES is reached by some call site (a renamed call site would silently
    turn a crash test into a no-op)."""
    import crmsum

    src = "\n".join(p.read_text(encoding="utf-8") for p in Path(crmsum.__file__).parent.rglob("*.py")
                    if p.name != "failpoints.py")
    for name in failpoints.NAMES:
        assert f'failpoint("{name}")' in src, name
