"""amoCRM API objects -> lake rows (DataFrames shaped like `crmsum.schema`), anonymized.

Pure functions over lists of API dicts: the sync batches pages and calls these off the request loop.
Per-row work is limited to pulling fields out of nested dicts; type coercion, timestamps and
anonymization of free text run column-wise (`anonymizer.texts` takes a whole batch).

Unknown fields and event/note types are tolerated: unknown keys are counted (`Unknown`) so the
sync can warn once, unknown event values are kept as anonymized JSON, and malformed values
(floats where integers belong, ids outside int64, wrong types) become nulls, counted per field
inside `counting_malformed()` so the sync warns once instead of crashing on one record.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import pandas as pd


class AnonymizerLike(Protocol):
    def learn_people(self, people: Iterable[tuple[str, str]]) -> Any: ...
    def learn_companies(self, names: Iterable[str]) -> Any: ...
    def person(self, name: str) -> str: ...
    def company(self, name: str) -> str: ...
    def phone(self, raw: str) -> str: ...
    def email(self, raw: str) -> str: ...
    def texts(self, items: Sequence[str], docs: Sequence[Any] | None = None) -> list[str]: ...
    def scrub_json(self, obj: Any) -> Any: ...


# Keys we know per entity (used only to count the unknown ones for a warning).
KNOWN: dict[str, set[str]] = {
    "users": {"id", "name", "email", "lang", "rights", "uuid", "amojo_id", "user_rank", "phone_number",
              "_links", "_embedded"},
    "pipelines": {"id", "name", "sort", "is_main", "is_unsorted_on", "is_archive", "account_id",
                  "_links", "_embedded"},
    "statuses": {"id", "name", "sort", "is_editable", "pipeline_id", "color", "type", "account_id",
                 "descriptions", "_links"},
    "leads": {"id", "name", "price", "responsible_user_id", "group_id", "status_id", "pipeline_id",
              "loss_reason_id", "source_id", "created_by", "updated_by", "created_at", "updated_at",
              "closed_at", "closest_task_at", "is_deleted", "custom_fields_values", "score", "account_id",
              "labor_cost", "is_price_modified_by_robot", "_links", "_embedded"},
    "contacts": {"id", "name", "first_name", "last_name", "responsible_user_id", "group_id", "created_by",
                 "updated_by", "created_at", "updated_at", "closest_task_at", "is_deleted", "is_unsorted",
                 "custom_fields_values", "account_id", "_links", "_embedded"},
    "companies": {"id", "name", "responsible_user_id", "group_id", "created_by", "updated_by", "created_at",
                  "updated_at", "closest_task_at", "is_deleted", "custom_fields_values", "account_id",
                  "_links", "_embedded"},
    "notes": {"id", "entity_id", "created_by", "updated_by", "created_at", "updated_at",
              "responsible_user_id", "group_id", "note_type", "params", "account_id", "is_needs_to_be_read",
              "is_needs_to_be_linked",
              "_links"},
    "tasks": {"id", "created_by", "updated_by", "created_at", "updated_at", "responsible_user_id", "group_id",
              "entity_id", "entity_type", "duration", "is_completed", "task_type_id", "text", "result",
              "complete_till", "account_id", "_links"},
    "events": {"id", "type", "entity_id", "entity_type", "created_by", "created_at", "value_after",
               "value_before", "account_id", "_links", "_embedded"},
}
NOTE_TYPES = {"common", "call_in", "call_out", "service_message", "extended_service_message", "sms_in",
              "sms_out", "attachment", "geolocation", "message_cashier", "invoice_paid", "key_action_completed"}
VALUE_KEYS = {"lead_status", "responsible_user", "sale_field_value", "name_field_value", "custom_field_value",
              "note", "link", "tag", "task", "message"}

EVENT_TYPES = {"lead_added", "lead_deleted", "lead_restored", "lead_status_changed", "entity_responsible_changed",
               "sale_field_changed", "name_field_changed", "common_note_added", "outgoing_call", "incoming_call",
               "entity_linked", "entity_unlinked", "task_added", "task_completed", "task_deadline_changed",
               "task_text_changed", "task_type_changed", "task_result_added", "task_deleted",
               "incoming_chat_message", "outgoing_chat_message", "entity_direct_message", "entity_tag_added",
               "entity_tag_deleted", "service_note_added", "incoming_sms", "outgoing_sms", "company_added",
               "contact_added", "attachment_note_added", "geo_note_added", "common_note_deleted"}
_CF_EVENT = re.compile(r"^custom_field_\d+_value_changed$")
INDUSTRY_NAMES = ("industry", "отрасль", "сфера", "сфера деятельности", "вид деятельности")
CITY_NAMES = ("city", "город")
POSITION_CODES = ("POSITION",)


class Unknown(Counter):
    """Counts of unknown things seen, keyed like 'leads.field:foo' or 'events.type:bar'."""

    def scan(self, entity: str, items: Iterable[dict]) -> None:
        known = KNOWN.get(entity)
        if not known:
            return
        for it in items:
            if isinstance(it, dict):
                for k in it.keys() - known:
                    self[f"{entity}.field:{k}"] += 1


# -- helpers ----------------------------------------------------------------------------------
def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list:
    return x if isinstance(x, list) else []


def _first(x: Any) -> dict:
    for it in _l(x):
        if isinstance(it, dict):
            return it
    return {}


_MALFORMED: ContextVar[tuple[str, Counter] | None] = ContextVar("amocrm_malformed", default=None)
INT64 = (-2**63, 2**63 - 1)


@contextmanager
def counting_malformed(entity: str, counter: Counter) -> Iterator[Counter]:
    """Count values that became nulls while mapping `entity` into `counter` ('notes.call_duration')."""
    token = _MALFORMED.set((entity, counter))
    try:
        yield counter
    finally:
        _MALFORMED.reset(token)


def _malformed(field: str, n: int) -> None:
    scope = _MALFORMED.get()
    if scope is not None and n:
        scope[1][f"{scope[0]}.{field}"] += n


def _int_or_bad(v: Any) -> tuple[int | None, bool]:
    """(integer or None, malformed?): whole numbers in int64 (ints, whole floats, digit strings)."""
    if v is None or v == "":
        return None, False
    if type(v) is float and v.is_integer():
        v = int(v)
    elif type(v) is str and re.fullmatch(r"\s*-?\d{1,19}\s*", v):
        v = int(v)
    if type(v) is int and INT64[0] <= v <= INT64[1]:
        return v, False
    return None, True


def _ints(values: list, field: str = "integer") -> pd.Series:
    """Int64 column; anything that is not a whole number in int64 becomes null and is counted."""
    try:
        return pd.Series(pd.array(values, dtype="Int64"))
    except (TypeError, ValueError, OverflowError):
        pass
    pairs = [_int_or_bad(v) for v in values]  # slow path: only for a batch holding a bad value
    _malformed(field, sum(bad for _, bad in pairs))
    return pd.Series(pd.array([v for v, _ in pairs], dtype="Int64"))


def _strs(values: list, field: str = "text") -> list[str | None]:
    """A string column: a value of another type becomes null and is counted."""
    bad = sum(1 for v in values if v is not None and not isinstance(v, str))
    _malformed(field, bad)
    return [v if isinstance(v, str) else None for v in values] if bad else list(values)


def _bools(values: list) -> pd.Series:
    return pd.Series([None if v is None else bool(v) for v in values], dtype="boolean")


def local_time(values: list, tz: str) -> pd.Series:
    """Unix seconds -> naive local time; missing, zero or garbage -> NaT."""
    s = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce")
    given = pd.Series([v is not None and v != 0 and v != "" for v in values], dtype=bool)
    s = s.where((s > 0) & (s < 2**40))  # beyond year 36812: not a timestamp
    out = pd.to_datetime(s, unit="s", utc=True, errors="coerce")
    _malformed("timestamp", int((given.to_numpy() & out.isna().to_numpy()).sum()))
    return out.dt.tz_convert(tz).dt.tz_localize(None).astype("datetime64[us]")


TEXT_CHUNK = 1000  # below the anonymizer's process-pool threshold: the sync runs threads, never fork


def _anon_texts(anon: AnonymizerLike, values: list, docs: list | None = None) -> list:
    """Batch-scrub the non-empty strings (in chunks); keep None/empty as they are. With `docs` (the
    deal of each text), a name found in one text of a deal is masked in its others: the texts of a
    deal go to the anonymizer in one chunk (but a deal longer than a chunk)."""
    idx = [i for i, v in enumerate(values) if isinstance(v, str) and v.strip()]
    if docs is not None:
        idx.sort(key=lambda i: (docs[i] is None, str(docs[i])))
    out: list = [v if isinstance(v, str) else None for v in values]
    for k in range(0, len(idx), TEXT_CHUNK):
        part = idx[k:k + TEXT_CHUNK]
        texts = [values[i] for i in part]
        scrubbed = anon.texts(texts) if docs is None else anon.texts(texts, [docs[i] for i in part])
        for i, s in zip(part, scrubbed):
            out[i] = s
    return out


def _json(anon: AnonymizerLike, obj: Any) -> str | None:
    return _json_many(anon, [obj])[0]


def _json_many(anon: AnonymizerLike, objs: list) -> list[str | None]:
    """JSON text of each object with every string leaf scrubbed — one `texts` batch for all of them
    (same result as `scrub_json` per object, but the NER model sees one batch instead of many calls)."""
    leaves: list[str] = []

    def collect(o: Any) -> None:
        if isinstance(o, str):
            leaves.append(o)
        elif isinstance(o, dict):
            for v in o.values():
                collect(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                collect(v)

    for o in objs:
        collect(o)
    scrubbed = iter(_anon_texts(anon, leaves) if leaves else [])

    def rebuild(o: Any) -> Any:
        if isinstance(o, str):
            return next(scrubbed)
        if isinstance(o, dict):
            return {k: rebuild(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [rebuild(v) for v in o]
        return o

    out: list[str | None] = []
    for o in objs:
        r = rebuild(o)
        out.append(None if o is None else json.dumps(r, ensure_ascii=False, sort_keys=True))
    return out


def _cf_values(cfs: Any, *, code: str | None = None, names: Sequence[str] = ()) -> list[str]:
    out: list[str] = []
    for cf in _l(cfs):
        cf = _d(cf)
        fname = str(cf.get("field_name") or "").strip().lower()
        if (code and cf.get("field_code") == code) or (names and fname in names):
            for v in _l(cf.get("values")):
                val = _d(v).get("value")
                if val is not None and str(val).strip():
                    out.append(str(val).strip())
    return out


def person_name(obj: dict) -> str:
    name = obj.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [obj.get("first_name"), obj.get("last_name")]
    return " ".join(str(p).strip() for p in parts if isinstance(p, str) and p.strip())


def _pseudo(fn, raw: str) -> str | None:
    try:
        return fn(raw)
    except Exception:  # a malformed phone/e-mail must not stop the run, nor leak raw
        return None


# -- people / companies to teach the anonymizer -----------------------------------------------
def people_of(items: Iterable[dict], role: str) -> list[tuple[str, str]]:
    return [(n, role) for n in (person_name(_d(it)) for it in items) if n]


def company_names(items: Iterable[dict]) -> list[str]:
    return [str(it["name"]).strip() for it in items
            if isinstance(it, dict) and isinstance(it.get("name"), str) and it["name"].strip()]


# -- tables -----------------------------------------------------------------------------------
def users_rows(items: list[dict], anon: AnonymizerLike) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": _ints([it.get("id") for it in items], "user_id"),
        "name": [anon.person(person_name(it)) if person_name(it) else None for it in items],
        "lang": [it.get("lang") if isinstance(it.get("lang"), str) else None for it in items],
        "is_admin": _bools([_d(it.get("rights")).get("is_admin") for it in items]),
        "is_active": _bools([_d(it.get("rights")).get("is_active", True) for it in items]),
    })


def pipelines_rows(items: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    pipes = pd.DataFrame({
        "pipeline_id": _ints([it.get("id") for it in items], "pipeline_id"),
        "name": _strs([it.get("name") for it in items], "name"),
        "sort": _ints([it.get("sort") for it in items], "sort"),
        "is_main": _bools([it.get("is_main") for it in items]),
    })
    st = [(p.get("id"), s) for p in items for s in _l(_d(p.get("_embedded")).get("statuses")) if isinstance(s, dict)]
    sid = _ints([s.get("id") for _, s in st], "status_id")
    statuses = pd.DataFrame({
        "pipeline_id": _ints([s.get("pipeline_id") or pid for pid, s in st], "pipeline_id"),
        "status_id": sid,
        "name": _strs([s.get("name") for _, s in st], "name"),
        "sort": _ints([s.get("sort") for _, s in st], "sort"),
        "type": _ints([s.get("type") for _, s in st], "type"),
        "is_won": (sid == 142).astype("boolean"),
        "is_lost": (sid == 143).astype("boolean"),
    })
    return pipes, statuses


def _party_rows(items: list[dict], anon: AnonymizerLike) -> dict[str, Any]:
    cfs = [it.get("custom_fields_values") for it in items]
    return {
        "responsible_user_id": _ints([it.get("responsible_user_id") for it in items], "responsible_user_id"),
        "phones": [[p for p in (_pseudo(anon.phone, v) for v in _cf_values(c, code="PHONE")) if p] for c in cfs],
        "emails": [[e for e in (_pseudo(anon.email, v) for v in _cf_values(c, code="EMAIL")) if e] for c in cfs],
    }


def contacts_rows(items: list[dict], anon: AnonymizerLike, tz: str) -> pd.DataFrame:
    positions = [next(iter(_cf_values(it.get("custom_fields_values"), code="POSITION",
                                      names=("должность", "position"))), None) for it in items]
    base = _party_rows(items, anon)
    return pd.DataFrame({
        "contact_id": _ints([it.get("id") for it in items], "contact_id"),
        "name": [anon.person(person_name(it)) if person_name(it) else None for it in items],
        "responsible_user_id": base["responsible_user_id"],
        "company_id": _ints([_first(_d(it.get("_embedded")).get("companies")).get("id") for it in items], "company_id"),
        "position": _anon_texts(anon, positions),
        "phones": base["phones"],
        "emails": base["emails"],
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "updated_at": local_time([it.get("updated_at") for it in items], tz),
    })


def companies_rows(items: list[dict], anon: AnonymizerLike, tz: str) -> pd.DataFrame:
    base = _party_rows(items, anon)
    cfs = [it.get("custom_fields_values") for it in items]
    return pd.DataFrame({
        "company_id": _ints([it.get("id") for it in items], "company_id"),
        "name": [anon.company(it["name"]) if isinstance(it.get("name"), str) else None for it in items],
        "responsible_user_id": base["responsible_user_id"],
        "industry": _anon_texts(anon, [next(iter(_cf_values(c, code="INDUSTRY", names=INDUSTRY_NAMES)), None)
                                       for c in cfs]),
        "city": _anon_texts(anon, [next(iter(_cf_values(c, code="CITY", names=CITY_NAMES)), None) for c in cfs]),
        "phones": base["phones"],
        "emails": base["emails"],
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "updated_at": local_time([it.get("updated_at") for it in items], tz),
    })


def leads_rows(items: list[dict], anon: AnonymizerLike, tz: str) -> pd.DataFrame:
    emb = [_d(it.get("_embedded")) for it in items]
    contacts = [[_d(c) for c in _l(e.get("contacts"))] for e in emb]
    main = [next((c.get("id") for c in cs if c.get("is_main")), cs[0].get("id") if cs else None) for cs in contacts]
    loss = [_first(e.get("loss_reason")) for e in emb]
    tags = [[str(_d(t).get("name")) for t in _l(e.get("tags")) if _d(t).get("name")] for e in emb]
    flat_tags = [t for ts in tags for t in ts]
    scrubbed = iter(_anon_texts(anon, flat_tags))
    tags = [[next(scrubbed) for _ in ts] for ts in tags]
    return pd.DataFrame({
        "lead_id": _ints([it.get("id") for it in items], "lead_id"),
        "name": _anon_texts(anon, [it.get("name") for it in items]),
        "price": _ints([it.get("price") for it in items], "price"),
        "responsible_user_id": _ints([it.get("responsible_user_id") for it in items], "responsible_user_id"),
        "pipeline_id": _ints([it.get("pipeline_id") for it in items], "pipeline_id"),
        "status_id": _ints([it.get("status_id") for it in items], "status_id"),
        "loss_reason_id": _ints([it.get("loss_reason_id") or l.get("id") for it, l in zip(items, loss)], "loss_reason_id"),
        "loss_reason": [l.get("name") if isinstance(l.get("name"), str) else None for l in loss],
        "company_id": _ints([_first(e.get("companies")).get("id") for e in emb], "company_id"),
        "main_contact_id": _ints(main, "main_contact_id"),
        "contact_ids": [[i for i in (_int_or_bad(c.get("id"))[0] for c in cs) if i is not None] for cs in contacts],
        "tags": tags,
        "custom_fields": _json_many(anon, [it.get("custom_fields_values") for it in items]),
        "created_by": _ints([it.get("created_by") for it in items], "created_by"),
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "updated_at": local_time([it.get("updated_at") for it in items], tz),
        "closed_at": local_time([it.get("closed_at") for it in items], tz),
        "closest_task_at": local_time([it.get("closest_task_at") for it in items], tz),
        "is_deleted": _bools([bool(it.get("is_deleted")) for it in items]),
    })


def notes_rows(items: list[dict], anon: AnonymizerLike, tz: str, unknown: Unknown | None = None) -> pd.DataFrame:
    params = [_d(it.get("params")) for it in items]
    types = [it.get("note_type") if isinstance(it.get("note_type"), str) else None for it in items]
    if unknown is not None:
        for t in types:
            if t and t not in NOTE_TYPES:
                unknown[f"notes.type:{t}"] += 1
    phones = [p.get("phone") for p in params]
    return pd.DataFrame({
        "note_id": _ints([it.get("id") for it in items], "note_id"),
        "lead_id": _ints([it.get("entity_id") for it in items], "lead_id"),
        "note_type": types,
        "text": _anon_texts(anon, [p.get("text") if isinstance(p.get("text"), str) else None for p in params],
                            [it.get("entity_id") for it in items]),
        "call_duration": _ints([p.get("duration") for p in params], "call_duration"),
        "call_phone": [_pseudo(anon.phone, str(ph)) if ph not in (None, "") else None for ph in phones],
        "created_by": _ints([it.get("created_by") for it in items], "created_by"),
        "responsible_user_id": _ints([it.get("responsible_user_id") for it in items], "responsible_user_id"),
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "updated_at": local_time([it.get("updated_at") for it in items], tz),
    })


def tasks_rows(items: list[dict], anon: AnonymizerLike, tz: str) -> pd.DataFrame:
    results = [_d(it.get("result")).get("text") for it in items]
    deals = [(it.get("entity_type"), it.get("entity_id")) for it in items]
    return pd.DataFrame({
        "task_id": _ints([it.get("id") for it in items], "task_id"),
        "lead_id": _ints([it.get("entity_id") for it in items], "lead_id"),
        "entity_type": _strs([it.get("entity_type") for it in items], "entity_type"),
        "task_type_id": _ints([it.get("task_type_id") for it in items], "task_type_id"),
        "text": _anon_texts(anon, [it.get("text") if isinstance(it.get("text"), str) else None for it in items],
                            deals),
        "result_text": _anon_texts(anon, [r if isinstance(r, str) else None for r in results], deals),
        "is_completed": _bools([it.get("is_completed") for it in items]),
        "complete_till": local_time([it.get("complete_till") for it in items], tz),
        "responsible_user_id": _ints([it.get("responsible_user_id") for it in items], "responsible_user_id"),
        "created_by": _ints([it.get("created_by") for it in items], "created_by"),
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "updated_at": local_time([it.get("updated_at") for it in items], tz),
    })


def _value(v: Any, key: str, field: str) -> Any:
    """value_before/after is a list of one-key dicts; find `key` anywhere in it."""
    for it in _l(v):
        inner = _d(it).get(key)
        if isinstance(inner, dict) and field in inner:
            return inner.get(field)
    return None


def events_rows(items: list[dict], anon: AnonymizerLike, tz: str, unknown: Unknown | None = None) -> pd.DataFrame:
    vb = [it.get("value_before") for it in items]
    va = [it.get("value_after") for it in items]
    if unknown is not None:
        for it in items:
            t = it.get("type")
            if isinstance(t, str) and t not in EVENT_TYPES and not _CF_EVENT.match(t):
                unknown[f"events.type:{t}"] += 1
        for v in vb + va:
            for x in _l(v):
                for k in _d(x).keys() - VALUE_KEYS:
                    unknown[f"events.value:{k}"] += 1
    sale_raw = pd.to_numeric(pd.Series([_value(v, "sale_field_value", "sale") for v in va], dtype="object"),
                             errors="coerce")
    in_range = sale_raw.abs() < 2**62
    _malformed("sale_after", int((sale_raw.notna() & ~in_range).sum()))
    sale = sale_raw.where(in_range).round().astype("Int64")
    return pd.DataFrame({
        "event_id": [None if it.get("id") is None else str(it.get("id")) for it in items],
        "type": [it.get("type") if isinstance(it.get("type"), str) else None for it in items],
        "lead_id": _ints([it.get("entity_id") for it in items], "lead_id"),
        "entity_type": _strs([it.get("entity_type") for it in items], "entity_type"),
        "created_by": _ints([it.get("created_by") for it in items], "created_by"),
        "created_at": local_time([it.get("created_at") for it in items], tz),
        "status_before": _ints([_value(v, "lead_status", "id") for v in vb], "status_before"),
        "status_after": _ints([_value(v, "lead_status", "id") for v in va], "status_after"),
        "pipeline_after": _ints([_value(v, "lead_status", "pipeline_id") for v in va], "pipeline_after"),
        "responsible_before": _ints([_value(v, "responsible_user", "id") for v in vb], "responsible_before"),
        "responsible_after": _ints([_value(v, "responsible_user", "id") for v in va], "responsible_after"),
        "sale_after": sale,
        "note_id": _ints([_value(v, "note", "id") for v in va], "note_id"),
        "value_before": _json_many(anon, vb),
        "value_after": _json_many(anon, va),
    })


def drop_keyless(df: pd.DataFrame, key: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Rows without a primary key cannot be merged; drop and count them."""
    bad = df[list(key)].isna().any(axis=1)
    n = int(bad.sum())
    return (df[~bad].reset_index(drop=True) if n else df), n
