"""The `crmsum` command: a thin shell over the library. Each command imports what it needs lazily,
so `crmsum --help` is instant and a command never pays for another's dependencies."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """One clear line on stderr, then exit: how every expected error ends a command."""
    line = " ".join(str(message).split()) or "failed"
    console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _Commands(TyperGroup):
    """The one place expected failures end: a `CrmsumError` from any command (or sub-command) — or
    an operating-system refusal (a missing or read-only data root, a full disk) — becomes one line
    on stderr and exit code 1. Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: typer.Context):
        from crmsum.errors import CrmsumError

        try:
            return super().invoke(ctx)
        except CrmsumError as exc:
            fail(str(exc) or type(exc).__name__)
        except OSError as exc:
            fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))


app = typer.Typer(cls=_Commands, help="crmsum: learn from a sales team's own history.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
ingest_app = typer.Typer(help="Bring data into the lake.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"crmsum {version('crmsum')}")
        raise typer.Exit()


@app.callback()
def _main(_: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit.")) -> None:
    """crmsum: learn from a sales team's own history."""


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="Folder to write the sample account into."),
    leads: int = typer.Option(1000, help="Number of deal cards."),
    chat_days: int = typer.Option(1095, help="Days of team chat history."),
    seed: int = typer.Option(7, help="Random seed (same seed + end date = same bytes)."),
    end_date: Optional[str] = typer.Option(None, help="Last day of history, YYYY-MM-DD (default: yesterday)."),
) -> None:
    """Write a deterministic sample account: amoCRM data, a Telegram export and the planted PII."""
    from crmsum.sandbox.generate import generate as run

    try:
        end = dt.date.fromisoformat(end_date) if end_date else None
    except ValueError:
        fail(f"--end-date must be YYYY-MM-DD, got {end_date!r}")
    with _progress() as progress:
        stats = run(out, leads=leads, chat_days=chat_days, seed=seed, end_date=end, progress=progress)
    console.print(f"[green]wrote[/] {out}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))


@app.command("amocrm-emulator")
def amocrm_emulator(
    data: Path = typer.Option(..., "--data", help="The amocrm/ folder written by `crmsum generate`."),
    port: int = typer.Option(8765, help="Port to listen on."),
    token: str = typer.Option(..., help="Access token clients must send (Bearer)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    rate_limit: float = typer.Option(7.0, help="Requests per second before 429 (0 disables)."),
    fail_rate: float = typer.Option(0.0, help="Share of requests answered with 5xx or a dropped connection."),
) -> None:
    """Serve a sample account as amoCRM API v4 on loopback."""
    from crmsum.sandbox.amocrm_emulator import run

    run(data, host=host, port=port, token=token, rate_limit=rate_limit, fail_rate=fail_rate)


def _show(report: object) -> None:
    """Print a step's report (a dataclass) as one aligned block."""
    import dataclasses

    data = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(vars(report))
    for key, value in data.items():
        console.print(f"  {key:<22} {value}", highlight=False)


def _finish(report: object, as_json: bool, written: int, skipped: int, failed: int) -> None:
    """A step's outcome: JSON (`{"ok", "written", "skipped", "failed", "report"}`) or the aligned block;
    exit 1 when anything failed, so a scheduler sees a partial failure."""
    from crmsum.pipeline import plain

    if as_json:
        doc = {"ok": not failed, "written": written, "skipped": skipped, "failed": failed, "report": plain(report)}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    else:
        _show(report)
    if failed:
        console.print(f"[bold red]error:[/] {failed} failed (see above); a rerun retries them", highlight=False)
        raise typer.Exit(1)


JSON_OPTION = typer.Option(False, "--json", help='Print {"ok", "written", "skipped", "failed", "report"}.')


@ingest_app.command("amocrm")
def ingest_amocrm(as_json: bool = JSON_OPTION) -> None:
    """Sync amoCRM (CRMSUM_AMOCRM_BASE_URL) into the lake: full first, then incremental."""
    from crmsum import pipeline
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    if not settings.amocrm_base_url:
        fail("CRMSUM_AMOCRM_BASE_URL is not set (e.g. https://yourco.amocrm.ru)")
    with _progress() as progress:
        report = pipeline.sync_amocrm(settings, progress=progress)
    _finish(report, as_json, sum(report.written.values()), report.skipped, 0)


@ingest_app.command("telegram")
def ingest_telegram(path: Path = typer.Argument(..., help="result.json or the export folder."),
                    as_json: bool = JSON_OPTION) -> None:
    """Import a Telegram Desktop export (one chat or a whole-account export) into the lake."""
    from crmsum import pipeline
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    with _progress() as progress:
        report = pipeline.import_telegram(path, settings, progress=progress)
    _finish(report, as_json, report.messages_written, report.skipped, 0)


@app.command()
def precompute(as_json: bool = JSON_OPTION) -> None:
    """(Re)compute summaries that are missing or whose inputs changed."""
    from crmsum import pipeline
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    with _progress() as progress:  # another run holding the lock: LockedError, one line (CrmsumError)
        report = pipeline.precompute(settings, progress=progress)
    _finish(report, as_json, report.computed, report.skipped, report.failed)


@app.command()
def digest(
    week: Optional[str] = typer.Option(None, "--week", help="ISO week YYYY-Www (default: the latest complete week with data)."),
    force: bool = typer.Option(False, "--force", help="Send again even to chats that already got it."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Weekly digests: sent to the chats when CRMSUM_TELEGRAM_TOKEN is set, else written to DATA_DIR/outbox/."""
    from crmsum.config import get_settings
    from crmsum.delivery import deliver_digests
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    report = deliver_digests(week, force=force, settings=settings)
    if not as_json:
        console.print(str(report), highlight=False)
        for line in report.warnings + report.errors:
            console.print(f"  {line}", highlight=False)
        for path in report.files:
            console.print(f"  wrote {path}", highlight=False)
        if report.failed:
            raise typer.Exit(1)
        return
    _finish(report, as_json, report.sent + report.outbox, report.skipped, report.failed)


@app.command()
def ask(
    question: str = typer.Argument(..., help="A question, e.g. «Что Ева делала в марте по Теххренмашу?»"),
    as_json: bool = typer.Option(False, "--json", help="Print {answer, source, manager, company, start, end, intent, unresolved, period_defaulted}."),
) -> None:
    """Answer one question from the lake (precomputed summaries, else a live summary)."""
    from crmsum import answer as A
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    ctx = A.get_context(settings)
    if _standalone:  # a process of its own: the answer is recorded by a detached recorder, the prompt returns
        ctx.detach_recording()
    result = A.answer_question(question, settings=settings)
    vault = ctx.vault  # the operator's terminal may see real names
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(vault), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(result.display(vault) + "\n")
    sys.stdout.flush()  # the answer first; recording it in `answers` finishes below
    ctx.finish_recording()


@app.command()
def bot() -> None:
    """Run the Telegram bot (long polling; CRMSUM_TELEGRAM_TOKEN, CRMSUM_TELEGRAM_ALLOWED_CHATS)."""
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    if settings.telegram_token is None:
        fail("CRMSUM_TELEGRAM_TOKEN is not set (the bot token from @BotFather)")
    from crmsum.bot import run_bot

    console.print("bot running (Ctrl+C to stop)", highlight=False)
    run_bot(settings)


@app.command()
def serve() -> None:
    """Keep a warm answerer for `crmsum ask` on this data dir (a unix socket in the state dir; the bot does
    the same while it runs): a precomputed answer then takes ~0.1 s instead of a cold start's ~1 s."""
    from crmsum.answer.resident import serve as serve_answers
    from crmsum.config import get_settings
    from crmsum.logs import setup_logging

    settings = get_settings()
    setup_logging(settings)
    console.print(f"answering `crmsum ask` for {settings.data_dir} (Ctrl+C to stop)", highlight=False)
    try:
        serve_answers(settings)
    except KeyboardInterrupt:
        pass


@app.command()
def search(
    text: str = typer.Argument(..., help="What to look for, e.g. «клиент пропал после КП» or «дорого у Нефтетруба в мае»."),
    k: int = typer.Option(10, "--k", help="How many records."),
    manager: Optional[str] = typer.Option(None, "--manager", help="Only this manager's records (name or pseudonym)."),
    company: Optional[str] = typer.Option(None, "--company", help="Only this company's records."),
    since: Optional[str] = typer.Option(None, "--since", help="Only records since YYYY-MM-DD."),
    as_json: bool = typer.Option(False, "--json", help="Print [{id, lead_id, kind, text, created_at, score}], best first."),
    build: bool = typer.Option(False, "--build", help="Embed the lake's records first if they have no vectors yet."),
) -> None:
    """Semantic search over the lake's records (notes, calls, tasks, team chat)."""
    from crmsum.config import get_settings
    from crmsum.lake import open_lake
    from crmsum.logs import setup_logging
    from crmsum.privacy import Vault
    from crmsum.retrieval.command import run_search

    settings = get_settings()
    setup_logging(settings)
    if build:
        with _progress() as progress:
            result = run_search(open_lake(settings), text, k=k, manager=manager, company=company, since=since,
                                build=True, settings=settings, progress=progress)
    else:
        result = run_search(open_lake(settings), text, k=k, manager=manager, company=company, since=since,
                            settings=settings)
    vault = Vault(settings.vault_dir)  # the operator's terminal may see real names, as with `ask`
    from crmsum.privacy.display import resolve as display_resolve

    rows = [{**h.to_json(), "text": display_resolve(h.text, vault, settings.display_resolve)} for h in result.hits]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    if not rows:
        console.print("nothing close enough found", highlight=False)
    for r in rows:
        sys.stdout.write(f"{r['score']:.3f}  {r['id']:<24} {(r['created_at'] or '')[:10]}  {r['text']}\n")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON.")) -> None:
    """What to check first: endpoints and credentials, lake freshness, watermarks, last runs, failed deliveries."""
    from crmsum.config import get_settings
    from crmsum.status import status as run

    report = run(get_settings())
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, default=str) + "\n")
    else:
        from crmsum.cli_tables import show_status

        show_status(report)
    if report.attention:
        console.print(f"[bold red]needs attention:[/] {report.attention}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def impact(
    since: Optional[str] = typer.Option(None, help="First month to show, YYYY-MM-DD (default: all history)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Is crmsum helping: answers and ratings per month, sales against the same month a year before."""
    from crmsum.impact import impact as run
    from crmsum.lake import open_lake

    try:
        start = dt.date.fromisoformat(since) if since else None
    except ValueError:
        fail(f"--since must be YYYY-MM-DD, got {since!r}")
    con = open_lake().connect()
    try:
        report = run(con, start)
    finally:
        con.close()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, default=str) + "\n")
    else:
        from crmsum.cli_tables import show_impact

        show_impact(report)


def _progress():
    from crmsum.progress import RichProgress

    return RichProgress(console)


@app.command()
def demo(
    data_dir: Optional[Path] = typer.Option(None, help="Data root for the demo (default CRMSUM_DATA_DIR or ./data)."),
    leads: int = typer.Option(200, help="Deal cards in the sample account."),
    chat_days: int = typer.Option(365, help="Days of history (CRM and chat)."),
    seed: int = typer.Option(7, help="Sample-data seed."),
    rps: float = typer.Option(7.0, help="amoCRM rate limit (emulator and client)."),
    llm: bool = typer.Option(False, "--llm", help="Use the LLM backend against the OpenAI-compatible emulator."),
) -> None:
    """Everything offline: sample data, emulators, nightly and weekly flows, a digest and an answer."""
    from crmsum.config import get_settings
    from crmsum.demo import run_demo

    run_demo(data_dir or Path(get_settings().data_dir), leads=leads, chat_days=chat_days, seed=seed,
             rps=rps, llm=llm, console=Console())


@app.command("eval")
def evaluate(
    truth: Optional[Path] = typer.Option(None, help="truth/ of the sample account (default DATA_DIR/sample/truth)."),
    backend: list[str] = typer.Option(["offline"], help="Answer backend(s) to evaluate: offline, llm."),
    judge: str = typer.Option("offline", help="Judge: offline or llm."),
    questions: int = typer.Option(40, help="Questions to build from the truth."),
    limit: Optional[int] = typer.Option(None, help="Evaluate only the first N questions."),
    as_json: bool = typer.Option(False, "--json", help="Print the aggregates as JSON."),
) -> None:
    """Score the answer path against the sample account's truth (RAG metrics), written to eval_results."""
    from crmsum.config import get_settings
    from crmsum.evaluation.run import run_eval

    settings = get_settings()
    truth = truth or Path(settings.data_dir) / "sample" / "truth"
    report = run_eval(settings, None, truth, tuple(backend), judge, limit,
                      console=None if as_json else Console(), n=questions)
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, default=str))


@app.command()
def feedback(
    since: Optional[str] = typer.Option(None, help="Only ratings since YYYY-MM-DD."),
    limit: int = typer.Option(10, help="How many lowest-rated answers to list."),
    month: Optional[str] = typer.Option(None, help="Print the monthly summary for the team lead, YYYY-MM."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Ratings analytics: distribution by backend, scope and week; the lowest-rated answers."""
    from crmsum.feedback import feedback_report, monthly_feedback_summary
    from crmsum.lake import open_lake

    if month:
        print(monthly_feedback_summary(open_lake(), month))
        return
    report = feedback_report(open_lake(), since, limit)
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
    else:
        report.render(Console())


@app.command()
def sql(query: str = typer.Argument(..., help="SQL over the lake's views."),
        fmt: str = typer.Option("table", "--format", help="table, csv or json"),
        unsafe: bool = typer.Option(False, "--unsafe", help="Lift the lake-only lockdown: files, COPY, "
                                    "extensions, SET. Equivalent to a shell; for operators only.")) -> None:
    """Query the lake through DuckDB (one view per table); reads the lake and nothing else."""
    import duckdb

    from crmsum.lake import open_lake
    from crmsum.lake_sql import run_query

    try:
        df = run_query(open_lake(), query, unsafe=unsafe)  # SqlRefused is a CrmsumError: one line
    except duckdb.Error as exc:
        fail(str(exc).splitlines()[0])
    if fmt == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(df.to_json(orient="records", force_ascii=False, date_format="iso") + "\n")
    else:
        with __import__("pandas").option_context("display.max_rows", 200, "display.width", 200):
            print(df.to_string(index=False))


@app.command()
def insights(
    period: Optional[str] = typer.Option(None, "--period", help="Closed deals of YYYY, YYYY-Qn, YYYY-MM, YYYY-Www or D1..D2."),
    manager: Optional[str] = typer.Option(None, "--manager", help="One manager (real name or pseudonym)."),
    as_json: bool = typer.Option(False, "--json", help="Print {closed, won, win_rate, drivers, phrases, risks, model}."),
) -> None:
    """What wins and loses deals: drivers with win rates and 95% intervals, phrases, open deals at risk."""
    from crmsum.insights.present import render_text, resolve_manager
    from crmsum.insights.analysis import build_report, parse_period
    from crmsum.lake import open_lake

    lake = open_lake()
    start, end = parse_period(period)
    rep = build_report(lake, start=start, end=end, manager=resolve_manager(lake, manager) if manager else None)
    if as_json:
        sys.stdout.write(json.dumps(rep.to_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(rep) + "\n")


_standalone = False  # True when crmsum runs as its own process (the console script), not inside a test runner


def main() -> None:
    global _standalone
    _standalone = True
    app()


if __name__ == "__main__":
    main()
