"""The training graph: inputs -> Stacked Hourglass -> masked MSE -> optimizer step.

Inputs are uint8 (images and stored heatmaps) and are converted to float on the device,
so the host copies 4x fewer bytes per sample than with float32 feeds. The data position
(epoch, batch) lives in two variables saved with every checkpoint, so a resumed run
continues with the exact batch that came next.
"""
from typing import NamedTuple

from hgpipe.model.hourglass import build_hourglass, heatmaps_from_uint8, input_from_uint8
from hgpipe.model.inference import model_kwargs
from hgpipe.model.loss import heatmap_loss
from hgpipe.tf_compat import import_tf
from hgpipe.train.augment import augment_on_device
from hgpipe.train.geometry import device_geometry
from hgpipe.train.devices import wrap_optimizer
from hgpipe.train.distributed import scaled_learning_rate
from hgpipe.train.schedules import learning_rate_tensor
from hgpipe.joints import MPII, NUM_JOINTS


class TrainGraph(NamedTuple):
    images: object          # uint8 (B, S, S, 3) input tensor (placeholder or tf.data)
    heatmaps: object        # uint8 (B, H, H, K), K the keypoint set's joints (MPII: 16)
    weights: object         # float32 (B, K)
    outputs: list           # per-stack heatmap logits (training mode)
    eval_images: object     # uint8 (B, S, S, 3) placeholder of the inference tower
    eval_heatmaps: object   # float32 final stack in inference mode (moving BN statistics)
    loss: object
    stack_losses: list
    learning_rate: object
    global_step: object
    train_op: object
    epoch: object           # int64 variable: data position, saved in checkpoints
    batch: object
    set_position: object    # op assigning epoch/batch from the two placeholders below
    position_epoch: object
    position_batch: object
    saver: object


class FeedInput(object):
    """Placeholders fed from host batches through feed_dict (the default input layer)."""

    def __init__(self, batch_size, input_size, heatmap_size, num_joints=NUM_JOINTS):
        tf = import_tf()
        self.images = tf.placeholder(tf.uint8, (batch_size, input_size, input_size, 3),
                                     name="images")
        self.heatmaps = tf.placeholder(tf.uint8, (batch_size, heatmap_size, heatmap_size,
                                                  num_joints), name="target_heatmaps")
        self.weights = tf.placeholder(tf.float32, (batch_size, num_joints), name="weights")

    def feed(self, batch):
        return {self.images: batch["images"], self.heatmaps: batch["heatmaps"],
                self.weights: batch["weights"]}


class ContextFeedInput(object):
    """Placeholders for device-geometry shards: context crops (B, C, C, 3) uint8, their
    joints in context pixels and annotated flags (:mod:`hgpipe.data.context`); the graph
    makes crops and heatmaps from them (:mod:`hgpipe.train.geometry`)."""

    fields = ("images", "joints", "weights")

    def __init__(self, batch_size, context_side, num_joints=NUM_JOINTS):
        tf = import_tf()
        c = int(context_side)
        self.images = tf.placeholder(tf.uint8, (batch_size, c, c, 3), name="context_images")
        self.joints = tf.placeholder(tf.float32, (batch_size, num_joints, 2),
                                     name="context_joints")
        self.weights = tf.placeholder(tf.float32, (batch_size, num_joints), name="annotated")
        self.heatmaps = None

    def feed(self, batch):
        return {self.images: batch["images"], self.joints: batch["joints"],
                self.weights: batch["weights"]}


class Geometry(NamedTuple):
    """What device geometry needs to know of the shards (their manifest)."""
    preset: object      # hgpipe.data.augment.Preset the context margin was made for
    side: int           # context crop side
    density: float      # context pixels per crop pixel
    sigma: float        # Gaussian sigma, heatmap pixels
    flip: bool          # [Prepare] flip: mirror with the preset's probability
    color: float        # [Prepare] colour as a gain half-range (0: none)
    centre: str = "float"   # [Prepare] gaussian_centre (hgpipe/codec.py)
    window: int = 0         # [Prepare] gaussian_window (hgpipe/codec.py)

    @classmethod
    def from_manifest(cls, manifest):
        """The manifest's device geometry, or None for crop shards."""
        from hgpipe.data.augment import preset_of
        from hgpipe.data.schema import context_side
        side = context_side(manifest)
        if not side:
            return None
        prepare = manifest["config"]["Prepare"]
        preset = preset_of(prepare)
        color = (preset.color_high - preset.color_low) / 2.0 \
            if prepare["color_jitter"] > 0 else 0.0
        return cls(preset, int(side), float(manifest["context_density"]),
                   float(prepare["sigma"]), bool(prepare["flip"]), float(color),
                   prepare.get("gaussian_centre", "float"),
                   int(prepare.get("gaussian_window", 0)))


class DatasetInput(object):
    """The same tensors from a tf.data pipeline over the same batch iterator.

    Swapping this in for :class:`FeedInput` changes nothing else in the graph; feeds
    become empty. (Kept for platforms where feed_dict is the bottleneck.)
    """

    def __init__(self, batch_iterator_factory, batch_size, input_size, heatmap_size,
                 context_side=None, num_joints=NUM_JOINTS):
        tf = import_tf()
        j = int(num_joints)
        if context_side:   # device geometry: context crops, joints, annotated flags
            c = int(context_side)
            names = ContextFeedInput.fields
            shapes = ((batch_size, c, c, 3), (batch_size, j, 2), (batch_size, j))
            types = (tf.uint8, tf.float32, tf.float32)
        else:
            names = ("images", "heatmaps", "weights")
            shapes = ((batch_size, input_size, input_size, 3),
                      (batch_size, heatmap_size, heatmap_size, j), (batch_size, j))
            types = (tf.uint8, tf.uint8, tf.float32)

        def generator():
            for batch in batch_iterator_factory():
                yield tuple(batch[name] for name in names)

        dataset = tf.data.Dataset.from_generator(generator, types, shapes).prefetch(2)
        values = tf.data.make_one_shot_iterator(dataset).get_next()
        self.heatmaps = self.joints = None
        for name, value in zip(names, values):
            setattr(self, name, value)

    def feed(self, batch):
        return {}


COMPUTE_DTYPES = ("float32", "float64")


def build_train_graph(cfg, inputs, device="cpu", distributed=None, geometry=None,
                      keypoints=MPII, dtype="float32"):
    """Build the whole training graph in the default graph.

    ``keypoints``: the shards' set (:func:`hgpipe.data.schema.keypoints_of`): the
    network's output channels are its joints, the device flip swaps its pairs; the
    inputs must hold that many joints.

    ``distributed``: a :mod:`hgpipe.train.distributed` backend (gradient averaging and
    the optional learning-rate scaling); None trains on one device. ``geometry``: a
    :class:`Geometry` when ``inputs`` are context crops (:class:`ContextFeedInput`):
    rotation, scale, flip and colour are drawn on the device every step.

    ``dtype="float64"`` builds the same graph in float64: the [0, 1] inputs, every
    variable (weights, batch-norm statistics, optimizer slots), train-mode batch norm
    (from moments: TF has no float64 fused kernel), the loss and the learning rate. It is
    the verification mode that shows a step equal to a float64 reference run to rounding
    (tests/test_training_step.py, docs/recipes.md "One training step"), where float32
    steps drift apart in a few steps whoever computes them. A builder argument, not a
    config key, on purpose: a float64 checkpoint restores into no float32 graph (the
    inference, export and evaluation graphs are float32), Ascend has no float64 kernels,
    and a float64 step costs several float32 steps; so ``hgpipe train`` has no such
    option. Device geometry (``geometry``) still resamples in float32; its crops and
    heatmaps are then cast.
    """
    tf = import_tf()
    if dtype not in COMPUTE_DTYPES:
        raise ValueError("build_train_graph: dtype must be one of %s, got %r"
                         % (", ".join(COMPUTE_DTYPES), dtype))
    train = cfg["Train"]
    if dtype == "float64" and (device == "npu" or (device == "gpu"
                                                   and train["mixed_precision"])):
        raise ValueError("build_train_graph: dtype float64 runs on cpu or on gpu without "
                         "mixed precision, not on %s%s" % (
                             device, " with [Train] mixed_precision" if device == "gpu"
                             else ""))
    joints_in = int(inputs.weights.shape[1])
    if joints_in != keypoints.num_joints:
        raise ValueError("training inputs hold %d joints, the %s keypoint set %d"
                         % (joints_in, keypoints.name, keypoints.num_joints))
    global_step = tf.train.get_or_create_global_step()
    # every device draw is keyed by (seed, the step before its update, sample)
    rank, ranks = (0, 1) if distributed is None else (distributed.rank, distributed.size)
    draw_key = dict(seed=train["seed"], step=global_step, rank=rank, ranks=ranks)
    if geometry is not None:
        augmented = device_geometry(
            inputs.images, inputs.joints, inputs.weights, geometry.preset,
            cfg["DataSetHG"]["img_size"], cfg["DataSetHG"]["hm_size"], geometry.sigma,
            geometry.density, flip=train["device_flip"] or geometry.flip,
            color=train["device_color"] or geometry.color, centre=geometry.centre,
            window=geometry.window, keypoints=keypoints, **draw_key)
        if dtype != "float32":
            augmented = augmented._replace(images=tf.cast(augmented.images, dtype),
                                           heatmaps=tf.cast(augmented.heatmaps, dtype))
    else:
        augmented = augment_on_device(input_from_uint8(inputs.images, dtype),
                                      heatmaps_from_uint8(inputs.heatmaps, dtype),
                                      inputs.weights, train["device_flip"],
                                      train["device_color"], keypoints=keypoints,
                                      **draw_key)
    # Two towers sharing weights, each with a static mode: a tf.cond on a mode tensor
    # would put both batch-norm branches (and their gradients) in one graph, slower to
    # build and to run.
    model_kw = dict(model_kwargs(cfg), n_joints=keypoints.num_joints, dtype=dtype)
    outputs = build_hourglass(augmented.images, is_training=True, **model_kw)
    size = cfg["DataSetHG"]["img_size"]
    eval_images = tf.placeholder(tf.uint8, (int(inputs.images.shape[0]), size, size, 3),
                                 name="eval_images")
    eval_outputs = build_hourglass(input_from_uint8(eval_images, dtype), is_training=False,
                                   reuse=True, **model_kw)
    loss, stack_losses = heatmap_loss(outputs, augmented.heatmaps, augmented.weights,
                                      weighted=train["weighted_loss"],
                                      weighted_mode=train["weighted_loss_mode"],
                                      stacks=train["stack_loss"], kind=train["loss"],
                                      dtype=dtype)
    learning_rate = learning_rate_tensor(train, global_step, dtype=dtype)
    if distributed is not None:
        learning_rate = scaled_learning_rate(tf, learning_rate, global_step, distributed.size,
                                             train["lr_scaling"], train["lr_warmup_steps"])
    # imported here: its torch-rule classes subclass tf.train.Optimizer, so importing
    # the module imports TensorFlow (tests/test_imports.py: no import-time TensorFlow)
    from hgpipe.train.optimizers import make_optimizer
    optimizer = wrap_optimizer(make_optimizer(train, learning_rate), device,
                               train["mixed_precision"], distributed)
    with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
        train_op = optimizer.minimize(loss, global_step=global_step)
    with tf.variable_scope("data_position"):
        epoch = tf.get_variable("epoch", (), tf.int64, tf.zeros_initializer(),
                                trainable=False)
        batch = tf.get_variable("batch", (), tf.int64, tf.zeros_initializer(),
                                trainable=False)
        position_epoch = tf.placeholder(tf.int64, (), name="epoch_value")
        position_batch = tf.placeholder(tf.int64, (), name="batch_value")
        set_position = tf.group(tf.assign(epoch, position_epoch),
                                tf.assign(batch, position_batch))
    # relative names in the "checkpoint" index: a moved logdir still finds its checkpoints
    saver = tf.train.Saver(max_to_keep=cfg["Saver"]["keep_checkpoints"],
                           save_relative_paths=True)
    return TrainGraph(inputs.images, inputs.heatmaps, inputs.weights, outputs, eval_images,
                      tf.cast(eval_outputs[-1], tf.float32), loss, stack_losses, learning_rate,
                      global_step, train_op, epoch, batch, set_position, position_epoch,
                      position_batch, saver)
