"""What every part of the agent shares and that imports none of them: secret redaction, the
environment facts, model references, the live state (MLflow, Prefect) and its pure summaries."""
