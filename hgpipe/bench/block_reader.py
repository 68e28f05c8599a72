"""The training reader before per-epoch shuffling, kept for the bench to compare against.

It read each shard in contiguous blocks (a random offset per shard and epoch, blocks in
a random order): fast, but batch membership depended only on a sample's offset in its
shard, so a sample met the same few neighbours in every epoch. The bench measures its
speed and its mixing next to :class:`hgpipe.train.feeder.ShardBatches`; training never
uses it.
"""
import numpy as np

from hgpipe.data import shards
from hgpipe.train.feeder import TRAIN_FIELDS, aligned_empty, endless, open_shard


class BlockBatches(object):
    """Fixed-shape batches read as contiguous blocks of ``block_batches`` batches.

    Same interface as :class:`~hgpipe.train.feeder.ShardBatches` for what the bench uses
    (``forever``, ``epoch``, ``batches_per_epoch``, ``close``, ``epoch_batches``).
    """

    def __init__(self, shards_dir, split, batch_size, seed=0, capacity=8,
                 fields=TRAIN_FIELDS, block_batches=None):
        self.paths = shards.shard_paths(shards_dir, split)
        if not self.paths:
            raise shards.ShardError("%s: no %s shards" % (shards_dir, split))
        self.batch_size = int(batch_size)
        self.fields = tuple(fields)
        self.seed = int(seed)
        self._files = [open_shard(p) for p in self.paths]
        self.counts = [f["images"].shape[0] for f in self._files]
        self.total = sum(self.counts)
        if self.batches_per_epoch == 0:
            raise shards.ShardError("%s: %d %s samples, not one batch of %d in any shard"
                                    % (shards_dir, self.total, split, self.batch_size))
        first = self._files[0]
        self.specs = {name: (first[name].shape[1:], first[name].dtype) for name in self.fields}
        # ~64 samples per read amortises HDF5's fixed cost per call
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
            offset = rng.randint(count)
            for first in range(0, usable, self.block_batches):
                start = (offset + first * self.batch_size) % count
                blocks.append((shard, start, min(self.block_batches, usable - first)))
        return [blocks[i] for i in rng.permutation(len(blocks))]

    def epoch_batches(self, epoch):
        """Global sample indices (shard after shard) of every batch of an epoch, (n, B)."""
        starts = np.cumsum([0] + self.counts)
        rows = []
        for shard, start, batches in self._blocks(epoch):
            local = (start + np.arange(batches * self.batch_size)) % self.counts[shard]
            rows.append((starts[shard] + local).reshape(batches, self.batch_size))
        return np.concatenate(rows)

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
        return endless(self.epoch, start_epoch, start_batch)
