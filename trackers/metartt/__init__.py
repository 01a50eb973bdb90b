"""MetaRTT (Jung et al., AAAI 2020): RT-MDNet with meta-learned fast adaptation and one-shot pruning."""
from trackers.metartt.geometry import SampleRule, SceneConfig
from trackers.metartt.meta import (
    Episode, EpisodeConfig, Trajectory, make_synthetic_episodes, meta_step, pruning_step, simulate)
from trackers.metartt.model import (
    AdaptConfig, MaskPredictor, MetaRTT, MetaRTTConfig, RTMDNet, RTMDNetConfig, adapt, effective_masks,
    kept_channels, roi_align, roi_features, roi_pool, slice_parameters)
from trackers.metartt.tracker import MetaRTTTracker, MetaRTTTrackerConfig

__all__ = [
    "AdaptConfig", "Episode", "EpisodeConfig", "MaskPredictor", "MetaRTT", "MetaRTTConfig",
    "MetaRTTTracker", "MetaRTTTrackerConfig", "RTMDNet", "RTMDNetConfig", "SampleRule", "SceneConfig",
    "Trajectory", "adapt", "effective_masks", "kept_channels", "make_synthetic_episodes", "meta_step",
    "pruning_step", "roi_align", "roi_features", "roi_pool", "simulate", "slice_parameters",
]
