"""Joining or starting a Ray cluster the same way from a script, a test and `ray job submit`."""
from __future__ import annotations

import os


def init_ray(address: str = "", num_cpus: int | None = None, env_vars: dict[str, str] | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS, which `ray job submit` sets); else start a local
    head bound to 127.0.0.1 with no dashboard."""
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": env_vars} if env_vars else None
    target = address or os.environ.get("RAY_ADDRESS", "")
    if target:
        ray.init(address=target, runtime_env=runtime_env, log_to_driver=True)
    else:
        # Logical CPUs: generators, trainer and reward actors take turns on the real cores.
        # The raylet starts workers at nice 15 by default; ours do the run's compute, so they
        # must not yield to unrelated processes on the machine.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=num_cpus or max(4, os.cpu_count() or 1), include_dashboard=False,
                 runtime_env=runtime_env,
                 _node_ip_address="127.0.0.1")
