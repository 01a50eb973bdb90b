"""What a finished search leaves in its run directory: best.json, pareto.json, the per-generation
log (CSV + JSON) and two plots (fitness per generation with the identity and reference-architecture
floors; accuracy vs FLOPs with the Pareto front). All files are written atomically.

With a final re-scoring (`nas.search.final`), best.json is the pick by mean fitness over the trials:
`fitness` is that mean, `fitness_std` its spread, `fitness_search` the value the search ranked by,
`fitness_by_subset` the mean per validation subset (subset 0 is the search's fitness subset),
`trials` the per-trial scores, and `references` the identity tracker and the reference architecture
scored on exactly the same trials. `metrics` stay those of the search's own evaluation."""
from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nas import __version__
from nas.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from nas.search.evolution import Candidate, SearchResult
from nas.search.state import SearchSettings
from nas.space import SearchSpace, arch_to_json

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOG_FIELDS = ("gen", "evals", "failed", "best", "mean", "median", "best_so_far", "best_arch")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def candidate_json(candidate: Candidate, provenance: dict) -> dict:
    return arch_to_json(candidate.arch, cost=candidate.cost, fitness=candidate.fitness,
                        metrics=dict(candidate.metrics), provenance=provenance)


def _final_best(result: SearchResult, final: dict, provenance: dict) -> dict:
    pick = next(c for c in final["candidates"] if c["genotype"] == final["best_genotype"])
    body = candidate_json(result.candidates[pick["arch_id"]], provenance)
    ref = final["reference_arch"]
    keys = ("fitness", "fitness_std", "fitness_search", "fitness_by_subset")
    references = {"identity": {k: final["identity"][k] for k in keys}}
    if ref is not None:
        references["reference_arch"] = {k: ref[k] for k in ("name", "arch_id", *keys)}
    body.update(fitness=pick["fitness"], fitness_std=pick["fitness_std"], fitness_search=pick["fitness_search"],
                fitness_by_subset=pick["fitness_by_subset"], trials=pick["trials"], references=references)
    return body


def write_reports(run_dir: Path, space: SearchSpace, settings: SearchSettings, result: SearchResult,
                  checkpoint: Path, seed: int, final: dict | None = None) -> dict:
    """Write every report file; returns the provenance stamped on the architectures."""
    provenance = {"tool": f"tracknas {__version__}", "seed": seed, "space_hash": space.hash,
                  "supernet_checkpoint": str(checkpoint), "supernet_sha256": file_sha256(checkpoint),
                  "search": settings.to_json()}
    best = _final_best(result, final, provenance) if final else candidate_json(result.best, provenance)
    atomic_write_json(run_dir / "best.json", best)
    atomic_write_json(run_dir / "pareto.json", {"objectives": list(settings.objectives),
                                                "front": [candidate_json(c, provenance) for c in result.pareto]})
    atomic_write_json(run_dir / "logbook.json", result.logbook)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result.logbook)
    atomic_write_text(run_dir / "generations.csv", buffer.getvalue())
    _plot(run_dir, result, final)
    return provenance


def floor_lines(final: dict | None) -> dict[str, float]:
    """Label -> search fitness of the identity tracker and the reference architecture (the same frames as
    each candidate's search fitness): the horizontal lines of a fitness-per-generation plot."""
    floors: dict[str, float] = {}
    if final:
        floors["identity"] = final["identity"]["fitness_search"]
        if final["reference_arch"]:
            floors[f"reference ({final['reference_arch']['name']})"] = final["reference_arch"]["fitness_search"]
    return floors


def plot_fitness(ax: Axes, logbook: list[dict], floors: dict[str, float]) -> None:
    """Best, mean, median and best-so-far fitness per generation, with the floors as lines."""
    gens = [row["gen"] for row in logbook]
    for key in ("best", "mean", "median", "best_so_far"):
        ax.plot(gens, [row[key] if row[key] is not None else np.nan for row in logbook], marker="o", label=key)
    for (label, value), style in zip(floors.items(), ("k--", "m:")):
        ax.axhline(value, color=style[0], linestyle=style[1:], label=f"{label} {value:.3f}")
    ax.set(xlabel="generation", ylabel="fitness", title="fitness per generation (floors: same frames)")
    ax.legend()


def plot_accuracy_flops(ax: Axes, evaluated: list[dict], front: list[dict], reference: dict | None) -> None:
    """Every evaluated candidate and the Pareto front (records with `fitness` and `metrics.flops`), and the
    reference architecture (final.json's entry, when it carries its cost) marked at its search fitness."""
    done = [c for c in evaluated if c.get("fitness") is not None and np.isfinite(c["fitness"])]
    ax.scatter([c["metrics"]["flops"] / 1e6 for c in done], [c["fitness"] for c in done], s=12, alpha=0.5,
               label="evaluated")
    front = sorted(front, key=lambda c: c["metrics"]["flops"])
    ax.plot([c["metrics"]["flops"] / 1e6 for c in front], [c["fitness"] for c in front], "r-o", label="Pareto front")
    if reference is not None and "cost" in reference:
        ax.scatter([reference["cost"]["flops"] / 1e6], [reference["fitness_search"]], marker="*", s=160, c="k",
                   zorder=3, label=f"reference ({reference['name']})")
    ax.set(xlabel="MFLOPs (per frame)", ylabel="fitness", title="accuracy vs FLOPs")
    ax.legend()


def figure_png(fig: Figure) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _plot(run_dir: Path, result: SearchResult, final: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    plot_fitness(left, result.logbook, floor_lines(final))
    plot_accuracy_flops(right, list(result.evaluated.values()),
                        [{"fitness": c.fitness, "metrics": c.metrics} for c in result.pareto],
                        final["reference_arch"] if final else None)
    atomic_write_bytes(run_dir / "search.png", figure_png(fig))
