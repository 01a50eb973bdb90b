"""Supernet overhead benchmark: one training step on a sampled path vs the same path as a standalone subnet.

A step is forward (template + search), backward and an SGD step (momentum 0.9, weight decay 1e-4).
The supernet's optimizer holds every supernet parameter, as supernet training does; parameters off the
path have no gradient and are skipped. Supernet and subnet steps alternate so machine load hits both
alike. Prints JSON with per-path medians of wall and process-CPU time and their ratios (target <= 1.15);
on a shared CPU machine the CPU-time ratio is the one to trust, on a GPU the wall-time ratio.

    python benchmarks/bench_supernet_overhead.py [--space lighttrack-mobile] [--paths 3] [--steps 5]
        [--batch 8] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nas.space import load_space, to_lighttrack_string
from nas.supernet import Supernet


def _timed_step(device: torch.device, step: Callable[[], None]) -> tuple[float, float]:
    """(wall, process CPU) seconds. On a shared CPU machine the CPU time is the steadier of the two."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _train_step(model_call: Callable[[], dict[str, torch.Tensor]],
                optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model_call()
        (out["cls"].square().mean() + out["reg"].mean()).backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="lighttrack-mobile")
    parser.add_argument("--paths", type=int, default=3, help="random paths to time")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path and model (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = load_space(args.space)
    torch.manual_seed(args.seed)
    supernet = Supernet(space).to(device).train()
    super_opt = torch.optim.SGD(supernet.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(args.batch, 3, space.spec.template_size, space.spec.template_size, generator=g).to(device)
    x = torch.randn(args.batch, 3, space.spec.search_size, space.spec.search_size, generator=g).to(device)

    rng = np.random.default_rng(args.seed)
    paths: list[dict] = []
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    for _ in range(args.paths):
        arch = space.sample(rng)
        subnet = supernet.extract(arch).train()
        sub_opt = torch.optim.SGD(subnet.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
        steps = {"supernet": _train_step(lambda: supernet(arch, z, x), super_opt),
                 "subnet": _train_step(lambda: subnet(z, x), sub_opt)}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        for i in range(args.steps + 1):
            for name, step in steps.items():
                elapsed = _timed_step(device, step)
                if i:  # the first step of each model warms up allocator and kernels
                    times[name].append(elapsed)
        entry = {"arch": to_lighttrack_string(arch), "stride": supernet.arch_stride(arch)}
        for clock, column in (("wall", 0), ("cpu", 1)):
            medians = {name: statistics.median(t[column] for t in ts) for name, ts in times.items()}
            ratios[clock].append(medians["supernet"] / medians["subnet"])
            entry.update({f"supernet_{clock}_ms": round(medians["supernet"] * 1e3, 1),
                          f"subnet_{clock}_ms": round(medians["subnet"] * 1e3, 1),
                          f"ratio_{clock}": round(ratios[clock][-1], 3)})
        paths.append(entry)
    print(json.dumps({
        "benchmark": "supernet_overhead", "space": space.name, "device": str(device), "threads": args.threads,
        "batch": args.batch, "template": space.spec.template_size, "search": space.spec.search_size,
        "steps_per_path": args.steps, "supernet_params": sum(p.numel() for p in supernet.parameters()),
        "paths": paths, **{f"ratio_{clock}_{stat.__name__}": round(stat(r), 3)
                           for clock, r in ratios.items() for stat in (statistics.median, max)},
        "ratio_target": 1.15,
    }, indent=2))


if __name__ == "__main__":
    main()
