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


def _anonymizer(settings: Settings):
    """An anonymizer over the vault, closed (vault flushed, worker pool stopped) when the step ends."""
    from contextlib import closing

    from crmsum.privacy import Anonymizer, Vault

    return closing(Anonymizer(Vault(settings.vault_dir)))


def sync_amocrm(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """Full or incremental amoCRM sync into the lake."""
    from crmsum.ingest.amocrm import sync

    s = settings or get_settings()
    with _anonymizer(s) as anon:
        return sync(s, lake or open_lake(s), anon, progress=progress)


def import_telegram(path: Path, settings: Settings | None = None, lake: Lake | None = None,
                    progress: Progress = None):
    """Import one Telegram Desktop export (file or folder)."""
    from crmsum.ingest.telegram import import_export

    s = settings or get_settings()
    with _anonymizer(s) as anon:
        return import_export(Path(path), lake or open_lake(s), anon, progress=_absolute(progress, "export bytes"))


def import_inbox(settings: Settings | None = None, lake: Lake | None = None, failed: list[str] | None = None) -> list:
    """Import every export dropped into DATA_DIR/inbox/.

    An imported export is deleted (its raw personal data must not outlive the import) and a receipt
    is left in inbox/done/; a broken one moves to inbox/failed/ for a person to look at (its name is
    appended to `failed`, so the nightly run can say so and end Failed).
    """
    s = settings or get_settings()
    inbox = s.inbox_dir
    done = inbox / "done"
    reports = []
    from crmsum.sources.telegram import ExportError

    for path in sorted(p for p in inbox.glob("*") if p.name not in ("done", "failed") and not p.name.startswith(".")):
        try:
            report = import_telegram(path, s, lake)
        except ExportError as exc:  # one bad export must not stop the night; it waits in failed/
            log.warning("inbox: %s not imported: %s", path.name, exc)
            (inbox / "failed").mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), inbox / "failed" / path.name)
            if failed is not None:
                failed.append(path.name)
            continue
        reports.append(report)
        # the raw export is personal data: once anonymized into the lake, only a receipt stays
        done.mkdir(parents=True, exist_ok=True)
        receipt = {"file": path.name, "digest": report.source_file, "messages": report.messages_read}
        (done / f"{path.name}.imported.json").write_text(json.dumps(receipt), encoding="utf-8")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return reports


def precompute(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """(Re)compute summaries that are missing or whose inputs changed."""
    from crmsum.precompute import precompute as run

    s = settings or get_settings()
    return run(settings=s, lake=lake or open_lake(s), progress=_absolute(progress, "summaries"))


def compact_lake(settings: Settings | None = None, lake: Lake | None = None) -> dict[str, int]:
    """Compact every table's part files into its base (nightly, after the writes of the night)."""
    s = settings or get_settings()
    done = (lake or open_lake(s)).compact_all()
    log.info("lake compaction: %s", ", ".join(f"{t} ({n} files)" for t, n in done.items()) or "nothing to do")
    return done
