"""The space/cost/LightTrack-string commands as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import LIGHTTRACK_MOBILE
from nas.cli import main
from nas.space import load_arch


def test_import_export_cost_round_trip(tmp_path, capsys):
    out = tmp_path / "mobile.json"
    assert main(["import-lighttrack", LIGHTTRACK_MOBILE, "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["export-lighttrack", str(out)]) == 0
    assert capsys.readouterr().out.strip() == LIGHTTRACK_MOBILE
    assert main(["cost", str(out), "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["params"] == 1_969_397 and isinstance(cost["flops"], int) and isinstance(cost["template_flops"], int)
    assert abs(cost["flops"] - 530.41e6) / 530.41e6 < 2e-3


def test_cost_reference_and_latency(tmp_path, capsys):
    out = tmp_path / "mobile.json"
    main(["import-lighttrack", LIGHTTRACK_MOBILE, "-o", str(out)])
    capsys.readouterr()
    assert main(["cost", str(out), "--json", "--reference", "--latency", "--runs", "3", "--warmup", "1",
                 "--threads", "1"]) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["fvcore"] == {k: cost[k] for k in ("params", "flops", "template_flops")}
    assert cost["latency_ms"] > 0 and cost["latency_threads"] == 1


def test_sample_writes_constrained_archs(tmp_path, capsys):
    assert main(["space", "sample", "lighttrack-mobile", "--flops-max", "600M", "--params-max", "2M", "-n", "5",
                 "--seed", "0", "-o", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("arch_*.json"))
    assert len(files) == 5
    for f in files:
        obj = json.loads(f.read_text())
        assert obj["cost"]["flops"] <= 600e6 and obj["cost"]["params"] <= 2e6
        assert load_arch(f).arch_id == obj["arch_id"]
    again = tmp_path / "again"
    main(["space", "sample", "lighttrack-mobile", "--flops-max", "600M", "--params-max", "2M", "-n", "5",
          "--seed", "0", "-o", str(again)])
    assert [f.read_text() for f in files] == [f.read_text() for f in sorted(again.glob("arch_*.json"))]


def test_space_show_and_list(capsys):
    assert main(["space", "list"]) == 0
    listing = capsys.readouterr().out
    assert "lighttrack-mobile" in listing and "lighttrack-large" in listing
    assert main(["space", "show", "lighttrack-mobile", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size"] == 6**18 * 12 * (3 * 2 * 3**7) ** 2
    assert info["constraints"]["default"] == {"flops": 600_000_000, "params": 2_000_000}
    assert info["cost_range"]["flops"]["min"] < 530e6 < info["cost_range"]["flops"]["max"]


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "space", "show", "lighttrack-mobile", "--no-cost"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "backbone.c96.3" in proc.stdout
