"""`rayStartParams` checked by Ray's own `ray start` option parser.

KubeRay turns each entry into a `ray start` flag: "true"/"false" values become a bare
flag or nothing (except for options whose value may itself be true/false), every other
value becomes `--key=value`. Parsing those flags with `ray.scripts.scripts.start` (a
click command) rejects unknown options and values of the wrong type exactly as the pod's
`ray start` would, but before the pod exists.
"""
from __future__ import annotations

import json

# Options whose argument may be the literal true/false (KubeRay's convertParamMap keeps them).
VALUE_OPTIONS = ("log-color", "include-dashboard")


def to_flags(params: dict[str, str]) -> list[str]:
    flags = []
    for key, value in params.items():
        if str(value).lower() in ("true", "false") and key not in VALUE_OPTIONS:
            if str(value).lower() == "true":
                flags.append(f"--{key}")
        else:
            flags.append(f"--{key}={value}")
    return flags


def check_ray_start_params(params: dict[str, str]) -> dict[str, str]:
    """Problems by key: {} when `ray start` would accept every entry."""
    import click
    from ray.scripts.scripts import start

    problems: dict[str, str] = {}
    for key, value in params.items():  # one at a time, so each problem names its own key
        try:
            start.make_context("ray start", to_flags({key: value}), resilient_parsing=False)
        except click.NoSuchOption as e:
            hint = f" (did you mean {', '.join(e.possibilities)}?)" if e.possibilities else ""
            problems[key] = f"`ray start` has no option --{key}{hint}"
        except click.UsageError as e:
            problems[key] = f"`ray start --{key}` rejects {value!r}: {e.format_message()}"
        if key == "resources" and key not in problems:
            try:
                if not isinstance(json.loads(value), dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                problems[key] = f"`ray start --resources` needs a JSON object such as '{{\"TPU\": 4}}': {e}"
    return problems
