"""KubeRay manifests: the shipped and rendered ones pass the strict v1.7.0 CRD schema,
KubeRay's admission rules and Ray's `ray start` parser; broken ones fail naming the key."""
import copy
import shlex
from pathlib import Path

import pytest
import yaml

from launch.cli import main
from launch.k8s.validate import validate_file, validate_manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "launch" / "k8s").glob("*.yaml"))


def test_three_manifests_are_shipped():
    assert {p.name for p in SHIPPED} == {"rayjob_grpo_tiny.yaml", "rayjob_grpo_ln_ultra.yaml", "raycluster_dev.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_manifest_passes_and_is_what_its_command_renders(path, tmp_path):
    assert validate_file(path) == []
    header = path.read_text().splitlines()[0]
    assert header.startswith("# Rendered by: reforge launch k8s ")
    out = tmp_path / path.name
    k8s, *rest = shlex.split(header.split("reforge launch ", 1)[1])
    assert main([k8s, "-o", str(out), *rest]) == 0
    assert out.read_text() == path.read_text()


def test_ln_ultra_job_is_sized_from_its_config():
    doc = yaml.safe_load((ROOT / "launch/k8s/rayjob_grpo_ln_ultra.yaml").read_text())
    group = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    # 72 vLLM engines x 8 GPUs + 64 policy ranks x 1 GPU = 640 GPUs = 80 nodes of 8.
    assert group["replicas"] == 80 and group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert "config=recipes/configs/ultra_grpo_ln_ultra.yaml" in doc["spec"]["entrypoint"]


def test_validate_cli_exit_codes(tmp_path, capsys):
    assert main(["k8s", "--validate", *map(str, SHIPPED)]) == 0
    doc = yaml.safe_load(SHIPPED[-1].read_text())
    doc["spec"]["entrypint"] = doc["spec"].pop("entrypoint")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    assert main(["k8s", "--validate", str(bad)]) == 1
    assert "spec.entrypint: unknown key (did you mean 'entrypoint'?)" in capsys.readouterr().err


def test_render_rejects_a_bad_override_naming_the_key():
    with pytest.raises(SystemExit, match="key 'rollout.samples_per_prompt'"):
        main(["k8s", "--name", "x", "--image", "img", "recipes/ultra_grpo.py", "rollout.samples_per_prompt=many"])


W = ("spec", "rayClusterSpec", "workerGroupSpecs", 0)
HEAD = ("spec", "rayClusterSpec", "headGroupSpec")


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _container(doc, group=W):
    return _at(doc, group + ("template", "spec", "containers", 0))


BROKEN = {
    "misspelt entrypoint": (lambda d: d["spec"].__setitem__("entrypint", d["spec"].pop("entrypoint")),
                            "spec.entrypint", "did you mean 'entrypoint'"),
    "misspelt container key": (lambda d: _container(d).__setitem__("resource", _container(d).pop("resources")),
                               "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resource",
                               "unknown key"),
    "unknown top-level key": (lambda d: d.__setitem__("specs", {}), "specs", "unknown key"),
    "replicas as a string": (lambda d: _at(d, W).__setitem__("replicas", "2"),
                             "spec.rayClusterSpec.workerGroupSpecs[0].replicas", "is not of type 'integer'"),
    "shutdown flag as a string": (lambda d: d["spec"].__setitem__("shutdownAfterJobFinishes", "yes"),
                                  "spec.shutdownAfterJobFinishes", "is not of type 'boolean'"),
    "worker group without template": (lambda d: _at(d, W).pop("template"),
                                      "spec.rayClusterSpec.workerGroupSpecs[0].template", "required"),
    "bad memory quantity": (lambda d: _container(d)["resources"]["limits"].__setitem__("memory", "32 GB"),
                            "spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.memory",
                            "not a Kubernetes quantity"),
    "bad cpu quantity": (lambda d: _container(d, HEAD)["resources"]["requests"].__setitem__("cpu", "four"),
                         "spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].resources.requests.cpu",
                         "not a Kubernetes quantity"),
    "unknown ray start option": (lambda d: _at(d, W)["rayStartParams"].__setitem__("num-cpu", "4"),
                                 "spec.rayClusterSpec.workerGroupSpecs[0].rayStartParams.num-cpu",
                                 "has no option --num-cpu (did you mean --num-cpus"),
    "ray start value of the wrong type": (lambda d: _at(d, HEAD)["rayStartParams"].__setitem__("object-store-memory", "lots"),
                                          "spec.rayClusterSpec.headGroupSpec.rayStartParams.object-store-memory",
                                          "is not a valid integer"),
    "ray start resources not JSON": (lambda d: _at(d, W)["rayStartParams"].__setitem__("resources", "{TPU: 4}"),
                                     "spec.rayClusterSpec.workerGroupSpecs[0].rayStartParams.resources", "JSON object"),
    "rayStartParams value not a string": (lambda d: _at(d, W)["rayStartParams"].__setitem__("num-cpus", 4),
                                          "spec.rayClusterSpec.workerGroupSpecs[0].rayStartParams.num-cpus",
                                          "is not of type 'string'"),
    "name not a DNS-1035 label": (lambda d: d["metadata"].__setitem__("name", "Reforge_GRPO"), "metadata.name", "DNS-1035"),
    "name too long for a RayJob": (lambda d: d["metadata"].__setitem__("name", "r" * 48), "metadata.name", "at most 47"),
    "min above max replicas": (lambda d: _at(d, W).update(minReplicas=3, maxReplicas=2, replicas=2),
                               "spec.rayClusterSpec.workerGroupSpecs[0].minReplicas", "greater than maxReplicas"),
    "replicas outside the range": (lambda d: _at(d, W).update(replicas=5),
                                   "spec.rayClusterSpec.workerGroupSpecs[0].replicas", "outside"),
    "duplicate worker group": (lambda d: d["spec"]["rayClusterSpec"]["workerGroupSpecs"].append(copy.deepcopy(_at(d, W))),
                               "spec.rayClusterSpec.workerGroupSpecs[1].groupName", "unique"),
    "head without containers": (lambda d: _at(d, HEAD)["template"]["spec"].__setitem__("containers", []),
                                "spec.rayClusterSpec.headGroupSpec.template.spec.containers", "at least one container"),
    "unknown submission mode": (lambda d: d["spec"].__setitem__("submissionMode", "K8sMode"),
                                "spec.submissionMode", "not one of K8sJobMode"),
    "token auth on an old Ray": (lambda d: d["spec"]["rayClusterSpec"].__setitem__("rayVersion", "2.40.0"),
                                 "spec.rayClusterSpec.rayVersion", "2.52.0 or later"),
    "token auth without rayVersion": (lambda d: d["spec"]["rayClusterSpec"].pop("rayVersion"),
                                      "spec.rayClusterSpec.rayVersion", "set rayVersion"),
    "ttl without shutdown": (lambda d: d["spec"].__setitem__("shutdownAfterJobFinishes", False),
                             "spec.ttlSecondsAfterFinished", "shutdownAfterJobFinishes"),
    "runtimeEnvYAML not a mapping": (lambda d: d["spec"].__setitem__("runtimeEnvYAML", "- a\n- b"),
                                     "spec.runtimeEnvYAML", "not a YAML mapping"),
    "status in a manifest": (lambda d: d.__setitem__("status", {"jobStatus": "SUCCEEDED"}), "status", "unknown key"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_manifest_fails_naming_the_key(case):
    doc = yaml.safe_load((ROOT / "launch/k8s/rayjob_grpo_tiny.yaml").read_text())
    mutate, key, words = BROKEN[case]
    mutate(doc)
    problems = validate_manifest(doc)
    assert [p for p in problems if p.path == key and words in p.message], (key, words, [str(p) for p in problems])


def test_raycluster_rules_apply_at_its_own_spec():
    doc = yaml.safe_load((ROOT / "launch/k8s/raycluster_dev.yaml").read_text())
    doc["spec"]["workerGroupSpecs"][0]["rayStartParams"]["labels"] = "a=b"
    doc["metadata"]["name"] = "c" * 54
    paths = {p.path for p in validate_manifest(doc)}
    assert paths == {"spec.workerGroupSpecs[0].rayStartParams.labels", "metadata.name"}
