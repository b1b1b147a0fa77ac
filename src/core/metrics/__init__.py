"""Evaluation metrics (pure: strings and label lists in, numbers out)."""
