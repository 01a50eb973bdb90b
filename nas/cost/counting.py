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

from trackers.lighttrack.model import SearchBranch, TemplateBranch


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


class _UpdateBranch(nn.Module):
    """(hidden, gradient) -> updated template features: U1 and the template tail (a gradnet update)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return self.model._tail(self.model.update(hidden, grad))


def reference_cost(model: nn.Module, template_size: int, search_size: int) -> dict[str, int]:
    """Params, per-frame search-branch FLOPs (template state precomputed), template FLOPs and, for a
    model with a gradnet template update, the forward FLOPs of one update."""
    z = torch.randn(1, 3, template_size, template_size)
    x = torch.randn(1, 3, search_size, search_size)
    model.eval()
    with torch.no_grad():
        state = model.template(z)
    cost = {"params": count_params(model),
            "flops": count_flops(SearchBranch(model, state), (x, *state.values())),
            "template_flops": count_flops(TemplateBranch(model), (z,))}
    if getattr(model, "update", None) is not None:
        hidden = state["hidden"]
        cost["update_flops"] = count_flops(_UpdateBranch(model), (hidden, torch.randn_like(hidden)))
    return cost
