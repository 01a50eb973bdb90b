"""Tracker models and tracking pipelines: every tracker implements `trackers.base.Tracker`."""
