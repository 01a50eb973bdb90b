"""Evolutionary architecture search over a `SearchSpace` under FLOPs/params bounds.

API (everything a command or a fitness needs):

```python
from nas.search import SearchSettings, LocalEvaluator, RayPoolEvaluator, run_search

settings = SearchSettings(population=48, top_k=10, mutations=24, crossovers=24, mutation_prob=0.1,
                          generations=20, seed=0, bounds=Bounds(flops=600_000_000, params=2_000_000),
                          algorithm="evolution")          # or "nsga2" / "random"
evaluator = RayPoolEvaluator(fitness_factory, workers=2)  # or LocalEvaluator(fitness_factory)
result = run_search(space, settings, evaluator, "runs/x/search_state.json", resume=True)
result.best      # Candidate(arch, fitness, metrics, cost) with the highest fitness
result.pareto    # non-dominated candidates over settings.objectives, e.g. ("fitness", "flops")
result.logbook   # [{"gen", "evals", "failed", "best", "mean", "median", "best_so_far", "best_arch"}, ...]
result.evaluated # {arch_id: {"genotype", "fitness", "metrics", "cost", "attempts", "error", "generation"}}
result.candidates  # the same records as Candidates (arch_id -> Candidate)
evaluator.close()
```

`fitness_factory` is a picklable callable returning an object with
`evaluate(genotype: list[int]) -> {"fitness": float, **metrics}`; it runs once per worker.
Every candidate is feasible and evaluated at most once; the state file is rewritten atomically
after every evaluation, and `resume=True` continues a killed run to the same result.
Modules: `operators` (constrained variation), `evaluators`, `state` (settings + JSON state),
`evolution` (the driver), `toy` (a cheap fitness with a known optimum), `toy_run` (a runnable example).
"""
from nas.search.evaluators import EvalOutcome, Evaluator, LocalEvaluator, RayPoolEvaluator
from nas.search.evolution import Candidate, SearchResult, run_search
from nas.search.state import OBJECTIVE_WEIGHTS, SearchSettings, SearchState

__all__ = ["OBJECTIVE_WEIGHTS", "Candidate", "EvalOutcome", "Evaluator", "LocalEvaluator", "RayPoolEvaluator",
           "SearchResult", "SearchSettings", "SearchState", "run_search"]
