"""Named checks on a stage's own settings and the files and model it refers to: the schedule
(evaluation that can never run), preprocessing workers against the set's size, LoRA target
modules against the model's real module names, the lexicon and the base model's path. Pure:
the environment arrives in ``ctx.facts`` (agent.base.facts collects it)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from agent.rules.check_table import Hit, check
from agent.rules.context import MISSING, StageContext, get_path
from core.language import Phrase
from core.model_refs import HUB_ID, PACKAGE_PREFIX, PYPI_PREFIX, REGISTRY_PREFIX, STAGE_PREFIX


def source_size(ctx: StageContext, source: dict[str, Any] | None) -> int | None:
    """How many records a data source holds, when the config or the facts say so."""
    if not isinstance(source, dict):
        return None
    kind = source.get("kind")
    if kind == "generated":
        params = source.get("params") or {}
        count = params.get("count")
        if not isinstance(count, int):
            return None
        mix = params.get("general_mix")
        return count + (mix if isinstance(mix, int) else 0)
    size = ctx.facts.data_sizes.get(str(source.get("path", ""))) if kind in ("csv", "jsonl") else None
    limit = source.get("max_samples")
    if isinstance(limit, int) and limit > 0:
        return min(size, limit) if size is not None else limit
    return size


def planned_steps(ctx: StageContext) -> int | None:
    """Optimizer steps the stage will run: max_steps, or epochs x batches when the train size is known."""
    t = ctx.stage.get("training")
    if not isinstance(t, dict):
        return None
    if isinstance(t.get("max_steps"), int):
        return t["max_steps"]
    size = source_size(ctx, ctx.stage.get("train"))
    epochs = t.get("num_train_epochs")
    batch = t.get("per_device_train_batch_size")
    if not size or not isinstance(epochs, (int, float)) or not isinstance(batch, int):
        return None
    accum = t.get("gradient_accumulation_steps") if isinstance(t.get("gradient_accumulation_steps"), int) else 1
    gpus = ctx.backend.get("gpus") if isinstance(ctx.backend.get("gpus"), int) else 1
    return max(1, math.ceil(epochs * math.ceil(size / (batch * max(1, gpus))) / max(1, accum)))


@check("schedule_within_steps")
def schedule_within_steps(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """A step interval (``eval_steps``, ``save_steps``...) larger than the steps the stage runs:
    that event never happens."""
    t = ctx.stage.get("training")
    field = params.get("field", "eval_steps")
    if not isinstance(t, dict) or not isinstance(t.get(field), int):
        return None
    if params.get("needs_strategy") and t.get(params["needs_strategy"]) != "steps":
        return None
    steps = planned_steps(ctx)
    if steps is None or t[field] <= steps:
        return None
    suggested = None
    if params.get("autofix"):
        suggested = {f"training.{field}": steps}
        # Keep save_steps a multiple of eval_steps (load_best_model_at_end needs it).
        save = t.get("save_steps")
        if field == "eval_steps" and isinstance(save, int) and save > steps:
            suggested["training.save_steps"] = steps
    return Hit({"field": field, "value": t[field], "steps": steps,
                "how": "max_steps" if isinstance(t.get("max_steps"), int) else "epochs x batches"},
               suggested=suggested)


@check("warmup_within_steps")
def warmup_within_steps(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """Warm-up as long as the run: the learning rate never reaches its set value."""
    t = ctx.stage.get("training")
    warmup = t.get("warmup_steps") if isinstance(t, dict) else None
    steps = planned_steps(ctx)
    if not isinstance(warmup, int) or warmup == 0 or steps is None or warmup < steps:
        return None
    return Hit({"warmup": warmup, "steps": steps, "fixed": max(0, steps // 10)})


@check("workers_fit_data")
def workers_fit_data(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """More preprocessing workers than the sets (or the CPUs) justify: each worker is a forked
    process that loads the feature extractor; for a small set that costs more than it saves,
    and every extra process is a chance for map() to hang."""
    workers = get_path(ctx.stage, params.get("path", "training.preprocessing_num_workers"))
    if not isinstance(workers, int) or workers <= 1:
        return None
    per_worker = int(params.get("min_records_per_worker", 500))
    sizes = [source_size(ctx, s) for s in ctx.data_sources()]
    known = [s for s in sizes if s is not None]
    reasons = []
    enough = workers
    if known:
        largest = max(known)
        enough = max(1, largest // per_worker)
        if workers > enough:
            reasons.append(Phrase(f"plus grand jeu : {largest} exemples, < {per_worker} par processus",
                                  f"largest set {largest} records, < {per_worker} per worker"))
    cpus = ctx.facts.cpu_count if ctx.backend_kind == "local" else None
    if cpus and workers > cpus:
        reasons.append(Phrase(f"{cpus} cœurs CPU ici", f"{cpus} CPU cores here"))
        enough = min(enough, cpus)
    if not reasons:
        return None
    fixed = max(1, enough)
    return Hit({"workers": workers, "reason": Phrase.join(reasons), "fixed": fixed},
               suggested={params.get("path", "training.preprocessing_num_workers"): fixed})


def target_matches(target: str, names: list[str]) -> bool:
    """peft's rule: a module whose full name equals the target or ends with ``.target``."""
    return any(n == target or n.endswith("." + target) for n in names)


@check("lora_targets_exist")
def lora_targets_exist(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """LoRA target_modules must name modules the base model has (its real module names)."""
    t = ctx.stage.get("training")
    if not isinstance(t, dict) or t.get("method") not in ("lora", "qlora"):
        return None
    targets = get_path(t, "lora.target_modules")
    base = ctx.pipeline.get("base_model")
    names = ctx.facts.model_modules.get(str(base))
    if targets is MISSING or not targets or names is None:
        return None  # not inspected: not judged
    if isinstance(targets, str):
        if targets == "all-linear":
            return None
        missing = [] if any(re.fullmatch(targets, n) for n in names) else [targets]
    else:
        missing = [x for x in targets if not target_matches(str(x), names)]
    if not missing:
        return None
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names if not n.rsplit(".", 1)[-1].isdigit()})
    close = sorted({c for m in missing for c in difflib.get_close_matches(str(m), leaves, n=2, cutoff=0.5)})
    return Hit({"missing": ", ".join(map(str, missing)), "model": base,
                "available": ", ".join(leaves[:20]), "closest": ", ".join(close) or "—"})


@check("lexicon_exists")
def lexicon_exists(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    lexicon = ctx.stage.get("lexicon")
    if not isinstance(lexicon, str) or not lexicon:
        return None
    return Hit({"lexicon": lexicon}) if ctx.facts.local_paths.get(lexicon) is False else None


def looks_like_path(ref: str) -> bool:
    """Written as a path (./x, ../x, /x, ~/x, C:\\x, a/b/c, x/): never a hub id."""
    return (ref.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in ref or ref.endswith("/")
            or bool(re.match(r"^[A-Za-z]:[\\/]", ref)) or ref.count("/") > 1)


@check("base_model_resolves")
def base_model_resolves(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """The pipeline's base model: an installed package, an existing folder, or a hub id.
    A path that does not exist is told apart from a hub id by how it is written and by
    whether its parent folder exists here (``models/whisper`` with a ``models/`` folder)."""
    if ctx.index != 0:
        return None  # later stages start from the previous stage's output
    ref = ctx.pipeline.get("base_model")
    if not isinstance(ref, str) or not ref or ref.startswith(STAGE_PREFIX):
        return None
    if ref.startswith(PACKAGE_PREFIX):
        installed = ctx.facts.model_packages.get(ref)
        if installed is False:
            dist = ref[len(PACKAGE_PREFIX):].strip()
            return Hit({"ref": ref, "why": Phrase(f"le paquet Python {dist!r} n'est pas installé",
                                                  f"the Python package {dist!r} is not installed"),
                        "todo": f"pip install {dist}"})
        return None
    if ref.startswith(REGISTRY_PREFIX):
        problem = ctx.facts.registry_models.get(ref)
        if problem:
            return Hit({"ref": ref, "why": problem,
                        "todo": "use a version or alias the registry has (models:/NAME@ALIAS or models:/NAME/VERSION) "
                                "of a model of this family, with its MLflow server up"})
        return None
    if ref.startswith(PYPI_PREFIX):
        if ctx.facts.model_packages.get(ref) is False:
            from core.ct2.packaged import PackagedModelError, check_installed

            try:
                check_installed(ref[len(PYPI_PREFIX):].strip())
                return None
            except PackagedModelError as exc:
                return Hit({"ref": ref, "why": Phrase("le paquet de ce modèle ne se charge pas (`palier check` le détaille)",
                                                      str(exc)),
                            "todo": Phrase("réinstaller palier (make setup) ou corriger le nom",
                                           "reinstall palier (make setup) or fix the name")})
        return None
    exists = ctx.facts.local_paths.get(ref)
    if exists is not False:
        return None  # found, or not collected
    if looks_like_path(ref):
        why = Phrase("un chemin local (tel qu'écrit) qui n'existe pas", "a local path (as written) that does not exist")
    elif HUB_ID.match(ref) and ctx.facts.path_parents.get(ref):
        org = ref.split("/")[0]
        why = Phrase(f"dossier introuvable, et {org}/ est un dossier local ici (pas une organisation du Hub)",
                     f"no such folder, and {org}/ is a local folder here (not a hub organisation)")
    else:
        return None  # a hub id: the hub rules judge it
    return Hit({"ref": ref, "why": why,
                "todo": Phrase("corriger le chemin (relatif au dossier du fichier pipeline) ou utiliser un id du Hub "
                               "(org/nom)", "fix the path (relative to the pipeline file's folder) or use a hub id "
                               "(org/name)")})
