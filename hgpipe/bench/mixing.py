"""Row: how freshly a reader mixes batches from one epoch to the next.

The statistic: of the sample pairs that shared a batch in epoch ``e``, the fraction that
share one again in epoch ``e + 1``, averaged over a few consecutive epochs. Batch norm
computes its statistics per batch, and a reader whose batches re-form the same groups
every epoch (the old block reader: a sample only ever met its shard neighbours) shows a
large value. For two independent uniform permutations of ``N`` samples cut into ``n``
full batches of ``B`` it is ``n B (B - 1) / (N (N - 1))`` (~ (B-1)/(N-1)): any pair is
as likely to meet as any other. Its sampling noise (the spread of the same average over
simulated uniform permutations) tells whether a reader's value is at the uniform one.
"""
from typing import NamedTuple

import numpy as np

from hgpipe.bench.block_reader import BlockBatches
from hgpipe.bench.report import make_row
from hgpipe.train.feeder import ShardBatches

TRANSITIONS = 4          # epoch pairs averaged (0->1, ..., 3->4)
NOISE_SIMULATIONS = 30   # uniform-permutation runs that estimate the sampling noise
Z_TARGET = "< 3"         # |reader - uniform| in units of the uniform value's noise


def pair_repeat_fraction(first, second, total):
    """Fraction of pairs in a common batch of ``first`` that share one in ``second``.

    ``first``/``second``: (batches, B) arrays of sample indices in ``range(total)``;
    samples missing from ``second`` (sat out that epoch) count as not meeting again.
    """
    first, second = np.asarray(first), np.asarray(second)
    batch_of = np.full(total, -1, dtype=np.int64)
    batch_of[second.ravel()] = np.repeat(np.arange(len(second)), second.shape[1])
    again = batch_of[first]                                        # (batches, B)
    same = (again[:, :, None] == again[:, None, :]) & (again[:, :, None] >= 0)
    size = first.shape[1]
    upper = np.triu(np.ones((size, size), dtype=bool), 1)
    pairs = len(first) * size * (size - 1) // 2
    return float(np.count_nonzero(same & upper)) / pairs


def mean_repeat_fraction(epoch_batches, total, transitions=TRANSITIONS):
    """The statistic averaged over epochs 0 -> 1 ... ``transitions - 1`` -> ``transitions``."""
    epochs = [epoch_batches(e) for e in range(transitions + 1)]
    return float(np.mean([pair_repeat_fraction(a, b, total)
                          for a, b in zip(epochs, epochs[1:])]))


def uniform_expected(total, batches, batch_size):
    return batches * batch_size * (batch_size - 1) / float(total * (total - 1))


def uniform_noise(total, batches, batch_size, transitions=TRANSITIONS,
                  simulations=NOISE_SIMULATIONS, seed=0):
    """Standard deviation of :func:`mean_repeat_fraction` for uniform permutations."""
    rng = np.random.RandomState(seed)

    def uniform_epoch(_epoch):
        return rng.permutation(total)[:batches * batch_size].reshape(batches, batch_size)
    return float(np.std([mean_repeat_fraction(uniform_epoch, total, transitions)
                         for _ in range(simulations)], ddof=1))


class MixingResult(NamedTuple):
    total: int
    batch_size: int
    batches: int
    reader: float        # the training reader's mean repeat fraction
    block: float         # the old block reader's
    uniform: float       # expected for uniform permutations
    noise: float         # sampling noise of the mean for uniform permutations

    @property
    def z(self):
        return abs(self.reader - self.uniform) / self.noise


def measure_mixing(shards_dir, batch_size):
    """Mixing of the training reader and the old block reader on the same train shards."""
    reader = ShardBatches(shards_dir, "train", batch_size)
    block = BlockBatches(shards_dir, "train", batch_size)
    try:
        total, batches = reader.total, reader.batches_per_epoch
        return MixingResult(total, batch_size, batches,
                            mean_repeat_fraction(reader.epoch_batches, total),
                            mean_repeat_fraction(block.epoch_batches, total),
                            uniform_expected(total, batches, batch_size),
                            uniform_noise(total, batches, batch_size))
    finally:
        reader.close()
        block.close()


def mixing_rows(result):
    what = ("mixing: of the pairs sharing a batch in epoch e, fraction sharing one in e+1 "
            "(batch %d, %d samples, mean of %d epoch pairs)" % (
                result.batch_size, result.total, TRANSITIONS))
    return [
        make_row("mixing.reader", "mixing", "%s: training reader" % what, result.reader,
                 "fraction"),
        make_row("mixing.uniform", "mixing", "%s: uniform permutation, expected" % what,
                 result.uniform, "fraction"),
        make_row("mixing.noise", "mixing", "mixing, uniform permutations: sampling noise of "
                 "that mean (std over %d simulations)" % NOISE_SIMULATIONS, result.noise,
                 "fraction"),
        make_row("mixing.z", "mixing", "mixing: training reader's distance from uniform, "
                 "in units of the noise", result.z, "sigma", Z_TARGET),
        make_row("mixing.block", "mixing", "%s: old block reader" % what, result.block,
                 "fraction"),
    ]
