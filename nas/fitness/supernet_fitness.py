"""Fitness of a candidate from the trained supernet (LightTrack Alg. 2, lines 4-5).

For each architecture: extract its path with the inherited weights, re-estimate the path's BN
statistics on training pairs (the supernet's running statistics mix every path), then track the
validation split with the same LightTrack pipeline and metrics that `tracknas evaluate` uses.
Default fitness = (AO + SR0.5) / 2 on the GOT-10k protocol, as LightTrack; `ao`, `auc` (OTB
one-pass success AUC) and `eao` (VOT's supervised protocol on a VOT-layout validation set, scored by
`nas.fitness.vot.analyse` as `tracknas score --protocol vot`) are also available.

`FitnessSpec` is a small picklable recipe; calling it builds a `SupernetFitness` that keeps the
supernet, the validation frames and the BN batches resident, so a Ray actor pays for them once and
then evaluates many candidates.

A *trial* varies the two sources of noise of one evaluation: `bn_sample` picks another set of BN
recalibration pairs, `subset` another block of `max_sequences` validation sequences (subset k holds
sequences k*N .. k*N+N-1, wrapping around the split; with every sequence in use, all subsets are
the split). Trial (0, 0) is what the search ranks by; the final top-k is re-scored over a grid of
trials to give each fitness a mean and a standard deviation. `identity_scores` scores the
do-nothing tracker on exactly the frames of a subset, so every fitness has its floor beside it.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nas.cost.latency import measure_latency
from nas.data.datasets import open_dataset
from nas.data.pairs import PairSampler, collate
from nas.data.sequence import Sequence, split_trackable
from nas.config import validation_source
from nas.errors import ConfigError, DataWarning
from nas.fitness import vot
from nas.fitness.harness import run_sequence
from nas.fitness.scoring import score_predictions
from nas.io import torch_load
from nas.space import Arch, load_space
from nas.supernet import Supernet, recalibrate_bn
from trackers.base import Tracker, pick_device
from trackers.identity import IdentityTracker
from trackers.lighttrack.geometry import output_strides
from trackers.lighttrack.tracker import LightTrackTracker, preset
from trackers.runtime import DEFAULT_RUNTIME, check_runtime

FITNESS_METRICS = ("ao_sr50", "ao", "auc", "eao")
BN_CACHE_LIMIT = 1024  # pairs kept decoded in memory; larger recalibration sets are re-read each time


@dataclass(frozen=True)
class FitnessSpec:
    space: str
    checkpoint: str  # supernet checkpoint (`last.pt` of train-supernet)
    data_root: str
    data_format: str | None = None
    val_split: str = "val"
    train_split: str = "train"
    bn_batches: int = 200  # LightTrack: 200 iterations ...
    bn_batch_size: int = 32  # ... of 32 pairs
    max_sequences: int | None = None  # evaluate on the first N validation sequences
    max_frames: int | None = None  # and their first M frames
    metric: str = "ao_sr50"
    tracker_preset: str = "default"
    seed: int = 0
    threads: int | None = None  # torch threads in the evaluating process (None: leave as is)
    latency_runs: int = 0  # > 0: also measure the search branch's latency (median of this many runs)
    val_root: str | None = None  # validation set elsewhere (eao: a VOT sequences/ folder)
    val_format: str | None = None
    eao_year: int = vot.DEFAULT_YEAR
    device: str | None = None  # None: CUDA when present (`pick_device`); a Ray actor is told "cuda" or "cpu"
    runtime: str = DEFAULT_RUNTIME  # what runs the tracked subnet (`trackers.runtime.RUNTIMES`)

    def __post_init__(self):
        if self.metric not in FITNESS_METRICS:
            raise ConfigError(f"expected one of {', '.join(FITNESS_METRICS)}, got {self.metric!r}", key="fitness.metric")
        if self.metric == "eao" and self.validation()[1] != "vot":
            raise ConfigError("eao needs a VOT-layout validation set (val_format vot)", key="fitness.metric")
        vot.eao_interval(self.eao_year)
        for key in ("bn_batches", "bn_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"expected a positive integer, got {getattr(self, key)!r}", key=f"fitness.{key}")
        check_runtime(self.runtime, key="fitness.runtime")

    def __call__(self) -> "SupernetFitness":
        return SupernetFitness(self)

    def validation(self) -> tuple[str, str | None, str | None]:
        """(root, format, split) of the validation set."""
        return validation_source(self.data_root, self.data_format, self.val_split, self.val_root, self.val_format)


class SupernetFitness:
    """Evaluates genotypes against one resident supernet (build once per worker)."""

    def __init__(self, spec: FitnessSpec):
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.space = load_space(spec.space)
        self.device = pick_device(spec.device)
        state = torch_load(spec.checkpoint, map_location="cpu")
        self.supernet = Supernet(self.space, state.get("weight_sharing", "none"))
        if state.get("space_hash") != self.space.hash:
            raise ConfigError(f"supernet checkpoint is for space hash {state.get('space_hash')}, "
                              f"expected {self.space.hash}", source=spec.checkpoint)
        self.supernet.load_state_dict(state["model"])
        self.supernet.to(self.device).eval()
        self._val = open_dataset(*spec.validation())
        self._subsets: dict[int, list[Sequence]] = {}
        self.sequences = self.subset(0)
        self._train = open_dataset(spec.data_root, spec.data_format, spec.train_split)
        self._bn_cache: dict[int, list[dict]] = {}

    def _bn_batches(self, sample: int) -> list[dict]:
        """BN recalibration batch set `sample` (set 0 is the search's; others draw other training pairs)."""
        if sample in self._bn_cache:
            return self._bn_cache[sample]
        size = self.spec.bn_batch_size
        pairs = PairSampler(self._train, template_size=self.space.spec.template_size,
                            search_size=self.space.spec.search_size, strides=output_strides(self.space),
                            length=self.spec.bn_batches * size, seed=self.spec.seed + sample)
        batches = []
        for b in range(self.spec.bn_batches):
            batch = collate([pairs[i] for i in range(b * size, (b + 1) * size)])
            batches.append({"z": batch["template"].to(self.device), "x": batch["search"].to(self.device),
                            "z_box": batch["template_box"].to(self.device),
                            "cls": {s: labels["cls"].to(self.device) for s, labels in batch["labels"].items()}})
        if len(pairs) <= BN_CACHE_LIMIT:
            self._bn_cache[sample] = batches
        return batches

    def recalibrated_subnet(self, arch: Arch, bn_sample: int = 0):
        """The standalone subnet of `arch` with inherited weights and its BN re-estimated (eval mode)."""
        return self.recalibrate(self.supernet.extract(arch), bn_sample)

    def recalibrate(self, subnet, bn_sample: int = 0):
        """Re-estimate `subnet`'s BN statistics on BN batch set `bn_sample`; returns it in eval mode."""
        batches = self._bn_batches(bn_sample)
        # the training forward: DiMP learns from the template box, a gradnet update runs (so U1's BN is re-estimated)
        recalibrate_bn(subnet, [lambda b=b: subnet(b["z"], b["x"], b["z_box"], b["cls"][subnet.stride])
                                for b in batches], self.spec.bn_batches)
        return subnet.eval()

    def evaluate(self, genotype: list[int] | tuple[int, ...], bn_sample: int = 0, subset: int = 0) -> dict:
        started = time.monotonic()
        arch = Arch(self.space, tuple(int(g) for g in genotype))
        subnet = self.recalibrated_subnet(arch, bn_sample)
        tracker = LightTrackTracker(subnet, preset(self.spec.tracker_preset), str(self.device), self.spec.runtime)
        # costs are not measured here: they are the search's record
        result = score_tracker(tracker, self.subset(subset), self.spec.metric, self.spec.eao_year)
        if self.spec.latency_runs:
            result["latency_ms"] = measure_latency(subnet, self.space.spec.template_size, self.space.spec.search_size,
                                                   runs=self.spec.latency_runs, warmup=2,
                                                   threads=self.spec.threads)["latency_ms"]
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    def subset(self, index: int) -> list[Sequence]:
        if index not in self._subsets:
            self._subsets[index] = validation_subset(self._val, self.spec, index)
        return self._subsets[index]


def validation_subset(val: list[Sequence], spec: FitnessSpec, index: int) -> list[Sequence]:
    """Subset `index` of the validation split: the `index`-th block of `max_sequences` sequences
    (wrapping around), each cut to `max_frames`; the whole split when `max_sequences` covers it."""
    n = spec.max_sequences or len(val)
    if n >= len(val):
        chosen = list(val)
    else:
        chosen = [val[(index * n + i) % len(val)] for i in range(n)]
    return [seq.head(spec.max_frames) if spec.max_frames else seq for seq in chosen]


def score_tracker(tracker: Tracker, sequences: list[Sequence], metric: str = "ao_sr50",
                  eao_year: int = vot.DEFAULT_YEAR) -> dict:
    """Track `sequences` and score the boxes with `score_predictions`, the implementation behind
    `tracknas score`: GOT-10k AO/SR (IoU bounded by the image, frames with the target covered), OTB
    one-pass AUC (visibility ignored, as `score --protocol otb`), and `fitness` = the chosen `metric`.
    Sequences without a valid first box are skipped (one warning each). `eao` runs VOT's supervised
    protocol instead (`score_supervised`)."""
    sequences, _ = split_trackable(sequences)
    if metric == "eao":
        return score_supervised(tracker, sequences, eao_year)
    predictions = {seq.name: run_sequence(tracker, seq) for seq in sequences}
    overlap = score_predictions(sequences, predictions, "got10k")
    auc = score_predictions(sequences, predictions, "otb")["auc"]
    frames = sum(len(seq) for seq in sequences)
    tracking_seconds = sum(float(np.sum(times)) for _, times in predictions.values())
    scores = {"ao_sr50": (overlap["ao"] + overlap["sr50"]) / 2, "ao": overlap["ao"], "auc": auc}
    return {"fitness": float(scores[metric]), "ao": overlap["ao"], "sr50": overlap["sr50"], "sr75": overlap["sr75"],
            "auc": auc, "fps": frames / tracking_seconds if tracking_seconds else None}


def score_supervised(tracker: Tracker, sequences: list[Sequence], year: int) -> dict:
    """One supervised run per sequence scored by `nas.fitness.vot.analyse` (as `score --protocol vot`):
    the tracker is deterministic, and the toolkit's three identical runs give the same numbers as one.
    Where no run lasts into the year's EAO interval the toolkit's EAO is undefined (`eao` None): such a
    candidate ranks last, with fitness 0."""
    vot.check_vot_sequences(sequences, "fitness validation set")
    started, runs = time.perf_counter(), {}
    for seq in sequences:
        runs[seq.name] = [vot.supervised_run(tracker, seq)[0]]
    seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # an undefined EAO is reported in the result instead
        report = vot.analyse(sequences, runs, year)
    frames = sum(len(seq) for seq in sequences)
    return {"fitness": report["eao"] or 0.0, "eao": report["eao"], "accuracy": report["accuracy"],
            "robustness": report["robustness"], "failures": report["failures"],
            "fps": frames / seconds if seconds else None}


def identity_scores(spec: FitnessSpec, subsets: int = 1) -> list[dict]:
    """The identity tracker's scores on validation subsets 0 .. subsets-1 (no model is loaded)."""
    val = open_dataset(*spec.validation())
    return [score_tracker(IdentityTracker(), validation_subset(val, spec, k), spec.metric, spec.eao_year)
            for k in range(subsets)]
