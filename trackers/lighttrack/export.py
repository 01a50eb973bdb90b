"""Export a found architecture as a standalone model, and load it back from the export alone.

An export directory holds `arch.json` (the architecture, with cost, fitness and provenance),
`space.yaml` (a copy of the DSL file, so the model rebuilds without the original space), and
`model.pt` (the subnet's state dict, weights inherited from the supernet and BN re-estimated on
training pairs; loadable with `weights_only=True`), plus `template.onnx` / `search.onnx` on request.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch

from nas.errors import ConfigError
from nas.heads.base import centred_box
from nas.io import atomic_torch_save, atomic_write_json, torch_load
from nas.space import Arch, load_arch, load_space
from trackers.lighttrack.model import LightTrackSubnet, SearchBranch, TemplateBranch, build_subnet

ARCH_FILE, SPACE_FILE, MODEL_FILE = "arch.json", "space.yaml", "model.pt"


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
    """Template and search branches as two ONNX graphs (deployments run them separately)."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it to write the graph)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'tracknas[onnx]'", key="--onnx") from None
    spec = model.space.spec
    model = model.eval()
    z = torch.randn(1, 3, spec.template_size, spec.template_size)
    x = torch.randn(1, 3, spec.search_size, spec.search_size)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; it needs no extra package
        state = model.template(z)
        template_inputs = (z, centred_box(spec.template_size, 1)) if model.uses_template_box else (z,)
        torch.onnx.export(TemplateBranch(model), template_inputs, str(out_dir / "template.onnx"),
                          input_names=["z", "box"][: len(template_inputs)], output_names=list(state), dynamo=False)
        torch.onnx.export(SearchBranch(model, state), (x, *state.values()), str(out_dir / "search.onnx"),
                          input_names=["x", *state], output_names=["cls", "reg"], dynamo=False)
