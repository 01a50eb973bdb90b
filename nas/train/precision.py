"""Mixed precision and memory format of a training loop (`supernet.amp`, `supernet.channels_last`).

- `bf16`: forward passes under `torch.autocast(dtype=bfloat16)` on CUDA or CPU; bf16 keeps fp32's
  exponent range, so no loss scaling is needed.
- `fp16`: autocast to float16 plus a `GradScaler` (fp16 gradients underflow without it). CUDA only:
  on a CPU run it is refused in one line before any work (`check_amp`), since CPU fp16 kernels are
  slow or missing and bf16 is the CPU's reduced precision.
- `off`: plain fp32.

Losses are computed in fp32 from the outputs (`Precision.outputs`), and the optimizer's master weights
stay fp32 in every mode. `channels_last` converts the model and every input batch to NHWC, the layout
tensor cores and cuDNN's fastest convolutions read. Data-parallel workers all-reduce gradients
before `step`, so the scaler sees the same gradients on every rank and keeps the same scale.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from nas.errors import ConfigError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(amp: str, cuda: bool, *, source: str | None = None, key: str = "supernet.amp") -> None:
    """fp16 needs CUDA: a CPU run says so in one line instead of training slowly or failing mid-way."""
    if amp == "fp16" and not cuda:
        raise ConfigError("fp16 needs a CUDA device (autocast + GradScaler); use bf16 on CPU, or off",
                          source=source, key=key)


class Precision:
    """Autocast, loss scaling and memory format for one device, as the config asks."""

    def __init__(self, amp: str, device: torch.device, channels_last: bool = False):
        if amp != "off" and amp not in AMP_DTYPES:
            raise ValueError(f"amp must be off, bf16 or fp16, got {amp!r}")
        check_amp(amp, device.type == "cuda")
        self.amp, self.device, self.channels_last = amp, device, channels_last
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model on the device, in the memory format asked for."""
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def input(self, images: torch.Tensor) -> torch.Tensor:
        """An image batch (B, C, H, W) on the device, in the model's memory format."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass's precision (a no-op when off)."""
        if self.amp == "off":
            yield
        else:
            with torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp]):
                yield

    @staticmethod
    def outputs(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Floating outputs in fp32, so losses are computed in full precision."""
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; with fp16, unscaled, skipped on inf/NaN gradients, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
