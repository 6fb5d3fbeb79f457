"""One root for expected failures: the CLI catches `CrmsumError` once and prints its message as one line.

Raise a subclass with a one-line, actionable message (what happened and what to do); anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CrmsumError(Exception):
    """An expected failure the user can act on (bad input, unreachable endpoint, missing data)."""
