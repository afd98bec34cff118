"""Finding a reward by name: the decorator registry, `package.module:function`, and the
`reforge.rewards` entry-point group third-party packages ship rewards through."""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

ENTRY_POINT_GROUP = "reforge.rewards"


@dataclass(frozen=True)
class RewardFn:
    """A reward and how to call it.

    kind: "sync" (sample -> float | RewardResult), "async" (a coroutine function of the
    same shape) or "batched" (list[sample] -> list[float | RewardResult]).
    runs_in: "process" (default: each call in a worker process that is killed at its
    timeout, see isolation.py) or "caller" (on a thread of the caller: only for rewards that
    kill their own overrunning work, like math's verifier processes and code's sandbox, or
    that hold a model that must be loaded once).
    """

    name: str
    fn: Callable[..., Any]
    kind: str
    runs_in: str = "process"

    def __post_init__(self) -> None:
        if self.kind not in ("sync", "async", "batched"):
            raise ValueError(f"reward {self.name!r}: kind must be sync, async or batched, "
                             f"got {self.kind!r}")
        if self.runs_in not in ("process", "caller"):
            raise ValueError(f"reward {self.name!r}: runs_in must be 'process' or 'caller', "
                             f"got {self.runs_in!r}")


_REGISTRY: dict[str, RewardFn] = {}


def _kind_of(fn: Callable[..., Any], batched: bool) -> str:
    if batched:
        return "batched"
    target = fn.__call__ if not inspect.isfunction(fn) and hasattr(fn, "__call__") else fn
    return "async" if inspect.iscoroutinefunction(target) else "sync"


def reward(name: str | None = None, *, batched: bool = False,
           runs_in: str = "process") -> Callable[[Callable], Callable]:
    """Register a reward under `name` (default: the function's name)."""
    def decorate(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key].fn is not fn:
            raise ValueError(f"reward {key!r} is already registered by {_REGISTRY[key].fn!r}")
        _REGISTRY[key] = RewardFn(key, fn, _kind_of(fn, batched), runs_in)
        fn.reforge_batched = batched  # so a `module:function` reference keeps the form
        fn.reforge_runs_in = runs_in
        return fn
    return decorate


def as_reward_fn(obj: Any, name: str) -> RewardFn:
    if isinstance(obj, RewardFn):
        return obj
    if not callable(obj):
        raise TypeError(f"reward {name!r} resolved to {type(obj).__name__}, which is not callable")
    return RewardFn(name, obj, _kind_of(obj, getattr(obj, "reforge_batched", False)),
                    getattr(obj, "reforge_runs_in", "process"))


def import_target(name: str, kind: str = "reward") -> Any:
    """The object `package.module:attr` names; errors name the `kind` of plugin (reward, tool)."""
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LookupError(f"{kind} {name!r}: cannot import module {module_name!r}: {e}") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LookupError(f"{kind} {name!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def get_reward(name: str) -> RewardFn:
    """Resolve a name: registered (built-ins included), `package.module:function`, entry point."""
    import rewards.builtin  # noqa: F401  (registers the built-in rewards)

    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return as_reward_fn(import_target(name), name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return as_reward_fn(ep.load(), name)
    raise LookupError(f"unknown reward {name!r}: not registered (known: {sorted(_REGISTRY)}), "
                      f"not a 'package.module:function', not in entry-point group "
                      f"{ENTRY_POINT_GROUP!r}")


def registered() -> list[str]:
    import rewards.builtin  # noqa: F401

    return sorted(_REGISTRY)
