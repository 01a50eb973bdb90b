"""Tracking data: dataset readers, the synthetic default data, and training-pair sampling."""
