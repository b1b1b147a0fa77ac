"""Prefect as palier reads it back: ``queries`` is the one module that holds Prefect's client."""
