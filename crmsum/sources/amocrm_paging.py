"""The shape of one amoCRM list page, checked: what the client pages on must be a list, and paging
must move. A server that ignores `?page=` (or sends `_embedded.<list>` as a string) would otherwise be
paged forever at the rate limit while the sync holds its lock; here it stops with one line instead."""

from __future__ import annotations

from typing import Any

from crmsum.errors import CrmsumError


def _error(message: str) -> CrmsumError:
    from crmsum.sources.amocrm import AmoError  # the client's error type; imported late (no cycle)

    return AmoError(message)


def page_items(data: Any, path: str, key: str, page: int) -> tuple[list[dict], bool]:
    """(items, has next) of one list page; a page whose shape is not a list stops the sync."""
    if data is None:
        return [], False
    if not isinstance(data, dict):
        raise _error(f"amoCRM GET {path} page {page} is not a JSON object; stopped paging")
    embedded = data.get("_embedded")
    if embedded is None:
        return [], False
    items = embedded.get(key) if isinstance(embedded, dict) else None
    if not isinstance(items, list) and not (isinstance(embedded, dict) and items is None):
        raise _error(f"amoCRM GET {path} page {page}: _embedded.{key} is not a list; stopped paging")
    items = items or []
    links = data.get("_links")
    nxt = links.get("next") if isinstance(links, dict) else None
    has_next = bool(nxt.get("href")) if isinstance(nxt, dict) else False
    return list(items), has_next and bool(items)


class PageGuard:
    """Stops paging when a page repeats an earlier one (a server that ignores `?page=` would
    otherwise be paged forever at the rate limit, holding the sync lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: dict[int, int] = {}  # fingerprint -> page number

    def check(self, page: int, items: list) -> None:
        ids = tuple(it.get("id") if isinstance(it, dict) else None for it in items)
        fp = hash(ids) if any(i is not None for i in ids) else hash(repr(items))
        first = self.seen.setdefault(fp, page)
        if first != page:
            raise _error(f"amoCRM GET {self.path}: page {page} repeats page {first} (the server ignores "
                           "?page=); stopped paging, nothing after it was synced")
