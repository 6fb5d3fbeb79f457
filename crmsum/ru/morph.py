"""The one pymorphy3 analyser of the process (morphology for privacy, the question parser, text features)."""

from __future__ import annotations

import threading

_MORPH = None
_LOCK = threading.Lock()


def morph():
    """The shared pymorphy3 analyser (loading it takes ~0.1 s and ~15 MB, so once per process)."""
    global _MORPH
    if _MORPH is None:
        with _LOCK:
            if _MORPH is None:
                import pymorphy3

                _MORPH = pymorphy3.MorphAnalyzer()
    return _MORPH
