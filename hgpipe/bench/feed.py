"""Row 3: ShardBatches + Prefetcher alone (no model), against the memory-copy limit.

The old block reader (:mod:`hgpipe.bench.block_reader`) is measured the same way, so
the price of per-epoch shuffling is a ratio in the same run.

Training needs images, heatmaps and weights per sample; after prepare, feeding them is
copying bytes, so the physical limit is the machine's memory-copy bandwidth divided by
those bytes. Measured on one pinned core (reader thread and consumer share it), warm
(files in the page cache) and cold (files evicted first, see
:func:`hgpipe.bench.system.evict_from_page_cache`; a cold run reads each sample once),
each the best of a few runs.
"""
import time
from typing import NamedTuple

import numpy as np

from hgpipe.bench.report import make_row
from hgpipe.bench.system import (cpu_seconds, evict_from_page_cache, one_core, per_cpu_rate,
                                 warm_page_cache)
from hgpipe.data import shards
from hgpipe.bench.block_reader import BlockBatches
from hgpipe.train.feeder import TRAIN_FIELDS, Prefetcher, ShardBatches

READERS = {"shuffled": ShardBatches, "block": BlockBatches}

FEED_TARGETS = {False: ">= 10000", True: ">= 5000"}   # images/s on one core: warm, cold
LIMIT_TARGET = ">= 0.333"     # warm feed / physical limit (issue 9)
CAPACITY = 8                   # batches queued by the Prefetcher, as in training


class FeedResult(NamedTuple):
    shards_dir: str
    batch_size: int
    cold: bool
    images: int
    seconds: float
    reader: str                # key of READERS
    cache_method: str          # how the cold run evicted the files ("" when warm)
    resident_after: object     # fraction of pages still cached after eviction, or None
    cpu: float                 # CPU seconds used while timed

    @property
    def images_per_sec(self):
        return self.images / self.seconds


def sample_bytes(shards_dir, fields=TRAIN_FIELDS):
    """Bytes per sample of the fields training reads (e.g. 256x256x3 + 64x64x16 + 16x4)."""
    import h5py
    path = shards.shard_paths(shards_dir, "train")[0]
    with h5py.File(path, "r") as shard:
        return int(sum(int(np.prod(shard[name].shape[1:])) * shard[name].dtype.itemsize
                       for name in fields))


def _timed_run(shards_dir, batch_size, cold, min_seconds, reader_class):
    """One timed run: (images, seconds, CPU seconds); the caller pins the thread.

    Cold: the first epoch after eviction, file opening included. Warm: at least one epoch
    and ``min_seconds``, timed from the first batch on (thread start-up and file opening
    are not feeding).
    """
    start, cpu = time.perf_counter(), cpu_seconds()
    reader = reader_class(shards_dir, "train", batch_size, capacity=CAPACITY)
    prefetcher = Prefetcher(reader.forever(), capacity=CAPACITY)
    try:
        per_epoch = reader.batches_per_epoch
        if cold:
            for _ in range(per_epoch):
                prefetcher.get()
            batches = per_epoch
        else:
            prefetcher.get()
            start, cpu, batches = time.perf_counter(), cpu_seconds(), 0
            while batches < per_epoch or time.perf_counter() - start < min_seconds:
                prefetcher.get()
                batches += 1
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        prefetcher.close()
        reader.close()
    return batches * batch_size, seconds, cpu


def measure_feed(shards_dir, batch_size, cold, min_seconds, repeats=3,
                 reader="shuffled"):
    """images/s of the training reader alone: the best of ``repeats`` runs.

    The best run is the one least disturbed by other users of a shared machine; each
    cold run is preceded by its own eviction.
    """
    paths = shards.shard_paths(shards_dir, "train")
    best = None
    with one_core():
        for _ in range(max(1, repeats)):
            method, resident = "", None
            if cold:
                method, resident = evict_from_page_cache(paths)
            else:
                warm_page_cache(paths)
            images, seconds, cpu = _timed_run(shards_dir, batch_size, cold,
                                              min_seconds / float(max(1, repeats)),
                                              READERS[reader])
            result = FeedResult(shards_dir, batch_size, cold, images, seconds, reader,
                                method, resident, cpu)
            if best is None or result.images_per_sec > best.images_per_sec:
                best = result
    return best


def feed_key(result):
    key = "feed.%s.b%d" % ("cold" if result.cold else "warm", result.batch_size)
    return key if result.reader == "shuffled" else key + "." + result.reader


def feed_row(result, label, key=None):
    """A feed row; the training reader's batch-16 rows carry the issue's targets."""
    shuffled = result.reader == "shuffled"
    target = FEED_TARGETS[result.cold] if shuffled and result.batch_size == 16 else ""
    what = "feed %s, batch %d, 1 core, %s (%s)" % (
        "cold" if result.cold else "warm", result.batch_size,
        "shuffled per epoch" if shuffled else "old block reader", label)
    if result.cold:
        what += ", evicted by %s" % result.cache_method
    return make_row(key or feed_key(result), "feed", what, result.images_per_sec,
                    "images/s", target, per_cpu=per_cpu_rate(result.images, result.cpu))


def limit_rows(bandwidth, bytes_per_sample):
    return [make_row("feed.memcpy", "feed", "memory-copy bandwidth, 1 core (large numpy "
                     "copy)", bandwidth / 1e9, "GB/s"),
            make_row("feed.limit", "feed", "physical limit: memcpy / %d B per sample "
                     "(image + heatmaps + weights)" % bytes_per_sample,
                     bandwidth / bytes_per_sample, "images/s")]


def disk_rows(bandwidth, bytes_per_sample, method):
    return [make_row("feed.disk", "feed", "disk read rate: the shard files front to back in "
                     "16 MB reads, cold (evicted by %s), best of 3" % method,
                     bandwidth / 1e9, "GB/s"),
            make_row("feed.disk_limit", "feed", "cold limit: disk read rate / %d B per "
                     "sample" % bytes_per_sample, bandwidth / bytes_per_sample, "images/s")]
