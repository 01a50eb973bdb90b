"""Training: schedules and loss weighting used by supernet training and subnet retraining."""
