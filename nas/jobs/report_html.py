"""`runs/<name>/report.html`: one self-contained page about a finished run (`tracknas report RUN`).

Why one file with nothing outside it: a report is mailed, attached and archived; plots are inline
PNG data URIs and the architecture an inline SVG, so it opens the same offline, years later. It is
built from the run directory alone (the files the job wrote), never from a live process, and it
recomputes nothing: costs, fitness and floors are the records the search and re-scoring saved.
"""
from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nas.config import load_run_config
from nas.errors import ConfigError
from nas.io import atomic_write_text, load_json
from nas.search.report import figure_png, floor_lines, plot_accuracy_flops, plot_fitness
from nas.search.state import SearchState
from nas.train.supernet_trainer import HISTORY

if TYPE_CHECKING:
    from matplotlib.axes import Axes

REPORT = "report.html"
SECTIONS = {"config": "Config and provenance", "training": "Supernet training",
            "fitness": "Fitness per generation and floors", "pareto": "Pareto front",
            "architecture": "Best architecture", "cost": "Cost of the best architecture",
            "failures": "Failures and retries"}
"""Section id (`<section id=...>`) -> title, in page order."""

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}code,pre{font-family:monospace;font-size:90%}img{max-width:100%}
section{margin-bottom:2em;border-top:1px solid #ddd}"""


def _read(run_dir: Path, name: str, what: str):
    path = run_dir / name
    if not path.is_file():
        raise ConfigError(f"no {name}: the run has not finished (run `tracknas search --resume`)", source=str(run_dir))
    return load_json(path, error=ConfigError, what=what)


def _table(header: list[str] | None, rows: list[list]) -> str:
    """An HTML table (escaped cells); `header=None` for a two-column key/value table."""
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _figure(draw: Callable[[list[Axes]], None], *panels: str, width: float = 11) -> str:
    """An inline PNG of `draw(axes)` with one axis per panel title (Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4), squeeze=False)
    draw(list(axes[0]))
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{html.escape(", ".join(panels))}" src="data:image/png;base64,{data}">'


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def arch_svg(choices: dict[str, str]) -> str:
    """The architecture as an inline SVG: one box per backbone block labelled with its op, grouped by stage
    (left to right), the output position outlined, blocks past it (unused by the heads) greyed out; then each
    head's choices listed."""
    stages: dict[str, list[tuple[str, str]]] = {}
    heads: dict[str, list[str]] = {}
    output = choices.get("backbone.output")
    for gene, label in choices.items():
        parts = gene.split(".")
        if parts[0] == "backbone" and len(parts) == 3:
            stages.setdefault(parts[1], []).append((f"{parts[1]}.{parts[2]}", label))
        elif parts[0] == "heads" and len(parts) >= 3:
            heads.setdefault(parts[1], []).append(f"{'.'.join(parts[2:])}: {label}")
        elif gene != "backbone.output":
            heads.setdefault("other", []).append(f"{gene}: {label}")
    col, box_w, box_h, gap, top = 160, 140, 26, 8, 40
    depth = max((len(blocks) for blocks in stages.values()), default=0)
    head_top = top + depth * (box_h + gap) + 40
    head_h = 18 * max((len(lines) for lines in heads.values()), default=0) + 30
    width = max(len(stages), len(heads), 1) * col + 20
    parts_svg = [f'<svg id="arch-diagram" width="{width}" '
                 f'height="{head_top + head_h + 10}" font-family="monospace" font-size="11">']
    past_output = False
    for s, (stage, blocks) in enumerate(stages.items()):
        x = 10 + s * col
        parts_svg.append(f'<text x="{x}" y="{top - 12}" font-weight="bold">{html.escape(stage)}</text>')
        for b, (position, label) in enumerate(blocks):
            y = top + b * (box_h + gap)
            is_output = position == output
            fill = "#eeeeee" if past_output else "#dbe9f6" if label != "skip" else "#ffffff"
            stroke = ' stroke="#d62728" stroke-width="3"' if is_output else ' stroke="#555"'
            parts_svg.append(f'<rect class="block" x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" '
                             f'fill="{fill}"{stroke}/>')
            parts_svg.append(f'<text x="{x + 6}" y="{y + 17}">{html.escape(label)}</text>')
            if is_output:
                parts_svg.append(f'<text x="{x + box_w - 44}" y="{y - 2}" fill="#d62728">output</text>')
                past_output = True
    for h, (head, lines) in enumerate(heads.items()):
        x = 10 + h * col
        parts_svg.append(f'<rect class="head" x="{x}" y="{head_top}" width="{box_w}" height="{head_h - 6}" rx="4" '
                         f'fill="#fff4e0" stroke="#555"/>')
        parts_svg.append(f'<text x="{x + 6}" y="{head_top + 16}" font-weight="bold">head {html.escape(head)}</text>')
        for i, line in enumerate(lines):
            parts_svg.append(f'<text x="{x + 6}" y="{head_top + 34 + 18 * i}">{html.escape(line)}</text>')
    parts_svg.append("</svg>")
    return "\n".join(parts_svg)


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def build_report(run_dir: str | Path) -> str:
    """The report's HTML, from the files of a finished run."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    best = _read(run_dir, "best.json", "search result (JSON)")
    pareto = _read(run_dir, "pareto.json", "Pareto front (JSON)")
    logbook = _read(run_dir, "logbook.json", "search logbook (JSON)")
    history = _read(run_dir, f"supernet/{HISTORY}", "supernet history (JSON)")
    final = _read(run_dir, "search/final.json", "final re-scoring (JSON)")
    state = SearchState.load(run_dir / "search" / "state.json")
    prov = best.get("provenance", {})

    config = _table(None, [["run", cfg.name], ["space", f"{best['space']} (hash {best['space_hash']})"],
                               ["seed", prov.get("seed")], ["tool", prov.get("tool")],
                               ["supernet checkpoint", prov.get("supernet_checkpoint")],
                               ["supernet sha256", prov.get("supernet_sha256")],
                               ["config file", cfg.source]])
    config += f"<details><summary>resolved config</summary><pre>{html.escape(json.dumps(cfg.to_dict(), indent=2))}</pre></details>"

    def curves(axes: list[Axes]) -> None:
        epochs = [r["epoch"] for r in history]
        for key in ("loss", "cls", "reg"):
            axes[0].plot(epochs, [r[key] for r in history], marker="o", label=key)
        axes[0].set(xlabel="epoch", ylabel="loss", title="supernet training loss")
        axes[0].legend()
        axes[1].plot(epochs, [r["lr"] for r in history], marker="o")
        axes[1].set(xlabel="epoch", ylabel="learning rate", title="learning rate")

    training = _figure(curves, "loss", "learning rate") + _table(
        ["epoch", "loss", "cls", "reg", "lr", "seconds"],
        [[r["epoch"], _fmt(r["loss"]), _fmt(r["cls"]), _fmt(r["reg"]), f"{r['lr']:.2e}", r["seconds"]]
         for r in history])

    refs = best["references"]
    floors = [["best " + best["arch_id"], _fmt(best["fitness"]), _fmt(best["fitness_std"]), _fmt(best["fitness_search"])]]
    floors += [[name if name == "identity" else f"reference {ref['name']}", _fmt(ref["fitness"]),
                _fmt(ref["fitness_std"]), _fmt(ref["fitness_search"])] for name, ref in refs.items()]
    fitness = _figure(lambda axes: plot_fitness(axes[0], logbook, floor_lines(final)), "fitness per generation",
                      width=8) + _table(["", "fitness (mean over trials)", "std", "search fitness"], floors)

    reference = final.get("reference_arch")
    front = pareto["front"]
    pareto_html = _figure(lambda axes: plot_accuracy_flops(axes[0], list(state.evaluated.values()), front, reference),
                          "accuracy vs FLOPs", width=8) + _table(
        ["arch_id", "search fitness", "MFLOPs", "params"],
        [[c["arch_id"] + (" (best)" if c["arch_id"] == best["arch_id"] else ""), _fmt(c["fitness"]),
          _fmt(c["cost"]["flops"] / 1e6, 2), c["cost"]["params"]] for c in front])
    if reference is not None and "cost" in reference:
        pareto_html += f"<p>reference architecture {html.escape(reference['name'])} ({reference['arch_id']}) " \
                       f"marked with a star at its search fitness {_fmt(reference['fitness_search'])}.</p>"

    architecture = f"<p>{best['arch_id']}: one box per block, grouped by stage; the output position is outlined " \
                   f"in red.</p>\n{arch_svg(best['choices'])}"
    cost = _table(None, [[k, f"{v:,}"] for k, v in best["cost"].items()] +
                  [[f"metric {k}", _fmt(v, 4) if isinstance(v, float) else v] for k, v in best["metrics"].items()
                   if k not in best["cost"]])

    failed = [[aid, r["generation"], r["attempts"], _fmt(r["fitness"]), r["error"] or ""]
              for aid, r in state.evaluated.items() if r["error"] or r["attempts"] > 1]
    failures = _table(["arch_id", "generation", "attempts", "fitness", "error"], failed) if failed else \
        f"<p>none: all {len(state.evaluated)} candidates were evaluated at the first attempt.</p>"

    bodies = {"config": config, "training": training, "fitness": fitness, "pareto": pareto_html,
              "architecture": architecture, "cost": cost, "failures": failures}
    body = "\n".join(_section(ident, title, bodies[ident]) for ident, title in SECTIONS.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>tracknas run '
            f'{html.escape(cfg.name)}</title><style>{_STYLE}</style></head>\n<body><h1>tracknas run '
            f'{html.escape(cfg.name)}</h1>\n{body}\n</body></html>\n')


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default `run_dir/report.html`) atomically; returns its path."""
    path = Path(out) if out is not None else Path(run_dir) / REPORT
    atomic_write_text(path, build_report(run_dir))
    return path
