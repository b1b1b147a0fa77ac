"""Pipeline configuration: pydantic models (frozen, unknown keys rejected) and YAML loading."""

from core.config.common import (
    BackendConfig,
    CsvData,
    DataSource,
    EvalSet,
    FolderData,
    GateConfig,
    HubData,
    JsonlData,
)
from core.config.loading import ConfigError, load_pipeline, parse_pipeline
from core.config.pipeline import PipelineConfig, StageConfig

__all__ = [
    "BackendConfig",
    "ConfigError",
    "CsvData",
    "DataSource",
    "EvalSet",
    "FolderData",
    "GateConfig",
    "HubData",
    "JsonlData",
    "PipelineConfig",
    "StageConfig",
    "load_pipeline",
    "parse_pipeline",
]
