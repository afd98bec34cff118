"""Fixtures for the rewards tests."""
from __future__ import annotations

import pytest
from rewards_testlib import SMALL

from rewards.sandbox import Limits, Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox(SMALL)


@pytest.fixture(scope="session")
def small_limits() -> Limits:
    return SMALL
