"""Fixtures for the rewards tests: sandboxes on each isolating backend, and a guard that
removes every process and cgroup the sandbox tests made, whether they passed or failed."""
from __future__ import annotations

import dataclasses

import pytest

from rewards_testlib import SMALL, TEST_UID, kill_sandbox_processes

from rewards.sandbox import Limits, Sandbox, detect
from rewards.sandbox.backends import checked_backend
from rewards.sandbox.cgroups import remove_pending

ISOLATING = ("bwrap", "unshare")


def backend_sandbox(name: str) -> Sandbox:
    """A sandbox on backend `name` as TEST_UID; skipped only when its tool is not installed,
    failed when it is installed but does not contain its probe."""
    backend, problems = checked_backend(name)
    if problems and "not installed" in problems[0]:
        pytest.skip(f"{name}: {problems[0]}")
    assert not problems, f"{name} does not contain code here: {problems}"
    return Sandbox(SMALL, backend=dataclasses.replace(backend, uid=TEST_UID))


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The backend `auto` picks (bwrap where installed)."""
    return Sandbox(SMALL, backend=dataclasses.replace(detect(), uid=TEST_UID))


@pytest.fixture(scope="session", params=ISOLATING)
def each_sandbox(request) -> Sandbox:
    return backend_sandbox(request.param)


@pytest.fixture(scope="session")
def small_limits() -> Limits:
    return SMALL


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the session: no process of the tests' uid, no run cgroup left."""
    yield
    leftovers = kill_sandbox_processes()
    assert remove_pending(wait_s=15.0), "run cgroups could not be removed"
    assert not leftovers, f"sandbox processes outlived the tests: {leftovers}"
