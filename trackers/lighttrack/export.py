"""Export a found architecture as a standalone model, and load it back from the export alone.

An export directory holds `arch.json` (the architecture, with cost, fitness and provenance),
`space.yaml` (a copy of the DSL file, so the model rebuilds without the original space), and
`model.pt` (the subnet's state dict, weights inherited from the supernet and BN re-estimated on
training pairs; loadable with `weights_only=True`), plus `template.onnx` / `search.onnx` on request.
"""
from __future__ import annotations

import importlib
import io
import shutil
import warnings
from pathlib import Path

import torch

from nas.errors import ConfigError
from nas.heads.base import centred_box
from nas.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, torch_load
from nas.space import Arch, load_arch, load_space
from trackers.lighttrack.model import LightTrackSubnet, SearchBranch, TemplateBranch, build_subnet

ARCH_FILE, SPACE_FILE, MODEL_FILE = "arch.json", "space.yaml", "model.pt"
TEMPLATE_ONNX, SEARCH_ONNX = "template.onnx", "search.onnx"


def write_export(out_dir: str | Path, arch_json: dict, model: LightTrackSubnet, *, onnx: bool = False) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    space_copy = out_dir / SPACE_FILE
    if Path(model.space.spec.source).resolve() != space_copy.resolve():
        shutil.copyfile(model.space.spec.source, space_copy)
    atomic_torch_save(model.state_dict(), out_dir / MODEL_FILE)
    if onnx:
        export_onnx(model, out_dir)
    atomic_write_json(out_dir / ARCH_FILE, arch_json)  # last: its presence marks a complete export
    return out_dir


def load_export(export_dir: str | Path) -> tuple[Arch, LightTrackSubnet]:
    """Rebuild an exported model from its directory alone (space copy + arch JSON + state dict)."""
    export_dir = Path(export_dir)
    for name in (ARCH_FILE, SPACE_FILE, MODEL_FILE):
        if not (export_dir / name).is_file():
            raise ConfigError(f"not an export directory: {name} is missing", source=str(export_dir))
    space = load_space(export_dir / SPACE_FILE)
    arch = load_arch(export_dir / ARCH_FILE, space)
    model = build_subnet(space, arch)
    state = torch_load(export_dir / MODEL_FILE)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"weights do not fit the architecture in {ARCH_FILE} ({first[:200]})",
                          source=str(export_dir / MODEL_FILE)) from None
    return arch, model.eval()


def export_onnx(model: LightTrackSubnet, out_dir: Path) -> None:
    """Template and search branches as two ONNX graphs (deployments run them separately); the search
    graph takes the crop `x` and the template state (`zf`, then any head entries) as its inputs."""
    try:
        importlib.import_module("onnx")  # torch's exporter needs it to write the graph
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'tracknas[onnx]'", key="--onnx") from None
    atomic_write_bytes(out_dir / TEMPLATE_ONNX, template_onnx(model))
    atomic_write_bytes(out_dir / SEARCH_ONNX, search_onnx(model, model.space.spec.search_size))


def _template_inputs(model: LightTrackSubnet) -> tuple[torch.Tensor, ...]:
    """A template crop (and, for heads that learn from it, the nominal target box): the template graph's inputs."""
    side, device = model.space.spec.template_size, _device(model)
    z = torch.randn(1, 3, side, side, device=device)
    return (z, centred_box(side, 1, device)) if model.uses_template_box else (z,)


def _device(model: LightTrackSubnet) -> torch.device:
    return next(model.parameters()).device


def _to_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
             output_names: list[str]) -> bytes:
    """`module` traced on `inputs` as a static-shape ONNX graph, constants folded.

    `module` must already be in eval mode: the exporter puts it back in the mode it found it in,
    and a fresh wrapper's default (training) would switch the wrapped model to training too.
    """
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; it needs no extra package
        torch.onnx.export(module, inputs, buffer, input_names=input_names, output_names=output_names,
                          do_constant_folding=True, dynamo=False)
    return buffer.getvalue()


def template_onnx(model: LightTrackSubnet) -> bytes:
    """The template branch: `z` (and `box`) -> the template state, one output per state key."""
    model = model.eval()
    inputs = _template_inputs(model)
    with torch.no_grad():
        keys = list(model.template(*inputs))
    return _to_onnx(TemplateBranch(model).eval(), inputs, ["z", "box"][: len(inputs)], keys)


def search_onnx(model: LightTrackSubnet, side: int) -> bytes:
    """The search branch for `side` x `side` crops: (`x`, *template state) -> `cls`, `reg` (in `track` order)."""
    model = model.eval()
    x = torch.randn(1, 3, side, side, device=_device(model))
    with torch.no_grad():
        state = model.template(*_template_inputs(model))
        outputs = list(model.track(x, state))
    return _to_onnx(SearchBranch(model, state).eval(), (x, *state.values()), ["x", *state], outputs)
