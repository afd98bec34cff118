"""The KubeRay CRD schemas shipped in launch/k8s/crds/, made strict.

A CRD's structural schema lets the API server prune unknown fields silently, so a misspelt
`entrypoint` would be dropped, not rejected. Every object schema that lists its
`properties` (and neither allows extra keys nor preserves unknown fields) gets
`additionalProperties: false` here, so a key the CRD does not define is an error.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

KUBERAY_VERSION = "v1.7.0"
CRD_DIR = Path(__file__).resolve().parent / "crds" / KUBERAY_VERSION
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
API_VERSION = "ray.io/v1"

# The object metadata the API server accepts on create (metav1.ObjectMeta, user-settable part).
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


def make_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI v3 schema in which objects with listed properties reject other keys."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@functools.cache
def strict_schema(kind: str) -> dict[str, Any]:
    """The strict `ray.io/v1` schema for `kind` (RayJob or RayCluster), with ObjectMeta checked."""
    if kind not in CRD_FILES:
        raise KeyError(f"kind {kind!r}: expected one of {sorted(CRD_FILES)}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == API_VERSION.split("/")[1])
    schema = make_strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META
    schema["properties"].pop("status", None)  # the operator writes status; a manifest must not
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    return schema
