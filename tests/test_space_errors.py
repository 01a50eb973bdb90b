"""Malformed DSL files, architecture JSONs and LightTrack strings: each gets its one-line error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import LIGHTTRACK_MOBILE
from nas.cli import main
from nas.errors import TrackNASError
from nas.space import arch_to_json, from_lighttrack_string, load_arch, load_space

MOBILE_TEXT = (Path(__file__).resolve().parents[1] / "search_spaces" / "lighttrack-mobile.yaml").read_text()

# (case id, edit of the mobile DSL text, expected key path, expected fragment of the message)
DSL_CASES = [
    ("unknown-op", ("sep_k3, sep_k5, skip]\n    first", "sep_k3, wavelet_k5, skip]\n    first"),
     "heads.cls.ops[1]", "unknown op type 'wavelet'"),
    ("bad-option", ("ir_k3_e4_se0.25, ir_k3_e6", "ir_k3_e4_q9, ir_k3_e6"), "backbone.choices.mbconv[0]", "bad option 'q9'"),
    ("even-kernel", ("ir_k5_e4_se0.25, ir_k5_e6", "ir_k4_e4_se0.25, ir_k5_e6"), "backbone.choices.mbconv[2]", "odd"),
    ("bad-value", ("channels: 40, depth: 4", "channels: -40, depth: 4"), "backbone.stages[1].channels", "integer in 1..4096"),
    ("bad-stride", ("channels: 96, depth: 4, stride: 1", "channels: 96, depth: 4, stride: 3"),
     "backbone.stages[3].stride", "expected 1 or 2"),
    ("empty-choices", ("channels: [128, 192, 256]\n    depth: 8\n    ops: [sep_k3, sep_k5, skip]\n    first_ops: [sep_k3, sep_k5]\n    outputs: 1",
                       "channels: []\n    depth: 8\n    ops: [sep_k3, sep_k5, skip]\n    first_ops: [sep_k3, sep_k5]\n    outputs: 1"),
     "heads.cls.channels", "empty choice list"),
    ("empty-op-list", ("{name: c24, channels: 24, depth: 2, stride: 2, ops: mbconv}",
                       "{name: c24, channels: 24, depth: 2, stride: 2, ops: []}"), "backbone.stages[0].ops", "empty choice list"),
    ("skip-changes-shape", ("{name: c40, channels: 40, depth: 4, stride: 2, ops: mbconv}",
                            "{name: c40, channels: 40, depth: 4, stride: 2, ops: [mbconv, skip]}"),
     "backbone.stages[1].first_ops", "cannot be 'skip'"),
    ("head-layer0-skip", ("first_ops: [sep_k3, sep_k5]\n    outputs: 4", "first_ops: [skip, sep_k5]\n    outputs: 4"),
     "heads.reg.first_ops", "cannot be 'skip'"),
    ("missing-key", ("neck: {type: pixelwise, channels: 128}\n", ""), "neck", "missing required key"),
    ("unknown-key", ("version: 1\n", "version: 1\ncolour: blue\n"), "colour", "unknown key"),
    ("unknown-output-stage", ("output: [c40, c80, c96]", "output: [c40, c80, c99]"), "backbone.output[2]", "unknown stage 'c99'"),
    ("stage-op-with-stride", ("ops: mbconv}\n    - {name: c192", "ops: [ir_k3_e4_s2]}\n    - {name: c192"),
     "backbone.stages[3].ops[0]", "take stride and channels from the stage"),
    ("head-op-in-backbone", ("{name: c24, channels: 24, depth: 2, stride: 2, ops: mbconv}",
                             "{name: c24, channels: 24, depth: 2, stride: 2, ops: [sep_k3]}"),
     "backbone.stages[0].ops[0]", "backbone op"),
    ("bad-quantity", ("default: {flops: 600M, params: 2M}", "default: {flops: lots, params: 2M}"),
     "constraints.default.flops", "number like 600M"),
    ("bad-yaml", ("neck: {type: pixelwise, channels: 128}", "neck: {type: pixelwise, channels: [128}"), "line", "not valid YAML"),
    ("unknown-head-type", ("type: tower\n    channels: [128, 192, 256]\n    depth: 8\n    ops: [sep_k3, sep_k5, skip]\n    first_ops: [sep_k3, sep_k5]\n    outputs: 4",
                           "type: transformer\n    channels: [128, 192, 256]\n    depth: 8\n    ops: [sep_k3, sep_k5, skip]\n    first_ops: [sep_k3, sep_k5]\n    outputs: 4"),
     "heads.reg.type", "expected one of tower"),
    ("duplicate-choice", ("first_ops: [sep_k3, sep_k5]\n    outputs: 1", "first_ops: [sep_k3, sep_k3]\n    outputs: 1"),
     "heads.cls.first_ops", "listed twice"),
    ("template-too-small", ("input: {template: 128, search: 256}", "input: {template: 8, search: 256}"),
     "input.template", "integer in 16..2048"),
]


@pytest.mark.parametrize("case,edit,key,fragment", DSL_CASES, ids=[c[0] for c in DSL_CASES])
def test_malformed_dsl_files(tmp_path, case, edit, key, fragment):
    old, new = edit
    assert old in MOBILE_TEXT, f"test edit for {case} no longer applies"
    path = tmp_path / f"{case}.yaml"
    path.write_text(MOBILE_TEXT.replace(old, new, 1))
    with pytest.raises(TrackNASError) as info:
        load_space(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert key in message and fragment in message, message


def _mobile_json(mobile_space) -> dict:
    return arch_to_json(from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE))


ARCH_CASES = [
    ("missing-key", lambda o: o.pop("choices"), "choices", "missing required key"),
    ("other-space-hash", lambda o: o.update(space_hash="0123456789abcdef"), "space_hash", "different version"),
    ("other-space", lambda o: o.update(space="lighttrack-large"), "space", "expected 'lighttrack-mobile'"),
    ("out-of-range-choice", lambda o: o["choices"].update({"heads.cls.channels": "512"}), "choices.heads.cls.channels",
     "expected one of 128, 192, 256"),
    ("unknown-op-choice", lambda o: o["choices"].update({"backbone.c24.0": "ir_k9_e4_se0.25"}), "choices.backbone.c24.0",
     "expected one of"),
    ("skip-in-layer0", lambda o: o["choices"].update({"heads.reg.0": "skip"}), "choices.heads.reg.0", "expected one of sep_k3, sep_k5"),
    ("missing-gene", lambda o: o["choices"].pop("backbone.output"), "choices.backbone.output", "missing gene"),
    ("unknown-gene", lambda o: o["choices"].update({"heads.ctr.0": "sep_k3"}), "choices.heads.ctr.0", "unknown gene"),
    ("wrong-schema", lambda o: o.update(schema="tracknas.arch/v0"), "schema", "expected 'tracknas.arch/v1'"),
    ("stale-arch-id", lambda o: o.update(arch_id="ffffffffffffffff"), "arch_id", "does not match"),
]


@pytest.mark.parametrize("case,edit,key,fragment", ARCH_CASES, ids=[c[0] for c in ARCH_CASES])
def test_malformed_arch_json(tmp_path, mobile_space, case, edit, key, fragment):
    obj = _mobile_json(mobile_space)
    edit(obj)
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(TrackNASError) as info:
        load_arch(path, mobile_space)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert key in message and fragment in message, message


STRING_CASES = [
    ("garbage", "hello", "malformed LightTrack path string"),
    ("short-back", LIGHTTRACK_MOBILE.replace("back_0450", "back_050"), "expected 20 digits"),
    ("fixed-digit", LIGHTTRACK_MOBILE.replace("back_0", "back_1"), "fixed first and last digits"),
    ("op-out-of-range", LIGHTTRACK_MOBILE.replace("back_045", "back_049"), "out of range 0..5"),
    ("head-skip-layer0", LIGHTTRACK_MOBILE.replace("cls_211", "cls_221"), "layer 0: op 'skip' is not allowed"),
    ("channel-out-of-range", LIGHTTRACK_MOBILE.replace("cls_2", "cls_3"), "channel digit 3 out of range"),
    ("head-too-short", LIGHTTRACK_MOBILE.replace("reg_100000111", "reg_10000011"), "expected 9 digits"),
    ("bad-output", LIGHTTRACK_MOBILE.replace("ops_32", "ops_42"), "output position 42 is not in the space"),
]


@pytest.mark.parametrize("case,text,fragment", STRING_CASES, ids=[c[0] for c in STRING_CASES])
def test_malformed_lighttrack_strings(mobile_space, case, text, fragment):
    with pytest.raises(TrackNASError) as info:
        from_lighttrack_string(mobile_space, text)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("argv_tail,fragment", [
    (["import-lighttrack", "back_1+cls_2+reg_3_ops_32"], "expected 20 digits"),
    (["space", "show", "no-such-space"], "unknown search space 'no-such-space'"),
    (["space", "sample", "lighttrack-mobile", "--flops-max", "1M"], "infeasible bound"),
    (["space", "sample", "lighttrack-mobile", "--preset", "huge"], "unknown constraint preset 'huge'"),
    (["cost", "does-not-exist.json"], "architecture file not found"),
])
def test_cli_reports_one_line_and_exit_code_2(capsys, argv_tail, fragment):
    assert main(argv_tail) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tracknas: error:") and fragment in err and "\n" not in err, err
    assert "Traceback" not in err


def test_cli_bad_dsl_file_has_no_traceback(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(MOBILE_TEXT.replace("stride: 1", "stride: 7"))
    assert main(["space", "show", str(path), "--no-cost"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "backbone.stages[3].stride" in err
