"""Evaluation: metrics with confidence intervals, predictions, reading time."""
