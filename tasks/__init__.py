"""Prefect tasks: the steps of a stage as they appear in the Prefect UI."""
