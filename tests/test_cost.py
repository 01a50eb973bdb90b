"""The cost model: the reference numbers of LightTrack-Mobile and the lookup table vs fvcore."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import LIGHTTRACK_MOBILE
from nas.cost.counting import reference_cost
from nas.cost.sampling import check_feasible, sample_within
from nas.cost.table import CostTable, cost_table
from nas.errors import TrackNASError
from nas.space import Bounds, from_lighttrack_string, load_space, to_lighttrack_string
from trackers.lighttrack.model import build_subnet


def test_lighttrack_mobile_matches_the_reference_implementation(mobile_space):
    arch = from_lighttrack_string(mobile_space, LIGHTTRACK_MOBILE)
    ref = reference_cost(build_subnet(mobile_space, arch), 128, 256)
    assert ref["params"] == pytest.approx(1_969_397, rel=2e-3)
    assert ref["flops"] == pytest.approx(530.41e6, rel=2e-3)
    assert ref["template_flops"] == pytest.approx(87.3e6, rel=2e-3)
    assert cost_table(mobile_space).cost(arch) == ref


@pytest.mark.parametrize("space_name", ["lighttrack-mobile", "lighttrack-large"])
def test_lookup_table_equals_fvcore_on_random_architectures(space_name):
    space = load_space(space_name)
    table = cost_table(space)
    rng = np.random.default_rng(7)
    for _ in range(100):
        arch = space.sample(rng)
        ref = reference_cost(build_subnet(space, arch), space.spec.template_size, space.spec.search_size)
        assert table.cost(arch) == ref, to_lighttrack_string(arch)


def test_table_round_trips_through_its_cache(mobile_space):
    table = cost_table(mobile_space)
    again = CostTable(mobile_space, table.data)
    genotype = mobile_space.sample(np.random.default_rng(0)).genotype
    assert again.flops(genotype) == table.flops(genotype) and again.params(genotype) == table.params(genotype)


def test_extremes_bound_every_sample_and_are_attained(mobile_space):
    table = cost_table(mobile_space)
    ext = table.extremes()
    rng = np.random.default_rng(1)
    flops = [table.flops(mobile_space.random_genotype(rng)) for _ in range(2000)]
    assert ext["flops"][0] <= min(flops) and max(flops) <= ext["flops"][1]
    anchor = check_feasible(mobile_space, Bounds(flops=ext["flops"][0]))
    assert table.flops(anchor) == ext["flops"][0]


@pytest.mark.parametrize("bounds", [Bounds(flops=600_000_000, params=2_000_000),
                                    Bounds(flops=200_000_000),
                                    Bounds(params=300_000)])
def test_constrained_samples_always_satisfy_the_bounds(mobile_space, bounds):
    table = cost_table(mobile_space)
    rng = np.random.default_rng(5)
    archs = [sample_within(mobile_space, rng, bounds) for _ in range(30)]
    for arch in archs:
        assert bounds.admits(table.cost(arch))
    assert len({a.arch_id for a in archs}) > 1


def test_infeasible_bounds_are_reported_up_front(mobile_space):
    with pytest.raises(TrackNASError, match="smallest architecture"):
        sample_within(mobile_space, np.random.default_rng(0), Bounds(flops=1_000_000))
    with pytest.raises(TrackNASError, match="params"):
        sample_within(mobile_space, np.random.default_rng(0), Bounds(params=1000))


def test_a_damaged_cost_cache_is_rebuilt_with_a_warning(capsys):
    """A cache entry that parses but does not hold a table (or does not parse) is never trusted."""
    import json

    from conftest import TINY_SPACE
    from nas.cost import table as table_module
    from nas.space import load_space

    space = load_space(TINY_SPACE)
    reference = cost_table(space).data
    path = table_module._cache_file(space)
    arch = space.sample(np.random.default_rng(2))
    stub = {"space_hash": reference["space_hash"], "version": reference["version"]}
    for damage in (json.dumps(stub), "{\"space_hash\": ", json.dumps([1, 2])):
        path.write_text(damage)
        table_module._table_for.cache_clear()
        rebuilt = cost_table(space)
        assert "unusable cost-table cache" in capsys.readouterr().err
        assert rebuilt.flops(arch) == CostTable(space, reference).flops(arch)
        assert json.loads(path.read_text())["space_hash"] == space.hash  # the entry was rewritten
