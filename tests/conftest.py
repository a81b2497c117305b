"""Settings shared by every test directory; fixtures live next to their tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# The storage contract suite asserts inside threadline.testing.
pytest.register_assert_rewrite("threadline.testing")

# No deadline: a loaded CI machine must not turn slow examples into failures.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("THREADLINE_HYPOTHESIS_PROFILE", "dev"))
