"""Check KubeRay manifests before anything is applied.

Three layers, in the order the cluster would apply them: the strict CRD schema (unknown
keys, types, required keys, quantities), the KubeRay operator's own admission rules that
bite in practice (names, replica counts, submission mode, token auth needing Ray >= 2.52,
runtimeEnvYAML), and `rayStartParams` parsed by Ray's `ray start`. Every problem names the
key it is about, as a path such as `spec.rayClusterSpec.workerGroupSpecs[0].template`.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .ray_start import check_ray_start_params
from .schema import API_VERSION, CRD_FILES, strict_schema

# Operator limits (kuberay ray-operator/controllers/ray/utils): 63 minus the longest service
# suffix "-serve-svc" for a cluster; a RayJob's cluster adds 6 more characters.
MAX_NAME = {"RayCluster": 53, "RayJob": 47}
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
TOKEN_AUTH_MIN_RAY = (2, 52, 0)
RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")


@dataclass(frozen=True)
class Problem:
    path: str  # the key, e.g. "spec.entrypoint" or "spec.rayClusterSpec.workerGroupSpecs[0].replicas"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def key_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _schema_problems(doc: dict[str, Any], kind: str) -> list[Problem]:
    from jsonschema import Draft7Validator

    problems = []
    for err in Draft7Validator(strict_schema(kind)).iter_errors(doc):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = list(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(Problem(key_path(path + [key]), f"unknown key{hint}; the {kind} schema has no such field"))
        elif err.validator == "required":
            missing = re.match(r"'([^']+)'", err.message)
            problems.append(Problem(key_path(path + ([missing.group(1)] if missing else [])), "required key is missing"))
        elif err.validator == "pattern" and err.schema.get("x-kubernetes-int-or-string"):
            problems.append(Problem(key_path(path), f"{err.instance!r} is not a Kubernetes quantity "
                                                    "(e.g. 8, '500m', '64Gi', '1.5')"))
        else:
            problems.append(Problem(key_path(path), err.message))
    return sorted(set(problems), key=lambda p: p.path)


def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else None


def _containers(group: dict[str, Any]) -> list[Any]:
    return group.get("template", {}).get("spec", {}).get("containers", [])


def _group_problems(group: dict[str, Any], at: str, label: str) -> list[Problem]:
    problems = []
    if not _containers(group):
        problems.append(Problem(f"{at}.template.spec.containers", f"{label} needs at least one container (the Ray container)"))
    params = group.get("rayStartParams", {})
    if group.get("resources") and any(params.get(k) for k in RESOURCE_PARAMS):
        problems.append(Problem(f"{at}.resources", f"{label}: set resources either in rayStartParams or in `resources`, not both"))
    if "labels" in params:
        problems.append(Problem(f"{at}.rayStartParams.labels", f"{label}: not supported, use the group's top-level `labels`"))
    for key, message in check_ray_start_params({k: v for k, v in params.items() if k != "labels"}).items():
        problems.append(Problem(f"{at}.rayStartParams.{key}", message))
    return problems


def cluster_spec_problems(spec: dict[str, Any], at: str) -> list[Problem]:
    """KubeRay's RayCluster admission rules (ValidateRayClusterSpec and the webhook's)."""
    problems = _group_problems(spec.get("headGroupSpec", {}), f"{at}.headGroupSpec", "the head group")
    names: set[str] = set()
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        g = f"{at}.workerGroupSpecs[{i}]"
        name = group.get("groupName", "")
        if name in names:
            problems.append(Problem(f"{g}.groupName", f"worker group names must be unique ({name!r} repeats)"))
        names.add(name)
        problems += _group_problems(group, g, f"worker group {name!r}")
        lo, hi = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        for key in ("replicas", "minReplicas", "maxReplicas"):
            if group.get(key, 0) < 0:
                problems.append(Problem(f"{g}.{key}", f"must not be negative (got {group[key]})"))
        if lo > hi:
            problems.append(Problem(f"{g}.minReplicas", f"minReplicas {lo} is greater than maxReplicas {hi}"))
        elif "replicas" in group and not lo <= group["replicas"] <= hi:
            problems.append(Problem(f"{g}.replicas", f"replicas {group['replicas']} is outside "
                                                      f"[minReplicas {lo}, maxReplicas {hi}]; KubeRay would clamp it"))
        if group.get("numOfHosts", 1) < 1:
            problems.append(Problem(f"{g}.numOfHosts", "must be at least 1"))
    if spec.get("authOptions", {}).get("mode") == "token":
        version = _version(spec.get("rayVersion", ""))
        if version is None:
            problems.append(Problem(f"{at}.rayVersion", "authOptions.mode is 'token': set rayVersion (2.52.0 or later)"))
        elif version < TOKEN_AUTH_MIN_RAY:
            problems.append(Problem(f"{at}.rayVersion", f"authOptions.mode is 'token' but Ray {spec['rayVersion']} "
                                                        "predates token auth (2.52.0 or later)"))
    return problems


def rayjob_spec_problems(spec: dict[str, Any]) -> list[Problem]:
    """KubeRay's RayJob admission rules (ValidateRayJobSpec) plus the submission mode's values."""
    problems = []
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        problems.append(Problem("spec.submissionMode", f"{mode!r} is not one of {', '.join(SUBMISSION_MODES)}"))
    if mode != "InteractiveMode" and not spec.get("entrypoint", "").strip():
        problems.append(Problem("spec.entrypoint", f"required in {mode}: the command the job runs"))
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        problems.append(Problem("spec.suspend", "a RayJob that keeps its cluster (shutdownAfterJobFinishes false) cannot be suspended"))
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if ttl < 0:
        problems.append(Problem("spec.ttlSecondsAfterFinished", "must not be negative"))
    elif ttl > 0 and not spec.get("shutdownAfterJobFinishes"):
        problems.append(Problem("spec.ttlSecondsAfterFinished", "needs shutdownAfterJobFinishes: true"))
    selector = spec.get("clusterSelector", {})
    if not spec.get("rayClusterSpec") and not selector:
        problems.append(Problem("spec.rayClusterSpec", "one of rayClusterSpec or clusterSelector must be set"))
    if selector and not selector.get("ray.io/cluster"):
        problems.append(Problem("spec.clusterSelector", "needs the key 'ray.io/cluster' naming the cluster"))
    if mode == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
        problems.append(Problem("spec.backoffLimit", "InteractiveMode does not retry: leave backoffLimit at 0"))
    if mode == "SidecarMode":
        for key in ("submitterPodTemplate", "submitterConfig", "clusterSelector"):
            if spec.get(key):
                problems.append(Problem(f"spec.{key}", "not supported in SidecarMode"))
    if spec.get("activeDeadlineSeconds", 1) <= 0:
        problems.append(Problem("spec.activeDeadlineSeconds", "must be a positive number of seconds"))
    if spec.get("backoffLimit", 0) < 0:
        problems.append(Problem("spec.backoffLimit", "must not be negative"))
    if "runtimeEnvYAML" in spec:
        try:
            env = yaml.safe_load(spec["runtimeEnvYAML"])
            if env is not None and not isinstance(env, dict):
                raise yaml.YAMLError("not a mapping")
        except yaml.YAMLError as e:
            problems.append(Problem("spec.runtimeEnvYAML", f"not a YAML mapping: {e}"))
    if spec.get("rayClusterSpec"):
        problems += cluster_spec_problems(spec["rayClusterSpec"], "spec.rayClusterSpec")
    return problems


def validate_manifest(doc: Any) -> list[Problem]:
    """Every problem with one RayJob or RayCluster document; [] when it would be admitted."""
    if not isinstance(doc, dict):
        return [Problem("(document)", "expected a mapping (a Kubernetes object)")]
    kind = doc.get("kind")
    if kind not in CRD_FILES:
        return [Problem("kind", f"{kind!r}: expected one of {', '.join(sorted(CRD_FILES))}")]
    if doc.get("apiVersion") != API_VERSION:
        return [Problem("apiVersion", f"{doc.get('apiVersion')!r}: expected {API_VERSION!r}")]
    problems = _schema_problems(doc, kind)
    if problems:  # the API server stops at the schema; admission rules assume its shape
        return problems
    name = doc["metadata"]["name"]
    if len(name) > MAX_NAME[kind]:
        problems.append(Problem("metadata.name", f"{kind} names are at most {MAX_NAME[kind]} characters (got {len(name)})"))
    if not DNS1035.match(name):
        problems.append(Problem("metadata.name", f"{name!r} is not a DNS-1035 label (lower-case letters, digits, '-', "
                                                 "starting with a letter)"))
    if kind == "RayJob":
        problems += rayjob_spec_problems(doc["spec"])
    else:
        problems += cluster_spec_problems(doc["spec"], "spec")
    return problems


def validate_file(path: str | Path) -> list[str]:
    """Problems in every document of a YAML file, each as 'FILE[doc N]: key: message'."""
    path = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        return [f"{path}: {e}"]
    if not docs:
        return [f"{path}: no YAML documents"]
    return [f"{path}[doc {i}]: {p}" if len(docs) > 1 else f"{path}: {p}"
            for i, doc in enumerate(docs) for p in validate_manifest(doc)]
