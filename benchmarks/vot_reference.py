"""Reference numbers of the official VOT toolkit on the generated VOT workspace (`tests/vot_fixture.py`).

Run with the toolkit's own venv (never a project dependency):

    python3 -m venv /work/votref && /work/votref/bin/pip install vot-toolkit==0.9.0 attributee==0.1.9
    /work/votref/bin/python benchmarks/vot_reference.py [--keep DIR]

It writes the fixture into a workspace (sequences/, results/handmade/baseline/), adds a `config.yaml`,
a `trackers.ini` naming the tracker and a stack file without a `dataset:` URL (so nothing is
downloaded): the VOT2018/2019 short-term `baseline` experiment (supervised, 15 repetitions,
skip_initialize 5) with the per-sequence `supervised_ar`, the `supervised_average_ar` (sensitivity 30)
and `supervised_eao_score` on both years' intervals. It then runs the toolkit's CLI
`vot analysis --workspace W handmade --format json --name reference` and prints one JSON object with
the numbers `tests/test_vot.py` hard-codes: accuracy, robustness (length-weighted failures), total
failures, EAO 2018 and 2019, and per-sequence accuracy / failures.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from vot_fixture import SEQUENCES, TRACKER, write_workspace  # noqa: E402

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


def _analysis(root: Path) -> dict:
    (root / "config.yaml").write_text("registry:\n  - ./trackers.ini\nstack: ./stack.yaml\n")
    (root / "trackers.ini").write_text(f"[{TRACKER}]\nlabel = {TRACKER}\nprotocol = trax\ncommand = none\n")
    (root / "stack.yaml").write_text(STACK)
    vot = Path(sys.executable).with_name("vot")
    subprocess.run([str(vot), "analysis", "--workspace", str(root), TRACKER, "--format", "json", "--name", "reference"],
                   check=True, cwd=root, stdout=sys.stderr)  # stdout: only our JSON
    return json.loads((root / "analysis" / "reference.json").read_text())


def _reference_numbers(analysis: dict) -> dict:
    """The toolkit's values, taken from its JSON (`results.baseline.results` follow the stack's analyses)."""
    experiment = analysis["results"]["baseline"]
    values = dict(zip((a["name"] for a in experiment["parameters"]["analyses"]), experiment["results"]))
    names = list(analysis["sequences"])
    accuracy, robustness, _, _ = values["average_ar"][0]
    return {"accuracy": accuracy, "robustness": robustness,
            "failures": sum(failures for _, failures, _, _ in values["ar"]),
            "eao2018": values["eao2018"][0][0], "eao2019": values["eao2019"][0][0],
            "sequences": {name: {"accuracy": acc, "failures": failures}
                          for name, (acc, failures, _, _) in zip(names, values["ar"])}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the workspace here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_workspace(args.keep or Path(tmp) / "workspace")
        analysis = _analysis(root)
    print(json.dumps({"toolkit": "vot-toolkit 0.9.0", "sequences": list(SEQUENCES), **_reference_numbers(analysis)}))


if __name__ == "__main__":
    main()
