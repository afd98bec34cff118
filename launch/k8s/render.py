"""KubeRay RayJob / RayCluster manifests for a reforge recipe.

The image must hold the repository at `Shape.workdir` with reforge installed (see
launch/README.md); the entrypoint runs the recipe from there, so the paths in a recipe's
arguments are the repository's. Worker groups are sized from the resolved config: a
config that asks for GPUs (generator engines + policy ranks) gets that many GPUs in
whole nodes of `gpus_per_worker` (or `gpus` overrides it); a CPU config gets `workers`
CPU pods.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..recipe_config import gpus_needed
from .schema import API_VERSION


@dataclass
class Shape:
    """Pods of the cluster; quantities are Kubernetes strings ("8", "500m", "64Gi")."""

    name: str
    image: str
    ray_version: str = "2.60.0"  # must match the image's Ray; token auth needs >= 2.52
    workdir: str = "/workspace/reforge"  # the repository inside the image
    head_cpus: str = "4"
    head_memory: str = "16Gi"
    head_schedules_work: bool = True  # False: `num-cpus: 0` on the head, actors go to workers
    workers: int = 1  # pods in the worker group (ignored when the config asks for GPUs)
    worker_cpus: str = "8"
    worker_memory: str = "32Gi"
    gpus_per_worker: int = 8  # GPU nodes: whole nodes of this many GPUs
    gpus: int = -1  # GPUs in all; -1 = what the config asks for
    shm: str = "8Gi"  # /dev/shm (Ray's object store, NCCL, vLLM)
    data_pvc: str = ""  # a ReadWriteMany claim mounted at /data for models, data and runs
    env: dict[str, str] = field(default_factory=dict)


def _container(shape: Shape, name: str, cpus: str, memory: str, gpus: int) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": cpus, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    mounts = [{"name": "shm", "mountPath": "/dev/shm"}]
    if shape.data_pvc:
        mounts.append({"name": "data", "mountPath": "/data"})
    env = {"RAY_worker_niceness": "0", **({"REFORGE_HOME": "/data/reforge", "REFORGE_RUNS": "/data/runs"}
                                         if shape.data_pvc else {}), **shape.env}
    return {"name": name, "image": shape.image, "workingDir": shape.workdir,
            "resources": {"requests": {"cpu": cpus, "memory": memory}, "limits": limits},
            "env": [{"name": k, "value": v} for k, v in env.items()], "volumeMounts": mounts}


def _pod(shape: Shape, container: dict[str, Any], gpu: bool) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shape.shm}}]
    if shape.data_pvc:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": shape.data_pvc}})
    spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"spec": spec}


def cluster_spec(shape: Shape, cfg: dict[str, Any]) -> dict[str, Any]:
    gpus = gpus_needed(cfg) if shape.gpus < 0 else shape.gpus
    head_params = {"dashboard-host": "0.0.0.0"}
    if not shape.head_schedules_work:
        head_params["num-cpus"] = "0"
    head = {"rayStartParams": head_params,
            "template": _pod(shape, _container(shape, "ray-head", shape.head_cpus, shape.head_memory, 0), False)}
    if gpus:
        replicas, per_pod, group = math.ceil(gpus / shape.gpus_per_worker), shape.gpus_per_worker, "gpu-workers"
    else:
        replicas, per_pod, group = shape.workers, 0, "cpu-workers"
    worker = {"groupName": group, "replicas": replicas, "minReplicas": replicas, "maxReplicas": replicas,
              "rayStartParams": {},
              "template": _pod(shape, _container(shape, "ray-worker", shape.worker_cpus, shape.worker_memory, per_pod),
                               bool(per_pod))}
    return {"rayVersion": shape.ray_version, "authOptions": {"mode": "token"}, "enableInTreeAutoscaling": False,
            "headGroupSpec": head, "workerGroupSpecs": [worker]}


def entrypoint(shape: Shape, recipe: str, args: list[str]) -> str:
    """A shell command (the Jobs API runs it with `sh -c`), from the repository in the image."""
    return f"cd {shlex.quote(shape.workdir)} && {shlex.join(['python', recipe, *args])}"


def rayjob(shape: Shape, recipe: str, args: list[str], cfg: dict[str, Any]) -> dict[str, Any]:
    """A RayJob: KubeRay creates the cluster, submits the recipe, deletes the cluster after it."""
    return {"apiVersion": API_VERSION, "kind": "RayJob", "metadata": {"name": shape.name},
            "spec": {"entrypoint": entrypoint(shape, recipe, args), "submissionMode": "K8sJobMode",
                     "shutdownAfterJobFinishes": True, "ttlSecondsAfterFinished": 600, "backoffLimit": 0,
                     "rayClusterSpec": cluster_spec(shape, cfg)}}


def raycluster(shape: Shape, cfg: dict[str, Any]) -> dict[str, Any]:
    """A long-lived RayCluster for interactive use (`ray job submit` through a port-forward)."""
    return {"apiVersion": API_VERSION, "kind": "RayCluster", "metadata": {"name": shape.name},
            "spec": cluster_spec(shape, cfg)}
