"""The shard reader and prefetch thread: order, coverage, resume position, alignment."""
import threading

import numpy as np
import pytest

from conftest import prepare_synthetic_shards
from hgpipe.train.feeder import Prefetcher, ShardBatches, aligned_empty


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 12, 5, "Prepare.variants=3",
                                    "Prepare.shard_size=10")


def _ids(batch):
    # the image bytes identify a sample (every crop differs)
    return [hash(batch["images"][i].tobytes()) for i in range(len(batch["images"]))]


def test_epoch_covers_samples_once_in_fixed_batches(shards_dir):
    reader = ShardBatches(shards_dir, "train", 4, block_batches=2, seed=1)
    seen = []
    for batch in reader.epoch(0):
        assert batch["images"].shape == (4, 64, 64, 3)
        assert batch["heatmaps"].shape == (4, 16, 16, 16)
        assert batch["weights"].shape == (4, 16)
        seen += _ids(batch)
    assert len(seen) == reader.batches_per_epoch * 4 == sum(c // 4 * 4 for c in reader.counts)
    assert len(set(seen)) == len(seen)
    assert reader.total - len(seen) < 4 * len(reader.counts)  # only shard remainders rest
    again = [i for b in reader.epoch(0) for i in _ids(b)]
    other = [i for b in reader.epoch(1) for i in _ids(b)]
    assert again == seen and other != seen

    def groups(ids):
        return {frozenset(ids[k:k + 4]) for k in range(0, len(ids), 4)}
    # samples meet other samples in a new epoch, not just the same batches reordered
    assert len(groups(seen) & groups(other)) < len(groups(seen)) // 2
    unshuffled = ShardBatches(shards_dir, "train", 4, shuffle=False)
    assert [i for b in unshuffled.epoch(0) for i in _ids(b)] != seen


def test_resume_position_continues_the_same_stream(shards_dir):
    reader = ShardBatches(shards_dir, "train", 3, block_batches=2, seed=7)
    stream = reader.forever()
    full = [(e, b, _ids(batch)) for e, b, batch in (next(stream) for _ in range(20))]
    epoch, batch = full[9][0], full[9][1] + 1
    resumed = ShardBatches(shards_dir, "train", 3, block_batches=2, seed=7).forever(epoch, batch)
    if batch >= reader.batches_per_epoch:
        resumed = ShardBatches(shards_dir, "train", 3, block_batches=2, seed=7).forever(epoch + 1, 0)
    rest = [_ids(b) for _e, _b, b in (next(resumed) for _ in range(10))]
    assert rest == [ids for _e, _b, ids in full[10:]]


def test_batches_are_aligned_views_of_reused_buffers(shards_dir):
    assert aligned_empty((5, 7, 3), np.uint8).ctypes.data % 64 == 0
    reader = ShardBatches(shards_dir, "train", 4, block_batches=2, capacity=2)
    batches = list(reader.epoch(0))
    assert all(b["images"].ctypes.data % 64 == 0 for b in batches)
    buffers = [buf["images"] for buf in reader._buffers]
    # every batch is a view into one of a few preallocated buffers: no copy per batch
    assert all(any(np.shares_memory(b["images"], buf) for buf in buffers) for b in batches)
    assert len(buffers) < len(batches)
    # a batch is still intact after capacity + 2 further batches were produced
    stream = reader.epoch(1)
    first = next(stream)
    snapshot = first["images"].copy()
    for _ in range(4):
        next(stream)
    assert np.array_equal(first["images"], snapshot)


def test_prefetcher_measures_wait_and_forwards_errors():
    def slow():
        yield 1
        threading.Event().wait(0.05)
        yield 2
        raise ValueError("shard went away")

    fetch = Prefetcher(slow(), capacity=2)
    assert fetch.get() == 1 and fetch.get() == 2
    with pytest.raises(ValueError, match="shard went away"):
        fetch.get()
    assert fetch.wait_seconds >= 0.03
    fetch.close()
