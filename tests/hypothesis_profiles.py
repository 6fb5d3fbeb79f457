"""Hypothesis profiles: derandomized in CI, random and larger on demand.

    HYPOTHESIS_PROFILE=ci        (default) fixed examples per test, no example database: every run of the
                                 suite checks the same inputs, so a red CI is never a coin toss
    HYPOTHESIS_PROFILE=dev       random examples, saved failures replayed (.hypothesis/)
    HYPOTHESIS_PROFILE=thorough  random, ten times the examples: run before a release or after touching
                                 privacy/ or the parsers

Tests state their example budget as `examples(n)` (n = the CI budget), so a profile scales it. A
failure found by dev or thorough is pinned in the test as an explicit `@example`.
"""

from __future__ import annotations

import os

from hypothesis import settings

SCALE = {"ci": 1.0, "dev": 1.0, "thorough": 10.0}
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in SCALE:
    raise SystemExit(f"HYPOTHESIS_PROFILE={PROFILE!r}: choose one of {', '.join(SCALE)}")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """The example budget of a test under the active profile (`n` under ci)."""
    return max(1, round(n * SCALE[PROFILE]))
