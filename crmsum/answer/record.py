"""Recording answers and ratings: a background writer so that recording never delays an answer."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable

from crmsum.answer.model import Answer

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext
    from crmsum.config import Settings

log = logging.getLogger(__name__)


# the fields of a recorded row that may quote a person (the question, and an answer quoting it:
# «не понял: …»): anonymized when the row is written, by the same anonymizer as every other text
ANONYMIZED = {"answers": ("question", "text")}


def write_rows(lake, items: list[tuple[str, dict]], anonymize: Callable[[str], str]) -> None:
    """Write queued (table, row) pairs, one merge per table, the `ANONYMIZED` fields anonymized."""
    import pyarrow as pa

    from crmsum.schema import table as spec

    tables: dict[str, list[dict]] = {}
    for table, row in items:
        fields = ANONYMIZED.get(table, ())
        tables.setdefault(table, []).append({**row, **{f: anonymize(row[f] or "") for f in fields if f in row}})
    for table, rows in tables.items():  # arrow, not pandas: the recorder must not load pandas to log a row
        schema = spec(table).schema
        cols = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}
        lake.write(table, pa.table(cols, schema=schema))


QUIET_SECONDS = 1.0  # the writer waits for a pause this long in the answers before it anonymizes and writes
MAX_WAIT_SECONDS = 10.0  # ... but never keeps a row longer than this
_FLUSH = object()  # queued by `flush`: write what is queued now


class BatchWriter:
    """A daemon thread that writes queued rows to the lake, a batch per table at a time.

    It writes when the answers pause (`quiet` seconds without a new row, at most `max_wait` after the
    first): anonymizing a question (NER) costs tens of milliseconds of CPU under the GIL, and done in
    the middle of a burst of questions it delays the answers still being computed."""

    def __init__(self, lake, anonymize: Callable[[str], str], quiet: float = QUIET_SECONDS,
                 max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.lake, self.anonymize, self.quiet, self.max_wait = lake, anonymize, quiet, max_wait
        self.q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crmsum-answers", daemon=True)
        self._thread.start()

    def put(self, table: str, row: dict) -> None:
        self.q.put((table, row))

    def flush(self, timeout: float = 30.0) -> None:
        """Write what is queued now (no waiting for a pause) and wait until it is written."""
        deadline = time.monotonic() + timeout
        if self.q.unfinished_tasks:
            self.q.put(_FLUSH)
        while self.q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread (at exit)."""
        self.q.put(None)
        self._thread.join(timeout)

    def _batch(self, first) -> list:
        """The first item and those that follow it without a pause of `quiet` seconds, for at most
        `max_wait` seconds (a flush or a None ends the batch at once; a None also stops after it)."""
        items = [] if first is _FLUSH else [first]
        end = time.monotonic() + self.max_wait
        while items and (left := end - time.monotonic()) > 0:
            try:
                nxt = self.q.get(timeout=min(self.quiet, left))
            except queue.Empty:
                break
            if nxt is None:
                self.q.put(None)
                self.q.task_done()
                break
            if nxt is _FLUSH:
                self.q.task_done()
                break
            items.append(nxt)
        return items

    def _run(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                self.q.task_done()
                return
            items = self._batch(first)
            try:
                if items:
                    write_rows(self.lake, items, self.anonymize)
            except Exception:  # noqa: BLE001 - a lost log row must not stop the bot
                log.exception("could not record %d rows", len(items))
            finally:
                for _ in items or [first]:  # a lone flush marker is a task too
                    self.q.task_done()


def hand_off(items: list[tuple[str, dict]]) -> None:
    """Give rows to a detached recorder process and return at once.

    `crmsum ask` prints its answer and exits; anonymizing the question (NER) and the Parquet write
    would otherwise double the time a user waits for the prompt. The rows travel by pipe only, so a
    raw question never touches the disk; the recorder reads the same settings from the environment
    and logs a failure to crmsum's log file. Rows appear in `answers` about a second later.
    """
    import pickle
    import subprocess
    import sys

    if not items:
        return
    child = subprocess.Popen([sys.executable, "-m", "crmsum.answer.record"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert child.stdin is not None
    child.stdin.write(pickle.dumps(items))
    child.stdin.close()


def _recorder_main() -> None:
    """The detached recorder: rows from stdin into the lake, anonymized."""
    import pickle
    import sys

    from crmsum.config import get_settings
    from crmsum.lake import open_lake
    from crmsum.logs import setup_logging
    from crmsum.privacy import Anonymizer, Vault

    items = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - our own parent wrote it, over a pipe
    settings = get_settings()
    setup_logging(settings)
    vault = Vault(settings.vault_dir)
    try:
        anonymizer = Anonymizer(vault, workers=1)
        write_rows(open_lake(settings), items, lambda t: anonymizer.text(t) or "")
    except Exception:  # noqa: BLE001 - nobody is waiting: the log is where this goes
        log.exception("could not record %d rows", len(items))
    finally:
        vault.close()


def record_answer(a: Answer, ctx: AnswerContext) -> None:
    """Store the answer (question anonymized, pseudonyms only) in `answers`, in the background.
    The text is anonymized too: it may quote the question's words («не понял: …»)."""
    ctx.record("answers", {
        "answer_id": a.answer_id, "chat_id": int(a.chat_id or 0), "question": a.question,
        "manager": a.manager, "company": a.company, "start": a.start, "end": a.end, "source": a.source,
        "backend": a.backend, "text": a.text, "latency_ms": float(a.latency_ms), "intent": a.intent,
        "created_at": dt.datetime.now().replace(microsecond=0)})


def user_pseudonym(vault, user_id: int) -> str:
    """Keyed pseudonym of a Telegram user id (raters are people too)."""
    return vault.pseudonym("handle", f"telegram-user-id:{int(user_id)}")


def record_feedback(answer_id: str, chat_id: int, message_id: int, user_id: int, rating: int,
                    settings: Settings | None = None, lake=None) -> str:
    """Store a 1–5 rating in `feedback` (one row per chat, message and rater; a new rating replaces it)."""
    import pandas as pd

    from crmsum.answer.context import get_context
    from crmsum.config import get_settings

    if not 1 <= int(rating) <= 5:
        raise ValueError("rating must be 1..5")
    ctx = get_context(settings or get_settings(), lake)
    user = user_pseudonym(ctx.vault, user_id)
    fid = f"{int(chat_id)}:{int(message_id)}:{user}"
    ctx.lake.write("feedback", pd.DataFrame([{
        "feedback_id": fid, "answer_id": answer_id, "chat_id": int(chat_id), "user": user, "rating": int(rating),
        "created_at": dt.datetime.now().replace(microsecond=0)}]))
    return fid


if __name__ == "__main__":
    _recorder_main()
