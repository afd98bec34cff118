"""`reforge sandbox serve`: one sandbox host shared by reward workers on other nodes.

POST /run {"code", "files"?, "stdin"?, "limits"?} -> a Verdict as JSON. At most
`max_concurrency` programs run at once; a request beyond that is answered 503 at once
(with Retry-After) rather than queued, so callers back off instead of piling up.
Requested limits are capped by the server's own.
"""
from __future__ import annotations

import json
import threading
from dataclasses import fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .limits import Limits
from .sandbox import Sandbox

MAX_BODY = 8 * 1024 * 1024


def capped_limits(requested: dict[str, Any], ceiling: Limits) -> Limits:
    """The requested limits, none above the server's."""
    base = ceiling.to_dict()
    merged = Limits.from_dict({**base, **requested}).to_dict()
    return Limits(**{f.name: min(merged[f.name], base[f.name]) for f in fields(Limits)})


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0,
                 max_concurrency: int = 2) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.sandbox = sandbox
        self.max_concurrency = max_concurrency
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.running = 0
        self.rejected = 0
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test and CLI output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/health":
            return self._reply(404, {"error": f"no such path {self.path!r}; try POST /run"})
        srv = self.server
        self._reply(200, {"backend": srv.sandbox.backend.name,
                          "isolated": srv.sandbox.backend.isolated, "running": srv.running,
                          "max_concurrency": srv.max_concurrency, "rejected": srv.rejected,
                          "limits": srv.sandbox.limits.to_dict()})

    def do_POST(self) -> None:
        if self.path != "/run":
            return self._reply(404, {"error": f"no such path {self.path!r}; try POST /run"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._reply(413, {"error": f"request body over {MAX_BODY} bytes"})
        try:
            req = json.loads(self.rfile.read(length))
            if not isinstance(req, dict) or not isinstance(req.get("code"), str):
                raise ValueError("body must be a JSON object with a string 'code'")
            limits = capped_limits(req.get("limits") or {}, self.server.sandbox.limits)
        except (ValueError, TypeError) as e:
            return self._reply(400, {"error": str(e)})
        srv = self.server
        if not srv.slots.acquire(blocking=False):
            with srv.lock:
                srv.rejected += 1
            return self._reply(503, {"error": "sandbox busy"}, {"Retry-After": "1"})
        try:
            with srv.lock:
                srv.running += 1
            verdict = srv.sandbox.run(req["code"], files=req.get("files"),
                                      stdin=req.get("stdin", ""), limits=limits)
        except ValueError as e:
            return self._reply(400, {"error": str(e)})
        finally:
            with srv.lock:
                srv.running -= 1
            srv.slots.release()
        self._reply(200, verdict.to_dict())
