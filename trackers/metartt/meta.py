"""MetaRTT meta-training (Jung et al., AAAI 2020) on simulated tracking episodes.

An episode on one annotated video (trackers.md §3.4): D_init from its first frame and ground truth
-> K_init Meta-SGD steps with A_init; the adapted head estimates the target in the middle frames
(mean of the top-5 of gaussian candidates, as in tracking) and D_on is sampled around those
*estimated* boxes -> K_on steps with A_on; the test loss on the last frame is the cross-entropy on
ground-truth samples plus gamma x a triplet term whose hard negatives are target patches of the
other videos. The meta-loss sums the test loss after both adaptations (paper eq. 7) and Adam steps
{theta_0, A_init, A_on} through the unrolled inner steps. The pruning network is trained
separately with theta fixed, on the same episodes (paper eqs. 9-12).

Choices not fixed by the paper or the notes:
- Sample rules: D_init and D_std^test use RT-MDNet's first-frame rules (pos gaussian(0.1, 1.2),
  IoU >= 0.7; neg uniform(1, 2, aspect 1.1), IoU <= 0.5); D_on uses its online-update rules (pos
  gaussian(0.1, 1.2), IoU >= 0.7; neg uniform(1.5, 1.2), IoU <= 0.3) around the estimates; the
  counts per frame are RT-MDNet's minibatch sizes (32 pos / 96 neg).
- gamma = 0.1, margin xi = 0.5, and Delta on the L2-normalised 2-d head outputs f(x; theta) (the paper's
  "outputs of the model"); a triplet takes an anchor positive, another positive of the same test
  frame (a cyclic shift) and a random hard negative; `n_hard` target samples (IoU >= 0.7 around the
  ground truth) per other video in the mini-batch.
- In meta-training the head runs with dropout during the inner steps (as RT-MDNet trains) and
  without it for target estimation and the test loss; the pruning step runs without dropout.
- Pruning loss per (dataset, theta) pair of the trajectory: the mean over samples of the L2 error
  (sqrt(sum d^2 + 1e-12), finite gradient at 0) of the conv3 RoI features and of the fc4, fc5 and
  fc6 outputs (S = last shared conv + all fc layers), plus lambda x the masks' L1 norm, lambda = 1e-3.
- Synthetic episodes (`make_synthetic_episodes`): pseudo-videos cut from real skimage photographs by
  a moving, zooming camera window around a fixed target region (as the paper builds COCO
  pseudo-videos by random shifts and resizing).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trackers.metartt.geometry import INIT_NEG, INIT_POS, UPDATE_NEG, UPDATE_POS
from trackers.metartt.model import (
    MetaRTT, RTMDNet, SampleSet, TrackingStepConfig, adapt, binary_loss, labelled_samples, lasso, locate)



@dataclass
class Episode:
    """One annotated (pseudo-)video: RGB frames and (n, 4) x, y, w, h ground truth."""

    frames: list[np.ndarray]
    boxes: np.ndarray


@dataclass(frozen=True)
class EpisodeConfig(TrackingStepConfig):
    """Episode simulation and meta-objective settings (see the module docstring)."""

    n_pos: int = 32
    n_neg: int = 96
    n_hard: int = 4
    gamma: float = 0.1
    margin: float = 0.5


def final_frame_samples(episode: Episode, config: EpisodeConfig, rng: np.random.Generator) -> SampleSet:
    """D_std^test: ground-truth samples of the episode's last frame (first-frame rules)."""
    return labelled_samples(episode.frames[-1], episode.boxes[-1], INIT_POS, INIT_NEG, config.n_pos,
                            config.n_neg, rng)


def _split(feats: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.from_numpy(labels == 1).to(feats.device)
    return feats[mask], feats[~mask]


@dataclass
class Trajectory:
    """tau = (D_init, D_on, D_test, {theta_init^k}, {theta_on^k})."""

    init: SampleSet
    online: list[SampleSet]
    test: SampleSet
    theta_init: list[dict[str, torch.Tensor]]
    theta_on: list[dict[str, torch.Tensor]]


def simulate(learner: MetaRTT, episode: Episode, test: SampleSet, config: EpisodeConfig,
             rng: np.random.Generator, differentiable: bool) -> Trajectory:
    """Initial adaptation on frame 0, online adaptation on estimated targets of the middle frames."""
    net = learner.net
    frames, gt = episode.frames, episode.boxes
    init = labelled_samples(frames[0], gt[0], INIT_POS, INIT_NEG, config.n_pos, config.n_neg, rng)
    with torch.set_grad_enabled(differentiable):
        pos, neg = _split(init.features(net, config.scene), init.labels)
    theta_0 = net.head_params() if differentiable else {k: v.detach() for k, v in net.head_params().items()}
    theta_init = adapt(net, theta_0, learner.alpha_init.rates(), pos, neg, rng, config.adapt,
                       create_graph=differentiable)
    online, box = [], np.asarray(gt[0], dtype=np.float64)
    for frame in frames[1:-1]:
        box, _ = locate(net, theta_init[-1], frame, box, config.candidates, config.n_candidates,
                        config.top_k, config.scene, rng)
        online.append(labelled_samples(frame, box, UPDATE_POS, UPDATE_NEG, config.n_pos, config.n_neg, rng))
    with torch.set_grad_enabled(differentiable):
        split = [_split(s.features(net, config.scene), s.labels) for s in online]
    theta_on = adapt(net, theta_init[-1], learner.alpha_on.rates(), torch.cat([p for p, _ in split]),
                     torch.cat([n for _, n in split]), rng, config.adapt, create_graph=differentiable)
    return Trajectory(init, online, test, theta_init, theta_on)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """mean (xi + Delta(a, p) - Delta(a, n))_+ with Delta on L2-normalised outputs."""
    a, p, n = (F.normalize(t, dim=1) for t in (anchor, positive, negative))
    return torch.relu(margin + (a - p).norm(dim=1) - (a - n).norm(dim=1)).mean()


def episode_test_loss(net: RTMDNet, params: dict[str, torch.Tensor], feats: torch.Tensor,
                      labels: np.ndarray, hard: torch.Tensor, config: EpisodeConfig,
                      rng: np.random.Generator) -> torch.Tensor:
    """L(D_std; theta) + gamma L_tri(D_test; theta) (paper eq. 4), head without dropout."""
    was_training = net.training
    net.eval()
    logits = net.classify(feats, params)
    hard_logits = net.classify(hard, params)
    net.train(was_training)
    target = torch.from_numpy(labels).to(feats.device)
    pos_logits, _ = _split(logits, labels)
    negative = hard_logits[torch.from_numpy(rng.integers(0, len(hard), len(pos_logits))).to(feats.device)]
    tri = triplet_loss(pos_logits, pos_logits.roll(1, dims=0), negative, config.margin)
    return binary_loss(logits, target) + config.gamma * tri


def meta_step(learner: MetaRTT, episodes: list[Episode], optimizer: torch.optim.Optimizer,
              config: EpisodeConfig, rng: np.random.Generator) -> float:
    """One Adam step on L_meta = mean over episodes of L_test(theta_init^K) + L_test(theta_on^K)."""
    if len(episodes) < 2:
        raise ValueError("meta_step needs at least two episodes (hard negatives come from other videos)")
    net = learner.net.train()
    test_sets = [final_frame_samples(ep, config, rng) for ep in episodes]
    test_feats = [s.features(net, config.scene) for s in test_sets]
    targets = [_split(f, s.labels)[0][:config.n_hard] for f, s in zip(test_feats, test_sets)]
    total = torch.zeros((), device=test_feats[0].device)
    for e, episode in enumerate(episodes):
        traj = simulate(learner, episode, test_sets[e], config, rng, differentiable=True)
        hard = torch.cat([t for o, t in enumerate(targets) if o != e])
        for params in (traj.theta_init[-1], traj.theta_on[-1]):
            total = total + episode_test_loss(net, params, test_feats[e], test_sets[e].labels, hard, config, rng)
    meta_loss = total / len(episodes)
    optimizer.zero_grad(set_to_none=True)
    meta_loss.backward()
    optimizer.step()
    return float(meta_loss.detach())


def _l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((a - b).pow(2).sum(dim=1) + 1e-12).mean()


def pruning_step(learner: MetaRTT, episodes: list[Episode], optimizer: torch.optim.Optimizer,
                 config: EpisodeConfig, rng: np.random.Generator, lasso_weight: float = 1e-3) -> float:
    """One Adam step of the pruning network on L_prune = mean over episodes of L_ep (eqs. 11-12);
    `lasso_weight` is the paper's lambda on the masks' L1 norm (larger prunes more after few steps).

    theta is fixed (its parameters are frozen for the step, so no gradient is spent on them).
    """
    net = learner.net.eval()
    learner.pruner.train()
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        total = torch.zeros((), device=net.conv1.weight.device)
        for episode in episodes:
            total = total + _episode_lasso(learner, episode, config, rng, lasso_weight)
        loss = total / len(episodes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return float(loss.detach())


def _episode_lasso(learner: MetaRTT, episode: Episode, config: EpisodeConfig,
                   rng: np.random.Generator, lasso_weight: float) -> torch.Tensor:
    """L_ep (eq. 11) with the masks predicted from D_init and theta_init (eq. 12)."""
    net = learner.net
    traj = simulate(learner, episode, final_frame_samples(episode, config, rng), config, rng,
                    differentiable=False)
    theta_init = traj.theta_init[-1]
    with torch.no_grad():
        pooled = learner.pooled_features(traj.init.frame, traj.init.boxes, traj.init.target_wh,
                                         theta_init, config.scene)
    masks = learner.pruner(pooled)
    total = torch.zeros((), device=net.conv1.weight.device)
    pairs = [([traj.init], [theta_init]), (traj.online, traj.theta_on), ([traj.test], traj.theta_on[-1:])]
    for sets, thetas in pairs:
        with torch.no_grad():
            full = torch.cat([s.features(net, config.scene) for s in sets])
            targets = [[full, *net.classify(full, theta, all_layers=True)] for theta in thetas]
        pruned = torch.cat([s.features(net, config.scene, masks) for s in sets])
        for theta, target in zip(thetas, targets):
            outputs = [pruned, *net.classify(pruned, theta, masks, all_layers=True)]
            total = total + sum(_l2(o, t) for o, t in zip(outputs, target))
            total = total + lasso_weight * lasso(masks)
    return total


@lru_cache(maxsize=1)
def _photographs() -> tuple[np.ndarray, ...]:
    from skimage import data

    return (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())


def make_synthetic_episodes(n: int, rng: np.random.Generator, n_frames: int = 6,
                            frame_wh: tuple[int, int] = (192, 144), motion: float = 0.06,
                            zoom: float = 0.05) -> list[Episode]:
    """Pseudo-videos from real photographs: a camera window drifts and zooms around a fixed target.

    The target is a random region (20-35% of the window side) of a photograph; each frame is the
    window resampled to `frame_wh`, the window centre following a random walk (std `motion` x
    window width per frame, kept within a quarter window of the target) and its size a log-normal
    walk (std `zoom`).
    """
    episodes = []
    photos = _photographs()
    fw, fh = frame_wh
    for i in range(n):
        photo = photos[i % len(photos)]
        ph, pw = photo.shape[:2]
        win_w = rng.uniform(0.45, 0.7) * min(pw, ph * fw / fh)
        tw, th = win_w * rng.uniform(0.2, 0.35), win_w * fh / fw * rng.uniform(0.2, 0.35)
        tx = rng.uniform(0.25 * pw, 0.75 * pw - tw)
        ty = rng.uniform(0.25 * ph, 0.75 * ph - th)
        target_c = np.array([tx + tw / 2.0, ty + th / 2.0])
        offset = np.zeros(2)
        frames, boxes = [], []
        for _ in range(n_frames):
            offset = np.clip(offset + motion * win_w * rng.standard_normal(2), -win_w / 4.0, win_w / 4.0)
            win_w *= float(np.exp(zoom * rng.standard_normal()))
            scale = fw / win_w
            origin = target_c + offset - np.array([win_w, win_w * fh / fw]) / 2.0
            matrix = np.array([[scale, 0.0, -origin[0] * scale], [0.0, scale, -origin[1] * scale]])
            frames.append(cv2.warpAffine(photo, matrix, (fw, fh), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT))
            boxes.append([(tx - origin[0]) * scale, (ty - origin[1]) * scale, tw * scale, th * scale])
        episodes.append(Episode(frames, np.array(boxes)))
    return episodes
