"""The Parquet lake: per table one compacted snapshot plus the part files written since, read through DuckDB.

A table's folder holds two kinds of file, each named with a sequence number:
- `base-<seq>-<id>.parquet`: the compacted snapshot, the newest version of each key, one row per key,
  sorted by key (written by `compact`: nightly, and whenever too many parts pile up);
- `part-<seq>-<id>.parquet`: rows merged since (`write`), only new or changed ones.

"The newest version of each key" has one definition (`Lake.newest_sql`): the newest row of each key in
the parts (later file, then later row in the file), plus the base rows whose key no part holds. After
a compaction there are no parts and a view costs what a plain scan of one file costs.

Writes and compactions are idempotent and crash-safe:
- only rows that are new or changed (by a content hash) are written, so a rerun writes nothing;
- everything one `write` call merges lands in one file that becomes visible in one atomic step (temp
  file + rename locally, one upload on object storage): a crash never exposes half a write;
- a compaction only ever adds a file holding every key's newest version, or removes files that
  file makes redundant, so the visible rows are the same after each of its steps (see `_compact_locked`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from crmsum.failpoints import failpoint
from crmsum.schema import TABLES, table

if TYPE_CHECKING:  # pandas and pyarrow load in ~0.3 s: only writers and `read` need them, not every reader
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    Frame = pd.DataFrame | pa.Table | pa.RecordBatch

HASH = "_row_hash"
COMPACT_AFTER = 24  # parts on top of the base; past that a write compacts (reads stay fast, few files)
LISTINGS_TTL = 5.0  # seconds an object-store listing may be reused (see Lake._fresh)
ROW_GROUP = 20_000  # rows per row group of a base: key-sorted, so a date or key filter skips most of them
MERGE_MEMORY = "512MB"  # DuckDB memory for one merge or compaction (it spills past that)
COMPACT_CHUNK_BYTES = 16 << 20  # uncompressed rows a compaction sorts at once (see Lake._key_chunks)
_locks: dict[str, threading.Lock] = {}
_UMASK = os.umask(0)
os.umask(_UMASK)


class Lake:
    """A folder (or object-storage prefix) of Parquet tables."""

    def __init__(self, root: str | Path, storage_options: dict | None = None) -> None:
        self.root = str(root).rstrip("/")
        opts = dict(storage_options or {})
        if fsspec.core.split_protocol(self.root)[0] not in (None, "file", "local"):
            # object stores: listings are cached (DuckDB stats every file through them) but expire
            # quickly, and every Lake call drops them first (`_fresh`), so files that another
            # process wrote are seen; a long-lived DuckDB view is at most this many seconds behind
            opts.setdefault("listings_expiry_time", LISTINGS_TTL)
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **opts)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.protocol = "" if self.local else f"{self.root.split('://', 1)[0]}://"
        for name in TABLES:
            self._ensure(name)
        if self.local:
            self._sweep_temp()

    # -- layout ---------------------------------------------------------------------------
    def _dir(self, name: str) -> str:
        return f"{self._base}/{name}"

    def _fresh(self, *names: str) -> None:
        """Drop cached object-store listings, then list the given tables once.

        fsspec object stores (s3fs, gcsfs, ...) cache listings per filesystem instance, and instances
        are shared process-wide: without the drop a long-running reader (the bot) would miss files
        another process wrote. Listing a table's folder right away lets DuckDB's glob and its
        per-file stat calls be served from that one listing instead of one HEAD request per file.
        """
        if self.local:
            return
        self.fs.invalidate_cache()
        for name in names:
            try:
                self.fs.ls(self._dir(name), detail=True)
            except FileNotFoundError:
                pass

    def parts(self, name: str) -> list[str]:
        """Every data file of a table (bases and parts), oldest first: its signature for "did it change"."""
        self._fresh(name)
        found = self.fs.glob(f"{self._dir(name)}/*.parquet")
        paths = [p if self.local else p.split("://", 1)[-1] for p in found]
        return sorted((p for p in paths if _seq(p) is not None), key=lambda p: (_seq(p), p))

    def _live(self, name: str) -> tuple[list[str], list[str]]:
        """The table's base files (one, but for a compaction in progress) and parts, oldest first."""
        files = self.parts(name)
        return ([p for p in files if Path(p).name.startswith("base-")],
                [p for p in files if Path(p).name.startswith("part-")])

    def _url(self, path: str) -> str:
        return path if self.local else f"{self.protocol}{path}"

    def _ensure(self, name: str) -> None:
        if not any(Path(p).name.startswith("base-") for p in self.parts(name)):
            self.fs.makedirs(self._dir(name), exist_ok=True)
            with self._new_file(name, "base", 0, keep_empty=True) as out:  # seq 0: older than any part
                out.write_table(_empty(name))

    def _sweep_temp(self, older_than: float = 3600.0) -> None:
        """Remove temp files a killed writer left behind (never visible to readers, but they pile up)."""
        cutoff = time.time() - older_than
        for tmp in Path(self._base).glob("*/.tmp-*"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    @contextlib.contextmanager
    def _new_file(self, name: str, kind: str, seq: int, keep_empty: bool = False) -> Iterator[pq.ParquetWriter]:
        """A Parquet writer whose file appears as `<kind>-<seq>-<id>.parquet` only when the block ends
        without error (and has rows, or `keep_empty`); otherwise nothing appears at all."""
        import pyarrow.parquet as pq

        final = f"{self._dir(name)}/{kind}-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp_dir = self._dir(name) if self.local else None  # same folder: the rename is atomic
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=tmp_dir)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; a part is as readable as any file
        writer = pq.ParquetWriter(tmp, _storage_schema(name), compression="zstd")
        try:
            yield writer
            writer.close()
            if not keep_empty and pq.read_metadata(tmp).num_rows == 0:
                return
            failpoint("lake.put.before_rename")
            if self.local:
                Path(tmp).replace(final)
            else:
                self.fs.put_file(tmp, final)  # one upload: object stores show whole objects only
            failpoint("lake.put.after_rename")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _next_seq(self, name: str) -> int:
        return max((_seq(p) for p in self.parts(name)), default=0) + 1

    @contextlib.contextmanager
    def _table_lock(self, name: str) -> Iterator[None]:
        """One writer per table: a thread lock, plus a file lock across processes on a local lake
        (a second process picking the same sequence number, or compacting under a writer, would lose rows)."""
        with _locks.setdefault(f"{self.root}/{name}", threading.Lock()):
            if not self.local:
                yield
                return
            fd = os.open(f"{self._dir(name)}/.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _duck(self, memory: str | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        if memory:
            con.execute(f"SET memory_limit = '{memory}'")
        if not self.local:
            con.register_filesystem(self.fs)
        return con

    # -- the newest version of each key ---------------------------------------------------
    def newest_sql(self, name: str, columns: Iterable[str] | None = None, keys: str | None = None) -> str:
        """SQL of the newest version of each key of a table: THE definition every reader and writer uses.

        `columns`: the columns to return (default: all of the schema). `keys`: the name of a relation
        holding key columns; only those keys are read, filtered before the window, so a merge's
        memory follows its input, not the table. The glob is expanded and the files picked by name
        (no data read to choose them) when the query runs, so a long-lived view sees later writes
        and compactions.
        """
        spec = table(name)
        key = ", ".join(f'"{k}"' for k in spec.key)
        cols = ", ".join(f'"{c}"' for c in (columns or spec.columns))
        src = (f"read_parquet('{self._url(self._dir(name))}/*.parquet', filename=true, file_row_number=true, "
               "union_by_name=true)")
        only = f"SEMI JOIN {keys} USING ({key})" if keys else ""
        return f"""(
            WITH _delta AS (
                SELECT {cols} FROM {src} {only} WHERE parse_filename(filename) LIKE 'part-%'
                QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY filename DESC, file_row_number DESC) = 1
            )
            SELECT {cols} FROM _delta
            UNION ALL
            SELECT {cols} FROM (SELECT {cols} FROM {src} {only} WHERE parse_filename(filename) LIKE 'base-%')
            ANTI JOIN (SELECT {key} FROM _delta) USING ({key})
        )"""

    # -- reading --------------------------------------------------------------------------
    def connect(self, snapshot: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table (or in-memory copies with snapshot=True)."""
        con = self._duck()
        if not self.local:
            self._fresh(*TABLES)
        for name in TABLES:
            kind = "TABLE" if snapshot else "VIEW"
            con.execute(f"CREATE {kind} {name} AS SELECT * FROM {self.newest_sql(name)}")
        return con

    def read(self, name: str, where: str = "", params: Iterable | None = None) -> pd.DataFrame:
        self._fresh(name)
        with contextlib.closing(self._duck()) as con:
            sql = f"SELECT * FROM {self.newest_sql(name)} {('WHERE ' + where) if where else ''}"
            return con.execute(sql, list(params or [])).df()

    def row_count(self, name: str) -> int:
        self._fresh(name)
        with contextlib.closing(self._duck()) as con:
            return con.execute(f"SELECT count(*) FROM {self.newest_sql(name, table(name).key)}").fetchone()[0]

    # -- writing --------------------------------------------------------------------------
    def write(self, name: str, data: Frame | Iterable[Frame]) -> int:
        """Merge rows into a table by primary key; returns how many rows were new or changed.

        `data`: one frame, or an iterable of frames (e.g. batches of a staged file) merged in turn with
        bounded memory but made visible together, in one file: all of it or, after a crash, none.
        Within one call a later row of a key wins over an earlier one. A table's `unhashed` columns
        do not count as a change, and a row never replaces one with a newer `version` (schema.py).
        """
        import pandas as pd
        import pyarrow as pa

        chunks = [data] if isinstance(data, (pd.DataFrame, pa.Table, pa.RecordBatch)) else data
        written = 0
        with self._table_lock(name):
            self._fresh(name)
            with contextlib.closing(self._duck(MERGE_MEMORY)) as con, \
                    self._new_file(name, "part", self._next_seq(name)) as out:
                for chunk in chunks:
                    changed = self._changed(con, name, conform(name, chunk))
                    if changed.num_rows:
                        out.write_table(changed.cast(_storage_schema(name)))
                        written += changed.num_rows
            if written and len(self._live(name)[1]) > COMPACT_AFTER:
                self._compact_locked(name)
        return written

    def _changed(self, con: duckdb.DuckDBPyConnection, name: str, incoming: pa.Table) -> pa.Table:
        """The rows of `incoming` that are new or differ from the lake's newest version (with their hash)."""
        import pyarrow as pa

        if incoming.num_rows == 0:
            return incoming.append_column(HASH, pa.array([], pa.string()))
        spec = table(name)
        key = ", ".join(f'"{k}"' for k in spec.key)
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        hashed = ", ".join(f'"{c}"' for c in spec.columns if c not in spec.unhashed)
        current = [*spec.key, HASH, *([spec.version] if spec.version else [])]
        older = (f'AND NOT (cur."{spec.version}" IS NOT NULL AND (latest."{spec.version}" IS NULL '
                 f'OR latest."{spec.version}" < cur."{spec.version}"))') if spec.version else ""
        con.register("incoming", incoming)
        try:
            return con.sql(f"""
                WITH hashed AS (
                    SELECT {cols}, md5(CAST(struct_pack({hashed}) AS VARCHAR)) AS {HASH},
                           row_number() OVER () AS _ord
                    FROM incoming
                ), latest AS (
                    SELECT * FROM hashed QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _ord DESC) = 1
                ), cur AS (SELECT * FROM {self.newest_sql(name, current, keys="latest")})
                SELECT latest.* EXCLUDE (_ord) FROM latest LEFT JOIN cur USING ({key})
                WHERE cur.{HASH} IS NULL OR (cur.{HASH} <> latest.{HASH} {older})
                ORDER BY latest._ord
            """).to_arrow_table()
        finally:
            con.unregister("incoming")

    # -- compaction -----------------------------------------------------------------------
    def compact(self, name: str) -> bool:
        """Rewrite a table as one base file (the newest version of each key, sorted by key) and delete
        the files it supersedes. Returns False when there was nothing to compact."""
        with self._table_lock(name):
            return self._compact_locked(name)

    def compact_all(self) -> dict[str, int]:
        """Compact every table that has parts on top of its base; returns table -> files replaced."""
        done = {}
        for name in TABLES:
            before = len(self.parts(name))
            if self.compact(name):
                done[name] = before
        return done

    def _compact_locked(self, name: str) -> bool:
        """Compact in four steps, each leaving the visible rows as they were (a kill anywhere is safe):

        1. write every key's newest version, sorted by key, as a new *part* (newest sequence number):
           it holds what the view showed, so the view still shows it;
        2. delete the base: every key it held is in the new part;
        3. delete the older parts: the new part holds their newest versions;
        4. rename the new part to a base (atomic locally; on object storage copy then delete, and
           while both exist the part hides the base's every key).
        A rerun after a kill repeats the compaction from what is there.
        """
        import pyarrow as pa

        bases, parts = self._live(name)
        if not parts and len(bases) <= 1:
            return False
        spec = table(name)
        cols = [*spec.columns, HASH]
        key = ", ".join(f'"{k}"' for k in spec.key)
        with contextlib.closing(self._duck(MERGE_MEMORY)) as con, \
                self._new_file(name, "part", self._next_seq(name), keep_empty=True) as out:
            for keys in self._key_chunks(con, name):
                reader = con.sql(f"SELECT * FROM {self.newest_sql(name, cols, keys=keys)} ORDER BY {key}"
                                 ).to_arrow_reader(ROW_GROUP)
                for batch in reader:
                    out.write_table(pa.Table.from_batches([batch]).cast(_storage_schema(name)))
        new = self._live(name)[1][-1]
        failpoint("lake.compact.before_cleanup")
        for path in [*bases, *(p for p in parts if p != new)]:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path)
        failpoint("lake.compact.before_base")
        target = f"{self._dir(name)}/{Path(new).name.replace('part-', 'base-', 1)}"
        if self.local:
            Path(new).replace(target)
        else:
            self.fs.copy(new, target)
            self.fs.rm(new)
        return True

    def _key_chunks(self, con: duckdb.DuckDBPyConnection, name: str) -> Iterator[str]:
        """Consecutive key ranges, in key order, of about `COMPACT_CHUNK_BYTES` of rows each (at most
        `ROW_GROUP` keys): the name of a relation holding one range's keys, redefined per range (read
        each range's rows before asking for the next).

        Why: a compaction sorts whole rows, and DuckDB's sort does not spill wide text rows well: one
        sort of the 100k summaries of scale 10 (5.5 kB a row) failed at `MERGE_MEMORY`. Sorting the
        keys alone is narrow, and one range's rows fit (the base is key-sorted, so DuckDB's join
        filter skips most of its row groups)."""
        spec = table(name)
        key = ", ".join(f'"{k}"' for k in spec.key)
        glob = f"'{self._url(self._dir(name))}/*.parquet'"
        row_bytes = con.execute(f"""SELECT sum(total_uncompressed_size)
            / greatest(1, sum(row_group_num_rows) FILTER (WHERE column_id = 0)) FROM parquet_metadata({glob})""").fetchone()[0]
        rows = int(min(ROW_GROUP, max(1000, COMPACT_CHUNK_BYTES // max(1, row_bytes or 1))))
        con.execute(f"""CREATE TEMP TABLE _compact_keys AS
            SELECT {key}, (row_number() OVER (ORDER BY {key}) - 1) // {rows} AS _chunk
            FROM (SELECT DISTINCT {key} FROM read_parquet({glob}, union_by_name=true))""")
        chunks = con.execute("SELECT coalesce(max(_chunk) + 1, 0) FROM _compact_keys").fetchone()[0]
        for i in range(max(1, chunks)):
            con.execute(f"CREATE OR REPLACE TEMP VIEW _chunk_keys AS SELECT {key} FROM _compact_keys WHERE _chunk = {i}")
            yield "_chunk_keys"


def _seq(path: str | None) -> int | None:
    """The sequence number in a data file's name (None for anything else in the folder)."""
    parts = Path(path or "").name.split("-")
    if len(parts) != 3 or parts[0] not in ("base", "part") or not parts[2].endswith(".parquet"):
        return None
    return int(parts[1]) if parts[1].isdigit() else None


def _storage_schema(name: str) -> pa.Schema:
    import pyarrow as pa

    return table(name).schema.append(pa.field(HASH, pa.string()))


def _empty(name: str) -> pa.Table:
    return _storage_schema(name).empty_table()


def conform(name: str, data: Frame) -> pa.Table:
    """Cast a frame to a table's schema: missing columns become nulls, unknown ones are an error."""
    import pandas as pd
    import pyarrow as pa

    schema = table(name).schema
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        extra = set(data.columns) - set(schema.names)
        if extra:
            raise ValueError(f"{name}: unknown columns {sorted(extra)}")
        present = pa.schema([schema.field(c) for c in schema.names if c in data.columns])
        data = pa.Table.from_pandas(data[present.names], schema=present, preserve_index=False)
    extra = set(data.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"{name}: unknown columns {sorted(extra)}")
    cols = [data.column(n).cast(f.type) if n in data.column_names else pa.nulls(data.num_rows, f.type)
            for n, f in zip(schema.names, schema)]
    return pa.Table.from_arrays(cols, schema=schema)


def open_lake(settings=None) -> Lake:
    """The lake of the current settings."""
    from crmsum.config import get_settings

    s = settings or get_settings()
    opts = {"client_kwargs": {"endpoint_url": s.s3_endpoint_url}} if s.s3_endpoint_url else None
    return Lake(s.lake_dir, opts)
