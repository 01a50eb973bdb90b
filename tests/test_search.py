"""The search engine end to end: real DEAP selection, real cost tables, real files, real Ray, real kills."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_SPACE
from faults import FaultyFactory, UnloadableFactory, read_marker
from nas.cost.sampling import extreme_genotype
from nas.cost.table import cost_table
from nas.errors import ConfigError
from nas.raytools import RayFailure
from nas.search import LocalEvaluator, RayPoolEvaluator, SearchSettings, SearchState, run_search
from nas.search.evolution import rng_for
from nas.search.operators import Variation
from nas.search.toy import ToyFactory, ToyFitness
from nas.space import Arch, Bounds, load_space

TINY_BOUNDS = Bounds(flops=9_000_000, params=60_000)
SMALL = dict(population=12, top_k=4, mutations=6, crossovers=6, generations=5, seed=3, bounds=TINY_BOUNDS)


class RecordingEvaluator(LocalEvaluator):
    """A real local evaluator that also remembers every genotype it was asked to evaluate."""

    def __init__(self, factory):
        super().__init__(factory)
        self.asked: list[tuple[int, ...]] = []

    def evaluate(self, genotypes):
        self.asked.extend(tuple(g) for g in genotypes)
        yield from super().evaluate(genotypes)


def toy_search(path: Path, space_ref=TINY_SPACE, evaluator=None, **overrides):
    settings = SearchSettings(**{**SMALL, **overrides})
    evaluator = evaluator or LocalEvaluator(ToyFactory(str(space_ref), settings.seed, settings.bounds))
    return run_search(load_space(space_ref), settings, evaluator, path, progress=False)


def outcome(result) -> tuple:
    """What two runs with one seed must share: the best candidate, the logbook, the evaluated set."""
    return result.best, result.logbook, sorted(result.evaluated)


def test_evolution_improves_and_beats_random_search_with_the_same_budget(tmp_path):
    settings = dict(population=16, top_k=6, mutations=8, crossovers=8, generations=8)
    for seed in (0, 1):
        evo = toy_search(tmp_path / f"evo{seed}.json", seed=seed, **settings)
        rnd = toy_search(tmp_path / f"rnd{seed}.json", seed=seed, algorithm="random", **settings)
        assert len(evo.evaluated) == len(rnd.evaluated) == 16 + 7 * 16
        assert [e["evals"] for e in evo.logbook] == [e["evals"] for e in rnd.logbook]
        assert evo.logbook[-1]["best"] > evo.logbook[0]["best"]
        assert evo.logbook[-1]["mean"] > evo.logbook[0]["mean"]
        so_far = [e["best_so_far"] for e in evo.logbook]
        assert so_far == sorted(so_far)
        assert evo.best.fitness > rnd.best.fitness
    target = ToyFitness(TINY_SPACE, seed=1, bounds=TINY_BOUNDS).target
    assert evo.best.fitness == 1.0 and evo.best.arch_id == target.arch_id  # the known optimum is found


def test_every_evaluated_candidate_is_feasible_and_new_under_tight_bounds(tmp_path, mobile_space):
    bounds = Bounds(flops=300_000_000, params=800_000)
    table = cost_table(mobile_space)
    evaluator = RecordingEvaluator(ToyFactory("lighttrack-mobile", 0, bounds))
    result = toy_search(tmp_path / "s.json", "lighttrack-mobile", evaluator, bounds=bounds, population=16,
                        top_k=5, mutations=8, crossovers=8, generations=5, seed=0)
    ids = [Arch(mobile_space, g).arch_id for g in evaluator.asked]
    assert len(ids) == len(set(ids)) == len(result.evaluated) == 16 + 4 * 16
    assert set(ids) == set(result.evaluated)
    for genotype in evaluator.asked:
        assert table.flops(genotype) <= bounds.flops and table.params(genotype) <= bounds.params
    for record in result.evaluated.values():  # the recorded costs are the table's
        assert record["metrics"]["flops"] == table.flops(tuple(record["genotype"]))


def test_children_of_infeasible_parents_are_repaired_and_never_duplicates(mobile_space):
    bounds = Bounds(flops=250_000_000, params=600_000)
    variation = Variation(mobile_space, bounds, mutation_prob=0.1, max_retries=10)
    heavy = [extreme_genotype(mobile_space, variation.table, "flops", largest=True),
             extreme_genotype(mobile_space, variation.table, "params", largest=True)]
    assert not any(variation.feasible(g) for g in heavy)
    seen = {Arch(mobile_space, g).arch_id for g in heavy}
    before = set(seen)
    batch = variation.offspring(heavy, 20, 20, {p: rng_for(0, 1, p) for p in ("mutation", "crossover", "fill")},
                                seen)
    ids = [Arch(mobile_space, g).arch_id for g in batch]
    assert len(batch) == 40 and len(set(ids)) == 40 and not set(ids) & before
    assert all(variation.feasible(g) for g in batch)
    assert set(ids) <= seen


def _toy_run(state: Path, *extra: str) -> subprocess.Popen:
    args = ["--space", str(TINY_SPACE), "--state", str(state), "--flops", "9M", "--params", "60K", "--quiet",
            *(f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if k != "bounds"), *extra]
    return subprocess.Popen([sys.executable, "-m", "nas.search.toy_run", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_search_then_resume_gives_the_uninterrupted_result(tmp_path):
    reference = toy_search(tmp_path / "reference.json")
    total = len(reference.evaluated)
    kill_after = random.randint(2, total - 2)
    state = tmp_path / "killed.json"
    proc = _toy_run(state, "--delay=0.05")
    deadline = time.monotonic() + 60
    evaluated = 0
    while evaluated < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        if state.is_file():
            evaluated = len(json.loads(state.read_text())["evaluated"])
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    partial = SearchState.load(state)
    assert not partial.done and kill_after <= len(partial.evaluated) < total, kill_after

    resumed = _toy_run(state, "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    final = SearchState.load(state)
    assert final.done
    best = json.loads(out)
    assert (best["arch_id"], best["fitness"]) == (reference.best.arch_id, reference.best.fitness)
    assert final.logbook == reference.logbook, f"killed after {kill_after} evaluations"
    assert sorted(final.evaluated) == sorted(reference.evaluated)
    assert final.parents == SearchState.load(tmp_path / "reference.json").parents


@pytest.fixture(scope="module")
def ray_session():
    import nas.raytools  # before ray: loopback-only
    import ray

    temp_dir = tempfile.mkdtemp(prefix="tn-ray-")  # AF_UNIX paths must stay short: not pytest's tmp_path
    started = nas.raytools.init_ray(num_cpus=2, temp_dir=temp_dir)
    yield
    if started:
        ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_pool_survives_a_killed_actor_and_a_failing_candidate(tmp_path, ray_session):
    settings = dict(generations=3)
    first = toy_search(tmp_path / "gen0.json", generations=1)
    ranked = sorted(first.evaluated.values(), key=lambda r: -r["fitness"])
    doomed = first.best.genotype  # the best of generation 0 always raises: the search must route around it
    victim = tuple(ranked[1]["genotype"])  # the runner-up's first evaluation kills its worker process
    toy = ToyFactory(str(TINY_SPACE), SMALL["seed"], TINY_BOUNDS)
    local = toy_search(tmp_path / "local.json", evaluator=LocalEvaluator(FaultyFactory(toy, fail_on=doomed)),
                       **settings)
    marker = tmp_path / "killed"
    pool = RayPoolEvaluator(FaultyFactory(toy, kill_marker=str(marker), kill_on=victim, fail_on=doomed), workers=2,
                            max_retries=2)
    try:
        remote = toy_search(tmp_path / "ray.json", evaluator=pool, **settings)
    finally:
        pool.close()
    assert read_marker(marker) == victim
    killed = Arch(load_space(TINY_SPACE), victim).arch_id
    assert remote.evaluated[killed]["attempts"] == 2 and remote.evaluated[killed]["error"] is None
    assert remote.evaluated[killed]["fitness"] == ranked[1]["fitness"]
    failed = remote.evaluated[first.best.arch_id]
    assert failed["fitness"] == -math.inf and failed["attempts"] == 3 and "injected failure" in failed["error"]
    assert pool.restarts == 1 + 3
    assert sum(e["evals"] for e in remote.logbook) == len(remote.evaluated) == 12 + 2 * 12  # nothing lost
    assert [e["failed"] for e in remote.logbook] == [1, 0, 0]
    assert all(r["attempts"] == 1 for aid, r in remote.evaluated.items() if aid not in (killed, first.best.arch_id))
    assert outcome(remote) == outcome(local)  # worker count and completion order do not change the search
    assert remote.best.arch_id != first.best.arch_id


def test_ray_pool_gives_up_with_one_line_when_no_actor_can_start(tmp_path, ray_session):
    pool = RayPoolEvaluator(UnloadableFactory(os.getpid()), workers=1, max_retries=0)
    try:
        with pytest.raises(RayFailure, match="fitness actors keep dying while starting"):
            list(pool.evaluate([(0,) * 4]))
    finally:
        pool.close()
    assert pool.restarts == 1  # replaced once (workers x (max_retries + 1) deaths allowed), then given up


def test_nsga2_returns_a_non_dominated_front(tmp_path):
    result = toy_search(tmp_path / "s.json", algorithm="nsga2", objectives=("fitness", "flops", "params"),
                        generations=4)
    points = {aid: (r["fitness"], r["metrics"]["flops"], r["metrics"]["params"])
              for aid, r in result.evaluated.items()}

    def dominates(a, b) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2] and a != b

    front = {c.arch_id for c in result.pareto}
    assert len(front) >= 2
    for aid in front:
        assert not any(dominates(points[o], points[aid]) for o in points)
    for aid in set(points) - front:
        assert any(dominates(points[f], points[aid]) for f in front)
    assert result.best.arch_id in front
    assert result.evaluated[result.best.arch_id]["fitness"] == max(p[0] for p in points.values())
    with pytest.raises(ConfigError, match="latency_ms"):  # never silently optimise a metric nobody measured
        toy_search(tmp_path / "latency.json", algorithm="nsga2", objectives=("fitness", "latency_ms"))


def test_state_json_round_trip_and_resume_rules(tmp_path):
    path = tmp_path / "s.json"
    toy = ToyFactory(str(TINY_SPACE), SMALL["seed"], TINY_BOUNDS)
    first = toy_search(path, generations=2)
    doomed = first.best.genotype
    text = path.read_text()
    state = SearchState.load(path)
    assert json.loads(json.dumps(state.to_json())) == json.loads(text)
    assert state.settings == SearchSettings(**{**SMALL, "generations": 2})

    failing = toy_search(tmp_path / "f.json", evaluator=LocalEvaluator(FaultyFactory(toy, fail_on=doomed)),
                         generations=1)
    raw = json.loads((tmp_path / "f.json").read_text())
    assert raw["evaluated"][first.best.arch_id]["fitness"] is None  # strict JSON, no -Infinity
    assert failing.evaluated[first.best.arch_id]["fitness"] == -math.inf
    assert SearchState.load(tmp_path / "f.json").evaluated == failing.evaluated

    with pytest.raises(ConfigError, match="already exists"):
        toy_search(path, generations=2)
    with pytest.raises(ConfigError, match="different search settings"):
        run_search(load_space(TINY_SPACE), SearchSettings(**{**SMALL, "top_k": 5}), LocalEvaluator(toy), path,
                   resume=True, progress=False)
    idle = RecordingEvaluator(toy)
    again = run_search(load_space(TINY_SPACE), SearchSettings(**{**SMALL, "generations": 2}), idle, path,
                       resume=True, progress=False)
    assert idle.asked == [] and outcome(again) == outcome(first)
    longer = RecordingEvaluator(toy)
    extended = run_search(load_space(TINY_SPACE), SearchSettings(**{**SMALL, "generations": 3}), longer, path,
                          resume=True, progress=False)
    assert len(longer.asked) == 12 and outcome(extended) == outcome(toy_search(tmp_path / "g3.json", generations=3))


def test_settings_are_validated_with_one_line_errors():
    with pytest.raises(ConfigError, match="search.algorithm"):
        SearchSettings(algorithm="hillclimb")
    with pytest.raises(ConfigError, match="objectives"):
        SearchSettings(objectives=("flops", "fitness"))
    assert SearchSettings.from_json(SearchSettings(bounds=TINY_BOUNDS).to_json()) == SearchSettings(bounds=TINY_BOUNDS)
    with pytest.raises(ConfigError, match="at least one child"):
        SearchSettings(mutations=0, crossovers=0)


def test_seed_architectures_are_evaluated_in_generation_zero(tmp_path):
    """A seeded search (e.g. with the space's reference architecture) evaluates the seed first and keeps
    the population size; infeasible seeds are dropped, not evaluated."""
    space = load_space(TINY_SPACE)
    target = ToyFitness(TINY_SPACE, seed=3, bounds=TINY_BOUNDS).target  # the toy optimum, fitness 1.0
    table = cost_table(space)
    rng = random.Random(0)
    infeasible = next(a for a in (Arch(space, tuple(rng.randrange(int(c)) for c in space.cardinalities))
                                  for _ in range(2000)) if table.flops(a) > TINY_BOUNDS.flops)
    result = toy_search(tmp_path / "seeded.json", generations=1, seeds=(target.genotype, infeasible.genotype))
    assert len(result.evaluated) == SMALL["population"]
    assert target.arch_id in result.evaluated and infeasible.arch_id not in result.evaluated
    assert result.best.arch_id == target.arch_id and result.best.fitness == 1.0


def test_a_damaged_state_file_is_one_line(tmp_path):
    """A hand-edited or truncated search state is refused with one ConfigError line, never a traceback."""
    path = tmp_path / "state.json"
    toy_search(path, generations=1)
    good = json.loads(path.read_text())
    for damage, fragment in ((lambda o: o.update(generation="two"), "wrong type"),
                             (lambda o: o.pop("evaluated"), "'evaluated' is missing"),
                             (lambda o: o.update(evaluated=[1, 2]), "wrong type")):
        obj = json.loads(json.dumps(good))
        damage(obj)
        path.write_text(json.dumps(obj))
        with pytest.raises(ConfigError, match=fragment) as info:
            SearchState.load(path)
        assert "\n" not in str(info.value)
    path.write_text(path.read_text()[:40])
    with pytest.raises(ConfigError, match="not valid JSON"):
        SearchState.load(path)
