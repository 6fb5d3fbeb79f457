"""Telegram export -> anonymized `chat_messages` rows in the lake, all or nothing per file.

Why staged: the export is streamed (flat memory), so a truncated file is only discovered at its
end. Messages are therefore anonymized in batches and appended to a staging Parquet file in a
private temp folder; only when the whole file has parsed is the staging file merged into the lake
through `Lake.write` (in bounded chunks, visible in one step). A bad file leaves the lake exactly as it was. The staging file holds
anonymized data only and is deleted either way.

Re-imports are idempotent: a row is written only when it is new or its content changed. The
export digest (`source_file`) is left out of that comparison, so an overlapping newer export adds
only its new messages; an existing row is never replaced by one with an older edit time (both are
properties of the `chat_messages` table in schema.py, so every writer gets them).

Duplicate message ids inside one export (same chat, same id) are counted in a warning and resolved
by one rule: the version with the newest edit time wins, and among equal edit times the one later
in the file. Capped messages (too deep, too long) and invalid UTF-8 are warnings, not failures.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from crmsum.lake import Lake
from crmsum.sources.telegram import GROUP_TYPES, ExportError, ExportReader, Message
from crmsum.sources.telegram_json import CAP_REASONS

log = logging.getLogger(__name__)

__all__ = ["ExportError", "ImportReport", "import_export", "rich_progress", "manager_user_ids"]

BATCH = 5_000  # messages anonymized and staged at a time
MERGE_CHUNK = 100_000  # staged rows merged into the lake at a time
TABLE = "chat_messages"

_STAGE = pa.schema([
    ("seq", pa.int64()), ("chat_seq", pa.int64()), ("message_id", pa.int64()), ("date", pa.timestamp("us")),
    ("edited", pa.timestamp("us")), ("kind", pa.string()), ("author", pa.string()),
    ("text", pa.string()), ("reply_to", pa.int64()), ("forwarded_from", pa.string()),
    ("action", pa.string()), ("media_type", pa.string()), ("reactions", pa.int64()),
])


@dataclass
class ImportReport:
    """What one import did. `messages_written` counts rows new or changed in the lake."""

    chats: int = 0
    messages_read: int = 0
    messages_written: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    source_file: str | None = None  # digest of the export file
    chats_ignored: int = 0  # chats of a whole-account export whose type was not selected
    duplicates: int = 0  # extra copies of a (chat, message id) inside this export, resolved by the rule
    bad_utf8: int = 0  # invalid UTF-8 sequences replaced by U+FFFD
    capped: int = 0  # messages cut to the size limits (depth, values, characters)


def manager_user_ids(lake: Lake) -> dict[str, int]:
    """Author pseudonym -> amoCRM user id, from `crm_users` (managers share pseudonyms across sources).

    Hook for `author_user_id`: pass your own mapping to `import_export(user_ids=...)` to override.
    """
    try:
        df = lake.read("crm_users")
    except Exception:  # noqa: BLE001 — no users yet is the normal first run
        return {}
    return {n: int(u) for n, u in zip(df["name"], df["user_id"]) if isinstance(n, str) and u is not None}


def import_export(path: Path, lake: Lake, anonymizer: Any, progress: Callable | None = None, *,
                  timezone: str | None = None, chat_types: Collection[str] | None = None,
                  user_ids: Mapping[str, int] | None = None, staging_dir: Path | None = None,
                  batch_size: int = BATCH) -> ImportReport:
    """Import one Telegram Desktop JSON export (result.json or its folder) into `chat_messages`.

    - `anonymizer`: a `crmsum.privacy.Anonymizer`; every name, text and contact card passes it
      before anything is written (staging included).
    - `progress`: `callback(bytes_read, total_bytes)`, or a rich `Console` for a progress bar.
    - `chat_types`: chat types taken from a whole-account export (default: groups and
      supergroups; `ALL_TYPES` for every chat). A single-chat export is always imported.
    - `timezone`: zone for `date_unixtime` (default `Settings.timezone`).
    - `user_ids`: author pseudonym -> amoCRM user id (default: from the lake's `crm_users`).
    Raises `ExportError` (nothing written) when the file is not a complete JSON export.
    """
    if timezone is None:
        from crmsum.config import get_settings

        timezone = get_settings().timezone
    types = frozenset(chat_types) if chat_types is not None else GROUP_TYPES
    ids = dict(user_ids) if user_ids is not None else manager_user_ids(lake)
    with _progress_callback(progress) as on_read:
        reader = ExportReader(Path(path), timezone=timezone, on_read=on_read)
        tmp = Path(tempfile.mkdtemp(prefix="tg-import-", dir=staging_dir))
        try:
            tmp.chmod(0o700)
            staged = tmp / "staged.parquet"
            _stage(reader, anonymizer, staged, batch_size)
            report = ImportReport(messages_read=reader.stats.messages_read,
                                  source_file=reader.stats.digest)
            _warn_skipped(reader, report)
            _warn_read_repairs(reader, report)
            keep = _select_chats(reader, types, report, anonymizer)
            vault = getattr(anonymizer, "vault", None)
            if vault is not None:
                vault.flush()  # every pseudonym the lake will hold is resolvable before it is written
            if staged.exists() and keep:
                staged = _dedupe(staged, report)
                report.messages_written = _merge(staged, lake, keep, reader.stats.digest, ids)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("telegram import %s: %d chats, %d messages read, %d written, %d skipped",
             report.source_file, report.chats, report.messages_read, report.messages_written,
             report.skipped)
    return report


# -- stage 1: stream, anonymize, stage ---------------------------------------------------------

def _stage(reader: ExportReader, anon: Any, staged: Path, batch_size: int) -> None:
    writer: pq.ParquetWriter | None = None
    batch: list[Message] = []
    people: dict[str, str] = {}
    seq = 0
    try:
        for msg in reader:
            batch.append(msg)
            if len(batch) >= batch_size:
                writer = _write_batch(writer, staged, _anonymize(batch, anon, people, seq))
                seq += len(batch)
                batch = []
        if batch:
            writer = _write_batch(writer, staged, _anonymize(batch, anon, people, seq))
    finally:
        if writer is not None:
            writer.close()


def _write_batch(writer: pq.ParquetWriter | None, staged: Path, rows: pa.Table) -> pq.ParquetWriter:
    if writer is None:
        writer = pq.ParquetWriter(staged, _STAGE, compression="zstd")
    writer.write_table(rows)
    return writer


def _anonymize(batch: list[Message], anon: Any, people: dict[str, str], seq: int = 0) -> pa.Table:
    """Raw messages -> staged rows: names to pseudonyms, free text scrubbed (batched)."""

    def person(name: str | None) -> str | None:
        if not name:
            return None
        pseudo = people.get(name)
        if pseudo is None:
            pseudo = people[name] = anon.person(name)
        return pseudo

    _learn(batch, anon, people)
    raw_texts: list[str] = []
    authors, forwards = [], []
    for m in batch:
        authors.append(person(m.author))
        if m.forwarded_from is None:
            forwards.append(None)
        elif m.forwarded_is_person:
            forwards.append(person(m.forwarded_from))
        else:
            forwards.append(anon.text(m.forwarded_from))  # a channel title: keep, minus any PII
        raw_texts.append(_flatten(m, anon, person))
    texts = anon.texts(raw_texts, [m.chat_seq for m in batch])   # a chat is one document: see privacy.memory
    cols = {
        "seq": list(range(seq, seq + len(batch))),
        "chat_seq": [m.chat_seq for m in batch],
        "message_id": [m.message_id for m in batch],
        "date": [m.date for m in batch],
        "edited": [m.edited for m in batch],
        "kind": [m.kind for m in batch],
        "author": authors,
        "text": list(texts),
        "reply_to": [m.reply_to for m in batch],
        "forwarded_from": forwards,
        "action": [m.action for m in batch],
        "media_type": [m.media_type for m in batch],
        "reactions": [m.reactions for m in batch],
    }
    return pa.Table.from_pydict(cols, schema=_STAGE)


_FULL_NAME = re.compile(r"^[A-ZА-ЯЁ][a-zа-яё]+(?:-[A-ZА-ЯЁ][a-zа-яё]+)?(?: [A-ZА-ЯЁ][a-zа-яё]+(?:-[A-ZА-ЯЁ][a-zа-яё]+)?){1,2}$")


def _learn(batch: list[Message], anon: Any, people: dict[str, str]) -> None:
    """Teach the anonymizer the people this batch names in structured fields (authors, members,
    forwarded-from, contact cards), so "Ева, глянь" in text gets Ева Соколова's pseudonym.
    Only names shaped like "First Last" are learned: a display name such as "Склад" must not
    turn a common word into a name. Role stays None: learning never overrides a CRM role."""
    learn = getattr(anon, "learn_people", None)
    if learn is None:
        return
    new: dict[str, None] = {}
    for m in batch:
        names = [m.author, m.forwarded_from if m.forwarded_is_person else None, *m.members,
                 m.contact[0] if m.contact else None]
        for n in names:
            if n and n not in people and n not in new:
                n2 = " ".join(n.split())
                if _FULL_NAME.match(n2):
                    new[n2] = None
    if new:
        learn([(n, None) for n in new])


def _flatten(m: Message, anon: Any, person: Callable[[str | None], str | None]) -> str:
    """Plain text of a message. Entities that Telegram already typed as personal data are
    replaced here (belt and braces); the whole string then goes through `anon.texts`."""
    out: list[str] = []
    for kind, text in m.parts:
        if not text:
            continue
        if kind == "mention_name":
            out.append(person(text) or "")
        elif kind == "phone":
            out.append(anon.phone(text))
        elif kind == "email":
            out.append(anon.email(text))
        else:
            out.append(text)
    body = "".join(out)
    extra: list[str] = []
    if m.members:
        extra.append(", ".join(p for p in (person(x) for x in m.members) if p))
    if m.service_text:
        extra.append(m.service_text)
    if m.contact is not None:
        name, phone = m.contact
        extra.append(" ".join(x for x in (person(name), anon.phone(phone) if phone else None) if x))
    extra.extend(m.extra_text)
    if extra:
        body = "\n".join([body, *extra]) if body else "\n".join(extra)
    return body


# -- stage 2: merge into the lake --------------------------------------------------------------

def _warn_skipped(reader: ExportReader, report: ImportReport) -> None:
    report.skipped = sum(reader.stats.skipped.values())
    for reason, n in sorted(reader.stats.skipped.items()):
        msg = f"skipped {n} message(s): {reason}"
        report.warnings.append(msg)
        log.warning("telegram import: %s", msg)


def _warn_read_repairs(reader: ExportReader, report: ImportReport) -> None:
    """One warning each for replaced invalid UTF-8 and for messages cut to the size limits."""
    st = reader.stats
    report.bad_utf8 = st.bad_utf8
    if st.bad_utf8:
        report.warnings.append(f"replaced {st.bad_utf8} invalid UTF-8 sequence(s) with U+FFFD (file encoding)")
    report.capped = st.capped_messages
    if st.capped_messages:
        what = ", ".join(f"{n} {CAP_REASONS[reason]}" for reason, n in sorted(st.capped.items()))
        ids = ", ".join("?" if i is None else str(i) for i in st.capped_ids[:10])
        report.warnings.append(f"cut {st.capped_messages} message(s) to the size limits ({what}; "
                               f"ids {ids}); the excess was dropped")
    for w in report.warnings:
        if w.startswith(("replaced", "cut")):
            log.warning("telegram import: %s", w)


def _dedupe(staged: Path, report: ImportReport) -> Path:
    """Count duplicate (chat, message id) pairs; when there are any, keep one row per pair by the
    documented rule (newest edit time, then later in the file) in a new staging file."""
    con = duckdb.connect()
    try:
        src = str(staged).replace("'", "''")
        total, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT (chat_seq, message_id)) FROM read_parquet('{src}')").fetchone()
        report.duplicates = int(total - distinct)
        if not report.duplicates:
            return staged
        out = staged.with_name("deduped.parquet")
        con.execute(f"""
            COPY (SELECT * FROM read_parquet('{src}')
                  QUALIFY row_number() OVER (PARTITION BY chat_seq, message_id
                                             ORDER BY edited DESC NULLS LAST, seq DESC) = 1
                  ORDER BY seq)
            TO '{str(out).replace("'", "''")}' (FORMAT parquet, COMPRESSION zstd)""")
    finally:
        con.close()
    msg = (f"{report.duplicates} duplicate message id(s) inside the export; kept the newest edit "
           "(then the later one in the file)")
    report.warnings.append(msg)
    log.warning("telegram import: %s", msg)
    return out


def _select_chats(reader: ExportReader, types: frozenset[str], report: ImportReport,
                  anon: Any) -> dict[int, tuple[int, str | None]]:
    """chat_seq -> (chat_id, chat_name) of the chats to import.

    A group's title is business data but still passes `anon.text`; a personal chat's title is
    the other person's name, so it becomes their pseudonym."""
    keep: dict[int, tuple[int, str | None]] = {}
    for chat in reader.chats:
        if chat.section != "single" and chat.type not in types:
            report.chats_ignored += 1
            continue
        if chat.id is None:
            if chat.messages:
                raise ExportError(f"{reader.path.name}: a chat with {chat.messages} messages has no "
                                  "numeric 'id'; export it again from Telegram Desktop")
            continue
        if not chat.name:
            name = None
        elif chat.type in ("personal_chat", "bot_chat"):
            name = anon.person(chat.name)
        else:
            name = anon.text(chat.name)
        keep[chat.seq] = (chat.id, name)
    report.chats = len(keep)
    if report.chats_ignored:
        report.warnings.append(f"ignored {report.chats_ignored} chat(s) that are not groups "
                               "(pass chat_types to import them)")
    return keep


def _merge(staged: Path, lake: Lake, keep: dict[int, tuple[int, str | None]], digest: str | None,
           user_ids: Mapping[str, int]) -> int:
    """Merge the staged rows through `Lake.write`, chunk by chunk but visible at once (all or nothing)."""
    if not re.fullmatch(r"[0-9a-f]{16}", digest or ""):
        raise ExportError("the export was not read to its end; import it again")
    chats = pa.table({"chat_seq": list(keep), "chat_id": [v[0] for v in keep.values()],
                      "chat_name": [v[1] for v in keep.values()]},
                     schema=pa.schema([("chat_seq", pa.int64()), ("chat_id", pa.int64()),
                                       ("chat_name", pa.string())]))
    users = pa.table({"u_author": list(user_ids), "u_id": list(user_ids.values())},
                     schema=pa.schema([("u_author", pa.string()), ("u_id", pa.int64())]))

    def rows() -> Iterator[pa.Table]:
        with closing(duckdb.connect()) as con:
            con.register("chats", chats)
            con.register("users", users)
            for batch in pq.ParquetFile(staged).iter_batches(batch_size=MERGE_CHUNK):
                con.register("staged", pa.Table.from_batches([batch]))
                yield con.sql(f"""
                    SELECT c.chat_id, c.chat_name, s.message_id, s.date, s.edited, s.kind, s.author,
                           u.u_id AS author_user_id, s.text, s.reply_to, s.forwarded_from, s.action,
                           s.media_type, s.reactions, '{digest}' AS source_file
                    FROM staged s JOIN chats c USING (chat_seq) LEFT JOIN users u ON u.u_author = s.author
                """).to_arrow_table()

    return lake.write(TABLE, rows())


# -- progress ----------------------------------------------------------------------------------

@contextmanager
def _progress_callback(progress: Any) -> Iterator[Callable[[int, int], None] | None]:
    if progress is None or callable(progress) and not _is_console(progress):
        yield progress
        return
    with rich_progress(progress) as cb:
        yield cb


def _is_console(obj: Any) -> bool:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Console)


@contextmanager
def rich_progress(console: Any = None) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar (bytes read of total) as a `progress` callback for `import_export`."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                               TransferSpeedColumn)

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("telegram export", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
