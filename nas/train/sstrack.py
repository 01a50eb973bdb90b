"""SSTrack (Kou et al., IJCAI'25): interval-bin sampling, success-aware schedule, gradient scaling.

Easier-to-harder training for lightweight trackers without touching the model: the pair sampler
draws template/search intervals from bins whose probabilities q are re-planned once per epoch from
training IoUs, and each sample's loss is multiplied by its bin's gradient-scaling weight so bins
sampled less than the random sampler would keep their original objective.

The trainer's contract: `sample` is the `IntervalStrategy` the pair sampler calls; after every
epoch call `update_epoch(bin_ids, ious)` with that epoch's samples and write the returned record;
multiply per-sample losses by `loss_weights(bin_ids)`; keep `state_dict()` in the checkpoint.

Choices not fixed by the paper (seed 002 §3) or trackers.md §4:

* Bins. Bin 0 is the static bin [0, 1): template and search are the same frame. Bins 1..r
  (r = ceil(M/m)) cover |t_x - t_z| in [l_i, u_i) with l_i = m(i-1), u_i = min(m i, M), except
  that bin 1 starts at 1, so interval 0 belongs to the static bin only and the bins partition the
  integer intervals {0..M-1}. Hence `bin_width >= 2` and `max_interval >= 2`.
* Random-sampler distribution q^R: the integer interval is uniform over {0..M-1}, so a bin's mass
  is its width / M; the static bin counts as interval 0 (mass 1/M).
* Chain. The static bin is the first "general frame", then bins 1..r by interval (R = r+1 frames).
  Frame k's success uses its own transition T_k: s_k = P(X_k = success) = p_k (d + (1-d) s_{k-1})
  with s_{-1} = 1 (pi_0 = (1, 0)), S = sum_k s_k / R. This is the notes' reading (d = 0 gives
  s_k = prod_{j<=k} p_j, d = 1 gives s_k = p_k); the paper's literal pi_i = pi_0 T_1..T_{i-1}
  never uses the last bin's p, which would never sample the longest bin.
* Exact derivative by prefix/suffix recursions: dS/dp_i = a_i B_i / R with a_i = d + (1-d) s_{i-1}
  and B_i = 1 + (1-d) p_{i+1} B_{i+1}, B_{R-1} = 1; nothing is divided by p. Because a_0 = 1 and
  B_0 >= 1, the sum of derivatives is >= 1/R for all p, d in [0, 1]: they are never all zero, so
  q is always well defined and no uniform fallback is needed.
* Epochs are 1-based. Epoch 1 uses uniform q over the R bins. The q of epoch e >= 2 comes from epoch
  e-1's statistics with d(e) = (min(e, E)/E)^(1/order): the last epoch has d = 1, and an update
  after the last epoch (epoch E+1) keeps d = 1 instead of failing.
* p starts at 0.5 (nothing observed yet); a bin without samples in an epoch keeps its previous p.
  Success is IoU > tau (strict), tau = mean IoU of the epoch.
* Short videos (the sampler sees only the length L, so it cannot re-draw the video as the paper
  does): a bin is feasible iff L > l_i; the bin is drawn from q restricted to the feasible bins
  (renormalised), i.e. the bin distribution conditioned on the video, falling back to the longest
  feasible bin when q gives those no mass. The static bin is always feasible, so sampling never
  loops. The returned bin id is the bin actually used, so statistics and loss weights follow it.
* Within a bin, t_z is uniform over the frames that have a partner in the bin and t_x is uniform over
  that frame's partners in either direction (the paper's two-step draw).
* Gradient scaling: s_i = (q^R_i - q_i) / q^R_i is clamped at `max_prune` (default 0.9) so
  Gamma_i = 1/(1 - s_i) <= 10 for s_i >= 0, and Gamma_i = 1 for s_i < 0. With
  `gradient_scaling=False` (the paper's scheduler-only ablation) every weight is 1.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from nas.data.intervals import IntervalStrategy, UniformInterval
from nas.errors import ConfigError

INITIAL_P = 0.5


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, valid: Callable[[float], bool], expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not valid(value):
        raise ValueError(f"{name} must be a number {expected}, got {value!r}")
    return float(value)


def _as_numpy(values: Any, dtype: type) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


def _draw(rng: np.random.Generator, ranges: list[tuple[int, int]]) -> int:
    """Uniform integer from a union of disjoint inclusive ranges (empty ranges have hi < lo)."""
    sizes = np.array([max(0, hi - lo + 1) for lo, hi in ranges])
    ends = np.cumsum(sizes)
    k = int(rng.integers(ends[-1]))
    which = int(np.searchsorted(ends, k, side="right"))
    return ranges[which][0] + k - int(ends[which] - sizes[which])


class IntervalBins:
    """Bin geometry: bin 0 = static [0, 1); bins 1..r partition the intervals 1..M-1 by width m."""

    def __init__(self, max_interval: int, bin_width: int):
        self.max_interval = _check_int("max_interval", max_interval, 2)
        self.bin_width = _check_int("bin_width", bin_width, 2)
        r = math.ceil(self.max_interval / self.bin_width)
        lows = [0, 1] + [self.bin_width * i for i in range(1, r)]
        highs = [1] + [min(self.bin_width * (i + 1), self.max_interval) for i in range(r)]
        self.bounds: tuple[tuple[int, int], ...] = tuple(zip(lows, highs))

    def __len__(self) -> int:
        return len(self.bounds)

    def random_mass(self) -> np.ndarray:
        """q^R: bin probabilities when the interval is uniform over {0..M-1}."""
        return np.array([hi - lo for lo, hi in self.bounds], dtype=np.float64) / self.max_interval

    def feasible(self, length: int) -> np.ndarray:
        """Bins that have at least one frame pair in a video of `length` frames."""
        return np.array([lo < length for lo, _ in self.bounds])

    def sample_pair(self, rng: np.random.Generator, length: int, bin_id: int) -> tuple[int, int]:
        """(t_z, t_x) with |t_x - t_z| in bin `bin_id`, both inside [0, length)."""
        lo, hi = self.bounds[bin_id]
        if length <= lo:
            raise ValueError(f"bin {bin_id} needs more than {lo} frames, video has {length}")
        if lo == 0:
            t = int(rng.integers(length))
            return t, t
        # Templates with a partner: [0, L-1-lo] (forward) and [lo, L-1] (backward), merged if they meet.
        if length - lo >= lo:
            t_z = int(rng.integers(length))
        else:
            t_z = _draw(rng, [(0, length - 1 - lo), (lo, length - 1)])
        t_x = _draw(rng, [(max(0, t_z - hi + 1), t_z - lo), (t_z + lo, min(length - 1, t_z + hi - 1))])
        return t_z, t_x


def success_gradient(p: np.ndarray, d: float) -> np.ndarray:
    """Exact dS/dp_i of the success chain (module docstring), via prefix/suffix recursions."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    reach = np.empty(n)  # a_i = P(frame i succeeds | p_i = 1), a prefix quantity
    s_prev = 1.0
    for k in range(n):
        reach[k] = d + (1.0 - d) * s_prev
        s_prev = p[k] * reach[k]
    carry = np.ones(n)  # B_i = sum over k >= i of how much s_k moves per unit of s_i, a suffix quantity
    for k in range(n - 2, -1, -1):
        carry[k] = 1.0 + (1.0 - d) * p[k + 1] * carry[k + 1]
    return reach * carry / n


def success_aware_q(p: np.ndarray, d: float) -> np.ndarray:
    """q_i proportional to dS/dp_i; the normaliser is >= 1/R (module docstring), never zero."""
    grad = success_gradient(p, d)
    return grad / grad.sum()


def pacing(epoch: int, epochs: int, order: float) -> float:
    """d(e) = (e/E)^(1/order), held at 1 past the last epoch."""
    return (min(epoch, epochs) / epochs) ** (1.0 / order)


def gradient_scale(q_random: np.ndarray, q: np.ndarray, max_prune: float) -> np.ndarray:
    """Gamma per bin: 1/(1 - s) for pruned bins (s clamped at max_prune), 1 for enhanced bins."""
    s = (q_random - q) / q_random
    return np.where(s >= 0, 1.0 / (1.0 - np.minimum(s, max_prune)), 1.0)


class SSTrackSchedule:
    """The SSTrack interval strategy plus its per-epoch scheduler and loss weights (see module doc)."""

    def __init__(self, epochs: int, max_interval: int = 200, bin_width: int = 30, pacing_order: float = 2.0,
                 max_prune: float = 0.9, gradient_scaling: bool = True):
        self.epochs = _check_int("epochs", epochs, 1)
        self.bins = IntervalBins(max_interval, bin_width)
        self.pacing_order = _check_float("pacing_order", pacing_order, lambda v: 0 < v < math.inf, "> 0")
        self.max_prune = _check_float("max_prune", max_prune, lambda v: 0 <= v < 1, "in [0, 1)")
        if not isinstance(gradient_scaling, bool):
            raise ValueError(f"gradient_scaling must be true or false, got {gradient_scaling!r}")
        self.gradient_scaling = gradient_scaling
        self.q_random = self.bins.random_mass()
        n = len(self.bins)
        self.epoch = 1
        self.p = np.full(n, INITIAL_P)
        self.q = np.full(n, 1.0 / n)
        self.tau: float | None = None
        self.d: float | None = None

    # -- sampling (IntervalStrategy) ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator, length: int) -> tuple[int, int, int]:
        """Draw a bin from q over the bins this video can hold, then a frame pair inside it."""
        if length < 1:
            raise ValueError(f"video length must be >= 1, got {length}")
        feasible = self.bins.feasible(length)
        mass = np.where(feasible, self.q, 0.0)
        if mass.sum() > 0:
            bin_id = int(rng.choice(len(mass), p=mass / mass.sum()))
        else:
            bin_id = int(np.flatnonzero(feasible)[-1])
        t_z, t_x = self.bins.sample_pair(rng, length, bin_id)
        return t_z, t_x, bin_id

    # -- loss weights ------------------------------------------------------------------------------
    @property
    def gamma(self) -> np.ndarray:
        """Per-bin loss weight for the current epoch."""
        if not self.gradient_scaling:
            return np.ones(len(self.bins))
        return gradient_scale(self.q_random, self.q, self.max_prune)

    def loss_weights(self, bin_ids: Any) -> torch.Tensor:
        """Per-sample Gamma (float32), on the device of `bin_ids` when it is a tensor."""
        device = bin_ids.device if isinstance(bin_ids, torch.Tensor) else None
        ids = self._check_ids(_as_numpy(bin_ids, np.int64))
        return torch.as_tensor(self.gamma[ids], dtype=torch.float32, device=device)

    # -- scheduling --------------------------------------------------------------------------------
    def update_epoch(self, bin_ids: Any, ious: Any) -> dict[str, Any]:
        """Plan the next epoch from this epoch's per-sample (bin id, IoU); returns its log record."""
        ids = self._check_ids(_as_numpy(bin_ids, np.int64))
        iou = _as_numpy(ious, np.float64)
        if len(ids) != len(iou) or len(ids) == 0:
            raise ValueError(f"need equally many bin ids and IoUs (> 0), got {len(ids)} and {len(iou)}")
        if not np.all(np.isfinite(iou)):
            raise ValueError("IoUs must be finite")
        n = len(self.bins)
        tau = float(iou.mean())
        counts = np.bincount(ids, minlength=n)
        hits = np.bincount(ids, weights=(iou > tau).astype(np.float64), minlength=n)
        self.p = np.where(counts > 0, hits / np.maximum(counts, 1), self.p)
        self.tau = tau
        self.epoch += 1
        self.d = pacing(self.epoch, self.epochs, self.pacing_order)
        self.q = success_aware_q(self.p, self.d)
        return {"epoch": self.epoch, "tau": tau, "d": self.d, "n": counts.tolist(), "p": self.p.tolist(),
                "q": self.q.tolist(), "gamma": self.gamma.tolist()}

    def _check_ids(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.bins)):
            raise ValueError(f"bin ids must lie in [0, {len(self.bins)}), got {ids.min()}..{ids.max()}")
        return ids

    # -- checkpointing -----------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "max_interval": self.bins.max_interval, "bin_width": self.bins.bin_width,
                "pacing_order": self.pacing_order, "max_prune": self.max_prune,
                "gradient_scaling": self.gradient_scaling}

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (loadable with `weights_only=True`); float64 values round-trip exactly."""
        return {"config": self._config(), "epoch": self.epoch, "p": self.p.tolist(), "q": self.q.tolist(),
                "tau": self.tau, "d": self.d}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a schedule saved by a run with the same configuration (else ValueError)."""
        if dict(state["config"]) != self._config():
            raise ValueError(f"schedule config {dict(state['config'])} does not match {self._config()}")
        p, q = np.asarray(state["p"], dtype=np.float64), np.asarray(state["q"], dtype=np.float64)
        if p.shape != (len(self.bins),) or q.shape != (len(self.bins),):
            raise ValueError(f"p and q must have {len(self.bins)} entries")
        self.epoch, self.p, self.q = int(state["epoch"]), p, q
        self.tau, self.d = state["tau"], state["d"]


_KEYS = {
    "uniform": {"schedule", "max_gap"},
    "sstrack": {"schedule", "epochs", "max_interval", "bin_width", "pacing_order", "max_prune",
                "gradient_scaling"},
}


def make_interval_strategy(cfg: Mapping[str, Any], source: str | None = None) -> IntervalStrategy:
    """Build the strategy `cfg["schedule"]` names ('uniform' by default); ConfigError on bad input.

    uniform: `max_gap` (default 100). sstrack: `epochs` (required), `max_interval` (200),
    `bin_width` (30), `pacing_order` (2), `max_prune` (0.9), `gradient_scaling` (true).
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"expected a mapping, got {type(cfg).__name__}", source=source)
    schedule = cfg.get("schedule", "uniform")
    if schedule not in _KEYS:
        raise ConfigError(f"expected one of {sorted(_KEYS)}, got {schedule!r}", source=source, key="schedule")
    unknown = sorted(set(cfg) - _KEYS[schedule], key=str)
    if unknown:
        raise ConfigError(f"unknown key for schedule {schedule!r}; allowed: {sorted(_KEYS[schedule])}",
                          source=source, key=str(unknown[0]))
    if schedule == "sstrack" and "epochs" not in cfg:
        raise ConfigError("required for schedule 'sstrack'", source=source, key="epochs")
    options = {k: v for k, v in cfg.items() if k != "schedule"}
    try:
        if schedule == "uniform":
            return UniformInterval(_check_int("max_gap", options.get("max_gap", 100), 0))
        return SSTrackSchedule(**options)
    except ValueError as err:
        raise ConfigError(str(err), source=source) from None
