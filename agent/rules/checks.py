"""Checks behind playbook rules: declarative conditions and the named checks a rule's
``check:`` refers to. Each returns a Hit (details for the message, optional suggested
changes) or None. Only ``api_accepts`` may import a library, lazily, when the facts do
not already carry the signature."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from agent.rules.check_table import CHECKS, Hit, check
from agent.rules.context import GPU_MEMORY_GB, MISSING, StageContext, get_path, normalize_gpu
from agent.playbooks.models import Condition
from core.language import Phrase


def _version(v: Any) -> Version | None:
    try:
        return Version(str(v))
    except InvalidVersion:
        m = re.match(r"\d+(\.\d+)*", str(v))
        return Version(m.group(0)) if m else None


def condition_holds(ctx: StageContext, cond: Condition) -> bool:
    actual = ctx.resolve(cond.path)
    if actual is MISSING:
        return False  # a field this family does not have: the rule does not apply
    op, value = cond.op, cond.value
    try:
        if op == "truthy":
            return bool(actual)
        if op == "falsy":
            return not actual
        if op == "eq":
            return actual == value or (isinstance(actual, str) and isinstance(value, str) and actual.lower() == value.lower())
        if op == "ne":
            return not (actual == value or (isinstance(actual, str) and isinstance(value, str) and actual.lower() == value.lower()))
        if op in ("gt", "ge", "lt", "le"):
            if actual is None:
                return False
            a, b = float(actual), float(value)
            return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
        if op in ("in", "not_in"):
            norm = {str(v).lower() for v in value}
            inside = str(actual).lower() in norm if actual is not None else False
            return inside if op == "in" else not inside
        if op in ("matches", "not_matches"):
            found = actual is not None and re.search(str(value), str(actual), re.IGNORECASE) is not None
            return found if op == "matches" else not found
        if op in ("version_lt", "version_ge"):
            a, b = _version(actual), _version(value)
            if a is None or b is None:
                return False
            return a < b if op == "version_lt" else a >= b
    except (TypeError, ValueError):
        return False
    return False


# --- named checks -----------------------------------------------------------------------

def _installed_version(module_name: str) -> str | None:
    from importlib import metadata

    top = module_name.split(".")[0]
    for dist in metadata.packages_distributions().get(top, [top]):
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _signature_cache() -> Path:
    return Path(os.environ.get("PALIER_HOME", ".state")) / "cache" / "api-signatures.json"


@lru_cache(maxsize=32)
def accepted_keywords(target: str) -> tuple[str, ...] | None:
    """Keyword names ``module:Object`` accepts in the INSTALLED library (dataclass fields for
    argument dataclasses, ``__init__`` parameters otherwise); None if it cannot be imported.

    Importing transformers/trl costs seconds, so the answer is cached on disk under the exact
    installed version: a different version is a different key and is inspected again."""
    module_name = target.partition(":")[0]
    version = _installed_version(module_name)
    cache = _signature_cache()
    key = f"{target}@{version}"
    if version:
        try:
            known = json.loads(cache.read_text()).get(key)
        except (OSError, ValueError):
            known = None
        if known is not None:
            return tuple(known)
    names = _inspect_keywords(target)
    if names is not None and version:
        try:
            data = json.loads(cache.read_text()) if cache.exists() else {}
            data[key] = list(names)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(cache)
        except (OSError, ValueError):
            pass  # the cache is an optimisation; inspection already succeeded
    return names


def _inspect_keywords(target: str) -> tuple[str, ...] | None:
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except Exception:  # noqa: BLE001 - a broken install is reported as "cannot inspect"
        return None
    names: list[str] = []
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj) if f.init]
    else:
        params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
        names = [p for p, spec in params.items() if spec.kind not in (spec.VAR_POSITIONAL, spec.VAR_KEYWORD)]
    return tuple(names)


@check("api_accepts")
def api_accepts(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """The keyword names palier passes must exist in the installed library's API."""
    target, kwargs = params["target"], list(params["kwargs"])
    dist = params.get("dist") or target.split(".")[0].split(":")[0]
    if not ctx.facts.has_library(dist):
        return None  # the missing-package rule reports this
    known = ctx.facts.api_signatures.get(target)
    if known is None:
        found = accepted_keywords(target)
        if found is None:
            return Hit({"target": target, "missing": ", ".join(kwargs), "version": ctx.facts.libraries.get(dist),
                        "dist": dist, "reason": Phrase("import impossible", "cannot import it")})
        known = list(found)
    missing = [k for k in kwargs if k not in known]
    if not missing:
        return None
    return Hit({"target": target, "missing": ", ".join(missing), "version": ctx.facts.libraries.get(dist),
                "dist": dist, "reason": Phrase("paramètre inconnu", "not a parameter")})


@check("credentials")
def credentials(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    service = params.get("service") or ctx.backend_kind
    if service == "local":
        return None
    if ctx.facts.credentials.get(service, False):
        return None
    return Hit({"service": service})


@check("hub_gated_needs_token")
def hub_gated_needs_token(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    if ctx.facts.credentials.get("huggingface", False):
        return None
    patterns = [re.compile(p, re.IGNORECASE) for p in params.get("patterns", [])]
    gated = [r for r in ctx.hub_refs() if r in ctx.facts.gated_repos or any(p.search(r) for p in patterns)]
    return Hit({"repos": ", ".join(gated)}) if gated else None


@check("hub_unreachable")
def hub_unreachable(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    offline = ctx.facts.hf_offline or ctx.facts.network is False
    if not offline:
        return None
    cached = set(ctx.facts.hf_cached)
    missing = [r for r in ctx.hub_refs() if r not in cached]
    if not missing:
        return None
    why = "HF_HUB_OFFLINE=1" if ctx.facts.hf_offline else Phrase("huggingface.co injoignable", "huggingface.co unreachable")
    return Hit({"repos": ", ".join(missing), "why": why})


@check("gpu_on_flagged_kernel")
def gpu_on_flagged_kernel(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """A GPU type the playbook saw hang on a kernel below the minimum (Modal's gVisor reports 4.4.0)."""
    target = ctx.target()
    flagged = {normalize_gpu(g) for g in params.get("gpus", [])}
    if target["gpu"] not in flagged:
        return None
    kernel = target["kernel"] or params.get("reported_kernels", {}).get(ctx.backend_kind)
    minimum = _version(params.get("min_kernel", "5.5.0"))
    current = _version(kernel) if kernel else None
    if current is None or minimum is None or current >= minimum:
        return None
    fallback = params.get("fallback", {}).get(target["gpu"])
    return Hit({"gpu": target["gpu"], "kernel": kernel, "min_kernel": str(minimum), "fallback": fallback},
               suggested={"backend.gpu": fallback} if fallback else None)


@check("batch_fits_gpu")
def batch_fits_gpu(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """Per-device batch above what the playbook measured for this model size and GPU memory."""
    base = str(ctx.pipeline.get("base_model") or "")
    if not re.search(params.get("model_pattern", "."), base, re.IGNORECASE):
        return None
    target = ctx.target()
    memory = target["gpu_memory_gb"]
    if memory is None:
        return None
    table = {int(k): int(v) for k, v in params.get("max_batch_by_memory_gb", {}).items()}
    fitting = [gb for gb in table if gb <= memory]
    if not fitting:
        return None
    limit = table[max(fitting)]
    batch = get_path(ctx.stage, "training.per_device_train_batch_size")
    accum = get_path(ctx.stage, "training.gradient_accumulation_steps")
    if batch is MISSING or not isinstance(batch, int) or batch <= limit:
        return None
    accum = accum if isinstance(accum, int) and accum > 0 else 1
    new_batch, new_accum = batch, accum
    while new_batch > limit and new_batch > 1:
        new_batch, new_accum = math.ceil(new_batch / 2), new_accum * 2
    return Hit({"batch": batch, "limit": limit, "gpu": target["gpu"], "memory": memory,
                "new_batch": new_batch, "new_accum": new_accum},
               suggested={"training.per_device_train_batch_size": new_batch,
                          "training.gradient_accumulation_steps": new_accum})


@check("save_steps_multiple_of_eval")
def save_steps_multiple_of_eval(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    t = ctx.stage.get("training")
    if not isinstance(t, dict) or not t.get("load_best_model_at_end") or t.get("eval_strategy") != "steps":
        return None
    save, every = t.get("save_steps"), t.get("eval_steps")
    if not save or not every or save % every == 0:
        return None
    fixed = every * max(1, round(save / every))
    return Hit({"save_steps": save, "eval_steps": every, "fixed": fixed}, suggested={"training.save_steps": fixed})


@check("packages_installed")
def packages_installed(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """Training libraries matter where the stage runs: here for local stages; remote
    backends need only their client library here (the image installs the rest)."""
    need: list[str] = []
    backend = ctx.backend_kind
    if backend == "local":
        need += params.get("families", {}).get(ctx.family or "", [])
        method = get_path(ctx.stage, "training.method")
        if method is not MISSING:
            need += params.get("methods", {}).get(str(method), [])
        if ctx.stage.get("export"):
            need += params.get("export", [])
    need += params.get("backends", {}).get(backend, [])
    missing = [p for p in dict.fromkeys(need) if not ctx.facts.has_library(p)]
    if not missing:
        return None
    return Hit({"packages": ", ".join(missing), "pip": " ".join(missing)})


@check("local_data_exists")
def local_data_exists(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    missing = []
    for src in ctx.data_sources():
        if src.get("kind") in ("csv", "folder", "jsonl"):
            exists = ctx.facts.local_paths.get(src.get("path", ""))
            if exists is False:  # None: not collected, so not judged
                missing.append(src["path"])
    missing = list(dict.fromkeys(missing))  # a folder used for train and test is named once
    return Hit({"paths": ", ".join(missing)}) if missing else None


@check("gpu_memory_known")
def gpu_memory_known(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """A requested GPU name palier does not recognise (typo, or a new type): warn."""
    requested = ctx.backend.get("gpu")
    if not requested or ctx.backend_kind == "local":
        return None
    return None if normalize_gpu(requested) in GPU_MEMORY_GB else Hit({"gpu": requested})


def stage_space_need(ctx: StageContext):
    """The estimate of ``core.disk_space`` for this stage, or None when the model's size is
    unknown (a local folder without safetensors, a hub model not in the table)."""
    from core.disk_space import encoder_width, known_params, stage_space

    base = str(ctx.pipeline.get("base_model") or "")
    params = ctx.facts.model_params.get(base) or known_params(base)
    if not params:
        return None
    t = ctx.stage.get("training") if isinstance(ctx.stage.get("training"), dict) else {}
    whisper = ctx.stage.get("whisper") if isinstance(ctx.stage.get("whisper"), dict) else {}
    train = ctx.stage.get("train") if isinstance(ctx.stage.get("train"), dict) else {}
    cached = 0
    if whisper.get("cache_encoder_outputs"):
        cached = train.get("max_samples") or ctx.facts.data_sizes.get(str(train.get("path", "")), 0) or 0
    export = ctx.stage.get("export")
    return stage_space(params, method=str(t.get("method", "full")), save_total_limit=int(t.get("save_total_limit", 2)),
                       cached_utterances=int(cached), encoder_d_model=encoder_width(base),
                       exports=(str(export.get("format", "ct2")),) if isinstance(export, dict) else ())


@check("disk_space")
def disk_space(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """``params.when``: ``short`` (the stage does not fit where it runs: the local disk's free
    space, Kaggle's 20 GB output) or ``large`` (it fits but needs at least ``min_gb``: said
    before the run, with the amount a Modal Volume or Kaggle needs)."""
    from core.disk_space import GB, where_it_fits

    need = stage_space_need(ctx)
    if need is None:
        return None
    verdict = where_it_fits(need, ctx.backend_kind, ctx.facts.runs_free_bytes)
    if params.get("when", "short") == "short":
        return None if verdict.fits else Hit({"need": verdict.message})
    if verdict.fits and need.total >= float(params.get("min_gb", 10)) * GB:
        return Hit({"need": verdict.message})
    return None


@check("has_eval_role")
def has_eval_role(ctx: StageContext, params: dict[str, Any]) -> Hit | None:
    """The stage has no eval set with this role (e.g. no guard set: regressions go unseen)."""
    evals = ctx.stage.get("evals")
    if not isinstance(evals, list):
        return None
    role = params.get("role", "guard")
    return None if any(isinstance(e, dict) and e.get("role") == role for e in evals) else Hit({"role": role})


# Checks on the stage's own settings and what it refers to register themselves on import.
from agent.rules import config_checks  # noqa: E402,F401

__all__ = ["CHECKS", "Hit", "check", "condition_holds"]
