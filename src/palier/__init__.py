"""palier: progressive fine-tuning pipelines, run by Prefect, tracked in MLflow."""

__version__ = "0.1.0"
