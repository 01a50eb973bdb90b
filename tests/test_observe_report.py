"""`runs/<name>/report.html` (issue 15): one self-contained page, every section, read by a real browser."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import write_job_config
from nas.cli import main
from nas.jobs.report_html import SECTIONS, arch_svg

EXTERNAL = re.compile(r"https?://|<script[^>]*\bsrc=|<link[^>]*\bhref=|\bsrc=\"(?!data:)|url\(", re.IGNORECASE)


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, tiny_data):
    """A finished tiny search: `tracknas search` writes report.html at its end."""
    tmp = tmp_path_factory.mktemp("report")
    assert main(["search", write_job_config(tmp / "job.yaml", tiny_data, tmp / "run"), "--no-tb"]) == 0
    return tmp / "run"


def _chromium() -> str:
    """Chromium's path; CI installs it (.ci/run), so there a missing browser fails instead of skipping."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
    return found


def test_search_writes_one_self_contained_report_with_every_section(report_run, tmp_path, capsys):
    page = (report_run / "report.html").read_text()
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    for ident in SECTIONS:
        assert page.count(f'<section id="{ident}">') == 1, ident
    best = json.loads((report_run / "best.json").read_text())
    assert best["provenance"]["supernet_sha256"] in page and best["space_hash"] in page
    assert page.count('src="data:image/png;base64,') == 3  # training curves, fitness per generation, Pareto front
    assert "<svg" in page and best["arch_id"] in page and "none: all 12 candidates" in page
    # `tracknas report` writes the same page anywhere
    out = tmp_path / "copy.html"
    assert main(["report", str(report_run), "-o", str(out)]) == 0
    assert out.read_text() == page
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_failed_and_retried_candidates_are_listed(report_run, tmp_path):
    from nas.jobs.report_html import build_report
    from nas.search.state import SearchState

    run = tmp_path / "run"
    shutil.copytree(report_run, run, ignore=shutil.ignore_patterns("best", "supernet", "tb"))
    state = SearchState.load(run / "search" / "state.json")
    retried, failed = list(state.evaluated)[:2]
    state.evaluated[retried]["attempts"] = 2
    state.evaluated[failed].update(attempts=3, error="worker died", fitness=float("-inf"))
    state.save(run / "search" / "state.json")
    (run / "supernet").mkdir()
    shutil.copy(report_run / "supernet" / "history.json", run / "supernet" / "history.json")
    failures = build_report(run).split('<section id="failures">')[1]
    assert failures.count("<tr>") == 3 and retried in failures and failed in failures and "worker died" in failures


def test_architecture_diagram_has_a_box_per_block_and_marks_the_output():
    choices = {"backbone.c16.0": "ir_k3_e4", "backbone.c16.1": "skip", "backbone.c24.0": "ir_k5_e6",
               "backbone.c24.1": "ir_k3_e4", "backbone.output": "c24.0", "heads.cls.channels": "32",
               "heads.cls.0": "sep_k5", "heads.reg.0": "sep_k3"}
    svg = arch_svg(choices)
    assert svg.count('class="block"') == 4 and svg.count('class="head"') == 2
    assert svg.count(">output</text>") == 1 and svg.count('stroke="#d62728"') == 1
    assert svg.count('fill="#eeeeee"') == 1  # c24.1 comes after the output position: unused
    assert ">head cls</text>" in svg and "channels: 32" in svg and ">c24</text>" in svg


def test_report_renders_in_headless_chromium(report_run, tmp_path):
    browser = _chromium()
    url = (report_run / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in dom, ident
    assert '<svg id="arch-diagram"' in dom and dom.count('class="block"') >= 8
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400", url], capture_output=True,
                   timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
