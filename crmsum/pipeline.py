"""The steps of the nightly and weekly jobs, wired from settings.

The CLI, the Prefect flows and the demo all call these functions, so a step behaves the same
whichever shell runs it. Each step opens what it needs (lake, vault, anonymizer) from settings.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crmsum.config import Settings, get_settings
from crmsum.lake import Lake, open_lake
from crmsum.runs import tracked

log = logging.getLogger(__name__)
Progress = Callable[..., Any] | None


def plain(report: Any) -> dict:
    """A step's report as a JSON-friendly dict (what Prefect stores as the task's result)."""
    import dataclasses

    if hasattr(report, "as_dict"):
        return report.as_dict()
    return dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)


def _absolute(progress: Progress, step: str) -> Callable[[int, int], None] | None:
    """Adapt a `(done, total)` callback to the `progress(step, advance, total)` contract."""
    if progress is None:
        return None
    last = [0]

    def report(done: int, total: int) -> None:
        progress(step, done - last[0], total=total)
        last[0] = done

    return report


def _ingestion_lock(settings: Settings):
    """The nightly run lock (DATA_DIR/state/nightly.lock; re-entrant inside the nightly run): ingestion
    and precompute steps started by hand never overlap each other or the night. LockedError at once."""
    from crmsum.state import run_lock

    return run_lock(settings.state_dir, "nightly")


def _anonymizer(settings: Settings):
    """An anonymizer over the vault, closed (vault flushed, worker pool stopped) when the step ends."""
    from contextlib import closing

    from crmsum.privacy import Anonymizer, Vault

    return closing(Anonymizer(Vault(settings.vault_dir)))


def sync_amocrm(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """Full or incremental amoCRM sync into the lake."""
    from crmsum.ingest.amocrm import sync

    s = settings or get_settings()
    with _ingestion_lock(s), tracked(s.state_dir, "sync_amocrm") as run, _anonymizer(s) as anon:
        report = sync(s, lake or open_lake(s), anon, progress=progress)
        run.counts = {"fetched": sum(report.fetched.values()), "written": sum(report.written.values()),
                      "skipped": report.skipped, "requests": report.requests}
        return report


def import_telegram(path: Path, settings: Settings | None = None, lake: Lake | None = None,
                    progress: Progress = None):
    """Import one Telegram Desktop export (file or folder)."""
    from crmsum.ingest.telegram import import_export

    s = settings or get_settings()
    with _ingestion_lock(s), _anonymizer(s) as anon:
        return import_export(Path(path), lake or open_lake(s), anon, progress=_absolute(progress, "export bytes"))


INBOX_ATTEMPTS = "inbox_attempts"  # state document: export name -> interrupted import attempts
MAX_IMPORT_ATTEMPTS = 2  # one interruption may be the host's (reboot, kill); two in a row is the file


def import_inbox(settings: Settings | None = None, lake: Lake | None = None, failed: list[str] | None = None) -> list:
    """Import every export dropped into DATA_DIR/inbox/.

    An imported export is deleted (its raw personal data must not outlive the import) and a receipt
    is left in inbox/done/; a broken one moves to inbox/failed/ for a person to look at. An attempt
    is recorded in DATA_DIR/state before each import and cleared after it, so a file whose import
    died (killed by the kernel, a crash) MAX_IMPORT_ATTEMPTS times is moved to inbox/failed/ before
    the next try instead of killing every night; any other error fails that file, not the night.
    The names of the files that failed are appended to `failed` (the nightly run then ends Failed).
    """
    from crmsum.state import StateStore

    s = settings or get_settings()
    inbox = s.inbox_dir
    state = StateStore(s.state_dir)
    with _ingestion_lock(s):  # first: a held lock must not count as an interrupted attempt
        return _import_files(s, lake, inbox, state, failed if failed is not None else [])


def _import_files(s: Settings, lake: Lake | None, inbox: Path, state: Any, failed: list[str]) -> list:
    from crmsum.sources.telegram import ExportError

    done = inbox / "done"
    reports = []
    for path in sorted(p for p in inbox.glob("*") if p.name not in ("done", "failed") and not p.name.startswith(".")):
        attempts = dict(state.load(INBOX_ATTEMPTS, {}) or {})
        tried = int(attempts.get(path.name, 0))
        if tried >= MAX_IMPORT_ATTEMPTS:
            log.error("inbox: %s stopped %d import(s) before they finished; moved to inbox/failed/",
                      path.name, tried)
            _set_attempts(state, path.name, None)
            _move_failed(inbox, path)
            failed.append(path.name)
            continue
        _set_attempts(state, path.name, tried + 1)
        try:
            report = import_telegram(path, s, lake)
        except ExportError as exc:  # one bad export must not stop the night; it waits in failed/
            log.warning("inbox: %s not imported: %s", path.name, exc)
            _set_attempts(state, path.name, None)
            _move_failed(inbox, path)
            failed.append(path.name)
            continue
        except Exception as exc:  # noqa: BLE001 - the attempt stays counted; other files still import
            log.error("inbox: %s failed to import (%s, attempt %d of %d)", path.name, type(exc).__name__,
                      tried + 1, MAX_IMPORT_ATTEMPTS)
            failed.append(path.name)
            continue
        reports.append(report)
        # the raw export is personal data: once anonymized into the lake, only a receipt stays
        done.mkdir(parents=True, exist_ok=True)
        receipt = {"file": path.name, "digest": report.source_file, "messages": report.messages_read}
        (done / f"{path.name}.imported.json").write_text(json.dumps(receipt), encoding="utf-8")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        _set_attempts(state, path.name, None)
    return reports


def _set_attempts(state: Any, name: str, n: int | None) -> None:
    attempts = dict(state.load(INBOX_ATTEMPTS, {}) or {})
    if n is None:
        attempts.pop(name, None)
    else:
        attempts[name] = n
    state.save(INBOX_ATTEMPTS, attempts)


def _move_failed(inbox: Path, path: Path) -> None:
    (inbox / "failed").mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), inbox / "failed" / path.name)


def precompute(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """(Re)compute summaries that are missing or whose inputs changed.

    Holds the nightly run lock (DATA_DIR/state/nightly.lock, re-entrant inside the nightly run), so
    two precomputes — or a precompute during ingestion — never run at once and pay the LLM twice;
    the second raises LockedError at once."""
    from crmsum.precompute import precompute as run

    s = settings or get_settings()
    with _ingestion_lock(s), tracked(s.state_dir, "precompute") as step:
        report = run(settings=s, lake=lake or open_lake(s), progress=_absolute(progress, "summaries"))
        step.counts = {"computed": report.computed, "skipped": report.skipped, "failed": report.failed,
                       "llm_calls": report.llm_calls, "tokens_in": report.tokens_in}
        step.ok = not report.failed
        return report


def insights(settings: Settings | None = None, lake: Lake | None = None):
    """Deal features (incremental) -> win-probability model -> drivers, after ingestion and before precompute."""
    from crmsum.insights import refresh

    s = settings or get_settings()
    with tracked(s.state_dir, "insights") as step:
        report = refresh(lake or open_lake(s))
        step.counts = {"leads": report.leads, "recomputed": report.recomputed, "drivers": report.drivers_written}
    return report


def embed_records(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """Vectors for new or changed records (`record_embeddings`), after ingestion: search and similar deals."""
    from crmsum.retrieval.store import update_embeddings

    s = settings or get_settings()
    with tracked(s.state_dir, "embeddings") as step:
        report = update_embeddings(lake or open_lake(s), s, progress=progress)
        step.counts = {"embedded": report.embedded, "updated": report.updated, "removed": report.removed,
                       "records": report.records}
        return report


def briefs(settings: Settings | None = None, lake: Lake | None = None):
    """Deal briefs for tonight's hand-overs and deals at the decisive stage, after precompute."""
    from crmsum.delivery import deliver_briefs

    s = settings or get_settings()
    with tracked(s.state_dir, "briefs") as step:
        report = deliver_briefs(s, lake or open_lake(s))
        step.counts = {"sent": report.sent, "outbox": report.outbox, "failed": report.failed}
        step.ok = not report.failed
        return report


def compact_lake(settings: Settings | None = None, lake: Lake | None = None) -> dict[str, int]:
    """Compact every table's part files into its base (nightly, after the writes of the night)."""
    s = settings or get_settings()
    with _ingestion_lock(s):
        done = (lake or open_lake(s)).compact_all()
    log.info("lake compaction: %s", ", ".join(f"{t} ({n} files)" for t, n in done.items()) or "nothing to do")
    return done
