"""Pieces shared by every task family: data sources, evaluation sets, gates, backends."""

from __future__ import annotations

import copy
from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from core.config.search import SearchConfig, set_path, unknown_path
from core.config.strict import Strict  # noqa: F401 - every family's config imports it from here


class HubData(Strict):
    """A dataset on the Hugging Face Hub (needs network, or a warm HF cache when offline)."""

    kind: Literal["hub"] = "hub"
    id: str = Field(min_length=1, description="hub dataset id, e.g. facebook/multilingual_librispeech")
    config: str | None = Field(default=None, description="dataset configuration, e.g. french")
    split: str = "train"
    audio_column: str = "audio"
    text_column: str = "sentence"
    max_samples: int | None = Field(default=None, gt=0)
    streaming: bool = False


class CsvData(Strict):
    """A CSV manifest: one utterance a row (columns ``audio,sentence`` by default); audio paths
    relative to the file."""

    kind: Literal["csv"] = "csv"
    path: str = Field(min_length=1)
    audio_column: str = "audio"
    text_column: str = "sentence"
    max_samples: int | None = Field(default=None, gt=0)


class FolderData(Strict):
    """A folder of recordings and their transcripts, ``audio/N.wav`` + ``rapports/N.txt``, split
    into train and test by a seeded draw (80/20 by default)."""

    kind: Literal["folder"] = "folder"
    path: str = Field(min_length=1)
    part: Literal["train", "test", "all"] = "train"
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42
    max_samples: int | None = Field(default=None, gt=0)


class JsonlData(Strict):
    """JSON Lines (token classification, SFT messages)."""

    kind: Literal["jsonl"] = "jsonl"
    path: str = Field(min_length=1)
    max_samples: int | None = Field(default=None, gt=0)


class GeneratedData(Strict):
    """Data the project makes itself (offline demos and tests): ``generator`` names a recipe
    in ``core.demo.datasets`` and ``params`` are its arguments."""

    kind: Literal["generated"] = "generated"
    generator: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    part: Literal["train", "test"] | None = Field(
        default=None, description="for a generator that writes the folder layout of kind: folder: which side of the "
        "folder's seeded 80/20 split (as kind: folder reads it)")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _params_fit_the_generator(self) -> GeneratedData:
        from core.demo.params import check_params  # each generator's own schema

        check_params(self.generator, dict(self.params))
        return self


DataSource = Annotated[
    HubData | CsvData | FolderData | JsonlData | GeneratedData, Field(discriminator="kind")
]


class EvalSet(Strict):
    """A named held-out set, evaluated on the starting model (baseline) and the trained one.

    ``role: primary`` drives the gate and model selection (exactly one per stage);
    ``role: guard`` must not regress by more than ``max_regression`` (absolute, in the
    metric's unit, e.g. 0.02 = 2 WER points): what the base model already did well (e.g. other
    languages) is kept.
    ``role: report`` is only measured.
    """

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    data: DataSource
    role: Literal["primary", "guard", "report"] = "report"
    language: str | None = Field(default=None, description="override the pipeline language (guard sets)")
    max_regression: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _guard_needs_bound(self) -> EvalSet:
        if self.role == "guard" and self.max_regression is None:
            raise ValueError(f"guard set {self.name!r} needs max_regression (e.g. 0.02 for 2 WER points)")
        return self


class GateConfig(Strict):
    """Promotion rule: alias ``champion`` only when the stage beats its baseline by
    ``min_improvement`` on ``metric``, beats the registered champion, and keeps guards in bounds."""

    metric: str = "wer"
    greater_is_better: bool = False
    min_improvement: float = Field(default=0.0, ge=0)


class BackendConfig(Strict):
    kind: Literal["local", "modal", "kaggle"] = "local"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpu: str | None = Field(default=None, description="Modal GPU type (H100, A100-80GB, ...) or Kaggle accelerator")
    gpus: int = Field(default=1, ge=1, description="data-parallel processes (accelerate launch)")
    timeout_s: int = Field(default=24 * 3600, gt=0, le=24 * 3600)
    heartbeat_stall_s: int = Field(default=900, gt=0, description="no event for this long = stall")
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    step_time_s: float | None = Field(
        default=None, gt=0, description="seconds per optimizer step on this backend, for the cost estimate "
        "(default: measured on an earlier run of the stage)")


class TrainerSchedule(Strict):
    """Optimiser, schedule, precision and checkpoint settings every Trainer-based family shares,
    each named as the ``TrainingArguments`` field it sets. A family's subclass lists only its own
    fields, and overrides a default where the family needs another one."""

    # eval_strategy "steps" without eval_steps is refused (False: the Trainer then evaluates
    # every logging_steps, which the ASR family has always accepted).
    eval_steps_required: ClassVar[bool] = True

    max_steps: int | None = Field(default=None, gt=0, description="None: num_train_epochs decides")
    num_train_epochs: float = Field(default=1.0, gt=0)
    per_device_train_batch_size: int = Field(default=16, gt=0)
    per_device_eval_batch_size: int | None = Field(default=None, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    learning_rate: float = Field(default=1e-5, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    lr_scheduler_type: str = "linear"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    fp16: bool = Field(default=False, description="GPU only")
    bf16: bool = Field(default=False, description="GPU only (TRL would default it to true: palier sets it explicitly)")
    gradient_checkpointing: bool = Field(default=False, description="TRL defaults to true; palier to false (small models)")
    eval_strategy: Literal["no", "steps", "epoch"] = "no"
    eval_steps: int | None = Field(default=None, gt=0)
    save_steps: int | None = Field(
        default=None, gt=0,
        description="null: a checkpoint at each evaluation (eval_strategy steps), else one per epoch",
    )
    save_total_limit: int = Field(default=2, gt=0)
    logging_steps: int = Field(default=10, gt=0)
    seed: int = 42
    cpu_threads: int | None = Field(
        default=None, gt=0,
        description="torch threads on CPU (None: torch's default). Small models on a busy machine run "
        "faster with 1: thread synchronisation costs more than the matrix products",
    )

    @model_validator(mode="after")
    def _consistent_schedule(self):
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 are both true: choose one")
        if self.eval_steps_required and self.eval_strategy == "steps" and not self.eval_steps:
            raise ValueError("eval_strategy 'steps' needs eval_steps")
        return self


class StageBase(Strict):
    """What every stage has, whatever its family: identity, data, eval sets, backend.

    Subclasses add ``family`` (the union's discriminator), ``gate`` and their own settings."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    output_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="registered model name")
    train: DataSource
    evals: list[EvalSet] = Field(min_length=1)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    search: SearchConfig | None = Field(default=None, description="try several settings, keep the best (docs/search.md)")

    @model_validator(mode="after")
    def _one_primary(self):
        primaries = [e.name for e in self.evals if e.role == "primary"]
        if len(primaries) != 1:
            raise ValueError(f"stage {self.name!r} needs exactly one eval set with role: primary, found {primaries}")
        names = [e.name for e in self.evals]
        if len(set(names)) != len(names):
            raise ValueError(f"stage {self.name!r} has duplicate eval set names: {names}")
        return self

    @model_validator(mode="after")
    def _searchable(self):
        if self.search is None:
            return self
        raw = self.model_dump(mode="json") | {"search": None}
        for path, space in self.search.parameters.items():
            why = unknown_path(type(self), path)
            if why is not None:
                raise ValueError(f"search.parameters.{path}: {why}")
            for value in space.samples():
                trial = copy.deepcopy(raw)
                set_path(trial, path, value)
                try:
                    type(self).model_validate(trial)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    raise ValueError(f"search.parameters.{path}: value {value!r} does not fit the stage "
                                     f"({first['msg'].removeprefix('Value error, ')})") from None
        return self

    @property
    def primary_eval(self) -> EvalSet:
        return next(e for e in self.evals if e.role == "primary")
