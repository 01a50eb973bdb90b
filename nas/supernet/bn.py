"""BN recalibration: re-estimate the running statistics a path actually sees before evaluating it.

A supernet's BN statistics are averaged over many paths, so a single path evaluated with them is
judged unfairly. Recalibration resets the statistics of the BN layers the path uses and re-estimates
them from a few batches with cumulative averaging (`momentum=None`: every batch weighs the same, so the
result does not depend on an arbitrary momentum and is exact for the given batches).

Which BN layers a path uses is discovered while running it: each BN layer is reset the first time it
is called, so on a supernet only the sampled path's layers change and every other candidate keeps its
statistics. Only BN buffers change; parameters and every other buffer are left exactly as they were.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _run(module: nn.Module, batch: Any) -> None:
    """A callable batch runs itself (e.g. `lambda: supernet(arch, z, x)`); otherwise it is `module`'s input."""
    if callable(batch):
        batch()
    elif isinstance(batch, Mapping):
        module(**batch)
    elif isinstance(batch, (tuple, list)):
        module(*batch)
    else:
        module(batch)


def recalibrate_bn(module: nn.Module, forward_batches: Iterable[Callable[[], Any] | Any], num_batches: int) -> int:
    """Re-estimate the running stats of the BN layers used on `num_batches` batches; returns the BN count.

    Each item of `forward_batches` is a zero-argument callable that runs the forward pass, or the
    input of `module` (a tensor, a tuple of positional arguments, or a mapping of keyword arguments).
    The batches run in train mode under `no_grad`; afterwards every BN layer's momentum is restored
    and `module` is left in eval mode, ready for evaluation. Feeding the same batches gives the same
    statistics whatever they were before. Raises `ValueError` if fewer than `num_batches` batches come.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.training) for m in layers]
    used: set[int] = set()

    def reset_on_first_call(bn: _BatchNorm, _inputs: tuple) -> None:
        if id(bn) not in used:
            used.add(id(bn))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average over the recalibration batches

    hooks = [m.register_forward_pre_hook(reset_on_first_call) for m in layers]
    try:
        for m in layers:
            m.train()  # only BN layers switch mode: nothing else (e.g. dropout) should act while calibrating
        count = 0
        with torch.no_grad():
            for batch in islice(forward_batches, num_batches):  # never pulls a batch it will not use
                _run(module, batch)
                count += 1
        if count < num_batches:
            raise ValueError(f"recalibration needs {num_batches} batches, only {count} were given")
    finally:
        for hook in hooks:
            hook.remove()
        for m, (momentum, training) in zip(layers, saved):
            m.momentum = momentum
            m.train(training)
    module.eval()
    return len(used)
