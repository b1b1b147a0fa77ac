"""Each data generator's parameters, as a pydantic schema checked when the pipeline is loaded.

A misspelt parameter, a wrong type, NaN, an unknown pool or an impossible count is reported by
``palier validate`` naming the parameter, instead of failing later inside a stage (or being
silently ignored). ``generate`` checks the same schema, so a direct call cannot bypass it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.demo import corpus
from core.demo.pii import TEMPLATES as PII_TEMPLATES
from core.demo.speech import VOICE_POOLS
from core.qa.generate import DEFINITION_TEMPLATES, METHODS

MAX_COUNT = 100_000  # generated sets are demos and tests: beyond this a count is a typo


class GeneratorParams(BaseModel):
    # strict: "10" is not a count and "NaN" is not a share; a YAML number stays a number.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


@lru_cache(maxsize=None)
def _general_pool_size(pool: str) -> int:
    return corpus.general_pool_size(pool)


@lru_cache(maxsize=None)
def _medical_test_pool_size() -> int:
    return corpus.medical_pool_size("test")


@lru_cache(maxsize=None)
def _dictation_pool_size() -> int:
    return corpus.dictation_pool_size()


class FrenchSpeechParams(GeneratorParams):
    pool: Literal["pretrain", "stage", "test"]
    count: int = Field(gt=0, le=MAX_COUNT)
    voices: Literal[tuple(VOICE_POOLS)] = "stage"  # type: ignore[valid-type]
    seed: int = 0
    domain: Literal["general", "medical"] = "general"
    general_mix: int = Field(default=0, ge=0, le=MAX_COUNT)

    @model_validator(mode="after")
    def _possible(self) -> FrenchSpeechParams:
        if self.domain == "medical" and self.pool == "pretrain":
            raise ValueError("pool: medical sentences come from pool 'stage' or 'test', not 'pretrain'")
        if self.general_mix and self.domain != "medical":
            raise ValueError("general_mix: only a domain 'medical' set mixes in general sentences")
        if self.domain == "general" and self.count > _general_pool_size(self.pool):
            raise ValueError(f"count: pool {self.pool!r} holds {_general_pool_size(self.pool)} distinct sentences, "
                             f"asked {self.count}")
        if self.domain == "medical" and self.pool == "test" and self.count > _medical_test_pool_size():
            raise ValueError(f"count: the medical test pool holds {_medical_test_pool_size()} sentences "
                             f"(test sentences are never repeated), asked {self.count}")
        if self.general_mix > _general_pool_size(self.pool if self.pool != "pretrain" else "stage"):
            raise ValueError(f"general_mix: pool {self.pool!r} holds fewer than {self.general_mix} general sentences")
        return self


class DictationReportsParams(GeneratorParams):
    count: int = Field(gt=0, le=MAX_COUNT)
    voices: Literal[tuple(VOICE_POOLS)] = "all"  # type: ignore[valid-type]
    seed: int = 0

    @model_validator(mode="after")
    def _possible(self) -> DictationReportsParams:
        if self.count > _dictation_pool_size():
            raise ValueError(f"count: the dictation corpus holds {_dictation_pool_size()} distinct sentences "
                             f"(a report is never repeated), asked {self.count}")
        return self


class PiiSentencesParams(GeneratorParams):
    language: Literal[tuple(PII_TEMPLATES) + ("mixed",)] = "en"  # type: ignore[valid-type]
    count: int = Field(default=500, gt=0, le=MAX_COUNT)
    pool: Literal["train", "test"] = "train"
    seed: int = 0
    french_share: float = Field(default=0.5, ge=0, le=1)
    no_pii_share: float = Field(default=0.1, ge=0, le=1)


class SftCatalogueParams(GeneratorParams):
    document: str = Field(min_length=1, description="markdown/JSONL document, relative to the pipeline file")
    part: Literal["train", "val", "test", "all"] = "train"
    method: Literal[METHODS] = "augmented"  # type: ignore[valid-type]
    count: int = Field(default=0, ge=0, le=MAX_COUNT, description="0: every example the document yields")
    seed: int = 42
    language: Literal[tuple(DEFINITION_TEMPLATES)] = "fr"  # type: ignore[valid-type]
    system: str = ""
    llm_base_url: str = ""
    llm_model: str = ""
    document_sha256: str = ""  # added by the stage runner (cache key), never written by hand


PARAMS: dict[str, type[GeneratorParams]] = {
    "french_speech": FrenchSpeechParams,
    "dictation_reports": DictationReportsParams,
    "pii_sentences": PiiSentencesParams,
    "sft_catalogue": SftCatalogueParams,
    "document_qa": SftCatalogueParams,
}


def _problem(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"params.{where}: unknown parameter (remove it or fix its spelling)"
    if kind == "missing":
        return f"params.{where}: required"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if not where:  # a check across parameters: its message starts with the parameter's name
        return f"params.{msg}"
    return f"params.{where}: {msg} (got {err.get('input')!r})"


def check_params(generator: str, params: dict) -> GeneratorParams:
    """The validated parameters, or ValueError with one '; '-separated problem per parameter."""
    schema = PARAMS.get(generator)
    if schema is None:
        raise ValueError(f"generator: {generator!r} is not a data generator; choose one of {', '.join(sorted(PARAMS))}")
    try:
        return schema.model_validate(params)
    except ValidationError as exc:
        known = ", ".join(schema.model_fields)
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ValueError(f"generator {generator}: {problems} (its parameters: {known})") from None
