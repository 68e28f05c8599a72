"""The input side of training: shard batches read ahead by a thread, never the device's wait.

Why this shape: prepare already did every per-sample computation, so feeding is just
copying bytes, once. Each epoch a :class:`ShardBatches` draws a fresh uniform permutation
of *all* samples of all shards (as the reference loaders' shuffling samplers do) and
reads every sample of a batch straight from its file position into preallocated,
64-byte-aligned buffers (one ``preadv`` per sample and field - HDF5's own selection
machinery costs far more per sample than the copy itself), which TensorFlow's feed_dict
then uses without a copy. A :class:`Prefetcher` runs it in a background thread behind a
bounded queue and measures how long the training loop waited.

Order is a pure function of (seed, epoch), so a resumed run continues with exactly the
batch it would have seen next; ``rank``/``num_ranks`` split every epoch's batches between
data-parallel workers (see :class:`ShardBatches`).

Here an *epoch* is one data pass: every training sample once (less the few that do not
fill a last batch). The config's ``nEpochs`` counts *step epochs* of ``epoch_size``
steps instead (:mod:`hgpipe.config`); the two coincide only by accident.
"""
import os
import threading
import zlib
import time
import queue as queue_module

import h5py
import numpy as np

from hgpipe.data import schema, shard_checks, shards

# What training needs per sample; the rest of the schema is for evaluation and humans.
TRAIN_FIELDS = ("images", "heatmaps", "weights")
# Linux: a read that only succeeds from the page cache, and a hint to read ahead.
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)
_FADVISE = hasattr(os, "posix_fadvise")
_COLD_MEMORY = 64  # batches that read-ahead hints go on after a read missed the cache
# Fields of at most this many bytes per sample (the weights: 64 B) are read whole when a
# shard is opened and copied from memory: from disk each would be one more random read
# of a whole page per sample, a third of a cold epoch's requests.
RESIDENT_ROW_BYTES = 512


def aligned_empty(shape, dtype, alignment=64):
    """An uninitialised array whose data pointer is a multiple of ``alignment`` bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def open_shard(path):
    try:
        return h5py.File(path, "r")
    except (OSError, IOError) as exc:
        raise shards.ShardError("%s: cannot read this shard (%s); check the directory with "
                                "'hgpipe inspect --verify' and rerun 'hgpipe prepare'"
                                % (path, str(exc).split("(")[0].strip() or exc))


def endless(epoch, start_epoch=0, start_batch=0):
    """(epoch, batch_index, batch) from ``epoch(e, first_batch)`` generators, endlessly."""
    current, batch = start_epoch, start_batch
    while True:
        for batch_data in epoch(current, batch):
            yield current, batch, batch_data
            batch += 1
        current, batch = current + 1, 0


def _gzip_per_sample(dataset):
    """Whether a chunked dataset holds each sample as one chunk with gzip as its only
    filter (what ``hgpipe prepare`` writes for compressed images or heatmaps)."""
    return (dataset.chunks == (1,) + dataset.shape[1:] and dataset.compression == "gzip"
            and not dataset.shuffle and not dataset.fletcher32
            and dataset.scaleoffset is None)


class _ShardFile(object):
    """One shard's sample rows, read into caller buffers one sample at a time.

    An uncompressed HDF5 dataset is stored contiguously, C order, at a fixed file offset,
    so sample ``i`` of it is the byte range ``offset + i * row_bytes``: read it with one
    positional read into the destination row, no HDF5 call. A gzip dataset with one
    chunk per sample is read chunk by chunk and inflated with zlib; any other layout
    through h5py, one sample per call.
    """

    def __init__(self, path, fields, sizes, count=None):
        """``sizes``: (split, input_size, heatmap_size, context_side, keypoints) from the
        manifest (:func:`hgpipe.data.shard_checks.shard_spec`): every
        field is checked against (dtype, shape, what the file can hold) before a byte
        of it is read; ``count``: the samples the manifest lists for this shard."""
        self.path = path
        handle = shard_checks.open_checked(path, *sizes, fields=("images",) + tuple(
            f for f in fields if f != "images"), count=count)
        self.count = handle["images"].shape[0]
        self.specs, self.offsets, self.datasets, self.gzip_rows = {}, {}, {}, {}
        self.resident = {}   # name -> the whole dataset in memory (small rows)
        try:
            with shard_checks.reading(path):
                self._layout(handle, fields)
        except BaseException:
            handle.close()
            raise
        self._finish_open(handle, path)

    def _layout(self, handle, fields):
        """How each field is read: positional reads, resident in memory, gzip rows or
        h5py (metadata only; a damaged file fails here in one line)."""
        for name in fields:
            dataset = handle[name]
            self.specs[name] = (dataset.shape[1:], dataset.dtype)
            offset = dataset.id.get_offset() if dataset.chunks is None else None
            if offset is not None and self.row_bytes(name) <= RESIDENT_ROW_BYTES:
                self.resident[name] = dataset[()]
            elif offset is not None:
                self.offsets[name] = offset
            elif _gzip_per_sample(dataset):
                self.gzip_rows[name] = dataset
            else:
                self.datasets[name] = dataset

    def _finish_open(self, handle, path):
        self._handle = handle if self.datasets or self.gzip_rows else None
        if self._handle is None:
            handle.close()
        self.fd = os.open(path, os.O_RDONLY)
        self.nowait = _RWF_NOWAIT is not None
        size = os.fstat(self.fd).st_size
        for name, offset in self.offsets.items():
            if offset + self.count * self.row_bytes(name) > size:
                self.close()
                raise shards.ShardError("%s: file is truncated (dataset %s ends past its "
                                        "end); re-run 'hgpipe prepare'" % (path, name))

    def row_bytes(self, name):
        shape, dtype = self.specs[name]
        return int(np.prod(shape)) * dtype.itemsize

    def read_row(self, name, index, row, row_bytes):
        """Copy sample ``index`` of dataset ``name`` into ``row`` (an array of one sample;
        ``row_bytes`` is a byte memoryview of it). Returns False if the bytes were not all
        in the page cache (the read waited for the disk), else True."""
        offset = self.offsets.get(name)
        if offset is None:
            resident = self.resident.get(name)
            if resident is not None:
                row[...] = resident[index]
            else:
                self._read_chunked(name, index, row, row_bytes)
            return True
        position = offset + index * row_bytes.nbytes
        got = 0
        if self.nowait:
            try:  # succeeds only from the page cache, so it tells warm from cold for free
                got = os.preadv(self.fd, [row_bytes], position, _RWF_NOWAIT)
            except BlockingIOError:
                pass
            except OSError:   # this file system cannot tell: plain reads from now on
                self.nowait = False
            if got == row_bytes.nbytes:
                return True
        rest = row_bytes[got:]
        if os.preadv(self.fd, [rest], position + got) != rest.nbytes:
            raise shards.ShardError("%s: short read of %s sample %d (file changed?); re-run "
                                    "'hgpipe prepare'" % (self.path, name, index))
        return not self.nowait

    def _read_chunked(self, name, index, row, row_bytes):
        dataset = self.gzip_rows.get(name)
        try:
            if dataset is None:
                self.datasets[name].read_direct(row[None], source_sel=np.s_[index:index + 1])
                return
            # one gzip chunk per sample: inflate it ourselves (half the cost of h5py's
            # path), never more than one row plus a byte (a bomb is caught, not inflated)
            chunk = (index,) + (0,) * (row.ndim)
            skipped_filters, raw = dataset.id.read_direct_chunk(chunk)
            data = zlib.decompressobj().decompress(raw, row_bytes.nbytes + 1) \
                if not skipped_filters else raw
        except (OSError, RuntimeError, KeyError, zlib.error) as exc:
            raise shards.ShardError("%s: %s sample %d cannot be read (%s); re-run 'hgpipe "
                                    "prepare'" % (self.path, name, index,
                                                  str(exc).strip().split("\n")[0][:120]))
        if len(data) != row_bytes.nbytes:
            raise shards.ShardError("%s: %s sample %d has %d bytes, expected %d; re-run "
                                    "'hgpipe prepare'" % (self.path, name, index, len(data),
                                                          row_bytes.nbytes))
        row_bytes[:] = data

    def will_need(self, name, index):
        """Ask the kernel to start reading a row now (asynchronous; a hint only)."""
        offset = self.offsets.get(name)
        if offset is not None and _FADVISE:
            size = self.row_bytes(name)
            os.posix_fadvise(self.fd, offset + index * size, size, os.POSIX_FADV_WILLNEED)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ShardBatches(object):
    """Fixed-shape batches from a split's shards, freshly and uniformly shuffled each epoch.

    Samples are numbered globally, shard after shard in manifest order. Epoch ``e`` is
    the permutation ``RandomState([seed, e]).permutation(total)`` cut into batches of
    ``batch_size``; global batch ``g`` of it goes to rank ``g % num_ranks``, so rank
    ``r`` of ``n`` yields the epoch's global batches ``r, r + n, r + 2n, ...`` and the
    *data position* ``(epoch, batch)`` - the same on every rank, which all step in
    lockstep - means global batch ``batch * num_ranks + rank``. Every rank has
    ``batches_per_epoch = total // (batch_size * num_ranks)`` batches; the ranks' batches
    are disjoint and together cover the epoch's permutation except its last
    ``total % (batch_size * num_ranks)`` samples, which sit out this epoch (a different
    random few each epoch): there are no partial batches.

    Each batch is read sample by sample (see :class:`_ShardFile`) into the next of
    ``capacity + 3`` preallocated, aligned batch buffers and handed out as those arrays
    themselves, so a batch stays valid until ``capacity + 2`` further batches have been
    produced, which is what the :class:`Prefetcher` needs. When reads find the files out
    of the page cache, the kernel is asked to fetch the samples ``read_ahead`` samples
    ahead (``posix_fadvise``), so random reads from disk overlap instead of waiting one
    by one.
    """

    def __init__(self, shards_dir, split, batch_size, seed=0, capacity=8, rank=0,
                 num_ranks=1, fields=TRAIN_FIELDS, shuffle=True, read_ahead=128):
        manifest = shards.load_manifest(shards_dir)
        self.paths = shards.shard_paths(shards_dir, split, manifest)
        listed = {os.path.join(shards_dir, e["file"]): e["count"] for e in manifest["shards"]}
        sizes = (split, manifest["input_size"], manifest["heatmap_size"],
                 schema.context_side(manifest), schema.keypoints_of(manifest))
        if not self.paths:
            raise shards.ShardError("%s: no %s shards" % (shards_dir, split))
        self.batch_size = int(batch_size)
        self.rank, self.num_ranks = int(rank), int(num_ranks)
        if not 0 <= self.rank < self.num_ranks:
            raise ValueError("rank %d of %d: need 0 <= rank < num_ranks"
                             % (self.rank, self.num_ranks))
        self.fields = tuple(fields)
        self.shuffle = shuffle
        self.seed = int(seed)
        # in batches; measured on a shared virtual disk, cold: 0 -> 1,200-1,400 samples/s,
        # 64-256 samples ahead -> 1,600-3,600
        self.read_ahead = -(-int(read_ahead) // self.batch_size)
        self._files = []
        try:
            for path in self.paths:
                self._files.append(_ShardFile(path, self.fields, sizes, listed[path]))
            self.specs = self._files[0].specs
            for shard in self._files[1:]:
                if shard.specs != self.specs:
                    raise shards.ShardError("%s: sample shapes/dtypes %s differ from %s's %s"
                                            % (shard.path, shard.specs, self.paths[0],
                                               self.specs))
        except BaseException:
            self.close()
            raise
        self.counts = [shard.count for shard in self._files]
        self.total = sum(self.counts)
        self._shard_starts = np.cumsum([0] + self.counts)
        if self.batches_per_epoch == 0:
            raise shards.ShardError("%s: %d %s samples, not one batch of %d for each of %d "
                                    "rank(s)" % (shards_dir, self.total, split,
                                                 self.batch_size, self.num_ranks))
        self._buffers = [{name: aligned_empty((self.batch_size,) + tuple(shape), dtype)
                          for name, (shape, dtype) in self.specs.items()}
                         for _ in range(capacity + 3)]
        # byte views of every row of every buffer, made once (one per sample read)
        self._row_bytes = [{name: [memoryview(row).cast("B") for row in array]
                            for name, array in buffer.items()} for buffer in self._buffers]
        self._next_buffer = 0
        self._orders = {}           # epoch -> permutation, for the last two epochs
        self._cold_batches = 0      # read-ahead hints go on for this many more batches

    def close(self):
        for shard in self._files:
            shard.close()
        self._files = []

    @property
    def batches_per_epoch(self):
        return self.total // (self.batch_size * self.num_ranks)

    def epoch_order(self, epoch):
        """Global sample indices of epoch ``epoch`` in the order all ranks consume them."""
        order = self._orders.get(epoch)
        if order is None:
            if self.shuffle:
                rng = np.random.RandomState([self.seed & 0x7FFFFFFF, int(epoch)])
                order = rng.permutation(self.total)
            else:
                order = np.arange(self.total)
            self._orders = {e: o for e, o in self._orders.items() if abs(e - epoch) == 1}
            self._orders[epoch] = order
        return order

    def epoch_batches(self, epoch):
        """Global sample indices of this rank's batches of an epoch, (batches, batch_size)."""
        used = self.batches_per_epoch * self.num_ranks * self.batch_size
        every_rank = self.epoch_order(epoch)[:used].reshape(-1, self.batch_size)
        return every_rank[self.rank::self.num_ranks]

    def batch_indices(self, epoch, batch):
        """Global sample indices of this rank's batch ``batch`` of epoch ``epoch``."""
        first = (int(batch) * self.num_ranks + self.rank) * self.batch_size
        return self.epoch_order(epoch)[first:first + self.batch_size]

    def locate(self, indices):
        """Global sample indices -> (shard numbers, indices within those shards)."""
        indices = np.asarray(indices)
        shard = np.searchsorted(self._shard_starts, indices, side="right") - 1
        return shard, indices - self._shard_starts[shard]

    def _advise(self, epoch, batch):
        """Hint the kernel to read this rank's batch ``batch`` of ``epoch`` (or of a later
        epoch if ``batch`` runs past the end)."""
        epoch, batch = epoch + batch // self.batches_per_epoch, batch % self.batches_per_epoch
        for shard, index in zip(*self.locate(self.batch_indices(epoch, batch))):
            shard_file = self._files[shard]
            for name in self.fields:
                shard_file.will_need(name, index)

    def read_batch(self, epoch, batch):
        """Read this rank's batch ``batch`` of ``epoch`` into the next buffer.

        Returns (the buffer, whether every byte came from the page cache)."""
        slot = self._next_buffer
        self._next_buffer = (slot + 1) % len(self._buffers)
        buffer, row_bytes = self._buffers[slot], self._row_bytes[slot]
        shard_numbers, within = self.locate(self.batch_indices(epoch, batch))
        cached = True
        for i, (shard, index) in enumerate(zip(shard_numbers.tolist(), within.tolist())):
            shard_file = self._files[shard]
            for name in self.fields:
                cached &= shard_file.read_row(name, index, buffer[name][i], row_bytes[name][i])
        return buffer, cached

    def epoch(self, epoch, start_batch=0):
        """Yield this rank's batches of one epoch, beginning at batch ``start_batch``.

        Read-ahead hints cost CPU time when the files are cached, so they are given only
        while reads have recently found bytes missing from the page cache."""
        for batch in range(start_batch, self.batches_per_epoch):
            if self._cold_batches and self.read_ahead:
                self._advise(epoch, batch + self.read_ahead)
            buffer, cached = self.read_batch(epoch, batch)
            if not cached:
                if not self._cold_batches:
                    for ahead in range(1, self.read_ahead + 1):
                        self._advise(epoch, batch + ahead)
                self._cold_batches = _COLD_MEMORY
            elif self._cold_batches:
                self._cold_batches -= 1
            yield buffer

    def forever(self, start_epoch=0, start_batch=0):
        """Yield (epoch, batch_index, batch) endlessly, from the given position."""
        return endless(self.epoch, start_epoch, start_batch)


class ReaderError(ValueError):
    """The batch reader thread failed in a way that is not already one of hgpipe's
    one-line errors (those are re-raised as they are)."""


class Prefetcher(object):
    """Runs an iterator in a background thread behind a bounded queue.

    ``get()`` returns the next item and accounts the time the caller had to wait; an
    exception in the thread is re-raised in the caller (a ValueError or an OSError, the
    kinds that already name their file, as it is; anything else as one
    :class:`ReaderError` line). The wait polls the thread: if it ended without handing
    over an item or its end (closed, or killed by an error it could not queue), ``get``
    raises instead of waiting forever. ``capacity`` items may be queued, so the
    producer's buffer ring must hold ``capacity + 2`` batches.
    """

    _END = object()
    POLL_SECONDS = 0.5

    def __init__(self, iterator, capacity=8):
        self._iterator = iterator
        self._queue = queue_module.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self.error = None
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
            self.error = exc   # kept too: get() raises it even if it cannot be queued
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

    def _next(self):
        while True:
            try:
                return self._queue.get(timeout=self.POLL_SECONDS)
            except queue_module.Empty:
                if self._thread.is_alive() or not self._queue.empty():
                    continue
            try:   # the thread ended: take what it queued last, else report its end
                return self._queue.get_nowait()
            except queue_module.Empty:
                return (self._END, self.error if self.error is not None else ReaderError(
                    "the batch reader thread ended without a batch (the prefetcher was "
                    "closed)"))

    def get(self):
        start = time.perf_counter()
        item = self._next()
        self.wait_seconds += time.perf_counter() - start
        if isinstance(item, tuple) and len(item) == 2 and item[0] is self._END:
            try:   # the end stays the end for a later get (the queue has room: it ended)
                self._queue.put_nowait(item)
            except queue_module.Full:
                pass
            error = item[1]
            if error is None:
                raise StopIteration
            if isinstance(error, (ValueError, OSError, KeyboardInterrupt, SystemExit)):
                raise error
            first = str(error).strip().splitlines()
            raise ReaderError("the batch reader thread failed: %s%s" % (
                type(error).__name__, ": " + first[0][:300] if first else "")) from error
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
