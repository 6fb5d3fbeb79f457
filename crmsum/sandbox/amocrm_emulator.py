"""amoCRM API v4 on loopback, behaving like the real API where crmsum's client can tell the difference.

Serves the `amocrm/` folder written by `crmsum generate` (format in docs/ARCHITECTURE.md): HAL JSON
lists with `_page`/`_links`, `204` for empty pages, bracket filters and ordering, Bearer auth with an
OAuth 2 refresh flow (single-use refresh tokens, 24 h access tokens on an injectable clock), the
7 requests/second limit (`429`, then a `403` block for abusers) and injected faults (5xx, dropped
connections, slow answers) so the sync client is tested against what production does to it.

Startup stays well under a second at design scale because the big files (events, notes, tasks) are
not parsed into Python objects: pyarrow reads only the indexed columns, the raw JSON lines are kept,
and a page parses just the records it returns. Indices are sorted numpy arrays (binary search for
time ranges, vectorized masks for the other filters), with a small LRU of query results so paging
through a filtered list costs O(limit) per page.

Python hooks for other tests (all state is plain attributes, changeable while serving):

    emu = AmoEmulator(data_dir_or_None, token="T", rate_limit=0, fail_rate=0.0, seed=0, clock=time.time,
                      client_id=..., client_secret=..., redirect_uri=..., refresh_token="initial-refresh-token")
    server = emu.start(host="127.0.0.1", port=0)     # or: with AmoEmulator(...) as emu: emu.url
    emu.url; emu.stop(); emu.wait_ready()
    emu.upsert("leads", [{"id": 5, "status_id": 142}])  # merge by id; updated_at moves past all others
    emu.expire_access_tokens(); emu.issue_auth_code(); emu.issue_tokens(); emu.add_refresh_token(tok)
    emu.stats() -> {"total", "by_status", "by_path", "by_path_status"}; emu.request_log; emu.reset_stats()
    emu.rate_limit = 7; emu.block_after / block_window / block_seconds; emu.unblock()
    emu.fail_rate = 0.2; emu.slow_seconds = 0.1; emu.faults = [("500", 1.0), ("drop", 1.0)]
    emu.hostile = {"ignore_paging": {"leads"}, "float_duration": {"notes"}}  # see amocrm_hostile.MODES
    emu.clock = lambda: fake_now
"""

from __future__ import annotations

import collections
import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np

from crmsum.sandbox import amocrm_hostile as hostile
from crmsum.sandbox.httpserver import HttpError, JsonHandler, Server

try:  # orjson is ~5x faster for the per-page parse/serialize; the stdlib is the fallback
    import orjson

    def _loads(raw: bytes | str) -> Any:
        return orjson.loads(raw)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - orjson ships with prefect
    def _loads(raw: bytes | str) -> Any:
        return json.loads(raw)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

log = logging.getLogger(__name__)

__all__ = ["AmoEmulator", "AmoEmulatorError", "AmoHandler", "DROPPED", "ENTITIES", "run"]

DROPPED = 0  # status recorded in the request log for a connection closed without an answer
ACCESS_TTL = 86400  # access tokens live 24 h
REFRESH_TTL = 90 * 86400  # refresh tokens live 3 months
CODE_TTL = 20 * 60  # authorization codes live 20 minutes
HAL = "application/hal+json"
_LAZY_BYTES = 256 * 1024  # files above this keep raw lines and index with pyarrow
_CACHE_SIZE = 32  # filtered results are copies; unfiltered ones are views of the prebuilt orders


class AmoEmulatorError(Exception):
    """Bad emulator input (missing folder, unreadable file, unknown entity)."""


# --- entity specs ---------------------------------------------------------------------------------
# filter kinds: "id" (the id column), "int" (int list), "cat" (string list over a coded column),
# "range" (from/to, or a scalar), "bool"
@dataclass(frozen=True)
class Spec:
    name: str  # key in _embedded and in upsert()
    file: str
    path: str  # list endpoint
    ints: tuple[str, ...]  # int columns (time fields included)
    cats: tuple[str, ...] = ()
    bools: tuple[str, ...] = ()
    filters: dict[str, tuple[str, str]] = field(default_factory=dict)  # filter name -> (column, kind)
    orders: tuple[str, ...] = ("id", "created_at", "updated_at")
    default_order: tuple[str, bool] = ("id", False)  # (field, descending)
    max_limit: int = 250
    id_str: bool = False
    scalar_range_is_from: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()  # fields the real API always returns


_ENTITY_FILTERS = {"id": ("id", "id"), "created_at": ("created_at", "range"),
                   "updated_at": ("updated_at", "range"), "responsible_user_id": ("responsible_user_id", "int"),
                   "created_by": ("created_by", "int"), "updated_by": ("updated_by", "int")}

SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("leads", "leads.jsonl", "/api/v4/leads",
         ints=("created_at", "updated_at", "closed_at", "responsible_user_id", "created_by", "updated_by",
               "pipeline_id", "status_id", "price"),
         bools=("is_deleted",),
         filters={**_ENTITY_FILTERS, "closed_at": ("closed_at", "range"), "pipeline_id": ("pipeline_id", "int"),
                  "status_id": ("status_id", "int"), "price": ("price", "range")},
         defaults=(("group_id", 0), ("loss_reason_id", None), ("closed_at", None), ("closest_task_at", None),
                   ("is_deleted", False), ("custom_fields_values", None), ("score", None), ("labor_cost", None))),
    Spec("contacts", "contacts.jsonl", "/api/v4/contacts",
         ints=("created_at", "updated_at", "responsible_user_id", "created_by", "updated_by"),
         filters=dict(_ENTITY_FILTERS),
         defaults=(("group_id", 0), ("closest_task_at", None), ("is_deleted", False), ("is_unsorted", False),
                   ("custom_fields_values", None))),
    Spec("companies", "companies.jsonl", "/api/v4/companies",
         ints=("created_at", "updated_at", "responsible_user_id", "created_by", "updated_by"),
         filters=dict(_ENTITY_FILTERS),
         defaults=(("group_id", 0), ("closest_task_at", None), ("is_deleted", False),
                   ("custom_fields_values", None))),
    Spec("users", "users.jsonl", "/api/v4/users", ints=(), filters={"id": ("id", "id")}, orders=("id",)),
    Spec("events", "events.jsonl", "/api/v4/events",
         ints=("created_at", "entity_id", "created_by"), cats=("type", "entity_type"),
         filters={"id": ("id", "id"), "created_at": ("created_at", "range"), "entity": ("entity_type", "cat"),
                  "entity_id": ("entity_id", "int"), "type": ("type", "cat"), "created_by": ("created_by", "int")},
         orders=("created_at", "id"), default_order=("created_at", True), max_limit=100, id_str=True,
         scalar_range_is_from=True),
    Spec("notes", "notes.jsonl", "/api/v4/leads/notes",
         ints=("created_at", "updated_at", "entity_id", "created_by", "responsible_user_id"), cats=("note_type",),
         filters={**_ENTITY_FILTERS, "entity_id": ("entity_id", "int"), "note_type": ("note_type", "cat")}),
    Spec("tasks", "tasks.jsonl", "/api/v4/tasks",
         ints=("created_at", "updated_at", "entity_id", "responsible_user_id", "created_by", "task_type_id",
               "complete_till"),
         cats=("entity_type",), bools=("is_completed",),
         filters={**_ENTITY_FILTERS, "entity_id": ("entity_id", "int"), "entity_type": ("entity_type", "cat"),
                  "task_type": ("task_type_id", "int"), "is_completed": ("is_completed", "bool"),
                  "complete_till": ("complete_till", "range")},
         orders=("id", "created_at", "updated_at", "complete_till")),
]}
ENTITIES = tuple(SPECS)
_ALIASES = {"lead": "leads", "contact": "contacts", "company": "companies", "user": "users", "event": "events",
            "note": "notes", "task": "tasks", "leads/notes": "notes"}
_PLURAL = {"lead": "leads", "contact": "contacts", "company": "companies", "customer": "customers",
           "task": "tasks", "catalog_element": "catalogs/elements"}
_SINGULAR_ENTITY = {"leads": "lead", "contacts": "contact", "companies": "company", "customers": "customer",
                    "tasks": "task"}


# --- a table: raw rows + column indices -----------------------------------------------------------
class Rows:
    """Records by position: raw JSON lines of the loaded file (parsed on access), then dicts
    (eager loads, upserts). Copy-on-write: `copy()` shares the raw buffer."""

    def __init__(self, raw: bytes = b"", starts: np.ndarray | None = None, ends: np.ndarray | None = None,
                 objs: list[dict] | None = None) -> None:
        self.raw = raw
        self.starts = starts if starts is not None else np.zeros(0, np.int64)
        self.ends = ends if ends is not None else np.zeros(0, np.int64)
        self.n_raw = len(self.starts)
        self.extra: list[dict] = objs if objs is not None else []
        self.overrides: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.n_raw + len(self.extra)

    def get(self, pos: int) -> dict:
        o = self.overrides.get(pos)
        if o is not None:
            return o
        if pos < self.n_raw:
            return _loads(self.raw[self.starts[pos]:self.ends[pos]])
        return self.extra[pos - self.n_raw]

    def copy(self) -> "Rows":
        r = Rows(self.raw, self.starts, self.ends, list(self.extra))
        r.overrides = dict(self.overrides)
        return r

    def set(self, pos: int, obj: dict) -> None:
        if pos < self.n_raw:
            self.overrides[pos] = obj
        else:
            self.extra[pos - self.n_raw] = obj

    def append(self, obj: dict) -> int:
        self.extra.append(obj)
        return len(self) - 1


class Table:
    """Rows (raw JSON bytes or dicts) with numpy columns; immutable once built (copy-on-write upserts)."""

    def __init__(self, spec: Spec, rows: Rows, cols: dict[str, np.ndarray],
                 codes: dict[str, dict[str, int]], version: int) -> None:
        self.spec, self.rows, self.cols, self.codes, self.version = spec, rows, cols, codes, version
        self._sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        for f in spec.orders:  # pre-build every order the API accepts
            self.sorted_by(f)

    def __len__(self) -> int:
        return len(self.rows)

    def sorted_by(self, f: str) -> tuple[np.ndarray, np.ndarray]:
        """(positions sorted by (f, id) ascending, the f values in that order) for binary search."""
        got = self._sorted.get(f)
        if got is None:
            with self._lock:
                ids = self.cols["id"]
                perm = np.argsort(ids, kind="stable") if f == "id" else np.lexsort((ids, self.cols[f]))
                got = (perm.astype(np.int64), self.cols[f][perm])
                self._sorted[f] = got
        return got

    def obj(self, pos: int) -> dict:
        return self.rows.get(pos)

    def find(self, key: Any) -> int | None:
        """Position of the record with this id (binary search over the id index), or None."""
        perm, keys = self.sorted_by("id")
        try:
            key = str(key) if self.spec.id_str else int(key)
        except (TypeError, ValueError):
            return None
        i = int(np.searchsorted(keys, key))
        return int(perm[i]) if i < len(keys) and keys[i] == key else None

    def find_many(self, keys: list) -> np.ndarray:
        perm, sorted_keys = self.sorted_by("id")
        want = np.array(keys, dtype=str if self.spec.id_str else np.int64)
        idx = np.searchsorted(sorted_keys, want)
        ok = idx < len(sorted_keys)
        ok[ok] = sorted_keys[idx[ok]] == want[ok]
        return np.unique(perm[idx[ok]])

    def max_of(self, col: str) -> int:
        c = self.cols.get(col)
        return int(c.max()) if c is not None and len(c) else 0


def _id_array(values: list, id_str: bool) -> np.ndarray:
    if id_str:
        return np.array([str(v) for v in values], dtype=str) if values else np.array([], dtype="<U26")
    return np.array([int(v) for v in values], dtype=np.int64)


def _int(v: Any) -> int:
    if v is None or v is False:
        return 0
    if v is True:
        return 1
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _build_table(spec: Spec, rows: Rows, colvals: dict[str, list],
                 codes: dict[str, dict[str, int]] | None = None, version: int = 0) -> Table:
    codes = {c: dict(codes.get(c, {})) for c in spec.cats} if codes else {c: {} for c in spec.cats}
    cols = {"id": _id_array(colvals["id"], spec.id_str)}
    for c in spec.ints:
        cols[c] = np.array([_int(v) for v in colvals[c]], dtype=np.int64)
    for c in spec.bools:
        cols[c] = np.array([bool(v) for v in colvals[c]], dtype=np.bool_)
    for c in spec.cats:
        cmap = codes[c]
        cols[c] = np.array([cmap.setdefault(str(v), len(cmap)) if v is not None else -1 for v in colvals[c]],
                           dtype=np.int32)
    return Table(spec, rows, cols, codes, version)


def _colvals_from_dicts(spec: Spec, objs: list[dict]) -> dict[str, list]:
    return {c: [o.get(c) for o in objs] for c in ("id", *spec.ints, *spec.bools, *spec.cats)}


def _patched_table(table: Table, rows: Rows, changed: set[int], version: int) -> Table:
    """A new Table with `rows`; only the changed positions (dicts) are re-read into the columns."""
    spec, n = table.spec, len(rows)
    codes = {c: dict(m) for c, m in table.codes.items()}
    cols: dict[str, np.ndarray] = {}
    for c, arr in table.cols.items():
        if c == "id" and spec.id_str:
            cols[c] = np.array(arr.tolist() + [""] * (n - len(arr)), dtype=str)
            continue
        grown = np.zeros(n, dtype=arr.dtype)
        grown[:len(arr)] = arr
        cols[c] = grown
    ids = cols["id"].tolist() if spec.id_str else None
    for pos in changed:
        o = rows.get(pos)
        if spec.id_str:
            ids[pos] = str(o["id"])  # type: ignore[index]
        else:
            cols["id"][pos] = int(o["id"])
        for c in spec.ints:
            cols[c][pos] = _int(o.get(c))
        for c in spec.bools:
            cols[c][pos] = bool(o.get(c))
        for c in spec.cats:
            v = o.get(c)
            cols[c][pos] = codes[c].setdefault(str(v), len(codes[c])) if v is not None else -1
    if spec.id_str:
        cols["id"] = np.array(ids, dtype=str)
    return Table(spec, rows, cols, codes, version)


def _load_table(spec: Spec, folder: Path | None) -> Table:
    path = folder / spec.file if folder else None
    if path is None or not path.exists():
        return _build_table(spec, Rows(), _colvals_from_dicts(spec, []))
    size = path.stat().st_size
    if size > _LAZY_BYTES:
        try:
            return _load_lazy(spec, path)
        except Exception as exc:  # noqa: BLE001 - fall back to a full parse, slower but exact
            log.warning("amocrm emulator: fast index of %s failed (%s); parsing fully", path.name, exc)
    objs = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    objs.append(json.loads(line))
                except ValueError as exc:
                    raise AmoEmulatorError(f"{path}:{n}: not JSON ({exc})") from None
    return _build_table(spec, Rows(objs=objs), _colvals_from_dicts(spec, objs))


def _arrow_ints(arr: Any) -> np.ndarray:
    """int64 pyarrow Array -> numpy without pyarrow's to_numpy (which imports pandas: +1-2 s startup)."""
    n, off = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    out = np.frombuffer(data, dtype=np.int64 if arr.type.bit_width == 64 else np.int32,
                        count=off + n)[off:].astype(np.int64)
    if arr.null_count:
        out[~_arrow_valid(validity, off, n)] = 0
    return out


def _arrow_valid(bitmap: Any, off: int, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[off:off + n].astype(bool)


def _arrow_bools(arr: Any) -> np.ndarray:
    n, off = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    out = _arrow_valid(data, off, n)
    if arr.null_count:
        out &= _arrow_valid(validity, off, n)
    return out


def _load_lazy(spec: Spec, path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.json as pj

    names = ("id", *spec.ints, *spec.bools, *spec.cats)
    types = {c: pa.int64() for c in spec.ints} | {c: pa.bool_() for c in spec.bools} | \
        {c: pa.string() for c in spec.cats} | {"id": pa.string() if spec.id_str else pa.int64()}
    schema = pa.schema([(c, types[c]) for c in names])
    raw = path.read_bytes()
    nl = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [len(raw)])).astype(np.int64)
    keep = ends - starts > 1  # drop blank lines
    starts, ends = starts[keep], ends[keep]
    tbl = pj.read_json(pa.BufferReader(raw), read_options=pj.ReadOptions(block_size=1 << 24),
                       parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    if tbl.num_rows != len(starts):
        raise AmoEmulatorError(f"{tbl.num_rows} parsed rows but {len(starts)} lines")
    tbl = tbl.combine_chunks()
    codes: dict[str, dict[str, int]] = {c: {} for c in spec.cats}
    cols: dict[str, np.ndarray] = {}
    for c in spec.ints:
        cols[c] = _arrow_ints(tbl.column(c).chunk(0)) if tbl.num_rows else np.zeros(0, np.int64)
    for c in spec.bools:
        cols[c] = _arrow_bools(tbl.column(c).chunk(0)) if tbl.num_rows else np.zeros(0, bool)
    for c in spec.cats:
        if not tbl.num_rows:
            cols[c] = np.zeros(0, np.int32)
            continue
        enc = tbl.column(c).chunk(0).dictionary_encode()
        codes[c] = {v: i for i, v in enumerate(enc.dictionary.to_pylist())}
        idx = enc.indices
        cols[c] = _arrow_ints(idx).astype(np.int32)
        if idx.null_count:
            cols[c][~_arrow_valid(idx.buffers()[0], idx.offset, len(idx))] = -1
    idcol = tbl.column("id").chunk(0) if tbl.num_rows else None
    if idcol is not None and idcol.null_count:
        raise AmoEmulatorError("rows without id")
    if spec.id_str:
        cols["id"] = np.array(idcol.to_pylist() if idcol is not None else [], dtype=str)
    else:
        cols["id"] = _arrow_ints(idcol) if idcol is not None else np.zeros(0, np.int64)
    rows = Rows(raw, starts, ends)
    for i in {0, len(rows) - 1} if len(rows) else ():  # spot-check alignment of raw lines and parsed rows
        if str(rows.get(i)["id"]) != str(cols["id"][i]):
            raise AmoEmulatorError("raw lines and parsed rows disagree")
    return Table(spec, rows, cols, codes, 0)


class _Tables(dict):
    """name -> Table; big tables load in a background thread and a lookup waits until its table is ready,
    so the server listens at once and only the first request that needs events/notes/tasks waits."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> None:
        if not self.ready.wait(timeout):
            raise AmoEmulatorError("amoCRM sample data is still loading")
        if self.error is not None:
            raise AmoEmulatorError(f"loading the amoCRM sample failed: {self.error}") from self.error

    def __getitem__(self, name: str) -> "Table":
        if not dict.__contains__(self, name):
            self.wait(600)
        return dict.__getitem__(self, name)

    def items(self):  # type: ignore[override]
        self.wait(600)
        return dict.items(self)

    def values(self):  # type: ignore[override]
        self.wait(600)
        return dict.values(self)


# --- query parsing ------------------------------------------------------------------------------------
_KEY_RE = re.compile(r"^([A-Za-z_]+)((?:\[[^\[\]]*\])*)$")


@dataclass
class Query:
    page: int = 1
    limit: int = 50
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"values": [...], "from", "to"}
    order: tuple[str, bool] | None = None
    with_: frozenset[str] = frozenset()

    def cache_key(self) -> tuple:
        f = tuple(sorted((k, tuple(v.get("values", ())), v.get("from"), v.get("to")) for k, v in self.filters.items()))
        return f, self.order


def _bad(detail: str) -> HttpError:
    return HttpError(400, "Bad Request", detail)


def _to_int(name: str, value: str) -> int:
    try:
        v = int(value.strip())
    except ValueError:
        raise _bad(f"{name} must be an integer, got {value!r}") from None
    if not -2**63 <= v < 2**63:
        raise _bad(f"{name} is out of range: {value!r}")
    return v


def parse_query(pairs: list[tuple[str, str]], spec: Spec) -> Query:
    """Validate page/limit/filter/order/with like the real API; anything malformed is a 400."""
    q = Query()
    for key, value in pairs:
        m = _KEY_RE.match(key)
        if not m:
            if key.startswith(("filter", "order")):
                raise _bad(f"malformed parameter {key!r}")
            continue
        name, parts = m.group(1), re.findall(r"\[([^\[\]]*)\]", m.group(2))
        if name == "page" and not parts:
            q.page = _to_int("page", value)
            if q.page < 1:
                raise _bad("page starts at 1")
        elif name == "limit" and not parts:
            q.limit = _to_int("limit", value)
            if not 1 <= q.limit <= spec.max_limit:
                raise _bad(f"limit must be 1..{spec.max_limit}, got {q.limit}")
        elif name == "with" and not parts:
            q.with_ = q.with_ | {w.strip() for w in value.split(",") if w.strip()}
        elif name == "order":
            if len(parts) != 1 or parts[0] not in spec.orders:
                raise _bad(f"cannot order {spec.name} by {key!r}; allowed: {', '.join(spec.orders)}")
            direction = value.strip().lower()
            if direction not in ("asc", "desc"):
                raise _bad(f"order direction must be asc or desc, got {value!r}")
            q.order = (parts[0], direction == "desc")
        elif name == "filter":
            if not parts:
                raise _bad("filter needs a field: filter[<field>]=...")
            _add_filter(q, spec, parts, value)
    return q


def _add_filter(q: Query, spec: Spec, parts: list[str], value: str) -> None:
    fname = parts[0]
    if fname not in spec.filters:
        return  # the real API ignores filters it does not know for an entity
    col, kind = spec.filters[fname]
    slot = q.filters.setdefault(fname, {})
    label = "filter[" + "][".join(parts) + "]"
    sub = parts[1] if len(parts) > 1 else None
    if kind == "range":
        if sub in ("from", "to"):
            slot[sub] = _to_int(label, value)
        elif sub is None:
            v = _to_int(label, value)
            slot["from"] = v
            if not spec.scalar_range_is_from:
                slot["to"] = v
        else:
            raise _bad(f"{label}: use [from] and [to]")
        return
    if sub not in (None, "") and not sub.isdigit():
        raise _bad(f"{label}: unexpected key {sub!r}")
    items = [v for v in value.split(",")] if value != "" else [""]
    vals = slot.setdefault("values", [])
    for item in items:
        item = item.strip()
        if kind == "id" and spec.id_str or kind == "cat":
            if not item:
                raise _bad(f"{label} is empty")
            if fname == "entity":
                item = _SINGULAR_ENTITY.get(item, item)
            vals.append(item)
        elif kind == "bool":
            if item.lower() in ("1", "true"):
                vals.append(True)
            elif item.lower() in ("0", "false"):
                vals.append(False)
            else:
                raise _bad(f"{label} must be 0 or 1, got {item!r}")
        else:
            vals.append(_to_int(label, item))


# --- the emulator state ------------------------------------------------------------------------------
def _resolve_folder(data: str | Path | None) -> Path | None:
    if data is None:
        return None
    folder = Path(data)
    if (folder / "amocrm").is_dir() and not (folder / "leads.jsonl").exists():
        folder = folder / "amocrm"
    if not folder.is_dir():
        raise AmoEmulatorError(f"no amoCRM sample folder at {folder}; run `crmsum generate --out DIR` "
                               f"and pass --data DIR/amocrm")
    return folder


_DEFAULT_ACCOUNT = {"id": 1, "name": "crmsum sandbox", "subdomain": "sandbox", "created_at": 0, "created_by": 0,
                    "updated_at": 0, "updated_by": 0, "current_user_id": 0, "country": "RU",
                    "customers_mode": "disabled", "is_unsorted_on": True, "is_loss_reason_enabled": True,
                    "is_helpbot_enabled": False, "is_technical_account": False, "contact_name_display_order": 1,
                    "currency": "RUB", "currency_symbol": "₽"}

_FAULTS = (("500", 0.25), ("502", 0.15), ("503", 0.20), ("drop", 0.25), ("slow", 0.15))


class AmoEmulator:
    """State of one emulated amoCRM account: data, tokens, rate limiter, fault injector, request log.

    Every knob is a plain attribute so tests can change it while the server runs:
    `rate_limit` (requests per 1-second window, 0 = off), `block_after` / `block_window` /
    `block_seconds` (that many 429s within the window blocks the integration with 403 for that
    long), `fail_rate`, `slow_seconds`, `clock` (unix seconds, for token expiry and upsert stamps).
    """

    def __init__(self, data: str | Path | None = None, *, token: str | None = "test-token",
                 rate_limit: float = 0.0, fail_rate: float = 0.0, seed: int = 0,
                 clock: Callable[[], float] = time.time,
                 client_id: str = "crmsum-client", client_secret: str = "crmsum-secret",
                 redirect_uri: str = "https://example.com/oauth", refresh_token: str | None = "initial-refresh-token",
                 auth_code: str | None = None,
                 block_after: int = 30, block_window: float = 10.0, block_seconds: float = 60.0,
                 slow_seconds: float = 3.0, background: bool = True) -> None:
        folder = _resolve_folder(data)
        self.folder = folder
        self.token = token
        self.rate_limit = rate_limit
        self.fail_rate = fail_rate
        self.clock = clock
        self.client_id, self.client_secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.block_after, self.block_window, self.block_seconds = block_after, block_window, block_seconds
        self.slow_seconds = slow_seconds
        self.faults = list(_FAULTS)
        self.hostile: dict[str, set[str]] = {}  # payload fault mode -> lists (amocrm_hostile.MODES)
        self._rng = random.Random(seed)  # faults only, so the same seed faults the same requests
        self._id_rng = random.Random(seed + 1)  # ids of upserted events
        self._lock = threading.Lock()
        self._data_lock = threading.Lock()
        self._window: collections.deque[float] = collections.deque()
        self._violations: collections.deque[float] = collections.deque()
        self._blocked_until = 0.0
        self._access: dict[str, float] = {}  # access token -> expires at (clock)
        self._refresh: dict[str, float] = {}  # refresh token -> issued at
        self._codes: dict[str, float] = {}
        now = self.clock()
        if refresh_token:
            self._refresh[refresh_token] = now
        if auth_code:
            self._codes[auth_code] = now
        self.request_log: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=100_000)
        self._counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.server: Server | None = None
        self._results: collections.OrderedDict[tuple, np.ndarray] = collections.OrderedDict()

        self.account = dict(_DEFAULT_ACCOUNT)
        self.pipelines: list[dict] = []
        if folder is not None:
            if (folder / "account.json").exists():
                self.account = json.loads((folder / "account.json").read_text(encoding="utf-8"))
            if (folder / "pipelines.json").exists():
                pl = json.loads((folder / "pipelines.json").read_text(encoding="utf-8"))
                self.pipelines = pl.get("_embedded", {}).get("pipelines", []) if isinstance(pl, dict) else pl
        self._version = 0
        self.tables: dict[str, Table] = _Tables()
        big = [n for n, sp in SPECS.items()
               if folder is not None and (folder / sp.file).exists() and (folder / sp.file).stat().st_size > _LAZY_BYTES]
        for name, spec in SPECS.items():
            if name not in big:
                dict.__setitem__(self.tables, name, _load_table(spec, folder))

        def load_big() -> None:
            try:
                for name in big:
                    dict.__setitem__(self.tables, name, _load_table(SPECS[name], folder))
            except BaseException as exc:  # noqa: BLE001 - surfaced by every lookup of a missing table
                self.tables.error = exc
            finally:
                self.tables.ready.set()

        if big and background:
            threading.Thread(target=load_big, name="amocrm-load", daemon=True).start()
        else:
            load_big()
            self.tables.wait()

    def wait_ready(self, timeout: float | None = 600) -> "AmoEmulator":
        """Block until every table is indexed (big files load in the background after the constructor)."""
        self.tables.wait(timeout)  # type: ignore[attr-defined]
        return self

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Serve in a background thread; returns the running server (`.url`, `.stop()`)."""
        self.server = Server(AmoHandler, self, host, port).start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise AmoEmulatorError("emulator is not started; call start() or use it as a context manager")
        return self.server.url

    def __enter__(self) -> "AmoEmulator":
        if self.server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test hooks ----------------------------------------------------------------------------------
    def upsert(self, entity: str, objects: Iterable[dict]) -> list[dict]:
        """Add or modify records (shallow merge by id); `updated_at` moves past every existing stamp
        unless given explicitly, so incremental `filter[updated_at][from]` syncs see the change.
        New events get a ULID-like id and `created_at` = clock if missing. Returns the stored records."""
        name = _ALIASES.get(entity, entity)
        if name not in SPECS:
            raise AmoEmulatorError(f"unknown entity {entity!r}; one of {', '.join(ENTITIES)}")
        spec = SPECS[name]
        with self._data_lock:
            table = self.tables[name]
            rows = table.rows.copy()
            new_pos: dict[Any, int] = {}
            next_id = table.max_of("id") + 1 if not spec.id_str else 0
            now = int(self.clock())
            stamp = max(now, table.max_of("updated_at") + 1, table.max_of("created_at") + 1)
            stored = []
            changed: set[int] = set()
            for new in objects:
                new = dict(new)
                key = new.get("id")
                if spec.id_str:
                    if key is None:
                        key = _ulid(self._id_rng, int(self.clock()))
                    key = new["id"] = str(key)
                pos = None
                if key is not None:
                    pos = new_pos.get(key)
                    if pos is None:
                        pos = table.find(key)
                if pos is not None:
                    merged = dict(rows.get(pos))
                    merged.update(new)
                    if "updated_at" in spec.ints and "updated_at" not in new:
                        merged["updated_at"] = stamp
                    rows.set(pos, merged)
                else:
                    if key is None:
                        key = new["id"] = next_id
                    if not spec.id_str:
                        next_id = max(next_id, int(key) + 1)
                    new.setdefault("created_at", now)
                    if "updated_at" in spec.ints:
                        new.setdefault("updated_at", stamp)
                    new.setdefault("account_id", self.account.get("id"))
                    pos = new_pos[key] = rows.append(new)
                    merged = new
                changed.add(pos)
                stored.append(merged)
            self._version += 1
            self.tables[name] = _patched_table(table, rows, changed, self._version)
            with self._lock:
                self._results.clear()
        return stored

    def expire_access_tokens(self) -> None:
        """Every OAuth access token issued so far stops working (the long-lived token keeps working)."""
        with self._lock:
            self._access.clear()

    def issue_auth_code(self, code: str | None = None) -> str:
        """Register an authorization code for `grant_type=authorization_code` (single use, 20 min)."""
        code = code or secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = self.clock()
        return code

    def add_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh[token] = self.clock()

    def issue_tokens(self) -> dict:
        """A fresh OAuth pair without HTTP (what a completed authorization would give)."""
        with self._lock:
            return self._issue_locked()

    def stats(self) -> dict:
        """Counters: total, by_status {status: n}, by_path {path: n}, by_path_status {(path, status): n}.
        A dropped connection counts as status DROPPED (0)."""
        with self._lock:
            counts = dict(self._counts)
        by_status: collections.Counter[int] = collections.Counter()
        by_path: collections.Counter[str] = collections.Counter()
        for (path, status), n in counts.items():
            by_status[status] += n
            by_path[path] += n
        return {"total": sum(counts.values()), "by_status": dict(by_status), "by_path": dict(by_path),
                "by_path_status": counts}

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self.request_log.clear()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._counts[(path, status)] += 1
            self.request_log.append((method, path, status))

    # -- gate: block, rate limit, faults ------------------------------------------------------------------
    def admit(self) -> str | None:
        """Raise 403/429 for throttled calls; return the fault to inject ("500", "drop", "slow", ...) or None."""
        with self._lock:
            now = time.monotonic()
            if now < self._blocked_until:
                raise HttpError(403, "Forbidden", "integration blocked for exceeding the request rate limit")
            limit = self.rate_limit
            if limit and limit > 0:
                win = self._window
                while win and win[0] <= now - 1.0:
                    win.popleft()
                if len(win) + 1 > limit:
                    vio = self._violations
                    vio.append(now)
                    while vio and vio[0] <= now - self.block_window:
                        vio.popleft()
                    if len(vio) >= self.block_after:
                        self._blocked_until = now + self.block_seconds
                        vio.clear()
                    raise HttpError(429, "Too Many Requests", f"more than {limit:g} requests per second",
                                    headers={"Retry-After": "1"})
                win.append(now)
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                r, acc = self._rng.random() * sum(w for _, w in self.faults), 0.0
                for kind, w in self.faults:
                    acc += w
                    if r < acc:
                        return kind
                return self.faults[-1][0]
        return None

    def unblock(self) -> None:
        """Lift a 403 block and forget past violations (tests)."""
        with self._lock:
            self._blocked_until = 0.0
            self._violations.clear()
            self._window.clear()

    # -- auth ------------------------------------------------------------------------------------------------
    def check_bearer(self, header: str | None) -> None:
        if not header or not header[:7].lower() == "bearer ":
            raise HttpError(401, "Unauthorized", "Authorization: Bearer <token> required")
        tok = header[7:].strip()
        if self.token and secrets.compare_digest(tok, self.token):
            return
        with self._lock:
            exp = self._access.get(tok)
            if exp is not None and exp > self.clock():
                return
            if exp is not None:
                del self._access[tok]
        raise HttpError(401, "Unauthorized", "access token is wrong or expired")

    def _issue_locked(self) -> dict:
        now = self.clock()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        self._access[access] = now + ACCESS_TTL
        self._refresh[refresh] = now
        return {"token_type": "Bearer", "expires_in": ACCESS_TTL, "access_token": access, "refresh_token": refresh}

    def oauth(self, body: dict) -> dict:
        def problem(status: int, hint: str) -> HttpError:
            return HttpError(status, "Некорректный запрос", hint, body={
                "hint": hint, "title": "Некорректный запрос",
                "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": status,
                "detail": "В запросе отсутствует ряд параметров или параметры невалидны"})

        if not isinstance(body, dict):
            raise problem(400, "body must be a JSON object")
        grant = body.get("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            raise problem(400, "grant_type must be refresh_token or authorization_code")
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            raise problem(401, "Client authentication failed")
        if self.redirect_uri and body.get("redirect_uri") != self.redirect_uri:
            raise problem(400, "redirect_uri does not match the integration's")
        with self._lock:
            now = self.clock()
            if grant == "refresh_token":
                tok = body.get("refresh_token")
                issued = self._refresh.pop(tok, None) if isinstance(tok, str) else None
                if issued is None:
                    raise problem(400, "Token has been revoked")
                if now - issued > REFRESH_TTL:
                    raise problem(400, "Token has expired")
            else:
                code = body.get("code")
                issued = self._codes.pop(code, None) if isinstance(code, str) else None
                if issued is None or now - issued > CODE_TTL:
                    raise problem(400, "Authorization code has expired or was already used")
            return self._issue_locked()

    # -- data access ---------------------------------------------------------------------------------------------
    def select(self, spec: Spec, q: Query, table: Table | None = None) -> np.ndarray:
        """Positions of the matching rows of `table` (default: the current one) in the requested order,
        cached per query and table version."""
        table = table if table is not None else self.tables[spec.name]
        key = (spec.name, table.version, q.cache_key())
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                return hit
        res = _select(table, q)
        with self._lock:
            self._results[key] = res
            while len(self._results) > _CACHE_SIZE:
                self._results.popitem(last=False)
        return res


def _ulid(rng: random.Random, ts: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    n = (ts * 1000) << 80 | rng.getrandbits(80)
    return "".join(alphabet[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def _select(table: Table, q: Query) -> np.ndarray:
    spec = table.spec
    order_field, desc = q.order or spec.default_order
    flt = dict(q.filters)
    cand: np.ndarray | None = None
    cand_order: str | None = None
    # 1) candidates from the most selective index: ids, else a binary-searched time range, else an order
    if "id" in flt and flt["id"].get("values"):
        wanted = flt.pop("id")["values"]
        cand = table.find_many(wanted)
    else:
        flt.pop("id", None)
        ranged = [n for n, v in flt.items() if spec.filters[n][1] == "range" and ("from" in v or "to" in v)]
        ranged.sort(key=lambda n: spec.filters[n][0] != order_field)  # prefer the order field
        if ranged:
            name = ranged[0]
            rng = flt.pop(name)
            col = spec.filters[name][0]
            perm, keys = table.sorted_by(col)
            lo = int(np.searchsorted(keys, rng["from"], "left")) if "from" in rng else 0
            hi = int(np.searchsorted(keys, rng["to"], "right")) if "to" in rng else len(keys)
            cand, cand_order = perm[lo:max(lo, hi)], col
        else:
            cand, cand_order = table.sorted_by(order_field)[0], order_field
    # 2) remaining filters as vectorized masks over the candidates
    for name, v in flt.items():
        if not len(cand):
            break
        col, kind = spec.filters[name]
        values = table.cols[col][cand]
        if kind == "range":
            mask = np.ones(len(cand), dtype=bool)
            if "from" in v:
                mask &= values >= v["from"]
            if "to" in v:
                mask &= values <= v["to"]
        elif kind == "cat":
            codes = [table.codes[col][s] for s in v.get("values", ()) if s in table.codes[col]]
            mask = np.isin(values, np.array(codes, dtype=np.int32))
        elif kind == "bool":
            mask = np.isin(values, np.array(v.get("values", ()), dtype=bool))
        else:
            mask = np.isin(values, np.array(v.get("values", ()), dtype=np.int64))
        cand = cand[mask]
    # 3) order
    if cand_order != order_field and len(cand) > 1:
        ids = table.cols["id"][cand]
        idx = np.argsort(ids, kind="stable") if order_field == "id" else \
            np.lexsort((ids, table.cols[order_field][cand]))
        cand = cand[idx]
    return cand[::-1] if desc else cand


# --- rendering: add _links the way the real API does -------------------------------------------------------
def _self(href: str) -> dict:
    return {"self": {"href": href}}


def _link_items(items: Any, base: str, path: str) -> Any:
    if not isinstance(items, list):
        return items
    return [dict({k: v for k, v in it.items() if k != "_links"}, _links=_self(f"{base}{path}/{it['id']}"))
            if isinstance(it, dict) and "id" in it else it for it in items]


_EMBED_PATHS = {"companies": "/api/v4/companies", "contacts": "/api/v4/contacts", "leads": "/api/v4/leads",
                "customers": "/api/v4/customers", "loss_reason": "/api/v4/leads/loss_reasons"}


def render(spec: Spec, obj: dict, base: str, with_: frozenset[str] = frozenset()) -> dict:
    """The API shape of one stored record: `_links.self` (and links on embedded items) with this base URL."""
    out = {k: v for k, v in obj.items() if k not in ("_links", "_embedded")}
    for k, v in spec.defaults:
        out.setdefault(k, v)
    emb_in = obj.get("_embedded") if isinstance(obj.get("_embedded"), dict) else {}
    name = spec.name
    if name == "events":
        out["_links"] = _self(f"{base}/api/v4/events/{obj['id']}")
        etype = obj.get("entity_type", "lead")
        out["_embedded"] = {"entity": {"id": obj.get("entity_id"), "_links": _self(
            f"{base}/api/v4/{_PLURAL.get(etype, etype + 's')}/{obj.get('entity_id')}")}}
        return out
    if name == "notes":
        out["_links"] = _self(f"{base}/api/v4/leads/{obj.get('entity_id')}/notes/{obj['id']}")
        return out
    out["_links"] = _self(f"{base}{spec.path}/{obj['id']}")
    if name == "users":
        return out
    if name == "tasks":
        return out
    emb: dict[str, Any] = {}
    if name == "leads":
        if "is_price_modified_by_robot" not in with_:  # returned only when asked for, as the real API does
            out.pop("is_price_modified_by_robot", None)
        emb["tags"] = emb_in.get("tags", [])
        emb["companies"] = _link_items(emb_in.get("companies", []), base, _EMBED_PATHS["companies"])
        if "contacts" in with_:
            emb["contacts"] = _link_items(emb_in.get("contacts", []), base, _EMBED_PATHS["contacts"])
        if "loss_reason" in with_:
            emb["loss_reason"] = _link_items(emb_in.get("loss_reason", []), base, _EMBED_PATHS["loss_reason"])
        for k, v in emb_in.items():
            if k not in ("tags", "companies", "contacts", "loss_reason"):
                emb[k] = v
    else:  # contacts, companies: tags (and a contact's companies) always, other links only with `with=`
        emb["tags"] = emb_in.get("tags", [])
        always = {"companies"} if name == "contacts" else set()
        for k in always:
            emb[k] = _link_items(emb_in.get(k, []), base, _EMBED_PATHS[k])
        for k, v in emb_in.items():
            if k != "tags" and k not in always and k in with_:
                emb[k] = _link_items(v, base, _EMBED_PATHS[k]) if k in _EMBED_PATHS else v
    out["_embedded"] = emb
    return out


def render_pipeline(p: dict, base: str) -> dict:
    out = {k: v for k, v in p.items() if k not in ("_links", "_embedded")}
    out["_links"] = _self(f"{base}/api/v4/leads/pipelines/{p['id']}")
    statuses = []
    for s in (p.get("_embedded") or {}).get("statuses", []):
        s2 = {k: v for k, v in s.items() if k != "_links"}
        s2.setdefault("pipeline_id", p["id"])
        s2["_links"] = _self(f"{base}/api/v4/leads/pipelines/{p['id']}/statuses/{s['id']}")
        statuses.append(s2)
    out["_embedded"] = {"statuses": statuses}
    return out


# --- HTTP -------------------------------------------------------------------------------------------------
_ONE = re.compile(r"^/api/v4/(leads|contacts|companies|users|events|tasks|leads/notes)/([^/]+)$")
_LEAD_NOTES = re.compile(r"^/api/v4/leads/(\d+)/notes$")
_PIPELINE = re.compile(r"^/api/v4/leads/pipelines/(\d+)$")
_STATUSES = re.compile(r"^/api/v4/leads/pipelines/(\d+)/statuses$")
_LISTS = {s.path: s for s in SPECS.values()}


class AmoHandler(JsonHandler):
    """amoCRM API v4 routes over `AmoEmulator` state."""

    server_version = "nginx"
    _status = DROPPED

    def send_response(self, code: int, message: str | None = None) -> None:
        # recorded before any byte goes out: a client that has its answer always finds it in the stats
        self._status = code
        if getattr(self, "_recorded", None) is False:  # inside a dispatched request, first status line only
            self.app.record(self.command, self.path_only, code)
            self._recorded = True
        super().send_response(code, message)

    def _dispatch(self, method: str) -> None:
        self._status, self._recorded = DROPPED, False
        try:
            super()._dispatch(method)
        finally:
            if not self._recorded:  # dropped connections never sent a status line
                self.app.record(method, self.path_only, self._status)

    @property
    def base(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.url  # type: ignore[attr-defined]

    def route(self, method: str) -> None:
        app: AmoEmulator = self.app
        path = self.path_only.rstrip("/") or "/"
        fault = app.admit()
        if fault == "drop":
            self.body_bytes()
            self.drop_connection()
            return
        if fault in ("500", "502", "503"):
            titles = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}
            raise HttpError(int(fault), titles[fault], "injected fault")
        if fault == "slow":
            time.sleep(app.slow_seconds)
        if path == "/oauth2/access_token":
            if method != "POST":
                raise HttpError(405, "Method Not Allowed", "POST /oauth2/access_token")
            body = self._form_or_json()
            self.send_json(200, app.oauth(body))
            return
        if not path.startswith("/api/v4/"):
            raise HttpError(404, "Not Found", path)
        app.check_bearer(self.headers.get("Authorization"))
        if method != "GET":
            raise HttpError(405, "Method Not Allowed", "the emulator is read-only over HTTP; use upsert()")
        self._get(app, path)

    def _form_or_json(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" in ctype:
            return dict(parse_qsl(self.body_bytes().decode("utf-8", "replace")))
        return self.json_body()

    def _get(self, app: AmoEmulator, path: str) -> None:
        base = self.base
        if path == "/api/v4/account":
            self.send_json(200, _dumps(dict({k: v for k, v in app.account.items() if k != "_links"},
                                            _links=_self(f"{base}/api/v4/account"))), HAL)
            return
        if path == "/api/v4/leads/pipelines":
            items = [render_pipeline(p, base) for p in app.pipelines]
            self.send_json(200, _dumps({"_total_items": len(items), "_links": _self(f"{base}{path}"),
                                        "_embedded": {"pipelines": items}}), HAL)
            return
        if m := _PIPELINE.match(path):
            for p in app.pipelines:
                if p.get("id") == int(m.group(1)):
                    self.send_json(200, _dumps(render_pipeline(p, base)), HAL)
                    return
            raise HttpError(404, "Not Found", f"pipeline {m.group(1)}")
        if m := _STATUSES.match(path):
            for p in app.pipelines:
                if p.get("id") == int(m.group(1)):
                    st = render_pipeline(p, base)["_embedded"]["statuses"]
                    self.send_json(200, _dumps({"_total_items": len(st), "_links": _self(f"{base}{path}"),
                                                "_embedded": {"statuses": st}}), HAL)
                    return
            raise HttpError(404, "Not Found", f"pipeline {m.group(1)}")
        spec = _LISTS.get(path)
        extra: list[tuple[str, str]] = []
        if spec is None and (m := _LEAD_NOTES.match(path)):
            spec, extra = SPECS["notes"], [("filter[entity_id][]", m.group(1))]
        if spec is not None:
            self._list(app, spec, path, extra, base)
            return
        if m := _ONE.match(path):
            spec = SPECS["notes" if m.group(1) == "leads/notes" else m.group(1)]
            raw_id = m.group(2)
            if spec.id_str:
                key: Any = raw_id
            elif raw_id.isdigit():
                key = int(raw_id)
            else:
                raise HttpError(404, "Not Found", path)
            q = parse_query(self.query, spec)
            table = app.tables[spec.name]
            pos = table.find(key)
            if pos is None:
                self.send_empty(204)  # the real API answers an unknown id with 204, not 404
                return
            self.send_json(200, _dumps(render(spec, table.obj(pos), base, q.with_)), HAL)
            return
        raise HttpError(404, "Not Found", path)

    def _list(self, app: AmoEmulator, spec: Spec, path: str, extra: list[tuple[str, str]], base: str) -> None:
        pairs = self.query
        q = parse_query(pairs + extra, spec)
        table = app.tables[spec.name]
        res = app.select(spec, q, table)
        off = (hostile.page_asked(app.hostile, spec.name, q.page) - 1) * q.limit
        chunk = res[off:off + q.limit]
        if not len(chunk):
            self.send_empty(204)
            return
        items = [render(spec, table.obj(int(p)), base, q.with_) for p in chunk]
        keep = [(k, v) for k, v in pairs if k not in ("page", "limit")]

        def href(page: int) -> dict:
            return {"href": f"{base}{path}?" + urlencode(keep + [("page", str(page)), ("limit", str(q.limit))])}

        links = {"self": href(q.page)}
        if off + q.limit < len(res):
            links["next"] = href(q.page + 1)
        if q.page > 1:
            links["first"] = href(1)
            links["prev"] = href(q.page - 1)
        payload: dict[str, Any] = {"_page": q.page, "_links": links, "_embedded": {spec.name: items}}
        if spec.name == "users":  # the users list also reports totals
            payload = {"_total_items": len(res), "_page": q.page, "_page_count": -(-len(res) // q.limit),
                       "_links": links, "_embedded": {"users": items}}
        if app.hostile:
            if hostile.active(app.hostile, "ignore_paging", spec.name) and len(res) > q.limit:
                links["next"] = href(q.page + 1)
            self.send_json(200, hostile.dumps(hostile.mutate(app.hostile, spec.name, payload)), HAL)
            return
        self.send_json(200, _dumps(payload), HAL)


def run(data: str | Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
        rate_limit: float = 7.0, fail_rate: float = 0.0) -> None:
    """Serve DATA (the amocrm/ folder) until Ctrl-C; prints the URL on startup."""
    t0 = time.perf_counter()
    try:
        emu = AmoEmulator(data, token=token, rate_limit=rate_limit, fail_rate=fail_rate)
        server = Server(AmoHandler, emu, host, port)
    except (AmoEmulatorError, OSError) as exc:
        raise SystemExit(f"amocrm-emulator: {exc}") from None
    emu.server = server
    print(f"amoCRM emulator on {server.url} (listening after {time.perf_counter() - t0:.2f}s; "
          f"rate limit {rate_limit:g}/s, fail rate {fail_rate:g}). Ctrl-C stops.", flush=True)
    thread = threading.Thread(target=server.serve_forever, name="amocrm-emulator", daemon=True)
    thread.start()
    if threading.current_thread() is threading.main_thread():  # `kill PID` stops as cleanly as Ctrl-C
        import signal

        def _interrupt(*_: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, _interrupt)
    try:
        try:
            emu.wait_ready()
        except AmoEmulatorError as exc:
            raise SystemExit(f"amocrm-emulator: {exc}") from None
        counts = ", ".join(f"{n} {len(t)}" for n, t in emu.tables.items())
        print(f"data indexed after {time.perf_counter() - t0:.2f}s: {counts}", flush=True)
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.shutdown()
        server.server_close()
