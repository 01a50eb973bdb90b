"""`DiMPNet`: a small stride-16 backbone + DiMP's classification head (features, initializer, optimizer).

DiMP learns its classifier *inside* the network: the initializer proposes a filter from the train
frames, the steepest-descent Gauss-Newton optimizer refines it for a few steps, and training scores
the test frames with every iterate (trackers.md §1.2-1.4). The head modules are the project's DiMP
core; this module only adds the backbone, the wiring and the checkpoint reader.

Choices not fixed by the paper or the notes:
- Backbone: ImageNet ResNet weights are not available, so DiMP-18's ResNet-18 `layer3` is replaced
  by a small MobileNetV2-style stack trained from scratch (the LightTrack blocks of this repo):
  a 3x3 stride-2 conv-BN-ReLU stem, then four inverted-residual (MBConv, expansion 4, 3x3 depthwise,
  ReLU, no SE) stages at stride 2, 2, 2 and 1, i.e. output stride 16. Default widths 16-24-32-64-64
  give a 64-channel stride-16 map (61k backbone parameters; 0.21M for the whole net).
- Classification features: one residual block + 3x3 conv to `feature_dim` (64 by default, DiMP-18
  uses 256) + instance L2 norm, as DiMP-18's block at a smaller width.
- Crop geometry lives here (`image_sample_size`, `search_area_scale`) because the optimizer's label
  sigma at initialisation depends on it: sigma = output_sigma_factor * feature_sz / search_area_scale
  cells (0.9 cells for DiMP's 288 px / 5x / 1/4). Default crop 160 px (10x10 features, 11x11 scores)
  so training and tracking stay fast on a CPU.
- Checkpoints (written by `trackers.dimp.train`) hold the net config under "net" and the weights
  under "model"; `load_dimp_net` reads them with weights_only=True.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nas.dsl.grammar import SEConfig
from nas.errors import ConfigError
from nas.io import torch_load
from nas.ops.blocks import ConvBnAct, InvertedResidual
from nas.ops.dimp.features import ClassificationFeatures
from nas.ops.dimp.initializer import FilterInitializerLinear
from nas.ops.dimp.optimizer import DiMPSteepestDescentGN, apply_filter

FEATURE_STRIDE = 16


@dataclass(frozen=True)
class DiMPNetConfig:
    """Architecture and the crop geometry it is trained for."""

    widths: tuple[int, ...] = (16, 24, 32, 64, 64)  # stem, then one MBConv stage each (strides 2, 2, 2, 1)
    expand: float = 4.0
    feature_dim: int = 64
    feature_blocks: int = 1
    filter_size: int = 4
    num_iter: int = 5  # GN iterations unrolled in training
    image_sample_size: int = 160
    search_area_scale: float = 5.0
    output_sigma_factor: float = 0.25

    def __post_init__(self) -> None:
        if len(self.widths) < 5:
            raise ConfigError(f"need a stem and at least 4 stages to reach stride 16, got widths {list(self.widths)}",
                              key="widths")
        if self.image_sample_size <= 0 or self.image_sample_size % FEATURE_STRIDE:
            raise ConfigError(f"must be a positive multiple of {FEATURE_STRIDE} (the label grid is the feature "
                              f"grid), got {self.image_sample_size}", key="image_sample_size")

    @property
    def feature_size(self) -> int:
        return self.image_sample_size // FEATURE_STRIDE

    @property
    def label_sigma(self) -> float:
        """Gaussian label sigma in feature cells: 1/4 of the nominal target size."""
        return self.output_sigma_factor * self.feature_size / self.search_area_scale

    @property
    def output_size(self) -> int:
        """Side of the score map (an even filter adds one cell)."""
        return self.feature_size + (self.filter_size + 1) % 2

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: dict) -> "DiMPNetConfig":
        return cls(**{**data, "widths": tuple(data["widths"])})


def make_backbone(widths: tuple[int, ...], expand: float) -> nn.Sequential:
    """Stem conv (stride 2) + one MBConv per further width at strides 2, 2, 2, 1, ... (output stride 16)."""
    layers: list[nn.Module] = [ConvBnAct(3, widths[0], 3, 2, "relu")]
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(InvertedResidual(cin, cout, 3, 2 if i < 3 else 1, expand, 0.0, "relu", SEConfig()))
    return nn.Sequential(*layers)


class DiMPNet(nn.Module):
    """Backbone -> classification features; initializer + unrolled GN optimizer predict the filter."""

    def __init__(self, config: DiMPNetConfig = DiMPNetConfig()):
        super().__init__()
        self.config = config
        self.backbone = make_backbone(config.widths, config.expand)
        self.clf_features = ClassificationFeatures(config.widths[-1], config.feature_dim, config.filter_size,
                                                   config.feature_blocks)
        self.initializer = FilterInitializerLinear(config.filter_size, config.feature_dim, FEATURE_STRIDE)
        self.optimizer = DiMPSteepestDescentGN(num_iter=config.num_iter, feat_stride=FEATURE_STRIDE,
                                               init_gauss_sigma=config.label_sigma)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Images (*, 3, H, W) -> classification features (*, D, H/16, W/16)."""
        lead = images.shape[:-3]
        feat = self.clf_features(self.backbone(images.reshape(-1, *images.shape[-3:])))
        return feat.reshape(*lead, *feat.shape[-3:])

    def learn_filter(self, feat: torch.Tensor, bb: torch.Tensor, sample_weight: torch.Tensor | None = None,
                     num_iter: int | None = None, compute_losses: bool = False
                     ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Initial filter from feat (B, N, D, h, w) and boxes (B, N, 4), refined by `num_iter` GN steps."""
        weights = self.initializer(feat, bb)
        return self.optimizer(weights, feat, bb, sample_weight=sample_weight, num_iter=num_iter,
                              compute_losses=compute_losses)

    @staticmethod
    def classify(weights: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Scores (B, N, H', W') of filters (B, D, k, k) on features (B, N, D, h, w)."""
        return apply_filter(feat, weights)

    def forward(self, train_imgs: torch.Tensor, test_imgs: torch.Tensor, train_bb: torch.Tensor,
                num_iter: int | None = None) -> list[torch.Tensor]:
        """Test scores (B, N_test, H', W') of every filter iterate f0..fN learned on the train frames."""
        train_feat, test_feat = self.extract(train_imgs), self.extract(test_imgs)
        _, iterates, _ = self.learn_filter(train_feat, train_bb, num_iter=num_iter)
        return [self.classify(weights, test_feat) for weights in iterates]


def load_dimp_net(path: str | Path) -> DiMPNet:
    """A `DiMPNet` from a training checkpoint; a one-line ConfigError when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("DiMP checkpoint not found", source=str(path))
    try:
        state = torch_load(path)
        net = DiMPNet(DiMPNetConfig.from_dict(state["net"]))
        net.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError, OSError, EOFError) as err:  # torch.load/pickle errors vary
        message = " ".join(str(err).split())[:200]
        raise ConfigError(f"not a usable DiMP checkpoint ({type(err).__name__}: {message})",
                          source=str(path)) from None
    return net
