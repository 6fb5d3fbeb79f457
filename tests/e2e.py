"""Shared helpers for the proof tests (crash safety, faults, leak scan, properties).

- `make_account(dir)`: a small generated sample account (amocrm/, telegram/result.json, truth/);
- `prepare_data_dir(...)`: a DATA_DIR with the export dropped into inbox/ and, optionally, the vault
  key of another run (same key -> same pseudonyms, so two lakes compare value by value);
- `child_env(...)` / `run_child(...)`: the nightly steps (sync -> inbox import -> precompute -> compact -> digest)
  in a subprocess, so a failpoint can SIGKILL them; `python tests/e2e.py nightly` is that subprocess;
- `run_nightly(settings)`: the same steps in-process;
- `lake_rows(lake)`: every table's rows through DuckDB, minus timestamps of computation, for comparing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AMO_TOKEN = "e2e-amo-long-lived-token-5f1c"
BOT_TOKEN = "555000111:E2E-bot-secret-token-xyz"
OPENAI_KEY = "sk-e2e-openai-secret-key-0042"
TEAM_CHAT = -1001234
PERSONAL_CHAT = 4242
CHATS = (TEAM_CHAT, PERSONAL_CHAT)
WEEK = "2024-W26"  # the last complete week of the account below (it ends on Sunday 2024-06-30)
SMALL = {"leads": 25, "chat_days": 30, "seed": 5, "end_date": dt.date(2024, 6, 30)}

# columns that say *when* something was computed or how often it was tried, not *what*: a rerun after a
# crash legitimately differs there
VOLATILE = {"summaries": {"created_at"}, "deliveries": {"updated_at", "attempts"}, "answers": {"created_at",
            "latency_ms", "answer_id"}, "llm_calls": {"created_at", "latency_ms", "call_id"},
            "feedback": {"created_at"}, "eval_results": {"created_at"}}


def make_account(root: Path, **kw: Any) -> Path:
    from crmsum.sandbox.generate import generate

    root = Path(root)
    generate(root, **{**SMALL, **kw})
    return root


def truth_values(account: Path, min_len: int = 4) -> list[str]:
    """Every planted personal value of the account (names, phones, e-mails)."""
    pii = json.loads((Path(account) / "truth" / "pii.json").read_text(encoding="utf-8"))
    return sorted({v for k in ("names", "phones", "emails") for v in pii.get(k, [])
                   if isinstance(v, str) and len(v) >= min_len})


def prepare_data_dir(data_dir: Path, account: Path, key_from: Path | None = None) -> Path:
    """DATA_DIR with the account's Telegram export in inbox/ (and another run's vault key)."""
    data_dir = Path(data_dir)
    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(account) / "telegram" / "result.json", inbox / "team_export.json")
    if key_from is not None:
        vault = data_dir / "vault"
        vault.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(Path(key_from) / "vault" / "key", vault / "key")
    return data_dir


def child_env(data_dir: Path, amo_url: str, tg_url: str | None = None, failpoints: str = "",
              **extra: str) -> dict[str, str]:
    """Environment of a nightly subprocess (nothing inherited from the test's own CRMSUM_* / OPENAI_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMSUM_", "OPENAI_"))}
    env.update({
        "CRMSUM_DATA_DIR": str(data_dir), "CRMSUM_AMOCRM_BASE_URL": amo_url, "CRMSUM_AMOCRM_TOKEN": AMO_TOKEN,
        "CRMSUM_AMOCRM_RPS": "1000", "CRMSUM_LLM": "offline", "CRMSUM_E2E_WEEK": WEEK,
        "CRMSUM_TELEGRAM_ALLOWED_CHATS": ",".join(map(str, CHATS)),
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    })
    if tg_url:
        env.update({"CRMSUM_TELEGRAM_TOKEN": BOT_TOKEN, "CRMSUM_TELEGRAM_API_URL": tg_url})
    if failpoints:
        env["CRMSUM_FAILPOINTS"] = failpoints
    env.update(extra)
    return env


def run_child(env: dict[str, str], timeout: float = 300, *args: str) -> subprocess.CompletedProcess:
    """`python tests/e2e.py nightly` with `env`; returns the finished process (returncode -9 = killed)."""
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), "nightly", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def start_child(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "nightly", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


STEPS = ("sync", "import", "precompute", "compact", "digest")


def llm_night_and_answers(data_dir: Path, amo_url: str, llm_url: str,
                          questions: list[str]) -> tuple[Any, list, subprocess.CompletedProcess]:
    """The whole night in a child process with the LLM backend against the emulator, then the questions
    answered in this process with the same settings: (settings, answers, the night's process)."""
    from crmsum import answer as A
    from crmsum.config import Settings

    env = child_env(data_dir, amo_url, CRMSUM_LLM="llm", OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=llm_url,
                    CRMSUM_LLM_MODEL="emulated-gpt")
    proc = run_child(env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = Settings(data_dir=data_dir, llm="llm", llm_model="emulated-gpt", OPENAI_API_KEY=OPENAI_KEY,
                 OPENAI_BASE_URL=llm_url, telegram_allowed_chats=",".join(map(str, CHATS)))
    A.reset_contexts()
    answers = [A.answer_question(q, s, today=SMALL["end_date"]) for q in questions]
    A.flush()
    return s, answers, proc


def run_nightly(settings: Any = None, week: str = WEEK, lock_wait: bool | float = False,
                before_step: Any = None) -> dict:
    """The nightly steps under the run lock, then the week's digests (what the flows run, minus Prefect).
    `before_step(name)` is called as each step starts (the subprocess arms its failpoints there)."""
    from crmsum import pipeline
    from crmsum.config import get_settings
    from crmsum.delivery import deliver_digests
    from crmsum.state import run_lock

    s = settings or get_settings()
    hook = before_step or (lambda name: None)
    report: dict[str, Any] = {}
    with run_lock(s.state_dir, "nightly", wait=lock_wait):
        hook("sync")
        report["amocrm"] = pipeline.plain(pipeline.sync_amocrm(s)) if s.amocrm_base_url else None
        hook("import")
        report["telegram"] = [pipeline.plain(r) for r in pipeline.import_inbox(s)]
        hook("precompute")
        report["precompute"] = pipeline.plain(pipeline.precompute(s))
        hook("compact")
        report["compact"] = pipeline.compact_lake(s)
        hook("digest")
        report["digest"] = deliver_digests(week, settings=s).as_dict()
    return report


def lake_rows(lake: Any, tables: tuple[str, ...] | None = None) -> dict[str, list[tuple]]:
    """Every table's visible rows (DuckDB views), sorted, without the VOLATILE columns."""
    from crmsum.schema import TABLES, table

    con = lake.connect()
    out = {}
    for name in tables or tuple(TABLES):
        cols = [c for c in table(name).schema.names if c not in VOLATILE.get(name, set())]
        sel = ", ".join(f'"{c}"' for c in cols)
        out[name] = con.execute(f"SELECT {sel} FROM {name} ORDER BY ALL").fetchall()
    con.close()
    return out


def diff_rows(got: dict[str, list], want: dict[str, list]) -> dict[str, str]:
    """Tables that differ, each with a short description (for assertion messages)."""
    bad = {}
    for name in sorted(set(got) | set(want)):
        g, w = got.get(name, []), want.get(name, [])
        if g != w:
            gs, ws = set(map(repr, g)), set(map(repr, w))
            bad[name] = (f"{len(g)} rows vs {len(w)} expected; {len(gs - ws)} unexpected, {len(ws - gs)} missing; "
                         f"e.g. {sorted(gs - ws)[:1] or sorted(ws - gs)[:1]}")
    return bad


def _main(argv: list[str]) -> int:
    if argv[:1] != ["nightly"]:
        print("usage: e2e.py nightly", file=sys.stderr)
        return 2
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging
    from crmsum.state import LockedError

    s = get_settings()
    setup_logging(s)
    wait = float(os.environ.get("CRMSUM_E2E_LOCK_WAIT", "0") or 0)
    # CRMSUM_E2E_ARM_AT=<step>: the CRMSUM_FAILPOINTS spec counts hits from that step's start only
    arm_at = os.environ.get("CRMSUM_E2E_ARM_AT")
    hook = None
    if arm_at:
        from crmsum import failpoints

        spec = os.environ.get(failpoints.ENV, "")
        failpoints.disarm()

        def hook(name: str) -> None:  # armed for that one step, so a kill happens there or nowhere
            failpoints.arm(spec if name == arm_at else "")
    try:
        report = run_nightly(s, os.environ.get("CRMSUM_E2E_WEEK") or None, lock_wait=wait or False,
                             before_step=hook)
    except LockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 75
    print(json.dumps({"sent": report["digest"]["sent"], "written": report["amocrm"] and
                      sum(report["amocrm"]["written"].values())}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
