"""GradNet (Li et al., ICCV 2019): gradient-guided template update for SiamFC, model and tracker."""
from trackers.gradnet.model import (
    AlexNetBranch, GradientEncoder, GradNet, GradNetConfig, UncentredBatchNorm, logistic_label,
    logistic_loss, template_generalization_step, trainable_parameters, weight_decay, xcorr)
from trackers.gradnet.tracker import GradNetTracker, GradNetTrackerConfig

__all__ = [
    "AlexNetBranch", "GradNet", "GradNetConfig", "GradNetTracker", "GradNetTrackerConfig",
    "GradientEncoder", "UncentredBatchNorm", "logistic_label", "logistic_loss",
    "template_generalization_step", "trainable_parameters", "weight_decay", "xcorr",
]
