"""The view of one stage that rules evaluate: dumped config dicts plus derived ``target`` facts
(the GPU, device and kernel the stage will really get). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.base.facts import EnvFacts
from agent.base.model_refs import is_hub_id

MISSING = object()

# What a GPU name means, whatever spelling a backend or nvidia-smi uses.
_GPU_TOKENS = [
    ("H200", r"H200(?!\d)"), ("H100", r"H100(?!\d)"), ("B200", r"B200(?!\d)"), ("A100-80GB", r"A100(?!\d).*80"),
    ("A100", r"A100(?!\d)"), ("L40S", r"L40S"), ("A10G", r"A10G"), ("A10", r"A10(?![\dG])"),
    ("L4", r"(?<![A-Z\d])L4(?![\dS])|TeslaL4|NvidiaL4"), ("T4", r"T4(?!\d)"), ("P100", r"P100(?!\d)"),
    ("V100", r"V100(?!\d)"), ("K80", r"K80(?!\d)"),
]
GPU_MEMORY_GB = {
    "H200": 141, "B200": 180, "H100": 80, "A100-80GB": 80, "A100": 40, "L40S": 48, "A10G": 24, "A10": 24,
    "L4": 24, "T4": 16, "P100": 16, "V100": 16, "K80": 12,
}
PRE_AMPERE = ("T4", "P100", "V100", "K80")
KAGGLE_DEFAULT_GPU = "T4"  # palier asks for NvidiaTeslaT4 when backend.gpu is unset (core.backends.kaggle.kernel)
REAL_WHISPER = re.compile(r"(?i)whisper[-_]?(tiny|base|small|medium|large|turbo)")


def normalize_gpu(name: str | None) -> str | None:
    if not name:
        return None
    for canonical, pattern in _GPU_TOKENS:
        if re.search(pattern, name, re.IGNORECASE):
            return canonical
    return name.upper()


@dataclass(frozen=True)
class StageContext:
    pipeline: dict[str, Any]
    stage: dict[str, Any]
    facts: EnvFacts
    index: int

    @property
    def name(self) -> str:
        return str(self.stage.get("name", f"stage{self.index}"))

    @property
    def family(self) -> str | None:
        return self.stage.get("family") or self.pipeline.get("family")

    @property
    def backend(self) -> dict[str, Any]:
        b = self.stage.get("backend")
        return b if isinstance(b, dict) else {}

    @property
    def backend_kind(self) -> str:
        return str(self.backend.get("kind", "local"))

    def target(self) -> dict[str, Any]:
        kind = self.backend_kind
        requested = self.backend.get("gpu")
        if kind == "local":
            gpu = normalize_gpu(self.facts.gpu_name)
            device = self.backend.get("device", "auto")
            if device == "auto":
                device = "cuda" if self.facts.cuda_available else "cpu"
        elif kind == "kaggle":
            gpu = normalize_gpu(requested) or KAGGLE_DEFAULT_GPU
            device = "cuda"
        else:
            gpu = normalize_gpu(requested)
            device = "cuda" if gpu else "cpu"
        base = self.pipeline.get("base_model")
        return {
            "backend": kind,
            "gpu": gpu,
            "gpu_memory_gb": GPU_MEMORY_GB.get(gpu or "", None),
            "device": device,
            "kernel": self.facts.target_kernel or (self.facts.kernel if kind == "local" else None),
            "base_is_hub": is_hub_id(base, self.facts.local_paths),
            "real_whisper": bool(base and REAL_WHISPER.search(base)),
        }

    def resolve(self, path: str) -> Any:
        root, _, rest = path.partition(".")
        node: Any = {
            "stage": self.stage,
            "pipeline": self.pipeline,
            "facts": self.facts.model_dump(),
            "target": self.target(),
        }.get(root, MISSING)
        for key in rest.split(".") if rest else []:
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                return MISSING
        return node

    def data_sources(self) -> list[dict[str, Any]]:
        """The stage's train source and eval-set sources that are mappings (any family)."""
        evals = self.stage.get("evals")
        sources = [self.stage.get("train")]
        if isinstance(evals, list):
            sources += [e.get("data") for e in evals if isinstance(e, dict)]
        return [s for s in sources if isinstance(s, dict)]

    def hub_refs(self) -> list[str]:
        """Hub ids this stage downloads: the pipeline's base model and hub data sources."""
        refs = []
        base = self.pipeline.get("base_model")
        if self.index == 0 and is_hub_id(base, self.facts.local_paths):
            refs.append(base)
        for src in self.data_sources():
            if src.get("kind") == "hub" and src.get("id"):
                refs.append(src["id"])
        return list(dict.fromkeys(refs))


def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
