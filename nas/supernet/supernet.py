"""The weight-sharing tracking supernet: every choice of a space, any single path runnable and extractable.

Layout (each candidate is built by the same helpers as `LightTrackSubnet`, so a path *is* a subnet):

* `stem`: the fixed stem, shared by every path.
* `blocks[i][k]`: option `k` of the i-th searchable block, for every block that some output position
  can reach (blocks past the last output position, e.g. LightTrack's c192 stage, are never built).
* `bn_z[stage]`, `bn_x[stage]`: one neck BN pair per output stage (LightTrack's MC_BN), because each
  stage has its own width and feature statistics.
* `fusion[side]`: one pixel-wise fusion per template feature side; the side fixes the correlation width
  (16x16 = 256 channels at stride 8, 8x8 = 64 at stride 16), so stages of equal stride share it.
* `heads[name]`: each per-frame head's part, built by its kind (`nas.heads`): for a tower, one
  `SuperTower` per channel choice (`layers[l][k]` over that layer's ops, plus its own predictor); cls
  and reg each run through their own towers. (The LightTrack reference runs the reg branch through
  the cls towers during supernet training, so its reg towers never train and the two branches share
  weights; we do not reproduce that.) `update`: a template-update kind's part (gradnet's U1s).

Weight sharing (`weight_sharing="kernel"`): options of one block or head layer that differ only in
kernel size share every layer whose weights have the same shape (1x1 convs, BN, SE), keeping their own
depthwise k x k conv, so an MBConv's expand/project convs train whenever any of its kernel
variants is sampled. LightTrack trains every option separately (`"none"`, the default); sharing cuts
the dilution of the 6 MBConv options of its space to 2 (one per expand ratio) and of the two DSConv
head ops to 1, which is what lets a CPU-sized budget learn (see `runs/quickstart.yaml`). Extraction
is unchanged: a path's subnet gets copies of exactly the tensors the path runs.

An architecture selects its `SubnetParts`: the supernet modules it runs, named as the submodules of
`build_subnet(space, arch)`. That one selection drives the forward pass (through a `view`: the
subnet's own class assembled from those parts), `path_parameters` (optimise only the sampled path)
and `extract` (a strict state-dict copy), so the three cannot disagree.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nas.heads import KINDS
from nas.heads.base import Attachment, tie_kernel_variants
from nas.ops.blocks import PixelwiseFusion, make_op
from nas.space.space import Arch, SearchSpace
from trackers.lighttrack.geometry import attachment, block_slots, head_context
from trackers.lighttrack.model import (
    LightTrackSubnet,
    SubnetParts,
    Template,
    build_subnet,
    make_stem,
    split_roles,
)

_MAX_VIEWS = 64
WEIGHT_SHARING = ("none", "kernel")


@dataclass(frozen=True)
class _Route:
    """What an output position selects: how many blocks run, which neck BNs and fusion, what heads see."""

    depth: int
    fusion: str
    at: Attachment


class Supernet(nn.Module):
    """Holds the weights of every choice of `space`; `arch` picks the path at each call."""

    def __init__(self, space: SearchSpace, weight_sharing: str = "none"):
        super().__init__()
        if weight_sharing not in WEIGHT_SHARING:
            raise ValueError(f"weight_sharing must be one of {WEIGHT_SHARING}, got {weight_sharing!r}")
        self.space, self.weight_sharing = space, weight_sharing
        share = weight_sharing == "kernel"
        spec = space.spec
        bb = spec.backbone
        positions = space.genes[space.output_gene].options
        self._routes = [_Route(len(space.active_block_genes(p)), str(at.template_side), at)
                        for p, at in ((p, attachment(space, p)) for p in positions)]
        # Active blocks of any position are a prefix of the slots, so the deepest route bounds them all.
        slots = block_slots(space)[: max(r.depth for r in self._routes)]
        self._block_genes = [slot.gene for slot in slots]

        self.stem = make_stem(spec)
        self.blocks = nn.ModuleList(
            nn.ModuleList(make_op(op, slot.cin, slot.cout, slot.stride, bb.act, bb.se)
                          for op in space.genes[slot.gene].options)
            for slot in slots)
        if share:
            for slot, options in zip(slots, self.blocks):
                tie_kernel_variants(options, space.genes[slot.gene].options)
        stages = dict.fromkeys(bb.stages[p.stage] for p in positions)
        self.bn_z = nn.ModuleDict({st.name: nn.BatchNorm2d(st.channels) for st in stages})
        self.bn_x = nn.ModuleDict({st.name: nn.BatchNorm2d(st.channels) for st in stages})
        sides = dict.fromkeys(r.fusion for r in self._routes)
        self.fusion = nn.ModuleDict({side: PixelwiseFusion(int(side) ** 2, spec.neck.channels) for side in sides})
        self._ctx = head_context(space)
        parts = {h.name: KINDS[h.type].build_super(h, self._ctx, share) for h in spec.heads}
        roles = split_roles(spec, parts)
        heads = roles["heads"]
        self.update: nn.Module | None = roles["update"]
        self._update_name = next((h.name for h in spec.heads if KINDS[h.type].role == "update"), None)
        self.heads = nn.ModuleDict(heads)
        self._views: dict[str, tuple[LightTrackSubnet, list[nn.Module]]] = {}

    # -- path selection ---------------------------------------------------------------------------
    def _route(self, arch: Arch) -> _Route:
        if arch.space.hash != self.space.hash:
            raise ValueError(f"architecture belongs to space {arch.space.name} ({arch.space.hash}), "
                             f"not {self.space.name} ({self.space.hash})")
        return self._routes[arch.genotype[self.space.output_gene]]

    def arch_stride(self, arch: Arch) -> int:
        """Total stride of the path's features (8 or 16 for LightTrack): training picks labels by it."""
        return self._route(arch).at.stride

    def _path(self, arch: Arch) -> SubnetParts:
        route, g = self._route(arch), arch.genotype
        parts = {**self.heads, **({} if self.update is None else {self._update_name: self.update})}
        selected = {h.name: KINDS[h.type].select(parts[h.name], h, arch.head_choices(h.name), self._ctx, route.at)
                    for h in self.space.spec.heads}
        return SubnetParts(stem=self.stem,
                           blocks=[self.blocks[i][g[gene]] for i, gene in enumerate(self._block_genes[: route.depth])],
                           bn_z=self.bn_z[route.at.stage], bn_x=self.bn_x[route.at.stage],
                           fusion=self.fusion[route.fusion], **split_roles(self.space.spec, selected))

    def view(self, arch: Arch) -> LightTrackSubnet:
        """`arch`'s subnet made of this supernet's modules (no copy): running it runs the path.

        The subnet class assembled from the path's parts, so the supernet and a standalone subnet share
        one forward implementation. Views are cached (a few dozen, oldest dropped); the view's own
        wrapper modules follow the supernet's mode.
        """
        entry = self._views.get(arch.arch_id)
        if entry is None:
            view = LightTrackSubnet(self.space, arch, self._path(arch))
            shared = {id(m) for m in self.modules()}
            entry = (view, [m for m in view.modules() if id(m) not in shared])
            if len(self._views) >= _MAX_VIEWS:
                self._views.pop(next(iter(self._views)))
            self._views[arch.arch_id] = entry
        view, own = entry
        for module in own:  # only the view's wrappers: shared modules keep their mode (a frozen backbone stays eval)
            module.training = self.training
        return view

    def path_modules(self, arch: Arch) -> dict[str, nn.Module]:
        """Supernet modules of `arch`'s path, keyed by the submodule names of `build_subnet(space, arch)`."""
        return self._path(arch).named()

    def path_parameters(self, arch: Arch) -> list[nn.Parameter]:
        """The parameters `arch` uses: exactly those of its extracted subnet, in the same order."""
        return [p for module in self.path_modules(arch).values() for p in module.parameters()]

    def path_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The path's parameters and buffers under the extracted subnet's state-dict keys."""
        return {f"{name}.{key}": value for name, module in self.path_modules(arch).items()
                for key, value in module.state_dict().items()}

    # -- running one path ---------------------------------------------------------------------------
    def template(self, arch: Arch, z: torch.Tensor, box: torch.Tensor | None = None) -> Template:
        """Template state of `arch` (as `LightTrackSubnet.template`)."""
        return self.view(arch).template(z, box)

    def track(self, arch: Arch, x: torch.Tensor, state: Template) -> dict[str, torch.Tensor]:
        """Search branch of `arch` (as `LightTrackSubnet.track`): {'cls': scores, 'reg': l,t,r,b pixels}."""
        return self.view(arch).track(x, state)

    def forward(self, arch: Arch, z: torch.Tensor, x: torch.Tensor, z_box: torch.Tensor | None = None,
                cls_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.view(arch)(z, x, z_box, cls_labels)

    # -- weights in and out ---------------------------------------------------------------------------
    def extract(self, arch: Arch) -> LightTrackSubnet:
        """A standalone copy of `arch`'s path (weights and BN statistics), in the supernet's mode and device.

        The subnet is built on the meta device and then filled by a strict state-dict load, so no
        random initialisation runs (fast, and the global torch RNG is not advanced) and every tensor
        is guaranteed to come from the supernet.
        """
        with torch.device("meta"):
            subnet = build_subnet(self.space, arch)
        reference = next(self.parameters())
        subnet.to_empty(device=reference.device)
        subnet.load_state_dict(self.path_state_dict(arch), strict=True)
        return subnet.train(self.training)

    def load_backbone(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> tuple[list[str], list[str]]:
        """Load pretrained backbone weights (e.g. an ImageNet-trained backbone supernet); heads stay as they are.

        Keys follow this supernet's naming, `stem.*` and `blocks.<i>.<option>.*`; converting a foreign
        checkpoint's layout is the caller's job. With `strict=False`, keys for blocks this supernet never
        builds (stages past the last output position) are ignored and the missing/unexpected keys are
        returned (as `missing_keys`, `unexpected_keys`).
        """
        return self._backbone().load_state_dict(dict(state_dict), strict=strict)

    def _backbone(self) -> nn.ModuleDict:
        return nn.ModuleDict({"stem": self.stem, "blocks": self.blocks})

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone's weights under the keys `load_backbone` reads (what `pretrain-backbone` writes)."""
        return {k: v.detach().clone().contiguous() for k, v in self._backbone().state_dict().items()}

    def check_backbone(self, state_dict: Mapping[str, torch.Tensor]) -> str | None:
        """Why `state_dict` does not fit this backbone, in one line (None when it does): the first missing
        or unexpected key and the first shape that differs, with counts."""
        expected = {k: tuple(v.shape) for k, v in self._backbone().state_dict().items()}
        if not isinstance(state_dict, Mapping) or not all(torch.is_tensor(v) for v in state_dict.values()):
            return "expected a state dict of tensors (stem.*, blocks.*)"
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        shapes = [f"{k} has shape {tuple(state_dict[k].shape)}, expected {expected[k]}" for k in expected
                  if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
        problems = [f"{len(keys)} {what} key(s), e.g. {keys[0]}" for what, keys in
                    (("missing", missing), ("unexpected", unexpected)) if keys]
        if shapes:
            problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[0]}")
        return "; ".join(problems) or None
