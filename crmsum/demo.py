"""`crmsum demo`: the whole product offline, end to end, on a generated sample account.

Generate the account, serve it from the amoCRM emulator (real HTTP, real rate limit), drop the
Telegram export into the inbox, run the nightly and weekly Prefect flows, then print one digest
and one answer. Everything lands in DATA_DIR, so `crmsum sql/ask/digest` work on it afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel

from crmsum.config import Settings, get_settings
from crmsum.errors import CrmsumError
from crmsum.ru import MONTHS_LOC, is_female

DEMO_MARKER = ".crmsum-demo"


class DemoError(CrmsumError, RuntimeError):
    """The demo cannot run here (e.g. the data root holds a real account)."""


def _check_data_dir(data_dir: Path) -> None:
    lake = data_dir / "lake"
    if lake.exists() and any(lake.iterdir()) and not (data_dir / DEMO_MARKER).exists():
        raise DemoError(f"{data_dir} already holds a lake that is not the demo's; "
                        f"run `crmsum demo --data-dir SOMEWHERE_ELSE`")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text("this data root was made by `crmsum demo`\n")


def _sample(data_dir: Path, leads: int, chat_days: int, seed: int, console: Console) -> Path:
    from crmsum.sandbox.generate import generate

    out = data_dir / "sample"
    params = {"leads": leads, "chat_days": chat_days, "seed": seed,
              "end_date": (dt.date.today() - dt.timedelta(days=1)).isoformat()}
    stamp = out / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        console.print(f"[dim]sample account already in {out}[/]")
        return out
    with console.status("generating the sample account…"):
        stats = generate(out, leads=leads, chat_days=chat_days, seed=seed,
                         end_date=dt.date.fromisoformat(params["end_date"]))
    stamp.write_text(json.dumps(params))
    console.print("[green]sample account:[/] " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return out


def _team_chat_id(sample: Path) -> int:
    """The Bot API id of the exported team chat (supergroups are -100<id>)."""
    import ijson

    with open(sample / "telegram" / "result.json", "rb") as fh:
        for key, _event, value in ijson.parse(fh):
            if key == "id":
                return int(f"-100{value}")
    return -1001000000001


def _settings(data_dir: Path, amo_url: str, token: str, rps: float, chat_id: int, llm_url: str | None) -> Settings:
    """The demo's settings, explicit: nothing is read from or written to this process's environment
    but the allowed chats a caller may have set."""
    kw: dict = {"data_dir": data_dir, "amocrm_base_url": amo_url, "amocrm_token": token, "amocrm_rps": rps,
                "telegram_allowed_chats": get_settings().telegram_allowed_chats or str(chat_id),
                "llm": "llm" if llm_url else "offline"}
    if llm_url:
        kw.update(openai_base_url=llm_url, openai_api_key="demo-key", llm_model="emulated-gpt")
    return Settings(_env_file=None, **kw)


def _child_env(s: Settings) -> dict[str, str]:
    """The flows' child process environment: the demo's settings, as a deployment's worker gets them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMSUM_", "OPENAI_"))}
    env.update({
        "CRMSUM_DATA_DIR": str(s.data_dir), "CRMSUM_AMOCRM_BASE_URL": s.amocrm_base_url or "",
        "CRMSUM_AMOCRM_TOKEN": s.amocrm_token.get_secret_value() if s.amocrm_token else "",
        "CRMSUM_AMOCRM_RPS": str(s.amocrm_rps), "CRMSUM_TELEGRAM_ALLOWED_CHATS": s.telegram_allowed_chats,
        "CRMSUM_LLM": s.llm or "offline",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline: no telemetry attempts
        # the temporary Prefect API server can take longer than its 20 s default on a busy 2-core box
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS":
            os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
    })
    if s.openai_base_url:
        env.update(OPENAI_BASE_URL=s.openai_base_url, OPENAI_API_KEY=s.openai_api_key.get_secret_value(),
                   CRMSUM_LLM_MODEL=s.llm_model)
    return env


def demo_question(settings: Settings) -> str:
    """A question a manager would ask about the busiest manager and client of last month."""
    from crmsum.lake import open_lake
    from crmsum.privacy import Vault

    con = open_lake(settings).connect()
    row = con.execute(
        """
        SELECT u.name, c.name, date_trunc('month', max(n.created_at)) AS month
        FROM crm_notes n JOIN crm_leads l USING (lead_id) JOIN crm_users u ON u.user_id = n.created_by
        JOIN crm_companies c ON c.company_id = l.company_id
        WHERE n.created_at >= (SELECT max(created_at) FROM crm_notes) - INTERVAL 60 DAY
        GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1
        """
    ).fetchone()
    if row is None:
        return "Что было на прошлой неделе?"
    vault = Vault(settings.vault_dir)
    real = vault.real(row[0]) or row[0]
    first = real.split()[0]
    namesakes = [n for _, n in vault.people("manager") if n.split()[0] == first]
    who = first if len(namesakes) == 1 else real  # a shared first name would need a clarification
    verb = "делала" if is_female(first) else "делал"
    return f"Что {who} {verb} в {MONTHS_LOC[row[2].month - 1]} по {row[1]}?"


def run_demo(data_dir: Path, leads: int = 200, chat_days: int = 365, seed: int = 7, rps: float = 7.0,
             llm: bool = False, console: Console | None = None) -> None:
    """Run everything offline and print a digest and an answer."""
    from crmsum.sandbox.amocrm_emulator import AmoEmulator

    console = console or Console()
    data_dir = data_dir.resolve()
    _check_data_dir(data_dir)
    sample = _sample(data_dir, leads, chat_days, seed, console)
    token = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        amo = stack.enter_context(AmoEmulator(sample / "amocrm", token=token, rate_limit=rps))
        console.print(f"[green]amoCRM emulator[/] on {amo.url} (rate limit {rps:g}/s)")
        llm_url = None
        if llm:
            from crmsum.sandbox.llm_emulator import LLMEmulator

            llm_url = stack.enter_context(LLMEmulator(api_key="demo-key")).url
            console.print(f"[green]LLM emulator[/] on {llm_url}")
        inbox = data_dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        if not (inbox / "done" / "result.json.imported.json").exists():
            shutil.copy(sample / "telegram" / "result.json", inbox / "result.json")
        settings = _settings(data_dir, amo.url, token, rps, _team_chat_id(sample), llm_url)
        _run_flows(settings, console)
        _show_results(settings, console)
    console.print(f"\nExplore: [bold]CRMSUM_DATA_DIR={data_dir} crmsum sql \"SELECT * FROM summaries LIMIT 5\"[/]")


def _run_flows(settings: Settings, console: Console) -> None:
    """The nightly and weekly Prefect flows, in a child process (`python -m flows.demo`): the library
    never imports the orchestration shell, and the flows get the demo's settings as a worker would."""
    console.print("[bold]running the nightly and weekly flows[/] (Prefect)…")
    env = _child_env(settings)
    root = str(Path(__file__).resolve().parents[1])  # the source tree, when flows/ is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    # cwd: the data root, so no developer's .env in the project folder leaks into the demo
    proc = subprocess.run([sys.executable, "-m", "flows.demo"], env=env, stdout=subprocess.PIPE, text=True,
                          cwd=settings.data_dir)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        raise DemoError(f"the demo flows failed (exit {proc.returncode}); see {settings.data_dir}/logs/crmsum.log")
    report = json.loads(lines[-1])
    nightly, weekly = report["nightly"], report["weekly"]
    amo = nightly.get("amocrm") or {}
    console.print(f"[green]amoCRM sync:[/] {sum(amo.get('fetched', {}).values())} records in "
                  f"{amo.get('requests')} requests, {amo.get('seconds', 0):.1f}s")
    for chat in nightly.get("telegram") or []:
        console.print(f"[green]chat import:[/] {chat['messages_written']} messages")
    ins = nightly.get("insights") or {}
    if ins:
        m = ins.get("model") or {}
        console.print(f"[green]insights:[/] {ins.get('leads')} deals' features, {ins.get('drivers_written')} driver rows; "
                      + (f"win model AUC {m['auc']:.2f} out of time" if m.get("auc") is not None else
                         f"win model: {m.get('reason')}"))
    pre = nightly.get("precompute") or {}
    console.print(f"[green]precompute:[/] {pre.get('computed')} summaries ({pre.get('backend')}), "
                  f"{pre.get('seconds', 0):.1f}s")
    console.print(f"[green]weekly digest {weekly['week']}:[/] {weekly['outbox']} to the outbox, "
                  f"{weekly['sent']} sent")


def _show_results(settings: Settings, console: Console) -> None:
    from crmsum.answer import answer_question, flush
    from crmsum.privacy import Vault

    vault = Vault(settings.vault_dir)  # the operator's own terminal: real names are shown
    digests = sorted(settings.outbox_dir.glob("*/*.md"))
    if digests:
        latest = digests[-1]
        console.print(Panel(Markdown(vault.resolve(latest.read_text(encoding="utf-8"))),
                            title=f"weekly digest {latest.parent.name}"))
        console.print(f"outbox (pseudonyms only): {latest} + chart {latest.with_suffix('.png').name}")
    question = demo_question(settings)
    answer = answer_question(question, settings)
    flush()
    console.print(Panel(answer.display(vault), title=f"❓ {question}  [{answer.source}]"))
    print(json.dumps(answer.to_json(vault), ensure_ascii=False))
