"""DiMP (Bhat et al., ICCV 2019) core as reusable torch modules: the discriminative model predictor.

Tensor layout used throughout: features (B, N, D, H, W) for B sequences with N images each, boxes
(B, N, 4) as x, y, w, h in image pixels, filters (B, D, k, k), scores (B, N, H', W') with
H' = H + (k + 1) % 2 (an even k adds one row/column). The modules are sized by D, k and the feature
stride, so a head can sit on any stride-16 map (e.g. LightTrack's 96/128-channel 16x16 search map).
"""
from nas.ops.dimp.features import ClassificationFeatures, InstanceL2Norm, ResidualBlock
from nas.ops.dimp.initializer import FilterInitializerLinear, FilterInitializerZero, prroi_pool2d
from nas.ops.dimp.loss import IterateWeightedLoss, LBHinge
from nas.ops.dimp.optimizer import (
    DiMPSteepestDescentGN,
    DistanceMap,
    apply_feat_transpose,
    apply_filter,
    filter_gradient,
    leaky_relu_par,
    leaky_relu_par_deriv,
)

__all__ = [
    "ClassificationFeatures", "DiMPSteepestDescentGN", "DistanceMap", "FilterInitializerLinear",
    "FilterInitializerZero", "InstanceL2Norm", "IterateWeightedLoss", "LBHinge", "ResidualBlock",
    "apply_feat_transpose", "apply_filter", "filter_gradient", "leaky_relu_par", "leaky_relu_par_deriv", "prroi_pool2d",
]
