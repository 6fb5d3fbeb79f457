"""Progress reporting: library steps call a plain callback, the CLI renders it with rich bars.

Contract: `progress(step, advance=1, total=None)` — `step` names a bar (e.g. "leads"), `advance`
adds work done, `total` (when known) sets the bar's size. Library code never imports rich.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress:
    """Context manager turning progress callbacks into rich progress bars (one per step)."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=console or Console(stderr=True), transient=False)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        return self  # the bars start with the first report: a step that fails first prints no blank line

    def __exit__(self, *exc: object) -> None:
        if self._tasks:
            self._bars.stop()

    def __call__(self, step: str, advance: float = 1, total: float | None = None) -> None:
        if not self._tasks:
            self._bars.start()
        if step not in self._tasks:
            self._tasks[step] = self._bars.add_task(step, total=total)
        task = self._tasks[step]
        if total is not None:
            self._bars.update(task, total=total)
        self._bars.advance(task, advance)
