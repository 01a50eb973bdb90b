"""Training batches built in DataLoader worker processes, identical whatever the number of workers.

Why: decoding a 1280x720 JPEG, two context crops and the label maps cost milliseconds per pair, which
the training process would otherwise spend between steps. `pair_batches` hands the index lists of an
epoch to `torch.utils.data.DataLoader` workers that build and collate them ahead of the consumer
(`prefetch` batches each), in pinned memory when the batches go to a GPU.

Determinism: a pair is a pure function of (seed, epoch, index) (`nas.data.pairs`), the epoch travels
with the sampler copied into the workers, and batches come back in the order asked for, so the
batches are bit-identical for 0, 1 or N workers. DataLoader's per-worker seeds are drawn from a
generator of our own (`seed`), never from torch's global one, so training draws the same random
numbers with and without workers. Workers are daemonic, exit once their parent is gone
(`nas.procs.die_with_parent`), and are shut down before the last batch is handed out (or when the
iterator is dropped), so no worker outlives its epoch.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader

from nas.data.pairs import PairSampler, collate
from nas.procs import die_with_parent


def _init_worker(_worker_id: int) -> None:
    """Exit with the parent. (OpenCV's thread count is left alone: `cv2.setNumThreads` in a forked
    child can deadlock on the thread pool inherited from the parent.)"""
    die_with_parent()


def pair_batches(pairs: PairSampler, batches: Iterable[Iterable[int]], *, workers: int = 0, pin_memory: bool = False,
                 prefetch: int = 2, seed: int = 0) -> Iterator[dict]:
    """Collated batches of `pairs` for each index list of `batches`, in order, for the epoch `pairs` is set
    to; built in the calling process (`workers == 0`) or in `workers` processes, `prefetch` batches ahead."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    index_lists = [list(batch) for batch in batches]
    if not index_lists:
        return iter(())
    loader = DataLoader(pairs, batch_sampler=index_lists, collate_fn=collate, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=prefetch if workers else None,
                        worker_init_fn=_init_worker if workers else None,
                        generator=torch.Generator().manual_seed(seed))
    return _ending_with_workers(iter(loader), len(index_lists))


def _ending_with_workers(batches: Iterator[dict], count: int) -> Iterator[dict]:
    """The `count` batches; before the last is handed out the DataLoader is run to its end, which
    shuts its workers down (the consumer never asks past the last batch)."""
    for i in range(count):
        batch = next(batches)
        if i == count - 1:
            next(batches, None)
        yield batch
