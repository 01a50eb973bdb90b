"""Parallel data loading (issue 11 item 1): batches bit-identical for 0, 1 and 2 DataLoader workers,
training unchanged by the worker count, the frame cache, and workers that die with their driver."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, write_train_config
from nas.config import load_config, parse_config
from nas.data.crops import channel_mean
from nas.data.datasets import open_dataset
from nas.data.loader import pair_batches
from nas.data.pairs import FrameCache, PairSampler
from nas.errors import ConfigError
from nas.train.supernet_trainer import train
from procnet import descendants
from test_orphans import _alive


def _flatten(batch: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_batches_are_bit_identical_for_0_1_2_workers(tiny_data):
    pairs = PairSampler(open_dataset(tiny_data, split="train"), template_size=64, search_size=128, strides=(8, 16),
                        length=24, seed=3)
    index_lists = [range(0, 5), range(5, 12), range(12, 24)]  # uneven sizes: order must hold across workers
    runs = {}
    for workers in (0, 1, 2):
        runs[workers] = []
        for epoch in (0, 1):
            pairs.set_epoch(epoch)
            runs[workers] += [_flatten(b) for b in pair_batches(pairs, index_lists, workers=workers, seed=0)]
    assert len(runs[0]) == 6 and len(runs[0][0]) > 6
    assert not torch.equal(runs[0][0]["search"][0], runs[0][3]["search"][0])  # epochs differ
    for workers in (1, 2):
        for reference, batch in zip(runs[0], runs[workers]):
            assert reference.keys() == batch.keys()
            for key, value in reference.items():
                assert value.dtype == batch[key].dtype and torch.equal(value, batch[key]), (workers, key)


def test_training_history_is_the_same_with_and_without_workers(tmp_path, tiny_data):
    histories = []
    for workers in (0, 2):
        cfg = load_config(write_train_config(tmp_path / f"c{workers}.yaml", tiny_data, tmp_path / f"out{workers}",
                                             epochs=1, pairs_per_epoch=16, data_workers=workers))
        histories.append([(r["loss"], r["cls"], r["reg"]) for r in train(cfg, progress=False)])
    assert histories[0] == histories[1]


def test_loader_leaves_torch_global_rng_alone(tiny_data):
    pairs = PairSampler(open_dataset(tiny_data, split="train"), template_size=64, search_size=128, length=4)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    list(pair_batches(pairs, [range(4)], workers=0))
    assert torch.equal(torch.rand(3), expected)


def test_frame_cache_is_bounded_in_bytes_and_returns_the_decoded_frame(tiny_data):
    [seq, *_] = open_dataset(tiny_data, split="train")
    frame_bytes = seq.frame(0).nbytes
    cache = FrameCache(max_bytes=2 * frame_bytes)
    for t in (0, 1, 0, 2, 3, 0):
        assert np.array_equal(cache.frame(seq, t), seq.frame(t))
        assert cache.bytes <= 2 * frame_bytes
    assert (cache.hits, cache.misses) == (1, 5)  # 0 was evicted by 2 and 3
    assert not cache.frame(seq, 0).flags.writeable  # shared arrays cannot be changed by a caller
    off = FrameCache(max_bytes=0)
    off.frame(seq, 0)
    off.frame(seq, 0)
    assert (off.hits, off.bytes) == (0, 0)


DRIVER = """
import sys, time
from nas.data.crops import channel_mean
from nas.data.datasets import open_dataset
from nas.data.loader import pair_batches
from nas.data.pairs import PairSampler
pairs = PairSampler(open_dataset(sys.argv[1], split="train"), template_size=64, search_size=128, length=4000)
batches = pair_batches(pairs, [range(i, i + 4) for i in range(0, 4000, 4)], workers=2)
next(batches)
print("ready", flush=True)
time.sleep(120)
"""


def test_kill_9_of_the_driver_ends_its_data_workers(tiny_data):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tiny_data)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert driver.stdout.readline().strip() == "ready"
        workers = descendants(driver.pid) - {driver.pid}
        assert len(workers) >= 2, workers
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(workers)


def test_negative_worker_count_is_refused(tiny_data):
    pairs = PairSampler(open_dataset(tiny_data, split="train"), template_size=64, search_size=128, length=4)
    with pytest.raises(ValueError, match="workers"):
        pair_batches(pairs, [range(4)], workers=-1)


def test_fast_channel_mean_is_bit_identical_to_numpy():
    rng = np.random.default_rng(0)
    for i in range(300):
        h, w = rng.integers(1, 200, 2)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if i % 3 else np.full((h, w, 3), i % 256, np.uint8)
        assert np.array_equal(channel_mean(image), image.reshape(-1, 3).mean(axis=0))


def test_workers_are_gone_once_the_last_batch_is_handed_out(tiny_data):
    pairs = PairSampler(open_dataset(tiny_data, split="train"), template_size=64, search_size=128, length=8)
    batches = pair_batches(pairs, [range(0, 4), range(4, 8)], workers=2)
    next(batches)
    workers = descendants(os.getpid()) - {os.getpid()}
    assert len(workers) >= 2
    next(batches)
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(workers)


@pytest.mark.parametrize("value", [-1, 257, 1.5, True])
def test_data_workers_must_be_a_small_count(tmp_path, value):
    with pytest.raises(ConfigError, match=r"c.yaml: supernet.data_workers: expected an integer in 0..256"):
        parse_config({"name": "m", "space": "lighttrack-mobile", "data": {"root": "d"},
                      "supernet": {"data_workers": value}}, source="c.yaml", base=tmp_path)
