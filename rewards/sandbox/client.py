"""Client for `reforge sandbox serve`: the same `run` as Sandbox, over HTTP.

A 503 (server full) is retried with exponential backoff until `wait_s` has passed, so many
reward workers can share one sandbox host without overrunning it.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from .limits import Limits
from .verdict import Verdict


class SandboxBusy(RuntimeError):
    """The server stayed full for longer than the client was willing to wait."""


class SandboxClient:
    def __init__(self, url: str, wait_s: float = 60.0, request_timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.wait_s = wait_s
        self.request_timeout_s = request_timeout_s

    def run(self, code: str, files: dict[str, str] | None = None, stdin: str = "",
            limits: Limits | None = None) -> Verdict:
        body: dict[str, Any] = {"code": code, "files": files or {}, "stdin": stdin}
        if limits is not None:
            body["limits"] = limits.to_dict()
        data = json.dumps(body).encode()
        deadline = time.monotonic() + self.wait_s
        delay = 0.05
        while True:
            req = urllib.request.Request(f"{self.url}/run", data=data,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
                    return Verdict.from_dict(json.loads(resp.read()))
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")
                if e.code != 503:
                    raise RuntimeError(f"sandbox server {self.url} answered {e.code}: {detail}") from e
            if time.monotonic() + delay > deadline:
                raise SandboxBusy(f"sandbox server {self.url} stayed busy for {self.wait_s}s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/health", timeout=10) as resp:
            return json.loads(resp.read())
