"""A LightTrack subnet on ONNX Runtime, behind the eager subnet's API, and the one runtime switch.

`OnnxRuntimeSubnet` exports the subnet in memory (the graphs `tracknas export --onnx` writes) and
runs them in onnxruntime sessions: `template(z, box) -> state` and `track(x, state) -> {"cls",
"reg"}` take and return torch tensors like the eager model, so `LightTrackTracker` tracks with
it unchanged. The search graph has static shapes (onnxruntime plans them better than dynamic
ones); one is exported per crop size the tracker asks for (256, or 288 for small targets).
"""
from __future__ import annotations

import torch
from torch import nn

from nas.errors import ConfigError
from nas.heads.base import centred_box
from nas.ops.blocks import fold_batchnorm
from trackers.lighttrack.export import search_onnx, template_onnx
from trackers.lighttrack.model import LightTrackSubnet, Template
from trackers.runtime import check_runtime, onnxruntime_session


class OnnxRuntimeSubnet(nn.Module):
    """`template` / `track` of `model` on onnxruntime (CPU); `model` itself is kept to export more crop sizes."""

    def __init__(self, model: LightTrackSubnet, threads: int | None = None):
        super().__init__()
        if model.update is not None:
            raise ConfigError(f"architecture {model.arch.arch_id} cannot run under onnxruntime: its gradnet "
                              "template update differentiates through the network while tracking", key="--runtime")
        self.subnet = model.eval()
        self.stride, self.cls_is_logit, self.space = model.stride, model.cls_is_logit, model.space
        self.uses_template_box, self.update = model.uses_template_box, None
        self.threads = threads
        self._template = onnxruntime_session(template_onnx(model), threads)
        self._search: dict[tuple[int, ...], object] = {}

    def _session_for(self, shape: tuple[int, ...]):
        if shape not in self._search:
            self._search[shape] = onnxruntime_session(search_onnx(self.subnet, shape[-1]), self.threads)
        return self._search[shape]

    @staticmethod
    def _run(session, feeds: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        names = [node.name for node in session.get_outputs()]
        arrays = {name: value.detach().cpu().numpy() for name, value in feeds.items()}
        return {name: torch.from_numpy(out).to(device) for name, out in zip(names, session.run(names, arrays))}

    def template(self, z: torch.Tensor, box: torch.Tensor | None = None) -> Template:
        feeds = {"z": z}
        if self.uses_template_box:  # only heads that learn from the template (dimp) read the box
            feeds["box"] = centred_box(z.shape[-1], z.shape[0], z.device) if box is None else box
        return self._run(self._template, feeds, z.device)

    def track(self, x: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        if x.shape[0] != 1 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"onnxruntime tracks one square crop at a time, got a batch of shape {tuple(x.shape)}")
        return self._run(self._session_for(tuple(x.shape)), {"x": x, **state}, x.device)


def inference_network(model: LightTrackSubnet, runtime: str = "torch") -> nn.Module:
    """The network a LightTrack tracker runs: a BatchNorm-folded copy of `model`, on `runtime`."""
    check_runtime(runtime)
    folded = fold_batchnorm(model)
    return OnnxRuntimeSubnet(folded) if runtime == "onnxruntime" else folded
