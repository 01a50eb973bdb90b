"""Reference numbers of the official VOT toolkit on the generated VOT workspace (`tests/vot_fixture.py`).

Run with the toolkit's own venv (never a project dependency):

    python3 -m venv /work/votref && /work/votref/bin/pip install vot-toolkit==0.9.0 attributee==0.1.9
    /work/votref/bin/python benchmarks/vot_reference.py [--keep DIR]

It writes the fixture into a workspace (sequences/, results/handmade/baseline/), adds a `config.yaml`,
a `trackers.ini` naming two trackers and a stack file without a `dataset:` URL (so nothing is
downloaded): the VOT2018/2019 short-term `baseline` experiment (supervised, 15 repetitions,
skip_initialize 5) with the per-sequence `supervised_ar`, the `supervised_average_ar` (sensitivity 30)
and `supervised_eao_score` on both years' intervals. With `VOT_RESULTS_BINARY=false` it then
1. runs the toolkit's own runner (`SupervisedExperiment.execute`, from Python) for `identity`, a
   do-nothing tracker whose runtime reports the initial region's bounds on every frame, and
2. runs the toolkit's CLI `vot analysis --workspace W handmade identity --format json`,
and prints one JSON object: for both trackers accuracy, robustness (length-weighted failures), total
failures, EAO 2018 / 2019 (null where the toolkit gives NaN) and per-sequence [accuracy, failures];
for `identity` also each run's initialisation and failure frames. `tests/test_vot.py` hard-codes them.
It also compares the toolkit's `calculate_overlap` with this checkout's `region_overlap` on random
region pairs (`overlap_parity`: the largest difference).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from vot_fixture import TRACKER, write_workspace  # noqa: E402

IDENTITY = "identity"
os.environ["VOT_RESULTS_BINARY"] = "false"  # the toolkit's runner writes text result files (also in `vot analysis`)

STACK = """title: tracknas VOT parity stack (VOT2018/2019 short-term baseline, local sequences)
experiments:
  baseline:
    type: supervised
    repetitions: 15
    skip_initialize: 5
    analyses:
      - type: supervised_ar
        name: ar
      - type: supervised_average_ar
        name: average_ar
        sensitivity: 30
      - type: supervised_eao_score
        name: eao2018
        low: 100
        high: 356
      - type: supervised_eao_score
        name: eao2019
        low: 46
        high: 291
"""


def _write_config(root: Path) -> None:
    (root / "config.yaml").write_text("registry:\n  - ./trackers.ini\nstack: ./stack.yaml\n")
    (root / "trackers.ini").write_text("".join(f"[{name}]\nlabel = {name}\nprotocol = trax\ncommand = none\n"
                                               for name in (TRACKER, IDENTITY)))
    (root / "stack.yaml").write_text(STACK)


def _run_identity(root: Path) -> dict:
    """The toolkit's own runner (`SupervisedExperiment.execute`) with a do-nothing tracker: it reports
    the initial region's bounds (`Rectangle.convert`) on every frame. Returns {seq: [init frames,
    failure frames] per run}."""
    from vot.region import Special
    from vot.region.shapes import Rectangle
    from vot.tracker import ObjectStatus, OnlineTrackerRuntime, Trajectory
    from vot.workspace import Workspace

    class IdentityRuntime(OnlineTrackerRuntime):
        def stop(self):
            pass

        def restart(self):
            pass

        def initialize(self, frame, new=None):
            self._box = Rectangle.convert(new.region)
            return ObjectStatus(self._box, {}), 0.0

        def update(self, frame, new=None):
            return ObjectStatus(self._box.copy(), {}), 0.0

    workspace = Workspace.load(str(root))
    tracker = workspace.registry[IDENTITY]
    tracker.runtime = lambda log=False: IdentityRuntime(tracker)
    experiment = workspace.stack.experiments["baseline"]
    runs = {}
    for sequence in workspace.dataset:
        experiment.execute(tracker, sequence)
        runs[sequence.name] = [[[i for i, r in enumerate(t.regions()) if isinstance(r, Special) and r.code == code]
                                for code in (Trajectory.INITIALIZATION, Trajectory.FAILURE)]
                               for t in experiment.gather(tracker, sequence)]
    return runs


def _analysis(root: Path) -> dict:
    vot = Path(sys.executable).with_name("vot")
    subprocess.run([str(vot), "analysis", "--workspace", str(root), TRACKER, IDENTITY, "--format", "json",
                    "--name", "reference"], check=True, cwd=root, stdout=sys.stderr)  # stdout: only our JSON
    return json.loads((root / "analysis" / "reference.json").read_text())


def _reference_numbers(analysis: dict, tracker: int) -> dict:
    """The toolkit's values for the `tracker`-th tracker, taken from its JSON: `results.baseline.results`
    follow the stack's analyses; per-sequence ones list every tracker's sequences in turn. The toolkit's
    NaN (EAO undefined: no run reaches the interval) is printed as null."""
    experiment = analysis["results"]["baseline"]
    names = list(analysis["sequences"])
    values = dict(zip((a["name"] for a in experiment["parameters"]["analyses"]), experiment["results"]))
    per_sequence = values["ar"][tracker * len(names):(tracker + 1) * len(names)]
    accuracy, robustness, _, _ = values["average_ar"][tracker]
    eao = {year: values[f"eao{year}"][tracker][0] for year in (2018, 2019)}
    return {"accuracy": accuracy, "robustness": robustness,
            "failures": sum(failures for _, failures, _, _ in per_sequence),
            "eao": {year: None if math.isnan(value) else value for year, value in eao.items()},
            "sequences": {name: [acc, failures] for name, (acc, failures, _, _) in zip(names, per_sequence)}}


def _random_overlap_parity(pairs: int) -> dict:
    """Random boxes, convex and self-crossing polygons and special codes (some on exact halves, some
    partly outside a 80x60 image, a third unbounded): the toolkit's `calculate_overlap` against
    `nas.fitness.region_overlap` (imported from this checkout; it needs only numpy)."""
    import numpy as np
    from vot.region import Special, calculate_overlap
    from vot.region.shapes import Polygon, Rectangle

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nas.fitness.region_overlap import region_overlap

    rng = np.random.default_rng(0)

    def region():
        kind = rng.integers(0, 10)
        if kind == 0:
            code = int(rng.integers(0, 3))
            return Special(code), np.array([code], np.float32)
        if kind < 5:
            box = np.concatenate([rng.uniform(-30, 90, 2), rng.uniform(-3, 50, 2)])
            box = np.round(box * 2) / 2 if rng.random() < 0.3 else box
            shape = Rectangle(*box)
            return shape, shape._data.ravel().copy()
        n = int(rng.choice([3, 4, 5, 6]))
        centre, radius = rng.uniform(-10, 90, 2), rng.uniform(1, 40, n)
        angle = np.sort(rng.uniform(0, 2 * np.pi, n)) if rng.random() < 0.7 else rng.uniform(0, 2 * np.pi, n)
        points = np.stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)], axis=1)
        points = np.round(points * 2) / 2 if rng.random() < 0.3 else points
        shape = Polygon([tuple(p) for p in points])
        return shape, shape._points.ravel().copy()

    worst = 0.0
    for k in range(pairs):
        (first, ours_first), (second, ours_second) = region(), region()
        size = (80, 60) if k % 3 else None
        worst = max(worst, abs(calculate_overlap(first, second, size) - region_overlap(ours_first, ours_second, size)))
    return {"pairs": pairs, "max_abs_difference": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the workspace here instead of a temporary folder")
    parser.add_argument("--pairs", type=int, default=2000, help="random region pairs for the overlap check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_workspace(args.keep or Path(tmp) / "workspace")
        _write_config(root)
        identity_runs = _run_identity(root)
        analysis = _analysis(root)
    print(json.dumps({"toolkit": "vot-toolkit 0.9.0", "overlap_parity": _random_overlap_parity(args.pairs),
                      TRACKER: _reference_numbers(analysis, 0),
                      IDENTITY: {**_reference_numbers(analysis, 1), "runs": identity_runs}}))


if __name__ == "__main__":
    main()
