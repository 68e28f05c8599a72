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

# the instruction set oneDNN is capped at in deterministic mode (see request_op_determinism)
DETERMINISTIC_CPU_ISA = "AVX2"


def request_op_determinism():
    """Ask TensorFlow for deterministic kernels, the same on every CPU: effective if TF is
    not imported yet.

    oneDNN (TensorFlow 2.x's CPU kernels, and the GEMM inside its Eigen contractions)
    picks its kernels at run time by the CPU's instruction set (AVX2, AVX-512, AMX ...):
    the same seed gave other digits on two machines of one kind, and on one machine with
    oneDNN capped at AVX2 (demo, deterministic: 64.57 against 63.32 at step 600; turning
    oneDNN's graph rewrites off, ``TF_ENABLE_ONEDNN_OPTS=0``, did not remove it). So the
    deterministic mode caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA``), the level of every
    x86 server CPU since 2013, whatever the user's environment says: machines with AVX2
    or more then run the same kernels. TF 1.15's wheel has no oneDNN and ignores it.
    """
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    os.environ["ONEDNN_MAX_CPU_ISA"] = DETERMINISTIC_CPU_ISA


def make_deterministic(config):
    """Switch a session ``ConfigProto`` to one thread (and request deterministic kernels);
    returns ``config``."""
    request_op_determinism()
    config.inter_op_parallelism_threads = 1
    config.intra_op_parallelism_threads = 1
    return config
