"""Sandboxed execution of untrusted code (see sandbox.py); also served over HTTP."""
from .backends import Backend, SandboxUnavailable, detect
from .limits import Limits
from .sandbox import Sandbox
from .verdict import Verdict

__all__ = ["Backend", "Limits", "Sandbox", "SandboxUnavailable", "Verdict", "detect"]
