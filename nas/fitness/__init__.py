"""Fitness of a tracker: benchmark metrics, result files, scoring and the evaluation harness."""
