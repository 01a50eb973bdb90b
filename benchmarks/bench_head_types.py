"""Cost and CPU latency of the searchable head types on LightTrack-Mobile's backbone, as one JSON object.

The Mobile architecture is rebuilt in `lighttrack-dimp` (its cls tower replaced by a DiMP head of
several widths, filter sizes and iteration counts) and in `lighttrack-gradnet` (plus a template
update), keeping every shared gene. For each variant: table FLOPs/params (fvcore-exact), and the
median over `--runs` (after `--warmup`) of the per-frame forward (`track`), the template branch
(where DiMP learns its filter) and, for gradnet, one template update (gradient + U1 + tail), with
random weights, FP32 eager, `torch.inference_mode` except for the update, which needs autograd.

    python benchmarks/bench_head_types.py [--runs 50] [--warmup 10] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from nas.cost.table import cost_table
from nas.space import arch_from_json, from_lighttrack_string, load_space
from nas.space.lighttrack_codec import LIGHTTRACK_MOBILE
from trackers.lighttrack.model import build_subnet

DIMP_VARIANTS = [(64, 3, 0), (64, 3, 5), (128, 3, 5), (256, 5, 5), (256, 1, 0)]  # (D, k, num_iter)
GRADNET_VARIANTS = [("stem", 3, 16), ("c24", 3, 64)]  # (hidden, kernel, width)


def _median_ms(step: Callable[[], object], runs: int, warmup: int) -> float:
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _variant(space_name: str, **genes: str) -> tuple:
    """The Mobile architecture's choices carried into `space_name`, with `genes` set."""
    mobile = from_lighttrack_string(load_space("lighttrack-mobile"), LIGHTTRACK_MOBILE).choices
    space = load_space(space_name)
    choices = {name: mobile[name] for name in space.gene_index if name in mobile} | genes
    return space, arch_from_json({"schema": "tracknas.arch/v1", "space": space.name, "space_hash": space.hash,
                                  "choices": choices}, space)


def _measure(space, arch, runs: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build_subnet(space, arch).eval()
    spec = space.spec
    z = torch.randn(1, 3, spec.template_size, spec.template_size)
    x = torch.randn(1, 3, spec.search_size, spec.search_size)
    with torch.inference_mode():
        state = model.template(z)
        result = {**cost_table(space).cost(arch),
                  "forward_ms": _median_ms(lambda: model.track(x, state), runs, warmup),
                  "template_ms": _median_ms(lambda: model.template(z), runs, warmup)}
    if model.update is not None:
        side = (x.shape[-1] - 1) // model.stride + 1
        labels = torch.zeros(1, side, side)
        labels[0, side // 2, side // 2] = 1.0
        with torch.no_grad():
            state = {k: v.clone() for k, v in model.template(z).items()}
            result["update_ms"] = _median_ms(lambda: model.update_template(state, x, labels), runs, warmup)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per number (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    mobile_space = load_space("lighttrack-mobile")
    variants = {"mobile (tower cls)": (mobile_space, from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE))}
    for d, k, n in DIMP_VARIANTS:
        variants[f"dimp D{d} k{k} iter{n}"] = _variant("lighttrack-dimp", **{
            "heads.cls.feature_dim": str(d), "heads.cls.filter_size": str(k), "heads.cls.num_iter": str(n)})
    for hidden, kernel, width in GRADNET_VARIANTS:
        variants[f"gradnet h={hidden} k{kernel} w{width}"] = _variant("lighttrack-gradnet", **{
            "heads.update.hidden": hidden, "heads.update.kernel": str(kernel), "heads.update.width": str(width),
            "heads.update.interval": "5"})
    report = {"threads": args.threads, "runs": args.runs, "load_average": os.getloadavg()[0],
              "variants": {name: _measure(space, arch, args.runs, args.warmup) for name, (space, arch)
                           in variants.items()}}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
