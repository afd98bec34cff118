"""The hostile battery (rewards/sandbox/battery.py) on every isolating backend installed
here: each program ends in the verdict its limits call for, the host is as it was (no file
outside the sandbox, no connection to a host server, no secret read, no process or cgroup
left) and the next run works. Escape markers are unique per run and removed, pass or fail."""
from __future__ import annotations

import dataclasses

import pytest

from rewards_testlib import TEST_UID, kill_sandbox_processes, run_cgroups_with_tasks

from rewards.sandbox import Sandbox
from rewards.sandbox.backends import candidate
from rewards.sandbox.battery import BATTERY, HostWatch, run_one
from rewards.sandbox.cgroups import remove_pending


@pytest.fixture(scope="module")
def watch():
    with HostWatch().active() as w:
        yield w


@pytest.fixture()
def killed_after():
    """Whatever a failing program left running is killed, so it cannot fail the next test."""
    yield
    kill_sandbox_processes()


@pytest.mark.parametrize("hostile", BATTERY, ids=[h.name for h in BATTERY])
def test_hostile_program_is_contained(hostile, each_sandbox, watch, killed_after):
    outcome = run_one(each_sandbox, hostile, watch)
    assert outcome.passed, f"{each_sandbox.backend.name}: {outcome.line()}"
    assert run_cgroups_with_tasks() == []


def test_battery_is_at_least_twenty_programs():
    assert len(BATTERY) >= 25


def test_the_battery_catches_a_sandbox_that_does_not_contain(watch, killed_after, capsys):
    """Backend "none" (rlimits and a cgroup only) must fail the escape programs: the battery
    tests containment, not just that programs end."""
    box = Sandbox(dataclasses.replace(BATTERY[0].limits),
                  backend=dataclasses.replace(candidate("none"), uid=TEST_UID))
    assert "WITHOUT namespace isolation" in capsys.readouterr().err
    escapes = {h.name: h for h in BATTERY}
    for name in ("read_root_and_project_files", "connect_to_host_server", "write_outside_workdir"):
        outcome = run_one(box, escapes[name], watch)
        assert not outcome.passed, outcome.line()
        assert outcome.verdict.backend == "none" and outcome.verdict.isolated is False
    assert not any(m.exists() for m in watch.markers())  # the escapee's marker is cleaned up


def test_every_run_cgroup_is_removed():
    assert remove_pending(wait_s=15.0)
