"""Read a pipeline's latest run back from MLflow: the per-stage baseline vs final table."""

from core.tracking.summary import HEADLINE, latest_pipeline_summary, pipeline_run_summary

__all__ = ["HEADLINE", "latest_pipeline_summary", "pipeline_run_summary"]
