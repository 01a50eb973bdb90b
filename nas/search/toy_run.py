"""A complete search on the toy fitness: `python -m nas.search.toy_run --space tests/spaces/tiny.yaml
--state /tmp/s.json [--resume] [--workers 2]`. It exercises the whole engine (constraints, state,
resume, the Ray pool) in seconds, and is the process the kill-and-resume test SIGKILLs.
Prints the best candidate as JSON on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.errors import TrackNASError
from nas.search.evaluators import LocalEvaluator, RayPoolEvaluator
from nas.search.evolution import run_search
from nas.search.state import SearchSettings
from nas.search.toy import ToyFactory
from nas.space import Bounds, load_space, parse_quantity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True, help="space name or DSL file")
    ap.add_argument("--state", required=True, help="search state JSON (created, or continued with --resume)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--algorithm", default="evolution", choices=("evolution", "nsga2", "random"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--population", type=int, default=48)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--mutations", type=int, default=24)
    ap.add_argument("--crossovers", type=int, default=24)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--flops", help="FLOPs bound, e.g. 600M")
    ap.add_argument("--params", help="params bound, e.g. 2M")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds each toy evaluation sleeps")
    ap.add_argument("--workers", type=int, default=0, help="Ray actors (0: evaluate in this process)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        space = load_space(args.space)
        bounds = Bounds(flops=parse_quantity(args.flops) if args.flops else None,
                        params=parse_quantity(args.params) if args.params else None)
        settings = SearchSettings(population=args.population, top_k=args.top_k, mutations=args.mutations,
                                  crossovers=args.crossovers, generations=args.generations, seed=args.seed,
                                  bounds=bounds, algorithm=args.algorithm)
        space_ref = str(Path(args.space).resolve()) if Path(args.space).exists() else args.space  # for Ray workers
        factory = ToyFactory(space_ref, seed=args.seed, bounds=bounds, delay=args.delay)
        evaluator = RayPoolEvaluator(factory, args.workers) if args.workers else LocalEvaluator(factory)
        try:
            result = run_search(space, settings, evaluator, args.state, resume=args.resume, progress=not args.quiet)
        finally:
            evaluator.close()
    except TrackNASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best = result.best
    print(json.dumps(None if best is None else {"arch_id": best.arch_id, "fitness": best.fitness,
                                                "genotype": list(best.genotype)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
