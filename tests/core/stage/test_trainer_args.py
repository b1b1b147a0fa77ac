"""The three Trainer-based families share one wiring: the same ``TrainerSchedule`` values give
the same shared ``TrainingArguments`` fields whatever the family's arguments class
(``Seq2SeqTrainingArguments``, ``TrainingArguments``, TRL's ``SFTConfig``), and every recipe
trains through ``run_trainer`` (resume, cancellation, summary)."""

from __future__ import annotations

import inspect

import pytest

from core.config.asr import AsrStage
from core.config.common import TrainerSchedule
from core.config.sft import SftStage
from core.config.token_cls import TokenClsStage
from core.contracts import StageSpec
from core.events import EventLog

SCHEDULE = {"max_steps": 7, "num_train_epochs": 2.0, "per_device_train_batch_size": 3, "per_device_eval_batch_size": 5,
            "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "warmup_steps": 1, "lr_scheduler_type": "cosine",
            "weight_decay": 0.01, "max_grad_norm": 0.5, "save_total_limit": 1, "logging_steps": 2, "seed": 7,
            "gradient_checkpointing": True}

# (schedule fields, expected (save_strategy, save_steps)); save_steps None: not asserted (unused)
SAVE_RULES = [
    ({"eval_strategy": "no", "save_steps": 3}, ("steps", 3)),
    ({"eval_strategy": "steps", "eval_steps": 4}, ("steps", 4)),
    ({"eval_strategy": "steps", "eval_steps": 4, "save_steps": 8}, ("steps", 8)),
    ({"eval_strategy": "epoch"}, ("epoch", None)),
    ({"eval_strategy": "no"}, ("epoch", None)),
]

FAMILIES = {"asr": AsrStage, "token_cls": TokenClsStage, "sft": SftStage}

# Builds the real arguments classes: imports torch, transformers and TRL (~45 s on a busy CPU).
training_stack = pytest.mark.integration


def _recipe(family: str, training: dict, tmp_path):
    from core.stage.recipe import RecipeContext
    from core.stage.recipes import load_recipe

    data = {"kind": "jsonl", "path": str(tmp_path / "data.jsonl")}
    raw = {"name": "s", "output_name": "m", "train": data, "evals": [{"name": "test", "role": "primary", "data": data}],
           "training": training}
    if family == "token_cls":
        raw["token_cls"] = {"freeze_backbone": False}  # a trained backbone: checkpointing applies as elsewhere
    stage = FAMILIES[family].model_validate(raw)
    spec = StageSpec(pipeline="p", index=0, name="s", family=family, language="fr", task="transcribe",
                     base_model="unused", upstream_stage=None, stage=stage, key="k")
    ctx = RecipeContext(spec=spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                        events=EventLog(tmp_path / f"events-{family}.jsonl"), device="cpu",
                        checkpoint_dir=tmp_path / "checkpoints")
    return load_recipe(ctx), stage


def _arguments(family: str, recipe):
    return recipe.sft_config() if family == "sft" else recipe.training_arguments()


def test_every_family_training_config_is_a_trainer_schedule():
    for stage_class in FAMILIES.values():
        assert issubclass(stage_class.model_fields["training"].annotation, TrainerSchedule)


@training_stack
@pytest.mark.parametrize("save_rule", SAVE_RULES, ids=lambda r: "-".join(f"{k}={v}" for k, v in r[0].items()))
def test_same_schedule_same_shared_arguments_in_every_family(tmp_path, save_rule):
    from core.stage.trainer_args import shared_arguments

    fields, (save_strategy, save_steps) = save_rule
    training = {**SCHEDULE, **fields}
    built = {}
    for family in FAMILIES:
        recipe, stage = _recipe(family, training, tmp_path)
        built[family] = _arguments(family, recipe)
    shared = shared_arguments(stage.training, tmp_path / "checkpoints", "cpu", eval_batch_size=5,
                              activation_checkpointing=True)
    for name in shared:
        values = {family: getattr(args, name) for family, args in built.items()}
        assert len({repr(v) for v in values.values()}) == 1, f"{name} differs between families: {values}"
    asr = built["asr"]
    assert asr.save_strategy == save_strategy and asr.eval_strategy == fields["eval_strategy"]
    if save_steps is not None:
        assert asr.save_steps == save_steps
    assert (asr.learning_rate, asr.max_steps, asr.lr_scheduler_type, asr.activation_checkpointing) == (
        1e-3, 7, "cosine", True)
    assert (asr.fp16, asr.bf16, asr.use_cpu, asr.report_to) == (False, False, True, [])


@training_stack
def test_frozen_token_classifier_does_not_ask_the_trainer_for_checkpointing(tmp_path):
    from core.stage.recipe import RecipeContext
    from core.stage.token_cls import TokenClsRecipe

    recipe, stage = _recipe("token_cls", SCHEDULE, tmp_path)
    frozen = TokenClsRecipe(RecipeContext(**{**vars(recipe.ctx), "spec": recipe.ctx.spec.model_copy(update={
        "stage": stage.model_copy(update={"token_cls": stage.token_cls.model_copy(update={"freeze_backbone": True})})})}))
    assert recipe.training_arguments().activation_checkpointing is True
    assert frozen.training_arguments().activation_checkpointing is False


@training_stack
def test_every_recipe_trains_through_run_trainer():
    from core.stage import asr, sft, token_cls

    for module, recipe in ((asr, asr.AsrRecipe), (token_cls, token_cls.TokenClsRecipe), (sft, sft.SftRecipe)):
        source = inspect.getsource(recipe.train)
        assert "run_trainer(trainer" in source and ".train(" not in source.replace("run_trainer(", ""), module.__name__
