"""Finding a tool by name, the way rewards are found (rewards/registry.py): the `@tool`
decorator registry (built-ins included), `package.module:function`, and the `reforge.tools`
entry-point group that third-party packages ship tools through.

A tool is a function of keyword arguments returning a string (or anything JSON-serialisable),
shown to the policy as the observation. Its description and JSON-schema parameters are what
the chat template (or the `<AVAILABLE_TOOLS>` block) shows the policy; a plain function found
by `module:function` or an entry point gets them from its docstring and annotations.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from rewards.registry import import_target

ENTRY_POINT_GROUP = "reforge.tools"
RUNS_IN = ("process", "caller")
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Tool:
    """A callable tool and how it is described and run.

    runs_in: "process" (default: each call in a killable worker process, so a hung or
    crashing tool is stopped at its timeout) or "caller" (a thread of the caller: only for
    tools that bound their own work, like the calculator and the sandboxed Python tool).
    """

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    runs_in: str = "process"
    timeout_s: float | None = None  # None: the environment's tool_timeout_s

    def __post_init__(self) -> None:
        if self.runs_in not in RUNS_IN:
            raise ValueError(f"tool {self.name!r}: runs_in must be one of {RUNS_IN}, got {self.runs_in!r}")

    def spec(self) -> dict[str, Any]:
        """`{"name", "description", "parameters"}` (the `<AVAILABLE_TOOLS>` form)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def openai_spec(self) -> dict[str, Any]:
        """The form chat templates take through `apply_chat_template(tools=...)`."""
        return {"type": "function", "function": self.spec()}


_REGISTRY: dict[str, Tool] = {}


def schema_from_signature(fn: Callable[..., Any]) -> dict[str, Any]:
    """A JSON schema of `fn`'s keyword arguments from its annotations (untyped: any value)."""
    props: dict[str, Any] = {}
    required = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if not isinstance(p.annotation, str) else \
            {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}.get(p.annotation)
        props[p.name] = {"type": _JSON_TYPES[ann]} if ann in _JSON_TYPES else {}
        if p.default is p.empty:
            required.append(p.name)
    return {"type": "object", "properties": props, "required": required}


def as_tool(obj: Any, name: str) -> Tool:
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise TypeError(f"tool {name!r} resolved to {type(obj).__name__}, which is not callable")
    registered = getattr(obj, "reforge_tool", None)
    if isinstance(registered, Tool):
        return registered
    doc = inspect.getdoc(obj) or ""
    return Tool(name, obj, doc.split("\n\n")[0], schema_from_signature(obj))


def tool(name: str | None = None, *, description: str | None = None, parameters: dict[str, Any] | None = None,
         runs_in: str = "process", timeout_s: float | None = None) -> Callable[[Callable], Callable]:
    """Register a tool under `name` (default: the function's name)."""
    def decorate(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key].fn is not fn:
            raise ValueError(f"tool {key!r} is already registered by {_REGISTRY[key].fn!r}")
        doc = inspect.getdoc(fn) or ""
        entry = Tool(key, fn, description if description is not None else doc.split("\n\n")[0],
                     parameters or schema_from_signature(fn), runs_in, timeout_s)
        _REGISTRY[key] = entry
        fn.reforge_tool = entry  # a `module:function` reference or entry point keeps the settings
        return fn
    return decorate


def get_tool(name: str) -> Tool:
    """Resolve a name: registered (built-ins included), `package.module:function`, entry point.
    A `module:function` tool is named by its function's name (that is what the policy calls)."""
    import rl.tools.builtin  # noqa: F401  (registers the built-in tools)

    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return as_tool(import_target(name, "tool"), name.rpartition(":")[2].rpartition(".")[2])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            found = as_tool(ep.load(), name)
            return found if found.name == name else Tool(name, found.fn, found.description, found.parameters,
                                                         found.runs_in, found.timeout_s)
    raise LookupError(f"unknown tool {name!r}: not registered (known: {sorted(_REGISTRY)}), not a "
                      f"'package.module:function', not in entry-point group {ENTRY_POINT_GROUP!r}")


def registered() -> list[str]:
    import rl.tools.builtin  # noqa: F401

    return sorted(_REGISTRY)
