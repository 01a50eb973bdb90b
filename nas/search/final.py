"""The final pick: the search's top-k re-scored with error bars, beside the two floors.

Why: a search ranks candidates on one BN-recalibration sample and one validation subset, so its
best is partly the luckiest draw. The top-k (by search fitness) are re-scored over a grid of trials
(BN sample x validation subset, see `nas.fitness.supernet_fitness`); each gets a mean and a
standard deviation, and the pick is the highest mean. Two references are scored on exactly the
same trials: the identity tracker (the first box, never moved) and the space's reference
architecture with inherited weights. A best that does not beat identity means the supernet's
ranking is noise, and the job says so.

The result is saved to `search/final.json`, keyed by the candidates and trials, so a resumed job
does not evaluate it again.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.cost.table import cost_table
from nas.errors import TrackNASError
from nas.io import atomic_write_json
from nas.progress import Progress
from nas.search.evaluators import Evaluator
from nas.search.evolution import SearchResult
from nas.space import Arch


@dataclass(frozen=True)
class Trials:
    bn_samples: int = 2
    subsets: int = 2

    def grid(self) -> list[dict]:
        """Trial 0 first: it is the one the search scored, so its results are reused."""
        return [{"bn_sample": b, "subset": s} for s in range(self.subsets) for b in range(self.bn_samples)]


def summarize(runs: list[dict]) -> dict:
    """Mean and (population) standard deviation of `fitness` over trials, the mean per validation subset
    (index = subset; subset 0 is the search's fitness subset), plus the per-trial values."""
    values = np.array([r["fitness"] for r in runs], dtype=np.float64)
    subsets = sorted({r["subset"] for r in runs})
    by_subset = [float(np.mean([r["fitness"] for r in runs if r["subset"] == k])) for k in subsets]
    return {"fitness": float(values.mean()), "fitness_std": float(values.std()),
            "fitness_search": float(values[0]), "fitness_by_subset": by_subset, "trials": runs}


def _trial_record(trial: dict, metrics: dict) -> dict:
    keep = ("fitness", "ao", "sr50", "sr75", "auc")
    return {**trial, **{k: float(metrics[k]) for k in keep if metrics.get(k) is not None}}


def _score_all(evaluator: Evaluator, genotypes: list[tuple[int, ...]], trials: list[dict],
               known: dict[tuple[int, ...], dict]) -> dict[tuple[int, ...], list[dict]]:
    """Per genotype, one record per trial; trial 0 comes from `known` (the search) where present."""
    runs: dict[tuple[int, ...], list[dict | None]] = {g: [None] * len(trials) for g in genotypes}
    for g, metrics in known.items():
        if g in runs:
            runs[g][0] = _trial_record(trials[0], metrics)
    total = sum(r is None for g in genotypes for r in runs[g])
    bar = Progress(total, "re-scoring", interval=5.0, enabled=total > 0)
    for t, trial in enumerate(trials):
        todo = [g for g in genotypes if runs[g][t] is None]
        for outcome in evaluator.evaluate(todo, trial) if todo else ():
            if outcome.failed:
                raise TrackNASError(f"re-evaluation failed for {outcome.genotype}: {outcome.error}")
            runs[outcome.genotype][t] = _trial_record(trial, {**outcome.metrics, "fitness": outcome.fitness})
            bar.update()
    return {g: list(r) for g, r in runs.items()}  # type: ignore[misc]


def final_ranking(evaluator: Evaluator, result: SearchResult, *, top_k: int, trials: Trials,
                  identity: list[dict], reference: tuple[str, Arch] | None, path: Path) -> dict:
    """Re-score the top-k and the reference arch over `trials`; returns (and saves) the report.

    `identity` holds the identity tracker's scores per validation subset (index = subset).
    """
    ranked = sorted((c for c in result.candidates.values() if math.isfinite(c.fitness)),
                    key=lambda c: -c.fitness)[:top_k]
    grid = trials.grid()
    key = {"trials": grid, "candidates": [list(c.genotype) for c in ranked],
           "reference": list(reference[1].genotype) if reference else None}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved
    genotypes = [c.genotype for c in ranked]
    if reference and tuple(reference[1].genotype) not in genotypes:
        genotypes.append(tuple(reference[1].genotype))
    known = {c.genotype: {**c.metrics, "fitness": c.fitness} for c in ranked}
    runs = _score_all(evaluator, genotypes, grid, known)
    candidates = [{"arch_id": c.arch_id, "genotype": list(c.genotype), **summarize(runs[c.genotype])} for c in ranked]
    identity_runs = [_trial_record(t, identity[t["subset"]]) for t in grid]
    report = {"key": key, "candidates": candidates,
              "identity": summarize(identity_runs),
              "reference_arch": ({"name": reference[0], "arch_id": reference[1].arch_id, "genotype":
                                  list(reference[1].genotype), "cost": cost_table(reference[1].space).cost(reference[1]),
                                  **summarize(runs[tuple(reference[1].genotype)])}
                                 if reference else None)}
    best = max(candidates, key=lambda c: c["fitness"])  # ties: the first, i.e. the higher search fitness
    report["best_genotype"] = best["genotype"]
    atomic_write_json(path, report)
    return report
