"""GPU check as JSON: supernet-training pairs/s per `supernet.amp` mode and a 4-candidate search's candidates/s.

    bash benchmarks/gpu_check.sh                          # on a CUDA machine (about 2 minutes)
    python benchmarks/gpu_check.py --device cpu --smoke   # the same code paths on CPU, in seconds (tested)

On CUDA: synthesises a small dataset, trains the `lighttrack-quick` supernet for two epochs per amp mode
(off, bf16, fp16; channels-last on) and reports the second epoch's pairs/s (the first pays for cuDNN
autotuning), then scores 4 candidates of the `off` supernet with 4 Ray fitness actors sharing the GPU
(`search.gpus_per_worker: 0.25`). `--smoke` shrinks everything to the tiny test space on CPU (amp off
and bf16; fp16 needs CUDA) and scores in-process. Every run lives in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import nas.raytools  # noqa: F401  (loopback-only Ray before ray is imported)
from nas.config import parse_config
from nas.data.synth import generate_dataset
from nas.jobs.search import actor_device, fitness_spec
from nas.search import LocalEvaluator, RayPoolEvaluator
from nas.space import load_space
from nas.train.supernet_trainer import CHECKPOINT, supernet_dir, train

REPO = Path(__file__).resolve().parents[1]
FULL = {"space": "lighttrack-quick", "data": {"sequences": 16, "frames": 40, "size": [640, 360]},
        "supernet": {"pairs_per_epoch": 2048, "batch_size": 32}, "candidates": 4, "workers": 4,
        "fitness": {"bn_batches": 5, "bn_batch_size": 16, "max_sequences": 4, "max_frames": 30}}
SMOKE = {"space": str(REPO / "tests" / "spaces" / "tiny.yaml"), "data": {"sequences": 4, "frames": 12, "size": [160, 120]},
         "supernet": {"pairs_per_epoch": 16, "batch_size": 8}, "candidates": 2, "workers": 0,
         "fitness": {"bn_batches": 1, "bn_batch_size": 4, "max_sequences": 1, "max_frames": 6}}


def _config(work: Path, plan: dict, amp: str, gpus_per_worker: float):
    data = {"name": f"gpu-check-{amp}", "space": plan["space"], "seed": 0, "output": str(work / amp),
            "data": {"root": str(work / "data"), "split": "train"},
            "supernet": {**plan["supernet"], "epochs": 2, "optimizer": "adamw", "lr": 0.001, "warmup_epochs": 0,
                         "end_lr": 0.001, "amp": amp, "channels_last": True, "weight_sharing": "kernel"},
            "fitness": plan["fitness"], "search": {"gpus_per_worker": gpus_per_worker}}
    return parse_config(data, source="gpu_check", base=work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny space and data (seconds; CPU tests)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False); run it on a "
                 "machine with an NVIDIA GPU and a CUDA build of torch, or pass --device cpu --smoke")
    cuda = args.device == "cuda"
    plan = SMOKE if args.smoke else FULL
    modes = ("off", "bf16", "fp16") if cuda else ("off", "bf16")
    gpus_per_worker = 0.25 if cuda else 0.0
    result: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "smoke": args.smoke,
                    "space": Path(plan["space"]).stem, "channels_last": True, "train": {}}
    with tempfile.TemporaryDirectory(prefix="tn-gpu-") as tmp:
        work = Path(tmp)
        generate_dataset(work / "data", sequences=plan["data"]["sequences"], frames=plan["data"]["frames"], seed=0,
                         size=tuple(plan["data"]["size"]), overwrite=True)
        for amp in modes:
            cfg = _config(work, plan, amp, gpus_per_worker)
            history = train(cfg, progress=False, log=open(os.devnull, "w"))
            last = history[-1]
            result["train"][amp] = {"pairs_per_s": round(cfg.supernet.pairs_per_epoch / max(last["seconds"], 1e-9), 1),
                                    "epoch_seconds": last["seconds"], "loss": round(last["loss"], 4)}
        result["amp_speedup"] = {amp: round(result["train"][amp]["pairs_per_s"] / result["train"]["off"]["pairs_per_s"], 3)
                                 for amp in modes if amp != "off"}
        cfg = _config(work, plan, "off", gpus_per_worker)
        assert (supernet_dir(cfg) / CHECKPOINT).is_file()
        space = load_space(cfg.space)
        rng = np.random.default_rng(0)
        genotypes = [space.sample(rng).genotype for _ in range(plan["candidates"])]
        workers = plan["workers"] if cuda else 0
        spec = fitness_spec(cfg, threads=1 if workers else None, device=actor_device(cfg) if workers else None)
        evaluator = RayPoolEvaluator(spec, workers, num_cpus=workers, num_gpus=gpus_per_worker,
                                     temp_dir=tempfile.mkdtemp(prefix="tn-ray-")) if workers else LocalEvaluator(spec)
        try:
            started = time.monotonic()
            outcomes = list(evaluator.evaluate(genotypes))
            seconds = time.monotonic() - started
        finally:
            evaluator.close()
        result["search"] = {"candidates": len(outcomes), "failed": sum(o.failed for o in outcomes),
                            "workers": workers, "gpus_per_worker": gpus_per_worker,
                            "candidates_per_s": round(len(outcomes) / seconds, 3), "seconds": round(seconds, 2),
                            "fitness": [round(o.fitness, 4) for o in outcomes]}
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
