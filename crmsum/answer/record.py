"""Recording answers and ratings: a background writer so that recording never delays an answer."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING

from crmsum.answer.model import Answer

if TYPE_CHECKING:
    from crmsum.answer.context import AnswerContext
    from crmsum.config import Settings

log = logging.getLogger(__name__)


class BatchWriter:
    """A daemon thread that writes queued rows to the lake, a batch per table at a time."""

    def __init__(self, lake, linger: float = 0.2) -> None:
        import queue

        self.lake, self.linger = lake, linger
        self.q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crmsum-answers", daemon=True)
        self._thread.start()

    def put(self, table: str, row: dict, prepare=None) -> None:
        self.q.put((table, row, prepare))

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread (at exit)."""
        self.q.put(None)
        self._thread.join(timeout)

    def _batch(self, first) -> list:
        """The first item and whatever arrives within `linger` seconds (a None stops after this batch)."""
        import queue

        items = [first]
        end = time.monotonic() + self.linger
        while (left := end - time.monotonic()) > 0:
            try:
                nxt = self.q.get(timeout=left)
            except queue.Empty:
                break
            if nxt is None:
                self.q.put(None)
                self.q.task_done()
                break
            items.append(nxt)
        return items

    def _write(self, items: list) -> None:
        import pyarrow as pa

        from crmsum.schema import table as spec

        tables: dict[str, list[dict]] = {}
        for table, row, prepare in items:
            tables.setdefault(table, []).append(prepare(row) if prepare else row)
        for table, rows in tables.items():  # arrow, not pandas: `crmsum ask` must not load pandas to log a row
            schema = spec(table).schema
            cols = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}
            self.lake.write(table, pa.table(cols, schema=schema))

    def _run(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                self.q.task_done()
                return
            items = self._batch(first)
            try:
                self._write(items)
            except Exception:  # noqa: BLE001 - a lost log row must not stop the bot
                log.exception("could not record %d rows", len(items))
            finally:
                for _ in items:
                    self.q.task_done()


def record_answer(a: Answer, ctx: AnswerContext) -> None:
    """Store the answer (question anonymized, pseudonyms only) in `answers`, in the background."""
    def prepare(row: dict) -> dict:
        return dict(row, question=ctx.anonymize(row["question"]))

    ctx.record("answers", {
        "answer_id": a.answer_id, "chat_id": int(a.chat_id or 0), "question": a.question,
        "manager": a.manager, "company": a.company, "start": a.start, "end": a.end, "source": a.source,
        "backend": a.backend, "text": a.text, "latency_ms": float(a.latency_ms), "intent": a.intent,
        "created_at": dt.datetime.now().replace(microsecond=0)}, prepare)


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
