"""Sandboxed execution of untrusted code (see sandbox.py); also served over HTTP."""
from .backends import Backend, SandboxUnavailable, detect
from .client import SandboxBusy, SandboxClient
from .limits import Limits
from .sandbox import Sandbox
from .server import SandboxServer
from .verdict import Verdict

__all__ = ["Backend", "Limits", "Sandbox", "SandboxBusy", "SandboxClient", "SandboxServer",
           "SandboxUnavailable", "Verdict", "detect"]
