"""``[Train] deterministic``: the same seed gives the same weights, bit for bit.

Everything hgpipe itself decides is already a function of the seed: the shards
(``hgpipe prepare``), the batch order (``ShardBatches``: seed, epoch), the initial
weights and any random op (graph-level ``set_random_seed``). What remains is
TensorFlow's scheduling: with several threads, the order in which partial sums are
added may vary from run to run (oneDNN says so at start-up: "You may see slightly
different numerical results due to floating-point round-off errors from different
computation orders"), and training amplifies a last-bit difference into different
validation scores within a few hundred steps.

The deterministic mode removes that freedom: one thread for all ops
(``inter_op_parallelism_threads = intra_op_parallelism_threads = 1``), so every op and
every reduction runs in one fixed order, whatever the machine's core count; and
``TF_DETERMINISTIC_OPS=1``, which makes TensorFlow choose deterministic kernels where it
has alternatives (cuDNN on TF 1.15 and 2.x; every op on TF 2.x). TensorFlow 2.x reads
that variable once, when it is imported (its replacement,
``tf.config.experimental.enable_op_determinism``, is not in the TF 1.15 API), so
``hgpipe train`` calls :func:`request_op_determinism` before TensorFlow loads; on the
CPU, the single thread alone already makes the run repeatable.
"""
import os


def request_op_determinism():
    """Ask TensorFlow for deterministic kernels: effective if TF is not imported yet."""
    os.environ["TF_DETERMINISTIC_OPS"] = "1"


def make_deterministic(config):
    """Switch a session ``ConfigProto`` to one thread (and request deterministic kernels);
    returns ``config``."""
    request_op_determinism()
    config.inter_op_parallelism_threads = 1
    config.intra_op_parallelism_threads = 1
    return config
