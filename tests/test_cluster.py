"""Multi-node Ray, simulated on one machine: a head without CPUs and two worker nodes, all real Ray
processes on loopback, joined by the driver through `address=` as `tracknas search --address` does.

"Evaluated twice" means a candidate whose result is recorded twice in the search state, or counted
twice by the search (its logbook), or whose evaluation *completed* twice (two `end` lines from inside
the actors). Allowed and documented: an attempt that started on a node which then died, whose result
therefore never came back, is retried once on a node that remains (two `start` lines, one `end`, and
`attempts == 2` in the candidate's record).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import TINY_SPACE
from faults import TracedFactory, read_attempts
from nas.io import atomic_write_text
from nas.raytools import RayFailure
from nas.search import LocalEvaluator, RayPoolEvaluator, SearchSettings, SearchState, run_search
from nas.search.toy import ToyFactory
from nas.space import Bounds, load_space
from procnet import descendants, is_loopback, listening

SETTINGS = SearchSettings(population=12, top_k=4, mutations=6, crossovers=6, generations=3, seed=3,
                          bounds=Bounds(flops=9_000_000, params=60_000))
WORKERS = 3  # over two 2-CPU nodes: one node hosts two actors, the other one (and has room for one more)


@pytest.fixture
def cluster(monkeypatch):
    """A head node with no CPUs (nothing is scheduled on it) and two worker nodes with 2 CPUs each."""
    import nas.raytools  # noqa: F401  (before ray: loopback-only)
    import ray
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "this test joins its own cluster"
    temp_dir = tempfile.mkdtemp(prefix="tn-cl-")  # AF_UNIX paths must stay short: not pytest's tmp_path
    monkeypatch.setenv("RAY_TMPDIR", temp_dir)  # Ray's sessions and its cluster-address file, not /tmp/ray
    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=0, include_dashboard=False)
        workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class _Search(threading.Thread):
    """`run_search` on a thread, so that the test can remove nodes meanwhile, and fails if it stalls."""

    def __init__(self, *args):
        super().__init__(daemon=True)
        self.args, self.result, self.error = args, None, None

    def run(self) -> None:
        try:
            self.result = run_search(*self.args, progress=False)
        except BaseException as exc:  # noqa: BLE001  (re-raised by the test, on its own thread)
            self.error = exc


def _actors(trace_dir: Path) -> set[tuple[str, int]]:
    return {(a["node"], a["pid"]) for a in read_attempts(trace_dir)}


@pytest.mark.slow
def test_search_spreads_over_two_nodes_and_survives_losing_one(tmp_path, cluster):
    ray_cluster, workers = cluster
    space = load_space(TINY_SPACE)
    toy = ToyFactory(str(TINY_SPACE), SETTINGS.seed, SETTINGS.bounds)
    reference = run_search(space, SETTINGS, LocalEvaluator(toy), tmp_path / "local.json", progress=False)

    trace_dir, hold = tmp_path / "attempts", tmp_path / "hold"
    trace_dir.mkdir()
    hold.write_text("all")  # every evaluation waits until each actor holds one: none is left out by a slow start
    pool = RayPoolEvaluator(TracedFactory(replace(toy, delay=0.1), str(trace_dir), str(hold)), WORKERS,
                            ray_cluster.address, max_retries=2, start_timeout=60)
    try:
        search = _Search(space, SETTINGS, pool, tmp_path / "state.json")
        search.start()
        try:
            _wait_for(lambda: sum(a["event"] == "held" for a in read_attempts(trace_dir)) == WORKERS,
                      "every actor to hold a candidate")
            actors = _actors(trace_dir)
            victim_id, _ = Counter(node for node, _ in actors).most_common(1)[0]
            victim, survivor = sorted(workers, key=lambda node: node.node_id != victim_id)
            atomic_write_text(hold, victim_id)  # the other node goes on; the victim's actors stay stuck
            listeners = listening(descendants(os.getpid()))
            removed_at = time.time()
            ray_cluster.remove_node(victim)  # its two held attempts die with it
            (old_pid,) = (pid for node, pid in actors if node == survivor.node_id)
            atomic_write_text(hold, str(old_pid))  # only a replacement actor can go on now
            _wait_for(lambda: _actors(trace_dir) - actors, "a replacement actor to evaluate on the remaining node")
        finally:
            hold.unlink(missing_ok=True)
        search.join(timeout=120)
        assert not search.is_alive(), "the search stalled after losing a node"
        assert search.error is None, search.error
        result, restarts_after_search, attempts = search.result, pool.restarts, read_attempts(trace_dir)

        # with no node left, a batch gives up with one line instead of waiting forever
        ray_cluster.remove_node(survivor)
        pool.start_timeout = 2
        with pytest.raises(RayFailure, match="no fitness actor could start within 2 s"):
            list(pool.evaluate([result.best.genotype]))
    finally:
        pool.close()

    before = [a for a in attempts if a["time"] < removed_at]
    after = [a for a in attempts if a["time"] >= removed_at]
    # the actors landed on both worker nodes (never on the CPU-less head)
    assert {a["node"] for a in before} == {node.node_id for node in workers}
    # after the loss, everything ran on the node that remained, including a replacement actor started there
    assert after and {a["node"] for a in after} == {survivor.node_id}
    assert {a["pid"] for a in after} - {a["pid"] for a in before}, "no replacement actor worked on the remaining node"
    assert restarts_after_search == 2  # the two actors of the removed node, nothing else

    # one record per candidate, each counted once, the search the same as without any node loss
    raw = json.loads((tmp_path / "state.json").read_text(), object_pairs_hook=lambda pairs: pairs)
    evaluated_keys = [key for key, _ in dict(raw)["evaluated"]]
    assert len(evaluated_keys) == len(set(evaluated_keys)) == 12 + 2 * 12
    state = SearchState.load(tmp_path / "state.json")
    assert state.done and sum(entry["evals"] for entry in state.logbook) == len(state.evaluated)
    assert all(record["error"] is None for record in state.evaluated.values())
    assert (result.best, result.logbook, sorted(result.evaluated)) == \
        (reference.best, reference.logbook, sorted(reference.evaluated))

    # from inside the actors: each candidate completed exactly once; a second start only after the loss
    starts = Counter(tuple(a["genotype"]) for a in attempts if a["event"] == "start")
    ends = Counter(tuple(a["genotype"]) for a in attempts if a["event"] == "end")
    lost = {tuple(a["genotype"]) for a in attempts if a["event"] == "held" and a["node"] == victim.node_id}
    by_genotype = {tuple(record["genotype"]): record for record in state.evaluated.values()}
    assert set(ends) == set(by_genotype) and set(ends.values()) == {1}
    assert len(lost) == 2 and lost <= set(by_genotype)
    for genotype, record in by_genotype.items():
        assert record["attempts"] == starts[genotype] == (2 if genotype in lost else 1), genotype

    # the cluster listened on loopback only while all three nodes ran
    assert len(listeners) >= 3 and all(is_loopback(addr) for addr in listeners), listeners
