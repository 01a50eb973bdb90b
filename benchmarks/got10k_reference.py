"""Reference numbers of tests/test_toolkit_parity.py and test_uav123.py from the got10k toolkit (by hand only).

    pip install got10k==0.1.3   # into a scratch environment; not a dependency of tracknas
    PYTHONPATH=.:tests python benchmarks/got10k_reference.py

Writes the parity trees to a temporary folder, the same predictions in the toolkit's result layouts
(GOT-10k: `<tracker>/<seq>/<seq>_001.txt` + `<seq>_time.txt`; OTB: `<tracker>/<seq>.txt`), runs the
toolkit's own `report` and prints its numbers as JSON.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from got10k.datasets import OTB
from got10k.experiments import ExperimentGOT10k, ExperimentOTB, ExperimentUAV123
from test_toolkit_parity import GOT10K_CASE, OTB_CASE, build_got10k, build_otb
from test_uav123 import UAV_CASE, build_uav123

TRACKER = "parity"


def _toolkit_files(results: Path, names: list[str], out: Path, nested: bool) -> None:
    for name in names:
        target = out / name / f"{name}_001.txt" if nested else out / f"{name}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(results / f"{name}.txt", target)
        if nested:
            shutil.copy(results / f"{name}_time.txt", out / name / f"{name}_time.txt")


def got10k_numbers(tmp: Path) -> dict:
    data, results = build_got10k(tmp / "got")
    _toolkit_files(results, list(GOT10K_CASE), tmp / "toolkit" / "GOT-10k" / TRACKER, nested=True)
    experiment = ExperimentGOT10k(str(data), subset="val", result_dir=str(tmp / "toolkit"),
                                  report_dir=str(tmp / "reports"))
    experiment.plot_curves = lambda *args, **kwargs: None
    return experiment.report([TRACKER])[TRACKER]


def otb_numbers(tmp: Path) -> dict:
    data, results = build_otb(tmp / "otb")
    _toolkit_files(results, list(OTB_CASE), tmp / "toolkit" / "OTB2015" / TRACKER, nested=False)
    experiment = ExperimentOTB.__new__(ExperimentOTB)  # __init__ would try to download OTB
    experiment.dataset = OTB(str(data), 2015, download=False)
    experiment.result_dir = str(tmp / "toolkit" / "OTB2015")
    experiment.report_dir = str(tmp / "reports" / "OTB2015")
    experiment.nbins_iou, experiment.nbins_ce = 21, 51
    experiment.plot_curves = lambda *args, **kwargs: None
    return experiment.report([TRACKER])[TRACKER]


def uav123_numbers(tmp: Path) -> dict:
    data, results = build_uav123(tmp / "uav")
    for filler in ("x1", "x2"):  # the toolkit wants more than 3 entries in the root
        (data / filler).mkdir()
    _toolkit_files(results, list(UAV_CASE), tmp / "toolkit" / "UAV123" / TRACKER, nested=False)
    experiment = ExperimentUAV123(str(data), result_dir=str(tmp / "toolkit"), report_dir=str(tmp / "reports"))
    experiment.plot_curves = lambda *args, **kwargs: None
    return experiment.report([TRACKER])[TRACKER]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got, otb, uav = got10k_numbers(Path(tmp)), otb_numbers(Path(tmp)), uav123_numbers(Path(tmp))
    drop = ("success_curve", "precision_curve")
    print(json.dumps({"got10k": {"overall": {k: v for k, v in got["overall"].items() if k != "succ_curve"},
                                 "seq_wise": {s: {"ao": v["ao"], "sr": v["sr"]} for s, v in got["seq_wise"].items()}},
                      "otb": {part: {k: v for k, v in values.items() if k not in drop}
                              for part, values in [("overall", otb["overall"])] + list(otb["seq_wise"].items())},
                      "uav123": {part: {k: v for k, v in values.items() if k not in drop}
                                 for part, values in [("overall", uav["overall"])] + list(uav["seq_wise"].items())}},
                     indent=1, default=float))
    assert np.isfinite(got["overall"]["ao"])


if __name__ == "__main__":
    main()
