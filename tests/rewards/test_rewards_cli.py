"""The user-facing commands, run as a user would: `python -m rewards.cli ...`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewards.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_sandbox_run_prints_a_one_line_verdict(tmp_path):
    prog = tmp_path / "loop.py"
    prog.write_text("print('start', flush=True)\nwhile True:\n    pass\n")
    out = cli("sandbox", "run", "--timeout", "1", str(prog))
    assert out.returncode == 1
    verdict = json.loads(out.stdout)
    assert out.stdout.count("\n") == 1
    assert verdict["stdout"] == "start\n" and verdict["resource"] in ("cpu_time", "wall_time")
    ok = tmp_path / "ok.py"
    ok.write_text("print(2 ** 10)\n")
    out = cli("sandbox", "run", str(ok))
    assert out.returncode == 0 and json.loads(out.stdout)["stdout"] == "1024\n"


def test_sandbox_doctor_runs_the_battery_live_with_a_line_per_program():
    from rewards.sandbox.battery import BATTERY

    out = cli("sandbox", "doctor", "--backend", "unshare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "backend bwrap: contains its probe" in out.stdout or "bubblewrap: not installed" in out.stdout
    assert "backend unshare: contains its probe" in out.stdout
    for hostile in BATTERY:
        assert f"PASS {hostile.name} " in out.stdout
    assert f"unshare: {len(BATTERY)}/{len(BATTERY)} contained" in out.stdout
    quick = json.loads(cli("sandbox", "doctor", "--no-battery", "--json").stdout)
    assert quick["selected"] in ("bwrap", "unshare") and quick["battery"] == {}
    assert "kernel" in quick["features"] and "cgroup" in quick["features"]


def test_rewards_score_writes_scores_and_info(tmp_path):
    rows = tmp_path / "rows.jsonl"
    base = {"messages": [{"role": "user", "content": "2+2?"}], "reasoning": "on",
            "reward": {"type": "math", "answer": "4"}}
    rows.write_text("\n".join(json.dumps(r) for r in [
        {**base, "id": "good", "completion": "<think>2+2</think>\\boxed{4}"},
        {**base, "id": "bad", "completion": "<think>2+2</think>\\boxed{5}"},
        {**base, "id": "ref", "messages": base["messages"] + [
            {"role": "assistant", "content": "<think>sum</think>The answer is \\boxed{4}."}]},
    ]) + "\n")
    out_path = tmp_path / "out.jsonl"
    out = cli("rewards", "score", "math", "--input", str(rows), "--output", str(out_path))
    assert out.returncode == 0, out.stderr
    scored = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [(s["id"], s["score"]) for s in scored] == [("good", 1.0), ("bad", 0.0), ("ref", 1.0)]
    assert scored[1]["info"]["extracted"] == "5"
    assert "mean 0.6667" in out.stderr


def test_rewards_score_names_the_bad_line(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "q"}], "reward": {"type": "math", '
                    '"answer": "1"}, "completion": "1"}\n{"messages": [], "completion": "x"}\n')
    out = cli("rewards", "score", "math", "--input", str(rows))
    assert out.returncode != 0 and f"{rows}:2: key 'messages'" in out.stderr


def test_rewards_check_passes_a_good_plugin_and_fails_a_bad_one():
    good = cli("rewards", "check", "format", "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["ok"] is True
    bad = subprocess.run([sys.executable, "-m", "rewards.cli", "rewards", "check",
                          "rewards_plugins:returns_none"], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 1 and "wrong return type" in bad.stdout and "FAILED" in bad.stdout
