"""Hypothesis profiles for the fuzz tests.

"ci" (the default) is the short run of the test suite: a fixed, modest number of examples,
derandomized so that every run tries the same inputs, no example database written anywhere, and
no per-example deadline (a loaded CI machine is slow; bench/fuzz.py judges time per input).
HYPOTHESIS_PROFILE=long runs a hundred times as many, with fresh random inputs each time.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=300, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=30_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
