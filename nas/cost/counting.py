"""The reference counts: fvcore `FlopCountAnalysis` (1 multiply-add = 1 FLOP) and parameter numel.

fvcore is the ground truth the lookup table must reproduce to the integer. Element-wise ops
(activations, gates, residual adds) are not counted, as in fvcore's defaults; its warnings about
them are silenced because they are expected, not news.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore scripts a loss at import time; torch 2.13 deprecates jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis


def count_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """fvcore total for one forward of `module` in eval mode on `inputs`."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(module, inputs)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            return int(analysis.total())
    finally:
        module.train(was_training)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class _SearchBranch(nn.Module):
    """(x, zf) -> per-frame outputs as a tuple (fvcore traces tuples, not dicts)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, zf: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.track(x, zf).values())


class _TemplateBranch(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.template(z)


def reference_cost(model: nn.Module, template_size: int, search_size: int) -> dict[str, int]:
    """Params, per-frame search-branch FLOPs (template features precomputed) and template FLOPs."""
    z = torch.randn(1, 3, template_size, template_size)
    x = torch.randn(1, 3, search_size, search_size)
    model.eval()
    with torch.no_grad():
        zf = model.template(z)
    return {"params": count_params(model),
            "flops": count_flops(_SearchBranch(model), (x, zf)),
            "template_flops": count_flops(_TemplateBranch(model), (z,))}
