"""What every tracker package provides to the harness and to the baselines comparison.

`TrackerSpec`: a picklable recipe the harness ships to each worker, which calls it to build its own
tracker (networks do not cross process boundaries). It also names the tracker's per-frame network,
so cost counting needs no knowledge of a tracker's internals.

`BaselineTraining`: one trained baseline's section of `tracknas baselines --train-config`: its
validated settings, its small training run and the specs of the trackers it yields. The
comparison only iterates over registered sections, so a new baseline is one registry entry there.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from nas.data.sequence import Sequence
from nas.errors import ConfigError
from nas.io import torch_load
from trackers.base import Tracker
from trackers.runtime import DEFAULT_RUNTIME, check_runtime

ModelT = TypeVar("ModelT", bound=nn.Module)
FrameNetwork = tuple[nn.Module, tuple[torch.Tensor, ...]]
"""(module, inputs): one `track()` call's network work, ready for a FLOP counter or a timer."""
NetworkCounter = Callable[[nn.Module, tuple[torch.Tensor, ...]], dict[str, int]]
"""(module, inputs) -> {"params": ..., "flops": ...}; passed in so tracker packages need no cost code."""


def _summary(err: BaseException, limit: int = 200) -> str:
    """An exception as one short line (torch's load errors span many lines)."""
    text = " ".join(str(err).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_weights(model: nn.Module, weights: str | os.PathLike) -> None:
    """Load a state dict saved with `torch.save` (read with weights_only=True, never executed)."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError("weights file not found", source=str(path))
    try:
        state = torch_load(path)
    except Exception as err:  # torch.load raises pickle, zip, runtime and OS errors alike
        raise ConfigError(f"cannot read checkpoint ({_summary(err)})", source=str(path)) from None
    if not isinstance(state, dict):
        raise ConfigError(f"expected a state dict, got {type(state).__name__}", source=str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"state dict does not fit this architecture ({_summary(err)})",
                          source=str(path)) from None


class TrackerSpec(ABC):
    """Recipe for one tracker: build the network, wrap it in the tracker, name its per-frame work.

    Subclasses are frozen dataclasses declaring their own fields in their own (positional) order;
    the base relies on `seed` (random weights, and any randomness of the tracker), `device` (None:
    CUDA when present) and `name` (the tracker's name in results and tables).
    """

    seed: int
    device: str | None
    name: str
    runtimes: ClassVar[tuple[str, ...]] = (DEFAULT_RUNTIME,)
    """The runtimes its network can run on; others need a `runtime` field that the tracker honours."""
    torch_only: ClassVar[str] = "its per-frame step runs PyTorch code"
    """Why it has no other runtime (the error `with_runtime` gives)."""

    def with_runtime(self, runtime: str) -> TrackerSpec:
        """This recipe on `runtime` (`trackers.runtime.RUNTIMES`); a one-line ConfigError naming the
        tracker when it cannot run there, or when the runtime is not installed."""
        check_runtime(runtime)
        if runtime not in self.runtimes:
            raise ConfigError(f"tracker {self.name!r} cannot run under {runtime}: {self.torch_only}",
                              key="--runtime")
        return self if runtime == getattr(self, "runtime", DEFAULT_RUNTIME) else replace(self, runtime=runtime)

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The tracker's network with its weights: loaded from the spec's checkpoint, else seeded random."""

    @abstractmethod
    def build_tracker(self, model: nn.Module) -> Tracker:
        """The tracker around `model`, on `device`."""

    @abstractmethod
    def frame_network(self, tracker: Tracker, frame: np.ndarray) -> FrameNetwork:
        """The network of one `track(frame)` call of `tracker` (built by this spec and initialised),
        without crops, decoding and online learning: what the per-frame cost counts."""

    def __call__(self) -> Tracker:
        tracker = self.build_tracker(self.build_model())
        tracker.name = self.name
        return tracker

    def seeded_model(self, build: Callable[[], ModelT], weights: str | os.PathLike | None = None) -> ModelT:
        """`build()` with torch's global RNG seeded by `seed`, then `weights` loaded when given.

        The RNG state is restored afterwards, so every worker draws the same random weights and the
        caller's random stream is untouched.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build()
        if weights is not None:
            load_weights(model, weights)
        return model

    def frame_cost(self, seq: Sequence, count: NetworkCounter) -> dict[str, int]:
        """Params and FLOPs of one `track()` call, counted by `count` on the frame network.

        The tracker is initialised on `seq`'s first frame, since its per-frame network can depend on
        it (MetaRTT's pruning), and the network is taken on the second.
        """
        tracker = self()
        tracker.initialize(seq.frame(0), seq.boxes[0])
        return count(*self.frame_network(tracker, seq.frame(min(1, len(seq) - 1))))


@dataclass(frozen=True)
class CheckpointSpec(TrackerSpec):
    """A tracker on a network built from the settings `net`, with seeded random weights or the state
    dict in `checkpoint`, tracked with the settings `config`.

    Subclasses narrow the types and defaults of `config`, `net` and `name`, and build the network.
    """

    checkpoint: str | None = None
    config: Any = None
    net: Any = None
    device: str | None = None
    seed: int = 0
    name: str = "tracker"

    @abstractmethod
    def random_model(self) -> nn.Module:
        """The untrained network of `net` (its weights drawn from torch's global RNG)."""

    def build_model(self) -> nn.Module:
        return self.seeded_model(self.random_model, self.checkpoint).eval()


Fail = Callable[[str, str], Exception]
"""(key, message) -> the one-line error to raise; the key is relative to the section."""


@dataclass(frozen=True)
class BaselineTraining(ABC):
    """One trained baseline's `--train-config` section; the dataclass fields are its YAML keys.

    Subclasses set the class variables below; their fields all need defaults (every key is optional).
    """

    key: ClassVar[str]  # the section's YAML key
    checkpoint_name: ClassVar[str]  # the checkpoint's file stem in the checkpoint folder
    tracker_names: ClassVar[tuple[str, ...]]  # the trackers `specs` returns, in table order
    tracker_config: ClassVar[type]  # the dataclass the `tracker` mapping overrides
    positive: ClassVar[tuple[str, ...]] = ()  # settings that must be > 0
    width_lists: ClassVar[dict[str, tuple[int, int | None]]] = {}  # key -> (fewest, most or None) widths

    tracker: dict = field(default_factory=dict)  # `tracker_config` overrides (scalar fields)

    def check(self, fail: Fail) -> None:
        """Raise `fail(key, message)` on the first setting this section cannot train with."""
        for key in self.positive:
            value = getattr(self, key)
            if value <= 0:
                kind = "integer" if isinstance(value, int) else "number"
                raise fail(key, f"expected a positive {kind}, got {value!r}")
        for key, (fewest, most) in self.width_lists.items():
            widths = getattr(self, key)
            if not (fewest <= len(widths) <= (most or len(widths)) and all(
                    isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)):
                count = fewest if most == fewest else f"at least {fewest}"
                raise fail(key, f"expected {count} positive integers, got {widths!r}")

    def tracker_settings(self) -> Any:
        """The tracker hyper-parameters: `tracker_config` defaults with this section's overrides."""
        return self.tracker_config(**self.tracker)

    @abstractmethod
    def train(self, sequences: list[Sequence], path: Path, seed: int, progress: bool) -> None:
        """Train into the checkpoint `path`; an existing checkpoint is kept or resumed, never redone."""

    @abstractmethod
    def specs(self, checkpoint: str | None, seed: int) -> dict[str, TrackerSpec]:
        """The specs of `tracker_names` on `checkpoint` (None: seeded random weights)."""
