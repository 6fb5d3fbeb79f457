"""The steps of the nightly and weekly jobs, wired from settings.

The CLI, the Prefect flows and the demo all call these functions, so a step behaves the same
whichever shell runs it. Each step opens what it needs (lake, vault, anonymizer) from settings.
"""

from __future__ import annotations

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


def import_inbox(settings: Settings | None = None, lake: Lake | None = None) -> list:
    """Import every export dropped into DATA_DIR/inbox/: landed ones move to done/, broken ones to failed/."""
    s = settings or get_settings()
    inbox = s.inbox_dir
    done = inbox / "done"
    reports = []
    from crmsum.sources.telegram import ExportError

    for path in sorted(p for p in inbox.glob("*") if p.name not in ("done", "failed") and not p.name.startswith(".")):
        try:
            reports.append(import_telegram(path, s, lake))
            target = done
        except ExportError as exc:  # one bad export must not stop the night; it waits in failed/
            log.warning("inbox: %s not imported: %s", path.name, exc)
            target = inbox / "failed"
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target / path.name)
    return reports


def precompute(settings: Settings | None = None, lake: Lake | None = None, progress: Progress = None):
    """(Re)compute summaries that are missing or whose inputs changed."""
    from crmsum.precompute import precompute as run

    s = settings or get_settings()
    return run(settings=s, lake=lake or open_lake(s), progress=_absolute(progress, "summaries"))
