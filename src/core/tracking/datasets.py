"""A stage's data as MLflow datasets: one input per training and eval set (name, digest, source,
context), so the runs table's Dataset column shows them and metrics can name the set they measure.

Sources are written in the shape of MLflow's own dataset sources: ``hugging_face`` (path, config,
split), ``local`` (a file or folder's URI), ``code`` for data palier generates (generator and
parameters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONTEXT_TAG = "mlflow.data.context"  # MLflow's own input tag: training | evaluation
TRAINING, EVALUATION = "training", "evaluation"


@dataclass(frozen=True)
class StageDataset:
    name: str
    digest: str
    source_type: str
    source: str
    context: str
    profile: str | None = None


def source_of(data, base_dir: Path | None) -> tuple[str, dict]:
    """(MLflow source type, source dict) of a pipeline data source."""
    kind = data.kind
    if kind == "hub":
        return "hugging_face", {"path": data.id, "config_name": data.config, "split": data.split}
    if kind == "generated":
        return "code", {"tags": {"palier.generator": data.generator,
                                 "palier.params": json.dumps(data.params, sort_keys=True, ensure_ascii=False),
                                 "palier.part": str(data.part or "")}}
    path = Path(data.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    source = {"uri": path.resolve().as_uri()}
    if kind == "folder":
        source["part"] = data.part
    return "local", source


def stage_datasets(spec, digest_of, counts: dict | None = None) -> list[StageDataset]:
    """The stage's training set (named ``<stage>-train``) and each eval set (by its name);
    ``digest_of(data_source)`` is the content digest the stage key uses."""
    base_dir = Path(spec.pipeline_file).parent if spec.pipeline_file else None
    counts = counts or {}
    sets = [(f"{spec.name}-train", spec.stage.train, TRAINING, counts.get("train"))]
    sets += [(ev.name, ev.data, EVALUATION, counts.get(ev.name)) for ev in spec.stage.evals]
    out = []
    for name, data, context, profile in sets:
        source_type, source = source_of(data, base_dir)
        out.append(StageDataset(name, digest_of(data)[:36], source_type, json.dumps(source, ensure_ascii=False),
                                context, json.dumps(profile, ensure_ascii=False) if profile else None))
    return out


def dataset_inputs(datasets: list[StageDataset]) -> list:
    """MLflow ``DatasetInput`` entities, ready for ``MlflowClient.log_inputs``."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [DatasetInput(Dataset(d.name, d.digest, d.source_type, d.source, profile=d.profile),
                         tags=[InputTag(CONTEXT_TAG, d.context)]) for d in datasets]
