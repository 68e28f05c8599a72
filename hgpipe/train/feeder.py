"""The input side of training: shard batches read ahead by a thread, never the device's wait.

Why this shape: prepare already did every per-sample computation, so feeding is just
copying bytes, once. A :class:`ShardBatches` reads *contiguous* slices of shards (the
only fast way to read HDF5: fancy indexing falls to tens of samples/s) in a random block
order straight into preallocated, 64-byte-aligned buffers, and hands out batches as
views of them, which TensorFlow's feed_dict can use without a copy. A
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


def _open_shard(path):
    try:
        return h5py.File(path, "r")
    except (OSError, IOError) as exc:
        raise shards.ShardError("%s: cannot read this shard (%s); check the directory with "
                                "'hgpipe inspect --verify' and rerun 'hgpipe prepare'"
                                % (path, str(exc).split("(")[0].strip() or exc))


class ShardBatches(object):
    """Fixed-shape batches from a split's shards, shuffled across and within shards.

    Each epoch every shard is cut into blocks of ``block_batches`` batches, starting at a
    random offset and wrapping around its end (so a different set of samples shares a
    batch each epoch, and at most ``batch_size - 1`` samples of a shard sit out an
    epoch); the blocks of all shards are read in a random order, each with one contiguous
    read per field straight into an aligned block buffer, and batches are handed out as
    views of it - no second copy. (``hgpipe prepare`` already shuffled every shard, so
    contiguous samples are unrelated.) A batch stays valid until ``capacity + 2`` further
    batches have been produced, which is what the :class:`Prefetcher` needs.
    """

    def __init__(self, shards_dir, split, batch_size, fields=TRAIN_FIELDS, shuffle=True,
                 seed=0, block_batches=None, capacity=8):
        self.paths = shards.shard_paths(shards_dir, split)
        if not self.paths:
            raise shards.ShardError("%s: no %s shards" % (shards_dir, split))
        self.batch_size = int(batch_size)
        self.fields = tuple(fields)
        self.shuffle = shuffle
        self.seed = int(seed)
        self._files = [_open_shard(p) for p in self.paths]
        self.counts = [f["images"].shape[0] for f in self._files]
        self.total = sum(self.counts)
        if self.batches_per_epoch == 0:
            raise shards.ShardError("%s: %d %s samples, not one batch of %d in any shard"
                                    % (shards_dir, self.total, split, self.batch_size))
        first = self._files[0]
        self.specs = {name: (first[name].shape[1:], first[name].dtype) for name in self.fields}
        # ~64 samples per read amortises HDF5's fixed cost per call (measured: batch-4
        # reads alone ran at half the speed)
        self.block_batches = int(block_batches or max(1, 64 // self.batch_size))
        block = self.block_batches * self.batch_size
        in_flight = capacity + 2  # queued + held by the loop + being fed
        count = -(-in_flight // self.block_batches) + 2
        self._buffers = [{name: aligned_empty((block,) + shape, dtype)
                          for name, (shape, dtype) in self.specs.items()}
                         for _ in range(count)]
        self._next_buffer = 0

    def close(self):
        for handle in self._files:
            handle.close()
        self._files = []

    @property
    def batches_per_epoch(self):
        return sum(count // self.batch_size for count in self.counts)

    def _blocks(self, epoch):
        """[(shard, start, batches)] of one epoch, in reading order."""
        rng = np.random.RandomState([self.seed & 0x7FFFFFFF, epoch])
        blocks = []
        for shard, count in enumerate(self.counts):
            usable = count // self.batch_size
            offset = rng.randint(count) if self.shuffle else 0
            for first in range(0, usable, self.block_batches):
                start = (offset + first * self.batch_size) % count
                blocks.append((shard, start, min(self.block_batches, usable - first)))
        if self.shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        return blocks

    def _read_block(self, shard, start, length):
        """Read samples start..start+length of a shard (wrapping) into the next buffer."""
        buffer = self._buffers[self._next_buffer]
        self._next_buffer = (self._next_buffer + 1) % len(self._buffers)
        handle = self._files[shard]
        count = self.counts[shard]
        head = min(length, count - start)
        for name in self.fields:
            dataset = handle[name]
            dataset.read_direct(buffer[name], source_sel=np.s_[start:start + head],
                                dest_sel=np.s_[0:head])
            if head < length:  # wrapped around the end of the shard
                dataset.read_direct(buffer[name], source_sel=np.s_[0:length - head],
                                    dest_sel=np.s_[head:length])
        return buffer

    def epoch(self, epoch, start_batch=0):
        """Yield the batches of one epoch, beginning at batch ``start_batch``."""
        skip = start_batch
        b = self.batch_size
        for shard, start, batches in self._blocks(epoch):
            if skip >= batches:
                skip -= batches
                continue
            buffer = self._read_block(shard, start, batches * b)
            for i in range(skip, batches):
                yield {name: array[i * b:(i + 1) * b] for name, array in buffer.items()}
            skip = 0

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
                if not self._put(item):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # delivered to the consumer
            self._put((self._END, exc))

    def _put(self, item):
        """Queue ``item``, waiting for room; False if the prefetcher was closed first."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue_module.Full:
                continue
        return False

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
