"""The one place that knows "rank r of n": data-parallel training through Horovod or HCCL.

Every rank runs the same graph on its own part of each epoch (``ShardBatches`` takes
``rank``/``num_ranks``); the backend averages the gradients, so every rank applies the
same update and the weights stay identical. Rank 0 (the *chief*) alone writes the logdir
(checkpoints, summaries, ``config.ini``, ``train_summary.json``), runs validation and
prints the ModelZoo lines; the other ranks only read it, to resume from the chief's last
checkpoint. Variables are broadcast from rank 0 after initialisation and after every
restore, so a rank that found no checkpoint (a machine without the shared logdir) or an
older one still starts from the chief's weights.

Backends are thin adapters over the engines these users already run:

- ``none``: one process (the default); nothing is imported.
- ``horovod``: ``horovodrun -np N`` / mpirun on GPUs (NCCL) or CPUs (Gloo);
  ``hvd.DistributedOptimizer``, ``hvd.broadcast_global_variables``.
- ``hccl``: Ascend, one process per NPU, as Huawei's TF 1.15 ModelZoo models do: rank
  and size from ``RANK_ID``/``RANK_SIZE``, the cluster from ``RANK_TABLE_FILE``, the NPU
  from ``ASCEND_DEVICE_ID``; npu_bridge's ``NPUDistributedOptimizer`` and its
  ``broadcast_global_variables``, inside the loss-scale optimizer with
  ``is_distributed=True`` (the overflow flag is reduced across ranks, so all ranks skip
  the same steps). Written from Huawei's API (names checked against
  ``../shared/npu_bridge_api.txt``); not run on hardware here.

Horovod and npu_bridge are imported only when chosen.

Batch size: ``[Train] batch_size`` is per device; a step consumes ``batch_size x
size`` samples (the global batch). ``[Train] lr_scaling = linear`` multiplies the learning
rate by ``size`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 2.1), reached
linearly over ``lr_warmup_steps``. It is off by default and in the reference recipes: the
references trained on one device at their batch size, and their learning rates were tuned
for that batch, not derived from a rule that would carry over to a larger one.
"""
import os

BACKENDS = ("none", "horovod", "hccl")


class DistributedError(ValueError):
    """The distributed set-up is inconsistent (bad env, backend missing, wrong device)."""


class SingleProcess(object):
    """Rank 0 of 1: every collective is the identity. The base of the real backends."""

    name = "none"

    def __init__(self):
        self.rank, self.size, self.local_rank = 0, 1, 0

    @property
    def is_chief(self):
        """Rank 0 writes the logdir, validates and prints the ModelZoo lines."""
        return self.rank == 0

    def describe(self):
        return "rank %d of %d (%s)" % (self.rank, self.size, self.name)

    def distribute_optimizer(self, optimizer):
        """Wrap ``optimizer`` so that it applies the gradient averaged over all ranks."""
        return optimizer

    def broadcast_variables(self, tf):
        """An op setting every global variable to rank 0's value."""
        return tf.no_op(name="broadcast_variables")

    def sum_across_ranks(self, tensor):
        """A float32 tensor summed over the ranks (same shape)."""
        return tensor

    def gather_across_ranks(self, tensor):
        """A float32 vector from every rank, stacked: (size, len)."""
        return tensor[None]

    def session_config(self, config, device):
        """Adjust the Session's ConfigProto for this rank (in place; returned)."""
        return config

    def peer_failure(self, exc):
        """True if ``exc`` says that another rank is gone (so the run cannot go on)."""
        return False


class Horovod(SingleProcess):
    """Horovod over Gloo or MPI (CPU) or NCCL (GPU): launched by horovodrun/mpirun."""

    name = "horovod"

    def __init__(self):
        super(Horovod, self).__init__()
        try:
            import horovod.tensorflow as hvd
        except ImportError as exc:
            raise DistributedError(
                "--distributed horovod needs Horovod built with TensorFlow support "
                "(HOROVOD_WITH_TENSORFLOW=1 pip install --no-build-isolation horovod), "
                "which is not importable here: %s" % exc)
        hvd.init()
        self.hvd = hvd
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def distribute_optimizer(self, optimizer):
        return self.hvd.DistributedOptimizer(optimizer)

    def broadcast_variables(self, tf):
        return self.hvd.broadcast_global_variables(0)

    def sum_across_ranks(self, tensor):
        return self.hvd.allreduce(tensor, op=self.hvd.Sum)

    def gather_across_ranks(self, tensor):
        return self.hvd.allgather(tensor[None])

    def session_config(self, config, device):
        if device == "gpu":  # one GPU per process, as Horovod's examples pin it
            config.gpu_options.visible_device_list = str(self.local_rank)
        return config

    def peer_failure(self, exc):
        # a dead peer surfaces as HorovodInternalError / an aborted or unavailable op
        text = "%s %s" % (type(exc).__name__, exc)
        return any(word in text for word in ("Horovod", "Gloo", "gloo", "Aborted",
                                             "Unavailable", "Connection"))


def hccl_env(environ=None):
    """(rank, size, device_id, rank_table) from the Ascend launch variables, checked.

    One process per NPU: ``RANK_ID`` (0..RANK_SIZE-1, global over machines),
    ``RANK_SIZE``, ``ASCEND_DEVICE_ID`` (the NPU of this machine this process drives)
    and, when RANK_SIZE > 1, ``RANK_TABLE_FILE`` (the cluster description HCCL reads).
    """
    env = os.environ if environ is None else environ

    def integer(name, default=None):
        text = env.get(name, default)
        if text is None or str(text).strip() == "":
            raise DistributedError("--distributed hccl: environment variable %s is not set "
                                   "(the 8p scripts set it per process)" % name)
        try:
            return int(str(text).strip())
        except ValueError:
            raise DistributedError("--distributed hccl: %s=%r is not an integer"
                                   % (name, text))

    size = integer("RANK_SIZE")
    rank = integer("RANK_ID")
    device = integer("ASCEND_DEVICE_ID", env.get("DEVICE_ID"))
    if size < 1:
        raise DistributedError("--distributed hccl: RANK_SIZE=%d must be >= 1" % size)
    if not 0 <= rank < size:
        raise DistributedError("--distributed hccl: RANK_ID=%d is outside 0..%d (RANK_SIZE=%d)"
                               % (rank, size - 1, size))
    if device < 0:
        raise DistributedError("--distributed hccl: ASCEND_DEVICE_ID=%d must be >= 0" % device)
    table = env.get("RANK_TABLE_FILE") or None
    if size > 1:
        if table is None:
            raise DistributedError("--distributed hccl: RANK_SIZE=%d but RANK_TABLE_FILE is "
                                   "not set (HCCL needs the cluster's rank table)" % size)
        if not os.path.isfile(table):
            raise DistributedError("%s: RANK_TABLE_FILE does not exist" % table)
    return rank, size, device, table


class Hccl(SingleProcess):
    """Ascend HCCL through npu_bridge, one process per NPU (see :func:`hccl_env`)."""

    name = "hccl"

    def __init__(self, environ=None):
        super(Hccl, self).__init__()
        self.rank, self.size, self.local_rank, self.rank_table = hccl_env(environ)
        self._npu = None

    def _bridge(self):
        """npu_bridge's modules, imported on first use (never at construction: the env
        checks and the session config are testable without it)."""
        if self._npu is None:
            try:
                from npu_bridge.estimator.npu import npu_hook, npu_optimizer
                from npu_bridge.hccl import hccl_ops
            except ImportError as exc:
                raise DistributedError(
                    "--distributed hccl needs Huawei's npu_bridge (Ascend TF 1.15 images / "
                    "CANN), which is not importable here: %s" % exc)
            self._npu = (npu_hook, npu_optimizer, hccl_ops)
        return self._npu

    def distribute_optimizer(self, optimizer):
        return self._bridge()[1].NPUDistributedOptimizer(optimizer)

    def broadcast_variables(self, tf):
        return self._bridge()[0].broadcast_global_variables(0)

    def sum_across_ranks(self, tensor):
        return self._bridge()[2].allreduce(tensor, "sum")

    def gather_across_ranks(self, tensor):
        return self._bridge()[2].allgather(tensor[None], self.size)

    def session_config(self, config, device):
        # The NpuOptimizer custom optimizer (devices.session_config) drives the NPU; HCCL
        # reads RANK_TABLE_FILE/RANK_ID itself. hcom_parallel overlaps the gradient
        # all-reduce with the backward pass, as the ModelZoo 8p recipes switch it on.
        for optimizer in config.graph_options.rewrite_options.custom_optimizers:
            if optimizer.name == "NpuOptimizer":
                optimizer.parameter_map["hcom_parallel"].b = True
        return config

    def peer_failure(self, exc):
        return "hccl" in str(exc).lower()


def backend(name, device="cpu", environ=None):
    """The backend called ``name`` (none, horovod, hccl), checked against the device."""
    if name not in BACKENDS:
        raise DistributedError("unknown distributed backend %r (choose %s)"
                               % (name, ", ".join(BACKENDS)))
    if name == "hccl" and device != "npu":
        raise DistributedError("--distributed hccl runs on Ascend NPUs: use --device npu "
                               "(or horovod on gpu/cpu)")
    if name == "horovod" and device == "npu":
        raise DistributedError("--distributed horovod is for gpu/cpu; on Ascend use hccl")
    if name == "none":
        return SingleProcess()
    if name == "horovod":
        return Horovod()
    return Hccl(environ)


def scaled_learning_rate(tf, learning_rate, global_step, size, scaling, warmup_steps):
    """``learning_rate`` x ``size`` under linear scaling, ramped up over the warm-up.

    scaling "none": unchanged (whatever the number of ranks). "linear": the factor grows
    from 1 at step 0 to ``size`` at ``warmup_steps`` (immediately if 0), then stays.
    """
    if scaling == "none" or size == 1:
        return learning_rate
    if scaling != "linear":
        raise DistributedError("unknown lr_scaling %r (none or linear)" % scaling)
    dtype = learning_rate.dtype.base_dtype  # float32, or float64 in the float64 mode
    if warmup_steps > 0:
        progress = tf.minimum(tf.cast(global_step, dtype) / float(warmup_steps), 1.0)
    else:
        progress = tf.constant(1.0, dtype)
    factor = 1.0 + (size - 1.0) * progress
    return tf.identity(learning_rate * factor, name="scaled_learning_rate")


# what each rank reports at the end of a run, gathered to the chief in this order
RANK_STATS = ("images_per_sec", "input_wait_fraction", "timed_seconds", "timed_steps")


class RankOps(object):
    """The graph ops the training loop needs from the backend, built once with the graph.

    ``broadcast``: set every variable to rank 0's (run after init and after a restore).
    ``stop_flag`` -> ``any_stop``: each rank feeds 1 when it got SIGINT/SIGTERM; the sum,
    fetched with the train step, makes every rank stop after the same step (a rank that
    stopped alone would leave the others waiting in the all-reduce).
    ``stats`` -> ``gathered``: the per-rank figures of :data:`RANK_STATS`, for the chief.
    """

    def __init__(self, tf, dist):
        self.broadcast = dist.broadcast_variables(tf)
        self.stop_flag = tf.placeholder_with_default(tf.zeros((1,), tf.float32), (1,),
                                                     name="stop_requested")
        self.any_stop = dist.sum_across_ranks(self.stop_flag)
        self.stats = tf.placeholder(tf.float32, (len(RANK_STATS),), name="rank_stats")
        self.gathered = dist.gather_across_ranks(self.stats)


def global_throughput(per_rank, batch_size):
    """(images/s of all ranks together, worst input-wait fraction) from gathered stats.

    Ranks step in lock-step, so the job's rate is every rank's images over the slowest
    rank's timed seconds: the figure ModelZoo's 8p scripts report as ``Final
    Performance images/sec`` (batch x RANK_SIZE / step time).
    """
    images = sum(float(r["timed_steps"]) * batch_size for r in per_rank)
    seconds = max(float(r["timed_seconds"]) for r in per_rank)
    rate = images / seconds if seconds > 0 else 0.0
    return rate, max(float(r["input_wait_fraction"]) for r in per_rank)
