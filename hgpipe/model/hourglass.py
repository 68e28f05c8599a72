"""Stacked Hourglass network (Newell, Yang, Deng 2016) as a tf.compat.v1 graph.

Design follows Newell's Torch ``hg.lua`` and its PyTorch port bearpaw/pytorch-pose
(``HourglassNet`` with ``Bottleneck``), so parameter counts match that family:

* stem: 7x7/2 conv(64) + BN + ReLU -> residual(128) -> 2x2 max pool -> residual(128)
  -> residual(n_feats): the image is now at 1/4 resolution (heatmap resolution).
  ``stem="bearpaw"`` widens the second residual as bearpaw's ``HourglassNet`` does
  (``pose/models/hourglass.py``: ``layer2 = self._make_residual(block, self.inplanes, 1)``
  with ``self.inplanes`` = 128 there, i.e. a Bottleneck of 128 planes, 128 -> 256), so
  its third residual is 256 -> n_feats; ``"newell"`` (the default) is Newell's ``hg.lua``
  and princeton-vl/pytorch_stacked_hourglass's ``PoseNet`` (``Residual(128, 128)``);
* hourglass of ``n_low`` levels: at each level an upper branch of ``n_modules`` residuals
  and a lower branch pool -> ``n_modules`` residuals -> (inner hourglass, or
  ``n_modules`` residuals at the bottom) -> ``n_modules`` residuals -> nearest 2x upsample,
  the two branches added;
* per stack: hourglass -> dropout (if ``dropout_rate`` > 0; not in the paper, kept from
  the wbenbihi TF port) -> ``n_modules`` residuals -> linear (1x1 conv + BN + ReLU)
  -> 1x1 conv to ``n_joints`` heatmap logits;
* intermediate supervision: between stacks the heatmaps (1x1 conv) and the linear
  features (1x1 conv) are remapped to ``n_feats`` and added to the stack's input.

Trainable parameters at n_feats=256, n_low=4, n_modules=1, 16 joints (BN gamma/beta
included, moving statistics not): 2 stacks 6,570,400 and 8 stacks 25,434,112 with the
newell stem (pytorch_stacked_hourglass's PoseNet without its unused ``skip_layer``s);
6,730,912 and 25,594,624 with the bearpaw stem, exactly bearpaw's ``hg_s2_b1`` and
``hg_s8_b1`` (``parameters()`` of ``HourglassNet(Bottleneck, 2|8, 1, 16)``).

``input_mean`` (R, G, B) is subtracted from the [0, 1] image as the network's first op,
so a model trained on mean-centred input (bearpaw: ``color_normalize`` in
``pose/utils/transforms.py`` subtracts the mean and does not divide by the std) carries
its normalisation into training, evaluation and every exported graph.

``tiny=True`` reproduces the "tiny" variant of wbenbihi/hourglasstensorflow
(``hourglass_tiny.py``): (1) every residual module uses the single BN-ReLU-conv3x3(n) block
instead of the bottleneck (see :func:`hgpipe.model.layers.residual`), (2) the stem drops
its middle residual (pool goes straight to residual(n_feats)), (3) between stacks the
linear features are added without their 1x1 remap.  The port's other switches (sigmoid /
ReLU "modif" outputs, 6x6 stem conv, one extra hourglass level) are not reproduced.
Note the tiny block has more weights per module at equal width (9n^2 against 3.25n^2):
pair ``tiny`` with a smaller ``n_feats`` to get a light model.

``architecture="seed"`` builds instead the seed's own network, wbenbihi's
``hourglass_tiny.py`` as its ``train_launcher.py`` runs it (one more pooling per
hourglass, no residual after it, its ``ll_[0]`` merge, no conv biases, no BN gamma, a
6x6/2 stem): :mod:`hgpipe.model.seed_hourglass`.  ``"newell"`` (the default) is the
network described above.

The network returns logits (no sigmoid) in the compute dtype; the loss casts to float32.
``dtype="float64"`` computes and keeps every variable in float64 (TF has no float64 fused
batch norm: :func:`hgpipe.model.layers.batch_norm` computes it from moments): the
training graph's float64 verification mode (:func:`hgpipe.train.graph.build_train_graph`).
"""
import numbers

import numpy as np

from hgpipe.codec import HEATMAP_SCALE
# input sides must be a multiple of input_size_multiple(n_low) for the skips to line up;
# the rule lives with the config, which checks it when a file is loaded
from hgpipe.config import STEM_STRIDE, input_size_multiple  # noqa: F401
from hgpipe.joints import NUM_JOINTS
from hgpipe.model import layers
from hgpipe.model.seed_hourglass import build_seed_hourglass
from hgpipe.tf_compat import import_tf

tf = import_tf(lazy=True)  # TensorFlow is imported when a graph is built

# Key names are the keyword names of build_hourglass, so ``build_hourglass(images,
# is_training=..., **model_config(cfg))`` works; defaults are bearpaw's hg2 at 256 px.
MODEL_CONFIG_DEFAULTS = {
    "n_stacks": 2,
    "n_feats": 256,
    "n_modules": 1,
    "n_low": 4,
    "n_joints": NUM_JOINTS,
    "tiny": False,
    "dropout_rate": 0.0,  # Newell's network; the config's default is the seed's 0.2
    "stem": "newell",
    "input_mean": None,
    "architecture": "newell",
}

STEMS = ("newell", "bearpaw")
# newell: this module's network (hg.lua / bearpaw / PSH); seed: wbenbihi's hourglass_tiny.py
ARCHITECTURES = ("newell", "seed")

_COMPUTE_DTYPES = ("float32", "float16", "float64")


def _positive_int(config, key, minimum=1):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError("model config: %s must be an integer >= %d, got %r"
                         % (key, minimum, value))
    return int(value)


def model_config(config=None, **overrides):
    """Complete and validate a model config: defaults <- ``config`` <- ``overrides``.

    Returns a new dict with exactly the keys of :data:`MODEL_CONFIG_DEFAULTS`; unknown keys
    or bad values raise ``ValueError`` (a typo such as ``n_stack`` must not silently fall
    back to a default and train the wrong network).
    """
    merged = dict(MODEL_CONFIG_DEFAULTS)
    for source in (config or {}, overrides):
        unknown = sorted(set(source) - set(MODEL_CONFIG_DEFAULTS))
        if unknown:
            raise ValueError("model config: unknown key(s) %s; expected keys are %s"
                             % (", ".join(unknown), ", ".join(sorted(MODEL_CONFIG_DEFAULTS))))
        merged.update(source)
    checked = {key: _positive_int(merged, key)
               for key in ("n_stacks", "n_feats", "n_modules", "n_low", "n_joints")}
    if not isinstance(merged["tiny"], (bool, np.bool_)):
        raise ValueError("model config: tiny must be a bool, got %r" % (merged["tiny"],))
    checked["tiny"] = bool(merged["tiny"])
    rate = merged["dropout_rate"]
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ValueError("model config: dropout_rate must be a number in [0, 1), got %r"
                         % (rate,))
    checked["dropout_rate"] = float(rate)
    if merged["stem"] not in STEMS:
        raise ValueError("model config: stem must be one of %s, got %r"
                         % (", ".join(STEMS), merged["stem"]))
    checked["stem"] = merged["stem"]
    if checked["tiny"] and checked["stem"] != "newell":
        raise ValueError("model config: tiny has no second stem residual; stem must be "
                         "newell, got %r" % (checked["stem"],))
    checked["input_mean"] = _rgb_or_none(merged["input_mean"])
    if merged["architecture"] not in ARCHITECTURES:
        raise ValueError("model config: architecture must be one of %s, got %r"
                         % (", ".join(ARCHITECTURES), merged["architecture"]))
    checked["architecture"] = merged["architecture"]
    if checked["architecture"] == "seed" and (checked["tiny"] or checked["n_modules"] != 1
                                              or checked["stem"] != "newell"):
        raise ValueError("model config: architecture seed is the seed's non-tiny network "
                         "with one module and its own stem (tiny False, n_modules 1, stem "
                         "newell), got tiny=%r, n_modules=%d, stem=%r"
                         % (checked["tiny"], checked["n_modules"], checked["stem"]))
    if not checked["tiny"] and checked["n_feats"] % 2:
        raise ValueError("model config: n_feats must be even (bottleneck halves it), got %d"
                         % checked["n_feats"])
    return checked


def _rgb_or_none(value):
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or not all(np.isfinite(numbers)):
        raise ValueError("model config: input_mean must be None or three finite numbers "
                         "(R, G, B), got %r" % (value,))
    return numbers


def stem_widths(stem, n_feats):
    """Output widths of the stem's three residuals (the second one is the variant)."""
    return (128, 256 if stem == "bearpaw" else 128, n_feats)


def _residual_chain(x, count, n_feats, is_training, tiny, name):
    with tf.variable_scope(name):
        for index in range(count):
            x = layers.residual(x, n_feats, is_training, tiny=tiny, name="res%d" % index)
        return x


def hourglass_module(x, depth, n_feats, n_modules, is_training, tiny=False, name="hourglass"):
    """One recursive hourglass of ``depth`` pooling levels; output has x's shape."""
    with tf.variable_scope(name):
        upper = _residual_chain(x, n_modules, n_feats, is_training, tiny, "upper")
        lower = layers.max_pool(x)
        lower = _residual_chain(lower, n_modules, n_feats, is_training, tiny, "lower_in")
        if depth > 1:
            lower = hourglass_module(lower, depth - 1, n_feats, n_modules, is_training,
                                     tiny, name="inner")
        else:
            lower = _residual_chain(lower, n_modules, n_feats, is_training, tiny, "bottom")
        lower = _residual_chain(lower, n_modules, n_feats, is_training, tiny, "lower_out")
        return upper + layers.upsample_nearest(lower)


def _check_images(images, n_low, dtype, architecture="newell"):
    if images.shape.ndims != 4:
        raise ValueError("build_hourglass: images must be NHWC (4-D), got shape %s"
                         % (images.shape,))
    if not images.dtype.is_floating:
        raise ValueError("build_hourglass: images must be floating point in [0, 1], got %s "
                         "(convert uint8 batches with input_from_uint8)" % (images.dtype.name,))
    if dtype not in _COMPUTE_DTYPES:
        raise ValueError("build_hourglass: dtype must be one of %s, got %r"
                         % (_COMPUTE_DTYPES, dtype))
    multiple = input_size_multiple(n_low, architecture)
    for axis, label in ((1, "height"), (2, "width")):
        size = images.shape[axis]
        size = getattr(size, "value", size)
        if size is not None and int(size) % multiple:
            raise ValueError("build_hourglass: input %s %d is not a multiple of %d "
                             "(4 * 2**%s with n_low=%d)" % (
                                 label, size, multiple,
                                 "(n_low + 1), architecture seed," if architecture == "seed"
                                 else "n_low", n_low))


def build_hourglass(images, n_stacks, n_feats, n_modules, n_low, n_joints=NUM_JOINTS, *,
                    is_training, dropout_rate=0.0, tiny=False, stem="newell",
                    input_mean=None, architecture="newell", dtype="float32",
                    scope="hourglass", reuse=None):
    """Build the network on ``images`` and return the list of per-stack heatmap logits.

    images: float NHWC tensor in [0, 1] (see :func:`input_from_uint8`), 3 channels, H and W
        multiples of ``4 * 2**n_low`` (256 px with n_low=4 gives 64x64 heatmaps).
    is_training: Python bool or scalar ``tf.bool`` tensor; drives batch norm and dropout.
        Training mode registers moving-statistics updates in ``tf.GraphKeys.UPDATE_OPS``.
    stem: "newell" or "bearpaw" (width of the stem's second residual, see the module doc).
    input_mean: None or (R, G, B) subtracted from ``images`` before the first conv.
    architecture: "newell" (this module's network) or "seed" (wbenbihi's, see
        :mod:`hgpipe.model.seed_hourglass`; H and W multiples of ``4 * 2**(n_low + 1)``).
    dtype: compute dtype, "float32", "float16" (variables stay float32) or "float64"
        (variables float64 too).
    scope, reuse: variable scope; pass ``reuse=True`` to build a second graph branch (e.g.
        an eval tower) sharing the weights of the first.

    Returns ``n_stacks`` tensors of shape (N, H/4, W/4, n_joints); the last is the final
    prediction, all of them are supervised.
    """
    config = model_config(n_stacks=n_stacks, n_feats=n_feats, n_modules=n_modules,
                          n_low=n_low, n_joints=n_joints, tiny=tiny, dropout_rate=dropout_rate,
                          stem=stem, input_mean=input_mean, architecture=architecture)
    is_training = layers.check_is_training(is_training)
    images = tf.convert_to_tensor(images)
    _check_images(images, config["n_low"], dtype, config["architecture"])
    n_feats, n_modules, tiny = config["n_feats"], config["n_modules"], config["tiny"]

    widths = stem_widths(config["stem"], n_feats)

    with tf.variable_scope(scope, reuse=reuse):
        x = images
        if config["input_mean"] is not None:
            x = tf.subtract(x, tf.constant(config["input_mean"], x.dtype), name="input_mean")
        x = x if x.dtype == tf.as_dtype(dtype) else tf.cast(x, dtype)
        if config["architecture"] == "seed":
            return build_seed_hourglass(x, config["n_stacks"], n_feats, config["n_low"],
                                        config["n_joints"], is_training,
                                        config["dropout_rate"])
        with tf.variable_scope("stem"):
            x = layers.conv2d(x, 64, 7, stride=2, name="conv7x7")
            x = layers.bn_relu(x, is_training, name="bn")
            x = layers.residual(x, widths[0], is_training, tiny=tiny, name="res1")
            x = layers.max_pool(x)
            if not tiny:
                x = layers.residual(x, widths[1], is_training, tiny=tiny, name="res2")
            x = layers.residual(x, widths[2], is_training, tiny=tiny, name="res3")

        heatmaps = []
        stack_input = x
        for stack in range(config["n_stacks"]):
            with tf.variable_scope("stack%d" % stack):
                features = hourglass_module(stack_input, config["n_low"], n_feats, n_modules,
                                            is_training, tiny=tiny)
                features = layers.dropout(features, config["dropout_rate"], is_training)
                features = _residual_chain(features, n_modules, n_feats, is_training, tiny,
                                           "head")
                features = layers.linear(features, n_feats, is_training)
                logits = layers.conv2d(features, config["n_joints"], 1, name="heatmaps")
                heatmaps.append(tf.identity(logits, name="heatmaps"))
                if stack + 1 < config["n_stacks"]:
                    remapped_heatmaps = layers.conv2d(logits, n_feats, 1,
                                                      name="remap_heatmaps")
                    if not tiny:
                        features = layers.conv2d(features, n_feats, 1, name="remap_features")
                    stack_input = tf.add_n([stack_input, features, remapped_heatmaps],
                                           name="next_input")
        return heatmaps


def count_parameters(graph_or_variables=None, trainable_only=True):
    """Number of scalar parameters in a graph's (trainable) variables or a variable list.

    ``graph_or_variables``: a ``tf.Graph`` (default: the default graph) or an iterable of
    variables.  With a graph, ``trainable_only=False`` also counts non-trainable variables
    such as batch-norm moving statistics and optimizer slots.
    """
    if graph_or_variables is None:
        graph_or_variables = tf.get_default_graph()
    if isinstance(graph_or_variables, tf.Graph):
        key = tf.GraphKeys.TRAINABLE_VARIABLES if trainable_only else tf.GraphKeys.GLOBAL_VARIABLES
        variables = graph_or_variables.get_collection(key)
    else:
        variables = list(graph_or_variables)
    total = 0
    for variable in variables:
        shape = variable.shape
        if not shape.is_fully_defined():
            raise ValueError("count_parameters: variable %s has unknown shape %s"
                             % (variable.name, shape))
        total += int(np.prod(shape.as_list(), dtype=np.int64))
    return total


def _uint8_to_unit_float(tensor, dtype, what, full_scale=255.0):
    tensor = tf.convert_to_tensor(tensor)
    if tensor.dtype != tf.uint8:
        raise ValueError("%s: expected a uint8 tensor, got %s" % (what, tensor.dtype.name))
    if dtype == "float64":  # exact: no float32 rounding of the [0, 1] values
        return tf.cast(tensor, tf.float64) * (1.0 / full_scale)
    unit = tf.cast(tensor, tf.float32) * (1.0 / full_scale)
    return unit if dtype == "float32" else tf.cast(unit, dtype)


def input_from_uint8(images_uint8, dtype="float32"):
    """uint8 images (0-255) -> ``dtype`` in [0, 1], computed in the graph.

    The trainer feeds uint8 (4x less host memory traffic than float32, no host-side
    conversion); the cast runs on whatever device the graph places it.
    """
    with tf.name_scope("input_from_uint8"):
        return _uint8_to_unit_float(images_uint8, dtype, "input_from_uint8")


def heatmaps_from_uint8(heatmaps_uint8, dtype="float32"):
    """Stored uint8 target heatmaps -> float32 (or float64) in [0, 1] (stored value /
    :data:`hgpipe.codec.HEATMAP_SCALE`, the codec's encoding)."""
    with tf.name_scope("heatmaps_from_uint8"):
        return _uint8_to_unit_float(heatmaps_uint8, dtype, "heatmaps_from_uint8",
                                    HEATMAP_SCALE)
