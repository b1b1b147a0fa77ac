"""YAML -> PipelineConfig with errors that name the file, the field and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.config.pipeline import PipelineConfig


class ConfigError(ValueError):
    """A pipeline file that cannot be used; ``problems`` lists one line per field."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid pipeline\n" + "\n".join(f"  - {p}" for p in problems))


_UNION_TAGS = ("asr", "token_cls", "sft", "hub", "csv", "folder", "jsonl", "generated")


def _field_path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    stages = raw.get("stages") if isinstance(raw, dict) else None
    after_tag = False
    for i, item in enumerate(loc):
        # A discriminated union puts its tag in the path once; a field may carry the same name
        # right after it (the token_cls stage's `token_cls:` settings), and that one is kept.
        is_tag, after_tag = item in _UNION_TAGS and i > 0 and not after_tag, False
        if is_tag:
            after_tag = True
            continue
        if isinstance(item, int) and i > 0 and loc[i - 1] == "stages" and isinstance(stages, list):
            name = stages[item].get("name") if item < len(stages) and isinstance(stages[item], dict) else None
            parts.append(f"[{item}]" + (f"({name})" if name else ""))
        elif isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _hint(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key: remove it or fix its spelling (see README, 'Pipeline files')"
    if kind == "missing":
        return "required: add it"
    if kind == "union_tag_not_found":
        return f"{err.get('ctx', {}).get('discriminator', 'kind')} is missing: add it"
    if kind == "union_tag_invalid":
        return f"{err.get('msg')}"
    return err.get("msg", "invalid").removeprefix("Value error, ")


def _from_defaults(loc: tuple, raw: dict[str, Any]) -> str:
    """" (set in defaults)" when the stage key at fault came from ``defaults``, not the stage:
    the user fixes it there."""
    if len(loc) < 3 or loc[0] != "stages" or not isinstance(loc[1], int):
        return ""
    stages, defaults = raw.get("stages"), raw.get("defaults")
    key = next((k for k in loc[2:] if isinstance(k, str) and k not in _UNION_TAGS), None)
    stage = stages[loc[1]] if isinstance(stages, list) and loc[1] < len(stages) else None
    if isinstance(defaults, dict) and key in defaults and not (isinstance(stage, dict) and key in stage):
        return " (set in defaults)"
    return ""


def parse_pipeline(raw: Any, source: str = "<pipeline>") -> PipelineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, ["the file must hold a YAML mapping (name:, family:, stages:, ...)"])
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_field_path(tuple(e['loc']), raw)}{_from_defaults(tuple(e['loc']), raw)}: {_hint(e)}"
                    for e in exc.errors()]
        raise ConfigError(source, problems) from None


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(f"line {line}: key {key!r} appears twice in the same mapping (first on line "
                         f"{first_line}): keep one; YAML would silently use the last")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (``<<`` merges may override)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    continue
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicated keys (DuplicateKeyError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_pipeline(path: str | Path) -> PipelineConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(p), ["file not found: check the path (pipelines live under pipelines/)"])
    try:
        raw = read_yaml(p.read_text(encoding="utf-8"))
    except DuplicateKeyError as exc:
        raise ConfigError(str(p), [str(exc)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(p), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_pipeline(raw, str(p))


def override_backend(config: PipelineConfig, kind: str) -> PipelineConfig:
    """``palier run --backend X``: the same pipeline, every stage on backend ``X``."""
    raw = config.model_dump(mode="json")
    for stage in raw["stages"]:
        stage["backend"]["kind"] = kind
    return parse_pipeline(raw, f"{config.name} (--backend {kind})")
