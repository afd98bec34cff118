"""Fixtures for the rewards tests."""
from __future__ import annotations

import dataclasses

import pytest

from rewards_testlib import SMALL, TEST_UID

from rewards.sandbox import Limits, Sandbox, detect


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox(SMALL, backend=dataclasses.replace(detect(), uid=TEST_UID))


@pytest.fixture(scope="session")
def small_limits() -> Limits:
    return SMALL
