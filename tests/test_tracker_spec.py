"""`TrackerSpec`, the one recipe base of every tracker: seeded builds, device and name, frame networks."""
from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import torch

from nas.data.datasets import open_dataset
from nas.errors import ConfigError
from nas.fitness.baselines import TRAINED, parse_baseline_config
from trackers.lighttrack.tracker import LightTrackSpec
from trackers.spec import TrackerSpec, load_weights


SMALL = parse_baseline_config({
    "gradnet": {"channels": [24, 32, 32, 32, 32], "tracker": {"response_up": 4}},
    "metartt": {"channels": [16, 32, 64], "fc_widths": [64, 64], "tracker": {"n_neg_init": 256, "n_candidates": 64}},
    "dimp": {"widths": [8, 16, 16, 32, 32], "feature_dim": 16, "image_sample_size": 96, "tracker": {"net_opt_iter": 2}},
}, "<test>")


def _small_specs() -> dict[str, TrackerSpec]:
    """Every registered baseline's specs on small random networks, plus LightTrack-Mobile, all on the CPU."""
    specs: dict[str, TrackerSpec] = {"lighttrack-mobile": LightTrackSpec("lighttrack-mobile", device="cpu", seed=3)}
    for section in SMALL.sections.values():
        specs.update({name: replace(spec, device="cpu", seed=3) for name, spec in section.specs(None, 3).items()})
    return specs


def test_registered_sections_yield_the_trackers_they_name():
    for key, cls in TRAINED.items():
        specs = cls().specs(None, 0)
        assert list(specs) == list(cls.tracker_names), key
        assert all(isinstance(spec, TrackerSpec) and spec.name == name for name, spec in specs.items())


def test_seeded_builds_repeat_and_leave_the_callers_rng_alone():
    for name, spec in _small_specs().items():
        before = torch.random.get_rng_state()
        first, second = spec.build_model().state_dict(), pickle.loads(pickle.dumps(spec)).build_model().state_dict()
        assert torch.equal(torch.random.get_rng_state(), before), name
        assert all(torch.equal(first[key], second[key]) for key in first), name
        reseeded = replace(spec, seed=4).build_model().state_dict()
        assert any(not torch.equal(first[key], value) for key, value in reseeded.items()), name


def test_trackers_carry_the_specs_name_and_device(otb_root):
    seq = open_dataset(otb_root, "otb")[0].head(2)
    for name, spec in _small_specs().items():
        tracker = spec()
        assert tracker.name == name and tracker.device == torch.device("cpu")
        tracker.initialize(seq.frame(0), seq.boxes[0])
        module, inputs = spec.frame_network(tracker, seq.frame(1))
        with torch.no_grad():
            outputs = module(*inputs)
        assert all(torch.isfinite(t).all() for t in (outputs if isinstance(outputs, tuple) else (outputs,))), name
        assert all(p.device.type == "cpu" for p in module.parameters()), name


def test_load_weights_is_one_line_on_a_wrong_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "other.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    for path, message in ((tmp_path / "missing.pt", "not found"), (tmp_path / "list.pt", "expected a state dict"),
                          (tmp_path / "other.pt", "does not fit")):
        with pytest.raises(ConfigError, match=message) as err:
            load_weights(model, path)
        assert "\n" not in str(err.value)


def test_tracking_needs_initialize_and_counts_frames_per_sequence(otb_root):
    seq = open_dataset(otb_root, "otb")[0].head(3)
    for name, spec in _small_specs().items():
        tracker = spec()
        with pytest.raises(RuntimeError, match="before initialize"):
            tracker.track(seq.frame(0))
        for _ in range(2):  # a second sequence starts counting again
            tracker.initialize(seq.frame(0), seq.boxes[0])
            assert tracker.frame_index == 0, name
            for i in range(1, len(seq)):
                tracker.track(seq.frame(i))
            assert tracker.frame_index == len(seq) - 1, name
