"""Hostile payloads for the amoCRM emulator: what a broken proxy or a buggy API version sends.

Tests switch modes on per list while the emulator serves (`emu.hostile = {"float_duration": {"notes"}}`,
`"*"` for every list); the sync client then meets them over real HTTP:

- `ignore_paging`: every `?page=` gets page 1 again, with a `next` link (a server that ignores paging);
- `string_embedded`: `_embedded.<list>` is a string instead of a list;
- `float_duration`: call notes carry `"duration": 12.5`;
- `huge_ids`: `responsible_user_id` and `created_by` are above 2^64 (outside any int64 column).

Pages with hostile numbers are serialized with the stdlib (orjson refuses integers beyond 64 bits).
"""

from __future__ import annotations

import json
from typing import Any

MODES = ("ignore_paging", "string_embedded", "float_duration", "huge_ids")
HUGE_ID = 2**64 + 12345
FLOAT_DURATION = 12.5


def active(hostile: dict[str, set[str]], mode: str, entity: str) -> bool:
    """Is `mode` switched on for this list (or for every list with "*")?"""
    targets = hostile.get(mode) or set()
    return entity in targets or "*" in targets


def page_asked(hostile: dict[str, set[str]], entity: str, page: int) -> int:
    """The page the emulator serves for a requested page."""
    return 1 if active(hostile, "ignore_paging", entity) else page


def mutate(hostile: dict[str, set[str]], entity: str, payload: dict) -> dict:
    """The list page with this list's value faults applied (items are copies)."""
    items = payload["_embedded"][entity]
    if active(hostile, "float_duration", entity):
        for it in items:
            params = it.get("params")
            if isinstance(params, dict) and "duration" in params:
                it["params"] = dict(params, duration=FLOAT_DURATION)
    if active(hostile, "huge_ids", entity):
        for it in items:
            it["responsible_user_id"] = HUGE_ID
            it["created_by"] = HUGE_ID
    if active(hostile, "string_embedded", entity):
        payload["_embedded"] = {entity: f"{len(items)} {entity} (see the web interface)"}
    return payload


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
