"""The MLflow side. Only the orchestrator (flows/tasks) calls it; the stage runner never does."""
