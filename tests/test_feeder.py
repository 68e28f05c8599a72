"""The shard reader and prefetch thread: per-epoch shuffling, resume, ranks, alignment."""
import os
import threading

import h5py
import numpy as np
import pytest

from conftest import prepare_synthetic_shards
from hgpipe.bench.block_reader import BlockBatches
from hgpipe.data.shards import ShardError, shard_paths
from hgpipe.train.feeder import TRAIN_FIELDS, Prefetcher, ShardBatches, aligned_empty


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 12, 5, "Prepare.variants=3",
                                    "Prepare.shard_size=10")


def _all_samples(shards_dir, fields=TRAIN_FIELDS):
    """Every field of every train sample, numbered shard after shard (the reader's order)."""
    arrays = {name: [] for name in fields}
    for path in shard_paths(shards_dir, "train"):
        with h5py.File(path, "r") as shard:
            for name in fields:
                arrays[name].append(shard[name][:])
    return {name: np.concatenate(parts) for name, parts in arrays.items()}


def _pair_repeats(first, second):
    """Fraction of the sample pairs sharing a batch in ``first`` that share one in ``second``."""
    batch_of = {int(s): k for k, batch in enumerate(second) for s in batch}
    pairs = repeats = 0
    for batch in first:
        for i, a in enumerate(batch):
            for b in batch[i + 1:]:
                pairs += 1
                ka, kb = batch_of.get(int(a)), batch_of.get(int(b))
                repeats += ka is not None and ka == kb
    return repeats / float(pairs)


def test_epoch_covers_samples_once_in_full_batches_with_the_planned_content(shards_dir):
    reader = ShardBatches(shards_dir, "train", 5, seed=1)
    assert reader.total % 5 != 0   # the fixture leaves a remainder to sit out
    truth = _all_samples(shards_dir)
    plan = reader.epoch_batches(0)
    batches = list(reader.epoch(0))
    assert len(batches) == reader.batches_per_epoch == reader.total // 5 == len(plan)
    for batch, indices in zip(batches, plan):
        for name in TRAIN_FIELDS:
            assert batch[name].shape[0] == 5   # never a partial batch
            assert np.array_equal(batch[name], truth[name][indices])
    used = plan.ravel()
    assert len(set(used.tolist())) == len(used) and reader.total - len(used) < 5
    # samples come from every shard, interleaved: not shard by shard
    shard_of_batch = [set(reader.locate(ix)[0].tolist()) for ix in plan]
    assert sum(len(s) > 1 for s in shard_of_batch) > len(plan) // 2


def test_every_epoch_is_a_fresh_permutation_that_mixes_batches(shards_dir):
    reader = ShardBatches(shards_dir, "train", 5, seed=1)
    epochs = [reader.epoch_batches(e) for e in range(12)]
    assert all(not np.array_equal(a, b) for a, b in zip(epochs, epochs[1:]))
    # a uniform permutation lets a pair meet again with p ~ (B-1)/(N-1) ~ 0.11 here; the
    # old block reader kept shard neighbours together
    repeats = np.mean([_pair_repeats(a, b) for a, b in zip(epochs, epochs[1:])])
    assert repeats < 0.2
    old = BlockBatches(shards_dir, "train", 5, seed=1)
    old_epochs = [old.epoch_batches(e) for e in range(12)]
    assert np.mean([_pair_repeats(a, b) for a, b in zip(old_epochs, old_epochs[1:])]) > 0.3
    # which samples sit out changes too
    left_out = [frozenset(range(reader.total)) - frozenset(e.ravel().tolist()) for e in epochs]
    assert len(set(left_out)) > 1


def test_order_is_determined_by_seed_and_epoch(shards_dir):
    a = ShardBatches(shards_dir, "train", 4, seed=3)
    b = ShardBatches(shards_dir, "train", 4, seed=3, capacity=2)
    c = ShardBatches(shards_dir, "train", 4, seed=4)
    for epoch in (0, 5):
        assert np.array_equal(a.epoch_batches(epoch), b.epoch_batches(epoch))
        assert not np.array_equal(a.epoch_batches(epoch), c.epoch_batches(epoch))
        assert all(np.array_equal(x["images"], y["images"])
                   for x, y in zip(a.epoch(epoch), b.epoch(epoch)))
    unshuffled = ShardBatches(shards_dir, "train", 4, shuffle=False)
    assert np.array_equal(unshuffled.epoch_batches(2).ravel(),
                          np.arange(unshuffled.batches_per_epoch * 4))


@pytest.mark.parametrize("num_ranks", [1, 3])
def test_resume_position_continues_the_same_stream_on_every_rank(shards_dir, num_ranks):
    for rank in range(num_ranks):
        def reader():
            return ShardBatches(shards_dir, "train", 3, seed=7, rank=rank, num_ranks=num_ranks)
        first = reader()
        per_epoch = first.batches_per_epoch
        steps = 2 * per_epoch + 2
        stream = first.forever()
        full = [(e, b, batch["images"].copy()) for e, b, batch in
                (next(stream) for _ in range(steps))]
        for cut in (1, per_epoch - 1, per_epoch, per_epoch + 1):
            epoch, batch = full[cut][0], full[cut][1]   # the position saved after step cut
            resumed = reader().forever(epoch, batch)
            rest = [(e, b, x["images"].copy()) for e, b, x in
                    (next(resumed) for _ in range(steps - cut))]
            assert [(e, b) for e, b, _ in rest] == [(e, b) for e, b, _ in full[cut:]]
            assert all(np.array_equal(x, y) for (_, _, x), (_, _, y) in zip(rest, full[cut:]))


def test_ranks_split_every_epoch_into_disjoint_parts_that_cover_it(shards_dir):
    num_ranks, batch_size = 3, 5
    readers = [ShardBatches(shards_dir, "train", batch_size, seed=11, rank=r,
                            num_ranks=num_ranks) for r in range(num_ranks)]
    per_epoch = readers[0].batches_per_epoch
    assert per_epoch == readers[0].total // (batch_size * num_ranks)
    assert all(r.batches_per_epoch == per_epoch for r in readers)   # lockstep
    truth = _all_samples(shards_dir, ("images",))["images"]
    previous = None
    for epoch in range(3):
        parts = [r.epoch_batches(epoch).ravel() for r in readers]
        union = np.concatenate(parts)
        assert len(set(union.tolist())) == len(union)            # disjoint
        assert len(union) == per_epoch * batch_size * num_ranks   # the whole epoch ...
        assert readers[0].total - len(union) < batch_size * num_ranks   # ... but a remainder
        # the data each rank reads is its part of the plan
        for reader, part in zip(readers, parts):
            read = np.concatenate([b["images"] for b in reader.epoch(epoch)])
            assert np.array_equal(read, truth[part])
        if previous is not None:   # every rank's part is reshuffled every epoch
            assert all(not np.array_equal(a, b) for a, b in zip(parts, previous))
            assert any(set(a.tolist()) != set(b.tolist()) for a, b in zip(parts, previous))
        previous = parts
    with pytest.raises(ValueError, match="rank 3 of 3"):
        ShardBatches(shards_dir, "train", batch_size, rank=3, num_ranks=3)
    with pytest.raises(ShardError, match="not one batch"):
        ShardBatches(shards_dir, "train", 40, num_ranks=2)


def test_batches_are_aligned_reused_buffers(shards_dir):
    assert aligned_empty((5, 7, 3), np.uint8).ctypes.data % 64 == 0
    reader = ShardBatches(shards_dir, "train", 4, capacity=2)
    batches = list(reader.epoch(0))
    assert all(b[name].ctypes.data % 64 == 0 for b in batches for name in TRAIN_FIELDS)
    assert all(b[name].flags.c_contiguous for b in batches for name in TRAIN_FIELDS)
    buffers = [buf["images"] for buf in reader._buffers]
    # every batch is one of a few preallocated buffers: no allocation or copy per batch
    assert all(any(b["images"] is buf for buf in buffers) for b in batches)
    assert len(buffers) < len(batches)
    # a batch is still intact after capacity + 2 further batches were produced
    stream = reader.epoch(1)
    first = next(stream)
    snapshot = first["images"].copy()
    for _ in range(4):
        next(stream)
    assert np.array_equal(first["images"], snapshot)


def test_compressed_heatmaps_read_the_same_way(tmp_path_factory):
    gzip_dir = prepare_synthetic_shards(tmp_path_factory, 4, 6, "Prepare.variants=2",
                                        "Prepare.shard_size=6",
                                        "Prepare.heatmap_compression=gzip")
    reader = ShardBatches(gzip_dir, "train", 2, seed=2)
    assert "heatmaps" in reader._files[0].gzip_rows   # inflated chunk by chunk
    truth = _all_samples(gzip_dir)
    for batch, indices in zip(reader.epoch(0), reader.epoch_batches(0)):
        for name in TRAIN_FIELDS:
            assert np.array_equal(batch[name], truth[name][indices])


def test_other_chunk_layouts_read_through_h5py(shards_dir, tmp_path):
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(shards_dir, copy)
    for path in shard_paths(copy, "train"):   # two samples a chunk, shuffle + gzip
        with h5py.File(path, "r+") as shard:
            heatmaps = shard["heatmaps"][:]
            del shard["heatmaps"]
            shard.create_dataset("heatmaps", data=heatmaps, chunks=(2,) + heatmaps.shape[1:],
                                 compression="gzip", shuffle=True)
    reader = ShardBatches(copy, "train", 4, seed=2)
    assert "heatmaps" in reader._files[0].datasets
    truth = _all_samples(shards_dir)
    for batch, indices in zip(reader.epoch(0), reader.epoch_batches(0)):
        for name in TRAIN_FIELDS:
            assert np.array_equal(batch[name], truth[name][indices])


def test_reads_after_eviction_give_the_same_batches(shards_dir):
    reader = ShardBatches(shards_dir, "train", 4, seed=9)
    warm = [b["heatmaps"].copy() for b in reader.epoch(0)]
    for path in reader.paths:   # push the files out of the page cache (a hint)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    cold = [b["heatmaps"].copy() for b in ShardBatches(shards_dir, "train", 4,
                                                          seed=9).epoch(0)]
    assert all(np.array_equal(a, b) for a, b in zip(warm, cold)) and len(cold) == len(warm)


def test_truncated_shard_is_refused_in_one_line(shards_dir, tmp_path):
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(shards_dir, copy)
    path = shard_paths(copy, "train")[0]
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size - 1000)
    with pytest.raises(ShardError) as error:
        ShardBatches(copy, "train", 4)
    assert path in str(error.value) and "\n" not in str(error.value)


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
