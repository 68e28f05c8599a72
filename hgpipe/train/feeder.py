"""The input side of training: shard batches read ahead by a thread, never the device's wait.

Why this shape: prepare already did every per-sample computation, so feeding is just
copying bytes. A :class:`ShardBatches` reads *contiguous* slices of shards (the only fast
way to read HDF5: fancy indexing falls to tens of samples/s) in a random block order,
permutes each block in memory and assembles fixed-shape batches into preallocated,
64-byte-aligned buffers that TensorFlow's feed_dict can use without a copy. A
:class:`Prefetcher` runs it in a background thread behind a bounded queue and measures
how long the training loop waited.

Order is a pure function of (seed, epoch), so a resumed run continues with exactly the
batch it would have seen next.
"""
import threading
import time
import queue as queue_module

import h5py
import numpy as np

from hgpipe.data import shards

# What training needs per sample; the rest of the schema is for evaluation and humans.
TRAIN_FIELDS = ("images", "heatmaps", "weights")


def aligned_empty(shape, dtype, alignment=64):
    """An uninitialised array whose data pointer is a multiple of ``alignment`` bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


class ShardBatches(object):
    """Fixed-shape batches from a split's shards, shuffled across and within shards.

    ``fields`` are dataset names of the shard schema. Batches are dicts of arrays that
    live in a ring of ``ring`` reused buffers: a batch stays valid until ``ring - 1``
    further batches have been produced (the Prefetcher sizes the ring accordingly).
    """

    def __init__(self, shards_dir, split, batch_size, fields=TRAIN_FIELDS, shuffle=True,
                 seed=0, block=None, ring=4, drop_remainder=True):
        self.paths = shards.shard_paths(shards_dir, split)
        if not self.paths:
            raise shards.ShardError("%s: no %s shards" % (shards_dir, split))
        self.batch_size = int(batch_size)
        self.fields = tuple(fields)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_remainder = drop_remainder
        # 64 MB of chunk cache: enough to keep a compressed block's chunks decoded once
        self._files = [h5py.File(p, "r", rdcc_nbytes=64 << 20) for p in self.paths]
        self.counts = [f["images"].shape[0] for f in self._files]
        self.total = sum(self.counts)
        if self.total < self.batch_size and drop_remainder:
            raise shards.ShardError("%s: %d %s samples, fewer than one batch of %d" % (
                shards_dir, self.total, split, self.batch_size))
        first = self._files[0]
        self.specs = {name: (first[name].shape[1:], first[name].dtype) for name in self.fields}
        self.block = int(block or max(self.batch_size, 8 * self.batch_size, 64))
        self._block_buffers = {name: aligned_empty((self.block,) + shape, dtype)
                               for name, (shape, dtype) in self.specs.items()}
        self._ring = [{name: aligned_empty((self.batch_size,) + shape, dtype)
                       for name, (shape, dtype) in self.specs.items()}
                      for _ in range(max(2, ring))]
        self._ring_next = 0

    def close(self):
        for handle in self._files:
            handle.close()
        self._files = []

    @property
    def batches_per_epoch(self):
        if self.drop_remainder:
            return self.total // self.batch_size
        return -(-self.total // self.batch_size)

    def _blocks(self, epoch):
        blocks = [(s, start, min(self.block, count - start))
                  for s, count in enumerate(self.counts)
                  for start in range(0, count, self.block)]
        if self.shuffle:
            rng = np.random.RandomState([self.seed & 0x7FFFFFFF, epoch])
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        return blocks

    def _read_block(self, shard, start, length):
        handle = self._files[shard]
        for name in self.fields:
            handle[name].read_direct(self._block_buffers[name],
                                     source_sel=np.s_[start:start + length],
                                     dest_sel=np.s_[0:length])

    def epoch(self, epoch, start_batch=0):
        """Yield the batches of one epoch, beginning at batch ``start_batch``."""
        skip = start_batch * self.batch_size
        out, filled = self._next_buffer(), 0
        for block_index, (shard, start, length) in enumerate(self._blocks(epoch)):
            if skip >= length:
                skip -= length
                continue
            self._read_block(shard, start, length)
            order = np.arange(length)
            if self.shuffle:
                order = np.random.RandomState(
                    [self.seed & 0x7FFFFFFF, epoch, block_index]).permutation(length)
            order = order[skip:]
            skip = 0
            while len(order):
                take = min(len(order), self.batch_size - filled)
                for name in self.fields:
                    np.take(self._block_buffers[name], order[:take], axis=0,
                            out=out[name][filled:filled + take])
                filled += take
                order = order[take:]
                if filled == self.batch_size:
                    yield out
                    out, filled = self._next_buffer(), 0
        if filled and not self.drop_remainder:
            yield {name: array[:filled] for name, array in out.items()}

    def _next_buffer(self):
        buffer = self._ring[self._ring_next]
        self._ring_next = (self._ring_next + 1) % len(self._ring)
        return buffer

    def forever(self, start_epoch=0, start_batch=0):
        """Yield (epoch, batch_index, batch) endlessly, from the given position."""
        epoch, batch = start_epoch, start_batch
        while True:
            for batch_data in self.epoch(epoch, batch):
                yield epoch, batch, batch_data
                batch += 1
            epoch, batch = epoch + 1, 0


class Prefetcher(object):
    """Runs an iterator in a background thread behind a bounded queue.

    ``get()`` returns the next item and accounts the time the caller had to wait; an
    exception in the thread is re-raised in the caller. ``capacity`` items may be queued,
    so the producer's buffer ring must hold ``capacity + 2`` batches.
    """

    _END = object()

    def __init__(self, iterator, capacity=8):
        self._iterator = iterator
        self._queue = queue_module.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        self.items = 0
        self._thread = threading.Thread(target=self._run, name="hgpipe-feeder", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for item in self._iterator:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue_module.Full:
                        continue
                if self._stop.is_set():
                    return
            self._put_final((self._END, None))
        except BaseException as exc:  # delivered to the consumer
            self._put_final((self._END, exc))

    def _put_final(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue_module.Full:
                continue

    def get(self):
        start = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - start
        if isinstance(item, tuple) and len(item) == 2 and item[0] is self._END:
            if item[1] is not None:
                raise item[1]
            raise StopIteration
        self.items += 1
        return item

    def __iter__(self):
        while True:
            try:
                yield self.get()
            except StopIteration:
                return

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
