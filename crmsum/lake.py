"""The Parquet lake: one folder of part files per table, merged by primary key, read through DuckDB.

Writes are idempotent and crash-safe:
- only rows that are new or changed (by a content hash) are written, so a rerun writes nothing;
- a part file becomes visible in one atomic step (temp file + rename locally, one PUT on
  object storage), so a crash never exposes half a file;
- readers take the newest version of each key, so a crash between writing a compacted file
  and deleting the parts it replaced leaves duplicates on disk but never in a query.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from crmsum.failpoints import failpoint
from crmsum.schema import TABLES, table

if TYPE_CHECKING:  # pandas loads in ~0.3 s: only the writers and `read` need it, not every reader
    import pandas as pd

HASH = "_row_hash"
COMPACT_AFTER = 24  # parts; compaction keeps reads fast and file counts small
LISTINGS_TTL = 5.0  # seconds an object-store listing may be reused (see Lake._fresh)
_locks: dict[str, threading.Lock] = {}


class Lake:
    """A folder (or object-storage prefix) of Parquet tables."""

    def __init__(self, root: str | Path, storage_options: dict | None = None) -> None:
        self.root = str(root).rstrip("/")
        opts = dict(storage_options or {})
        if fsspec.core.split_protocol(self.root)[0] not in (None, "file", "local"):
            # object stores: listings are cached (DuckDB stats every part through them) but expire
            # quickly, and every Lake call drops them first (`_fresh`), so parts that another
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
        are shared process-wide: without the drop a long-running reader (the bot) would miss parts
        another process wrote. Listing a table's folder right away lets DuckDB's glob and its
        per-file stat calls be served from that one listing instead of one HEAD request per part.
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
        """Visible part files of a table, oldest first."""
        self._fresh(name)
        found = self.fs.glob(f"{self._dir(name)}/part-*.parquet")
        return sorted(p if self.local else p.split("://", 1)[-1] for p in found)

    def _url(self, path: str) -> str:
        return path if self.local else f"{self.protocol}{path}"

    def _ensure(self, name: str) -> None:
        if not self.parts(name):
            self.fs.makedirs(self._dir(name), exist_ok=True)
            self._put(name, _empty(name), seq=0)

    def _sweep_temp(self, older_than: float = 3600.0) -> None:
        """Remove temp files a killed writer left behind (never visible to readers, but they pile up)."""
        cutoff = time.time() - older_than
        for tmp in Path(self._base).glob("*/.tmp-*"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    def _put(self, name: str, data: pa.Table, seq: int) -> str:
        final = f"{self._dir(name)}/part-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"
        if self.local:
            tmp = f"{self._dir(name)}/.tmp-{uuid.uuid4().hex}"
            pq.write_table(data, tmp, compression="zstd")
            failpoint("lake.put.before_rename")
            Path(tmp).replace(final)
            failpoint("lake.put.after_rename")
        else:
            with self.fs.open(final, "wb") as fh:
                pq.write_table(data, fh, compression="zstd")
        return final

    def _next_seq(self, name: str) -> int:
        parts = self.parts(name)
        return int(Path(parts[-1]).name.split("-")[1]) + 1 if parts else 1

    # -- reading --------------------------------------------------------------------------
    def connect(self, snapshot: bool = False) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per table (or in-memory copies with snapshot=True)."""
        con = duckdb.connect()
        if not self.local:
            self._fresh(*TABLES)
            con.register_filesystem(self.fs)
        for name in TABLES:
            kind = "TABLE" if snapshot else "VIEW"
            con.execute(f"CREATE {kind} {name} AS {self._select(name)}")
        return con

    def _select(self, name: str) -> str:
        key = ", ".join(f'"{k}"' for k in table(name).key)
        glob = self._url(f"{self._dir(name)}/part-*.parquet")
        return (
            f"SELECT * EXCLUDE ({HASH}, filename) FROM read_parquet('{glob}', filename=true, "
            f"union_by_name=true) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY filename DESC) = 1"
        )

    def read(self, name: str, where: str = "", params: Iterable | None = None) -> pd.DataFrame:
        con = duckdb.connect()
        if not self.local:
            self._fresh(name)
            con.register_filesystem(self.fs)
        sql = f"SELECT * FROM ({self._select(name)}) {('WHERE ' + where) if where else ''}"
        return con.execute(sql, list(params or [])).df()

    # -- writing --------------------------------------------------------------------------
    def write(self, name: str, data: pd.DataFrame | pa.Table) -> int:
        """Merge rows into a table by primary key; returns how many rows were new or changed."""
        spec = table(name)
        incoming = conform(name, data)
        if incoming.num_rows == 0:
            return 0
        with _locks.setdefault(f"{self.root}/{name}", threading.Lock()):
            con = duckdb.connect()
            if not self.local:
                self._fresh(name)
                con.register_filesystem(self.fs)
            con.register("incoming", incoming)
            key = ", ".join(f'"{k}"' for k in spec.key)
            cols = ", ".join(f'"{c}"' for c in spec.schema.names)
            glob = self._url(f"{self._dir(name)}/part-*.parquet")
            changed = con.sql(
                f"""
                WITH hashed AS (
                    SELECT {cols}, md5(CAST(struct_pack({cols}) AS VARCHAR)) AS {HASH},
                           row_number() OVER () AS _ord
                    FROM incoming
                ), latest AS (
                    SELECT * EXCLUDE (_ord) FROM hashed
                    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _ord DESC) = 1
                ), current AS (
                    SELECT {key}, {HASH} FROM read_parquet('{glob}', filename=true, union_by_name=true)
                    SEMI JOIN latest USING ({key})
                    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY filename DESC) = 1
                )
                SELECT latest.* FROM latest LEFT JOIN current USING ({key})
                WHERE current.{HASH} IS NULL OR current.{HASH} <> latest.{HASH}
                """
            ).to_arrow_table()
            if changed.num_rows:
                self._put(name, changed.cast(_storage_schema(name)), self._next_seq(name))
                if len(self.parts(name)) > COMPACT_AFTER:
                    self._compact_locked(name)
            return changed.num_rows

    def compact(self, name: str) -> None:
        """Rewrite a table as one part (the newest version of each key)."""
        with _locks.setdefault(f"{self.root}/{name}", threading.Lock()):
            self._compact_locked(name)

    def _compact_locked(self, name: str) -> None:
        old = self.parts(name)  # refreshes object-store listings
        con = duckdb.connect()
        if not self.local:
            con.register_filesystem(self.fs)
        key = ", ".join(f'"{k}"' for k in table(name).key)
        glob = self._url(f"{self._dir(name)}/part-*.parquet")
        merged = con.sql(
            f"SELECT * EXCLUDE (filename) FROM read_parquet('{glob}', filename=true, union_by_name=true) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY filename DESC) = 1"
        ).to_arrow_table()
        self._put(name, merged.cast(_storage_schema(name)), self._next_seq(name))
        for path in old:
            self.fs.rm(path)

    def row_count(self, name: str) -> int:
        con = self.connect()
        return con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]


def _storage_schema(name: str) -> pa.Schema:
    return table(name).schema.append(pa.field(HASH, pa.string()))


def _empty(name: str) -> pa.Table:
    return _storage_schema(name).empty_table()


def conform(name: str, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Cast a frame to a table's schema: missing columns become nulls, unknown ones are an error."""
    schema = table(name).schema
    import pandas as pd

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
