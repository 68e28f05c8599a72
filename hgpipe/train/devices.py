"""Where the graph runs: Session configs and optimizer wrapping for cpu, gpu and npu.

The Ascend path follows Huawei's ModelZoo recipe for TF 1.15: a custom graph optimizer
named ``NpuOptimizer`` (off-line mode, mixed precision by default), TensorFlow's own
remapping and memory optimisation switched off, and npu_bridge's loss-scale optimizer.
npu_bridge is imported only here, only when ``npu`` is chosen.

Beware one protobuf trap (it silently did the wrong thing in the seed's lineage):
``memory_optimization`` is a ``MemOptType``, not a ``Toggle``; assigning
``RewriterConfig.OFF`` (= 2) stores ``MANUAL``. The value that disables it is
``NO_MEM_OPT``.
"""
from hgpipe.tf_compat import import_tf

DEVICES = ("cpu", "gpu", "npu")


class DeviceError(ValueError):
    """The chosen device cannot be used here (e.g. npu without npu_bridge)."""


def _rewriter_config():
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig
    return RewriterConfig


def import_npu_bridge():
    """Import npu_bridge (Ascend's TF plug-in) or explain what is missing."""
    try:
        import npu_bridge  # noqa: F401
        from npu_bridge.estimator.npu import npu_loss_scale_manager, npu_loss_scale_optimizer
    except ImportError as exc:
        raise DeviceError(
            "--device npu needs Huawei's npu_bridge (shipped with the Ascend TF 1.15 "
            "images / CANN toolkit), which is not importable here: %s" % exc)
    return npu_loss_scale_manager, npu_loss_scale_optimizer


def session_config(device, mixed_precision=True, precision_mode=None):
    """A tf ConfigProto for the device. Pure protobuf: testable without npu_bridge."""
    if device not in DEVICES:
        raise DeviceError("unknown device %r (choose %s)" % (device, ", ".join(DEVICES)))
    tf = import_tf()
    config = tf.ConfigProto(allow_soft_placement=True)
    if device == "gpu":
        config.gpu_options.allow_growth = True
    if device == "npu":
        rewriter = _rewriter_config()
        options = config.graph_options.rewrite_options
        npu = options.custom_optimizers.add()
        npu.name = "NpuOptimizer"
        npu.parameter_map["use_off_line"].b = True
        mode = precision_mode or ("allow_mix_precision" if mixed_precision
                                  else "force_fp32")
        npu.parameter_map["precision_mode"].s = mode.encode("utf-8")
        options.remapping = rewriter.OFF
        options.memory_optimization = rewriter.NO_MEM_OPT
    return config


def wrap_optimizer(optimizer, device, mixed_precision=True, distributed=None):
    """Add loss scaling where the device computes in float16, and gradient averaging.

    gpu: TensorFlow's automatic mixed precision graph rewrite (dynamic loss scale).
    npu: npu_bridge's loss-scale optimizer with an exponential-update manager (the
    precision itself is set by ``precision_mode`` in the session config).
    cpu: unchanged (fp32).
    ``distributed`` (a :mod:`hgpipe.train.distributed` backend) averages the gradients
    over the ranks: outside TF's loss scaling (Horovod's order: the average of unscaled
    gradients is checked for overflow, identically on every rank), inside npu_bridge's
    (Huawei's order, with ``is_distributed`` so the overflow flag is reduced too).
    """
    distribute = distributed.distribute_optimizer if distributed is not None else None
    if device == "npu" and mixed_precision:
        manager_mod, optimizer_mod = import_npu_bridge()
        manager = manager_mod.ExponentialUpdateLossScaleManager(
            init_loss_scale=2 ** 32, incr_every_n_steps=1000,
            decr_every_n_nan_or_inf=2, decr_ratio=0.5)
        if distribute is None or distributed.size == 1:
            return optimizer_mod.NPULossScaleOptimizer(optimizer, manager)
        return optimizer_mod.NPULossScaleOptimizer(distribute(optimizer), manager,
                                                   is_distributed=True)
    if device == "gpu" and mixed_precision:
        tf = import_tf()
        optimizer = tf.train.experimental.enable_mixed_precision_graph_rewrite(optimizer)
    return distribute(optimizer) if distribute is not None else optimizer


def check_device(device):
    """Fail early, with a clear message, if the device cannot be used."""
    if device == "npu":
        import_npu_bridge()
    elif device == "gpu":
        tf = import_tf()
        if not tf.test.is_gpu_available():
            raise DeviceError("--device gpu: TensorFlow sees no GPU here (TF %s)"
                              % tf.__version__)
