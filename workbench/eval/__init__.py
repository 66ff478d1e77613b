"""Evaluation: metrics and the evaluation protocol (validation-chosen thresholds, multiplicity)."""
